"""Every input of a source is accounted for: accepted or rejected, exactly once (index stages and their summaries)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from mammo.io.cbis import CSV_NAMES
from mammo.stages.sources import index_cbis, index_ddsm, index_mias
from mammo.tables import AccountingError, account, read_table


def test_account_counts_when_everything_is_accounted_for():
    assert account([1, 2, 3], [1, 3], [2]) == {"inputs": 3, "accepted": 2, "rejected": 1}
    assert account([], [], []) == {"inputs": 0, "accepted": 0, "rejected": 0}


@pytest.mark.parametrize(
    ("accepted", "rejected", "problem"),
    [
        ([1], [2], "lost [3]"),
        ([1, 2, 3, 4], [], "without an input [4]"),
        ([1, 2, 3], [3], "twice [3]"),
        ([1, 1, 2, 3], [], "twice [1]"),
    ],
)
def test_account_names_what_does_not_reconcile(accepted, rejected, problem):
    with pytest.raises(AccountingError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        account([1, 2, 3], accepted, rejected)


def _summary(path) -> dict:
    summary = json.loads(path.read_text())
    assert summary["inputs"] == summary["accepted"] + summary["rejected"]
    return summary


def test_cbis_summary_counts_csv_records(demo_root, tmp_path):
    csvs = [demo_root / "cbis" / name for name in CSV_NAMES]
    # append a record with an unknown pathology and a duplicate of the first record
    bad = tmp_path / CSV_NAMES[0]
    table = pd.read_csv(csvs[0], dtype=str, keep_default_na=False)
    unknown = table.iloc[[0]].assign(pathology="UNSURE")
    pd.concat([table, unknown, table.iloc[[0]]]).to_csv(bad, index=False)
    out = {name: tmp_path / name for name in ("rois.tsv", "rejected.tsv", "summary.json")}
    index_cbis([str(bad), *map(str, csvs[1:])], *map(str, out.values()))
    summary = _summary(out["summary.json"])
    assert summary["inputs"] == sum(len(pd.read_csv(path)) for path in [bad, *csvs[1:]])
    assert summary["rejected"] == 2 and summary["accepted"] == len(read_table(out["rois.tsv"]))
    assert summary["collection"] == "cbis-ddsm" and summary["scans"] > 0


def test_ddsm_summary_counts_listed_views(demo_root, tmp_path):
    root = tmp_path / "ddsm"
    shutil.copytree(demo_root / "ddsm" / "normals", root / "normals")  # the normal cases only
    ics = sorted(root.rglob("*.ics"))
    ics[0].write_text("garbage\n")  # an unreadable header counts once
    next(ics[1].parent.glob("*.LJPEG*")).unlink()  # one listed view is missing
    out = {name: tmp_path / name for name in ("scans.tsv", "rejected.tsv", "summary.json")}
    index_ddsm(str(root), *map(str, out.values()))
    summary = _summary(out["summary.json"])
    assert summary["inputs"] == 4 * (len(ics) - 1) + 1
    assert summary["rejected"] == 2
    rejected = read_table(out["rejected.tsv"])
    assert str(ics[0]) in set(rejected["item"])


def test_mias_summary_counts_annotation_rows(demo_root, tmp_path):
    info = tmp_path / "Info.txt"
    info.write_text((demo_root / "mias" / "Info.txt").read_text() + "mdb0x9 F NORM\n")
    out = {name: tmp_path / name for name in ("images.tsv", "rois.tsv", "rejected.tsv", "summary.json")}
    index_mias(str(info), *map(str, out.values()))
    summary = _summary(out["summary.json"])
    rows = [line for line in info.read_text().splitlines() if line.startswith("mdb")]
    assert summary["inputs"] == len(rows)
    assert summary["images"] == len({line.split()[0] for line in rows[:-1]})
    added_line = len(info.read_text().splitlines())
    assert "unparseable" in read_table(out["rejected.tsv"]).set_index("row").loc[str(added_line), "reason"]


def test_real_sources_reconcile(shared, tmp_path):
    cbis = shared / "data" / "cbis-ddsm"
    out = {name: tmp_path / name for name in ("rois.tsv", "rejected.tsv", "summary.json")}
    index_cbis([str(cbis / name) for name in CSV_NAMES if (cbis / name).exists()], *map(str, out.values()))
    summary = _summary(out["summary.json"])
    assert summary["inputs"] == 1318 + 1546 and summary["rejected"] == 0
    out = {name: tmp_path / name for name in ("images.tsv", "rois.tsv", "rejected.tsv", "summary.json")}
    index_mias(str(shared / "data" / "mias" / "Info.txt"), *map(str, out.values()))
    summary = _summary(out["summary.json"])
    assert (summary["inputs"], summary["accepted"], summary["rejected"]) == (330, 326, 4)
    assert (summary["images"], summary["abnormal_images"], summary["rois"]) == (322, 115, 119)


def test_ddsm_root_that_does_not_exist_or_holds_nothing_is_an_error(tmp_path):
    from mammo.check import check_ddsm
    from mammo.io import FormatError

    with pytest.raises(FormatError, match="DDSM folder not found"):
        check_ddsm(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match=r"no DDSM case header \(.ics\)"):
        check_ddsm(tmp_path / "empty")


def test_symlinked_ddsm_volumes_are_followed(demo_root, tmp_path):
    from mammo.check import check_ddsm

    real = demo_root / "ddsm"
    (tmp_path / "normals").mkdir()
    for volume in sorted((real / "normals").iterdir()):
        (tmp_path / "normals" / volume.name).symlink_to(volume, target_is_directory=True)
    assert check_ddsm(tmp_path)["scans"] == check_ddsm(real)["scans"] > 0
