"""Patient-level splits, leak checks and class balance."""

from __future__ import annotations

import pandas as pd
import pytest

from mammo.split import SPLITS, SplitLeakError, assign_splits, balance, check_patient_disjoint, summary
from mammo.tables import TILE_COLUMNS


def _tile_rows(patient, source, division, code, tiles, start=0):
    rows = []
    for number in range(tiles):
        rows.append(
            {
                "tile_id": f"ds9/{patient}/{start + number}",
                "dataset": "ds9",
                "source": source,
                "patient_id": patient,
                "scan_id": f"{patient}_scan",
                "view": "LEFT_CC",
                "class_code": code,
                "label_normal": int(code > 0),
                "abnormality_type": {0: "", 1: "calcification", 2: "mass", 3: "calcification", 4: "mass"}[code],
                "pathology": {0: "", 1: "BENIGN", 2: "BENIGN", 3: "MALIGNANT", 4: "MALIGNANT"}[code],
                "scanner": "cbis" if source == "cbis-ddsm" else "HOWTEK",
                "division": division,
                "method": "method2" if code else "normal_grid",
                "box": "0,0,598,598",
                "tiles_file": "tiles.npy",
                "tile_index": start + number,
            }
        )
    return rows


def make_tiles(train_per_class=5, test_per_class=4, normals=50, tiles_per_roi=3, normal_tiles=60):
    """CBIS patients (train/test divisions, class codes 1-4) and DDSM normal patients (class 0)."""
    rows, number = [], 0
    for division, per_class in (("train", train_per_class), ("test", test_per_class)):
        for code in (1, 2, 3, 4):
            for _ in range(per_class):
                number += 1
                rows += _tile_rows(f"cbis:P_{number:05d}", "cbis-ddsm", division, code, tiles_per_roi)
    for case in range(normals):
        rows += _tile_rows(f"ddsm:A-{case:04d}", "ddsm", "", 0, normal_tiles)
    table = pd.DataFrame(rows, columns=TILE_COLUMNS)
    return table.sample(frac=1.0, random_state=0).reset_index(drop=True)  # file order must not matter


def _split_of(table):
    per_patient = table.groupby("patient_id")["split"].agg(set)
    assert (per_patient.map(len) == 1).all()
    return per_patient.map(lambda s: next(iter(s)))


@pytest.fixture(scope="module")
def tiles():
    return make_tiles()


@pytest.fixture(scope="module")
def assigned(tiles):
    return assign_splits(tiles, seed=42)


def test_schema_and_no_missing_split(tiles, assigned):
    assert list(assigned.columns) == TILE_COLUMNS + ["split"]
    assert len(assigned) == len(tiles)
    assert assigned["split"].isin(SPLITS).all()
    assert "split" not in tiles.columns, "the input table is not modified"


def test_cbis_train_patients_stay_in_train(assigned):
    split = _split_of(assigned)
    train = assigned.loc[(assigned["division"] == "train"), "patient_id"].unique()
    assert len(train) == 20
    assert (split[train] == "train").all()


def test_cbis_test_patients_halved_into_val_and_test_per_class(assigned):
    split = _split_of(assigned)
    test = assigned[assigned["division"] == "test"]
    assert set(split[test["patient_id"].unique()]) == {"val", "test"}
    per_patient = test.groupby("patient_id")["class_code"].first()
    counts = pd.crosstab(per_patient, split[per_patient.index])
    assert list(counts.index) == [1, 2, 3, 4]
    assert (counts["val"] == 2).all() and (counts["test"] == 2).all(), counts


def test_odd_strata_still_give_every_class_to_both_halves():
    table = make_tiles(train_per_class=1, test_per_class=3, normals=10)
    result = assign_splits(table, seed=1)
    split = _split_of(result)
    test = result[result["division"] == "test"]
    per_patient = test.groupby("patient_id")["class_code"].first()
    counts = pd.crosstab(per_patient, split[per_patient.index])
    assert (counts["val"] >= 1).all() and (counts["test"] >= 1).all(), counts
    assert abs(int(counts["val"].sum()) - int(counts["test"].sum())) <= 1


def test_normal_patients_80_10_10(assigned):
    split = _split_of(assigned)
    normals = split[split.index.str.startswith("ddsm:")]
    assert normals.value_counts().to_dict() == {"train": 40, "val": 5, "test": 5}


def test_normal_fractions_parameter(tiles):
    result = assign_splits(tiles, seed=42, normal_fractions=(0.6, 0.2, 0.2))
    normals = _split_of(result)
    normals = normals[normals.index.str.startswith("ddsm:")]
    assert normals.value_counts().to_dict() == {"train": 30, "val": 10, "test": 10}


def test_no_patient_in_two_splits(assigned):
    check_patient_disjoint(assigned)
    assert (assigned.groupby("patient_id")["split"].nunique() == 1).all()


def test_same_seed_same_splits_and_order_does_not_matter(tiles, assigned):
    again = assign_splits(tiles, seed=42)
    pd.testing.assert_frame_equal(assigned, again)
    reordered = assign_splits(tiles.iloc[::-1].reset_index(drop=True), seed=42)
    assert _split_of(reordered).to_dict() == _split_of(assigned).to_dict()


def test_other_seed_other_splits(tiles, assigned):
    others = [_split_of(assign_splits(tiles, seed=seed)).to_dict() for seed in (1, 2, 3)]
    assert any(other != _split_of(assigned).to_dict() for other in others)


def test_test_val_halving_is_seeded_not_file_order(tiles):
    # CBIS test patients are halved in a seeded random order: which half a patient lands in varies with the seed.
    test_patients = sorted(tiles.loc[tiles["division"] == "test", "patient_id"].unique())
    halves = set()
    for seed in range(12):
        split = _split_of(assign_splits(tiles, seed=seed))
        halves.add(tuple(split[test_patients]))
    assert len(halves) > 3


def test_patient_in_both_divisions_goes_to_train():
    table = make_tiles(train_per_class=2, test_per_class=2, normals=10)
    both = "cbis:P_99999"
    extra = pd.DataFrame(
        _tile_rows(both, "cbis-ddsm", "train", 2, 2) + _tile_rows(both, "cbis-ddsm", "test", 4, 2, start=2), columns=TILE_COLUMNS
    )
    result = assign_splits(pd.concat([table, extra], ignore_index=True), seed=7)
    assert set(result.loc[result["patient_id"] == both, "split"]) == {"train"}
    check_patient_disjoint(result)


def test_patient_with_normal_and_abnormal_tiles_is_not_split():
    table = make_tiles(train_per_class=1, test_per_class=2, normals=10)
    patient = table.loc[table["division"] == "test", "patient_id"].iloc[0]
    extra = pd.DataFrame(_tile_rows(patient, "cbis-ddsm", "", 0, 5, start=100), columns=TILE_COLUMNS)
    result = assign_splits(pd.concat([table, extra], ignore_index=True), seed=3)
    assert result.loc[result["patient_id"] == patient, "split"].nunique() == 1


def test_crafted_leak_raises(assigned):
    leaked = assigned.copy()
    patient = leaked.loc[leaked["split"] == "train", "patient_id"].iloc[0]
    row = leaked.index[leaked["patient_id"] == patient][0]
    leaked.loc[row, "split"] = "test"
    with pytest.raises(SplitLeakError, match=patient.replace(":", ".")):
        check_patient_disjoint(leaked)


def test_tile_without_split_raises(assigned):
    missing = assigned.copy()
    missing.loc[missing.index[0], "split"] = None
    with pytest.raises(SplitLeakError, match="without a split"):
        check_patient_disjoint(missing)


def test_split_leak_error_is_a_value_error():
    assert issubclass(SplitLeakError, ValueError)


# ----------------------------------------------------------------------------- balance
@pytest.mark.parametrize("fraction", [1 / 6, 0.25, 0.5])
def test_balance_keeps_every_abnormal_tile_and_hits_the_fraction(assigned, fraction):
    balanced = balance(assigned, fraction, seed=9)
    assert len(balanced) == len(assigned)
    abnormal = balanced["label_normal"] == 1
    assert balanced.loc[abnormal, "kept"].all(), "abnormal tiles are never dropped"
    for split in SPLITS:
        kept = balanced[(balanced["split"] == split) & balanced["kept"]]
        abnormal_count = int(kept["label_normal"].sum())
        normal_count = int((kept["label_normal"] == 0).sum())
        assert normal_count == round(abnormal_count * (1 - fraction) / fraction)
        assert kept["label_normal"].mean() == pytest.approx(fraction, abs=0.01)


def test_balance_keeps_all_normals_when_too_few(assigned):
    balanced = balance(assigned, 0.01, seed=9)  # would need 99 normals per abnormal tile
    assert balanced["kept"].all()


def test_balance_is_seeded(assigned):
    a, b, c = (balance(assigned, 0.25, seed=s)["kept"] for s in (1, 1, 2))
    assert a.equals(b)
    assert not a.equals(c)


def test_summary_counts(assigned):
    balanced = balance(assigned, 0.25, seed=9)
    result = summary(balanced)
    assert result["tiles"] == int(balanced["kept"].sum())
    assert result["dropped_for_balance"] == int((~balanced["kept"]).sum())
    assert sum(result["splits"][s]["tiles"] for s in SPLITS) == result["tiles"]
    assert result["splits"]["train"]["abnormal_fraction"] == pytest.approx(0.25, abs=0.01)
    assert set(result["splits"]["val"]["per_class"]) == {"0", "1", "2", "3", "4"}
