"""DDSM's outlined abnormal cases as a recipe's abnormal source: the same ROI extraction as CBIS-DDSM's masks, and
with both collections one woman is one patient (her film found by content), never in two splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mammo.extract import DdsmScans, cbis_tiles, roi_tiles
from mammo.io.cbis import CSV_NAMES, read_case_descriptions
from mammo.io.ddsm import find_abnormal_rois, outline_mask, read_ddsm_scan
from mammo.same_film import match_films
from mammo.split import assign_splits, check_patient_disjoint
from mammo.stages.tiles import one_woman, prefer_cbis, reconcile
from mammo.tables import write_table
from mammo.tiles import Method2

SEED = 5


@pytest.fixture(scope="module")
def both(demo_root):
    """Tiles, rejected rows and fingerprints of the small demo's CBIS-DDSM ROIs and DDSM outlined abnormalities."""
    cbis_rois, rejected = read_case_descriptions([demo_root / "cbis" / name for name in CSV_NAMES])
    ddsm_rois, ddsm_rejected = find_abnormal_rois(demo_root / "ddsm")
    assert rejected.empty and ddsm_rejected.empty
    cbis = cbis_tiles(cbis_rois, demo_root / "cbis", "ds9_both", Method2(), SEED, "c.npy")
    ddsm = roi_tiles(ddsm_rois, DdsmScans(), "ds9_both", Method2(), SEED, "d.npy")
    return cbis_rois, ddsm_rois, cbis, ddsm


def test_outlines_go_through_the_same_roi_extraction(both):
    """Every outlined abnormality gives the method's three tiles, cut around its outline's box, labelled from the
    overlay; DDSM has no official division; the scan's tiles name its case as the patient."""
    _, ddsm_rois, _, (images, table, rejected, fingerprints) = both
    assert rejected.empty and len(table) == 3 * len(ddsm_rois) and images.shape[0] == len(table)
    per_roi = table.assign(roi_id=table["tile_id"].str.split("/").str[1]).groupby("roi_id")["class_code"].first()
    assert per_roi.reindex(ddsm_rois["roi_id"]).tolist() == ddsm_rois["class_code"].tolist()
    assert (table["division"].fillna("") == "").all() and table["patient_id"].str.match(r"^ddsm:[A-D]-\d{4}$").all()
    assert sorted(fingerprints["scan_id"]) == sorted(ddsm_rois["scan_id"].unique())
    roi = ddsm_rois.iloc[0]
    mask = outline_mask(roi, read_ddsm_scan(roi).shape)
    top, left, bottom, right = (
        int(v) for v in table.loc[table["tile_id"] == f"ds9_both/{roi['roi_id']}/0", "box"].iloc[0].split(",")
    )
    rows, cols = np.nonzero(mask)
    assert (top, left, bottom, right) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)


def test_a_shared_film_is_used_once_and_its_woman_is_one_patient(both, tmp_path):
    """The demo's cases 1 and 3 are CBIS-DDSM women: their films are found by content, their DDSM ROIs rejected with
    the reason (CBIS-DDSM's used), their DDSM patient id becomes the CBIS-DDSM one; the split keeps every woman in one
    split, and every input ROI is tiled or rejected."""
    cbis_rois, ddsm_rois, cbis, ddsm = both
    tiles = pd.concat([cbis[1], ddsm[1]], ignore_index=True)
    same, _ = match_films(cbis[3], ddsm[3])
    kept, rejected = prefer_cbis(tiles, pd.concat([cbis[3], ddsm[3]], ignore_index=True), same)
    shared_cases = {"B-1002", "D-1004"}  # demo cases 1 and 3 (1001 + index)
    assert set(same["other_patient_id"].str.removeprefix("ddsm:")) == shared_cases
    assert (same["correlation"] > 0.999).all() and same["patient_id"].str.startswith("cbis:P_").all()
    shared_rois = ddsm_rois[ddsm_rois["patient_id"].isin(shared_cases)]
    assert sorted(rejected["item"]) == sorted(shared_rois["roi_id"]) and rejected["reason"].str.contains("CBIS-DDSM").all()
    assert rejected["file"].str.endswith(".LJPEG").all()  # the DDSM film, named
    assert not kept["patient_id"].isin([f"ddsm:{case}" for case in shared_cases]).any()
    assert not kept.loc[kept["source"] == "ddsm", "scan_id"].isin(same["other_scan_id"]).any()
    split = assign_splits(kept, SEED)
    check_patient_disjoint(split)
    for path, table in (("c.tsv", cbis_rois), ("d.tsv", ddsm_rois)):
        write_table(table, tmp_path / path)
    counts = reconcile(split, rejected, {"cbis_rois": str(tmp_path / "c.tsv"), "ddsm_rois": str(tmp_path / "d.tsv")})
    assert counts["ddsm_rois_tiled"] + len(rejected) == counts["ddsm_rois"] == len(ddsm_rois)
    assert counts["cbis_rois_tiled"] == counts["cbis_rois"] == len(cbis_rois)


def test_without_the_merge_a_shared_woman_would_cross_splits(both):
    """The point of the merge: the same breast under its DDSM id and its CBIS-DDSM id is split on its own, and with
    the official CBIS-DDSM division beside DDSM's none, some seed puts the two ids in different splits."""
    _, _, cbis, ddsm = both
    tiles = pd.concat([cbis[1], ddsm[1]], ignore_index=True)
    same, _ = match_films(cbis[3], ddsm[3])
    crossed = 0
    for seed in range(20):
        split = assign_splits(tiles, seed).drop_duplicates("patient_id").set_index("patient_id")["split"]
        crossed += any(split[cbis_id] != split[ddsm_id] for cbis_id, ddsm_id in zip(same["patient_id"], same["other_patient_id"]))
    assert crossed > 0


def test_one_woman_joins_chains_and_prefers_cbis_ids():
    same = pd.DataFrame({"patient_id": ["cbis:P_2", "cbis:P_1"], "other_patient_id": ["ddsm:A-1", "ddsm:A-1"]})
    assert one_woman(same) == {"ddsm:A-1": "cbis:P_1", "cbis:P_2": "cbis:P_1"}


def test_undivided_abnormal_patients_are_divided_with_their_classes_spread():
    """DDSM's outlined cases have no official division: 80/10/10 by patient, each class spread over the splits."""
    rows = [
        {"patient_id": f"ddsm:A-{n:04d}", "label_normal": 1, "class_code": 1 + n % 4, "division": "", "tile_id": f"t{n}"}
        for n in range(40)
    ]
    split = assign_splits(pd.DataFrame(rows), SEED).set_index("patient_id")["split"]
    assert split.value_counts().to_dict() == {"train": 32, "val": 4, "test": 4}
    codes = pd.Series({r["patient_id"]: r["class_code"] for r in rows})
    assert all(codes[split == name].nunique() >= 3 for name in ("val", "test"))
    assert assign_splits(pd.DataFrame(rows), SEED).equals(assign_splits(pd.DataFrame(rows), SEED))
