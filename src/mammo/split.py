"""Patient-level splits and class balance.

Official train/test divisions are kept (CBIS-DDSM's, VinDr-Mammo's); test
patients are halved into test and validation by patient, stratified by class,
in a seeded random order (never file order). Normal patients, and abnormal
patients of a collection without an official division (DDSM's outlined cases;
stratified by class), are divided 80/10/10. No patient is ever
in two splits: :func:`check_patient_disjoint` proves it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

SPLITS = ("train", "val", "test")


class SplitLeakError(ValueError):
    pass


def assign_splits(tiles: pd.DataFrame, seed: int, normal_fractions=(0.8, 0.1, 0.1)) -> pd.DataFrame:
    """Return a copy of the tile table with a `split` column, assigned per patient."""
    rng = np.random.default_rng(seed)
    split_of: dict[str, str] = {}
    abnormal = tiles[tiles["label_normal"] == 1]
    split_of.update(_follow_divisions(abnormal, rng))
    undivided = abnormal[~abnormal["patient_id"].isin(split_of)]
    split_of.update(_divide_stratified(undivided, normal_fractions, rng))
    # patients with normal tiles only: an official division (VinDr-Mammo's BI-RADS 1 studies) is kept as well
    rest = tiles[~tiles["patient_id"].isin(split_of)]
    split_of.update(_follow_divisions(rest, rng))
    normal_patients = sorted(set(rest["patient_id"]) - set(split_of))
    split_of.update(_divide(normal_patients, normal_fractions, rng))
    result = tiles.copy()
    result["split"] = result["patient_id"].map(split_of)
    check_patient_disjoint(result)
    return result


def _follow_divisions(tiles: pd.DataFrame, rng: np.random.Generator) -> dict[str, str]:
    """Patients of an official division: train stays train, test is halved into test and validation (stratified);
    "" is no division (DDSM), beside CBIS-DDSM's where one woman's films are in both collections. A patient in
    both official divisions would cross splits: all their tiles go to train."""
    divisions = tiles.groupby("patient_id")["division"].agg(lambda d: set(d.fillna("")) - {""})
    assignment = {p: "train" for p, d in divisions.items() if "train" in d}
    test_patients = [p for p, d in divisions.items() if d == {"test"}]
    assignment.update(_halve_stratified(tiles[tiles["patient_id"].isin(test_patients)], rng))
    return assignment


def _strata(tiles: pd.DataFrame) -> dict[int, list[str]]:
    """Patients by their most frequent class (ties: the lowest code), in code order."""
    stratum = tiles.groupby("patient_id")["class_code"].agg(lambda codes: codes.value_counts().sort_index().idxmax())
    return {int(code): sorted(stratum.index[stratum == code]) for code in sorted(stratum.unique())}


def _halve_stratified(tiles: pd.DataFrame, rng: np.random.Generator) -> dict[str, str]:
    """Half of each class stratum's patients to test, half to validation, alternating across strata."""
    assignment, toggle = {}, 0
    for stratum in _strata(tiles).values():
        patients = np.array(stratum)
        rng.shuffle(patients)
        for patient in patients:
            assignment[str(patient)] = ("test", "val")[toggle]
            toggle ^= 1
    return assignment


def _divide_stratified(tiles: pd.DataFrame, fractions, rng: np.random.Generator) -> dict[str, str]:
    """Patients divided by `fractions` with their classes spread over the splits: strata one after another (each
    shuffled), each patient to the split furthest below its share so far (ties: train, val, test)."""
    shares = np.asarray(fractions, float) / np.sum(fractions)
    assigned, assignment = np.zeros(len(SPLITS)), {}
    for stratum in _strata(tiles).values():
        patients = np.array(stratum, dtype=object)
        rng.shuffle(patients)
        for patient in patients:
            chosen = int(np.argmax(shares * (assigned.sum() + 1) - assigned))
            assigned[chosen] += 1
            assignment[str(patient)] = SPLITS[chosen]
    return assignment


def _divide(patients: list[str], fractions, rng: np.random.Generator) -> dict[str, str]:
    order = np.array(patients, dtype=object)
    rng.shuffle(order)
    bounds = np.round(np.cumsum(fractions) / np.sum(fractions) * len(order)).astype(int)
    assignment = {}
    for index, patient in enumerate(order):
        assignment[str(patient)] = SPLITS[int(np.searchsorted(bounds, index, side="right"))]
    return assignment


def balance(tiles: pd.DataFrame, abnormal_fraction: float, seed: int) -> pd.DataFrame:
    """Mark (column `kept`) a seeded sample of normal tiles so abnormal tiles are about `abnormal_fraction` of each split.

    Only normal tiles are ever dropped; where there are too few, all are kept.
    """
    rng = np.random.default_rng(seed)
    result = tiles.copy()
    result["kept"] = True
    for split in SPLITS:
        in_split = result["split"] == split
        normals = np.flatnonzero((in_split & (result["label_normal"] == 0)).to_numpy())
        abnormal_count = int((in_split & (result["label_normal"] == 1)).sum())
        wanted = normals_for_share(abnormal_count, abnormal_fraction)
        if abnormal_count and len(normals) > wanted:
            dropped = rng.choice(normals, size=len(normals) - wanted, replace=False)
            result.iloc[dropped, result.columns.get_loc("kept")] = False
    return result


def normals_for_share(abnormal_count: int, abnormal_fraction: float) -> int:
    """How many normal tiles make `abnormal_count` abnormal tiles about `abnormal_fraction` of them all."""
    return int(round(abnormal_count * (1 - abnormal_fraction) / abnormal_fraction))


def kept(tiles: pd.DataFrame) -> pd.DataFrame:
    """The tiles that balancing kept (the `kept` column may come back from a TSV as text)."""
    return tiles[tiles["kept"].astype(str) == "True"]


def check_patient_disjoint(tiles: pd.DataFrame) -> None:
    """Raise if any patient has tiles in more than one split, or a tile has no split."""
    if tiles["split"].isna().any():
        missing = tiles.loc[tiles["split"].isna(), "tile_id"].head(5).tolist()
        raise SplitLeakError(f"tiles without a split: {missing}")
    splits_per_patient = tiles.groupby("patient_id")["split"].nunique()
    leaking = splits_per_patient[splits_per_patient > 1]
    if len(leaking):
        raise SplitLeakError(f"patients in more than one split: {sorted(leaking.index)[:10]}")


def summary(tiles: pd.DataFrame) -> dict:
    """Counts per split, class and source of the kept tiles, plus patients per split."""
    chosen = kept(tiles)
    result = {"tiles": int(len(chosen)), "dropped_for_balance": int(len(tiles) - len(chosen)), "splits": {}}
    for split in SPLITS:
        part = chosen[chosen["split"] == split]
        result["splits"][split] = {
            "tiles": int(len(part)),
            "patients": int(part["patient_id"].nunique()),
            "abnormal_fraction": round(float(part["label_normal"].mean()), 4) if len(part) else None,
            "per_class": {str(k): int(v) for k, v in part["class_code"].value_counts().sort_index().items()},
            "per_source": {str(k): int(v) for k, v in part["source"].value_counts().sort_index().items()},
        }
    return result


def woman_folds(patients: pd.Series, abnormal: pd.Series, folds: int, seed: int) -> dict[str, int]:
    """Fold (0..folds-1) of every woman, stratified by abnormal woman: a woman is never split.

    `patients` and `abnormal` are aligned per film (mini-MIAS: the pair mdb(2k-1), mdb(2k) is one woman);
    a woman is abnormal when any of her films is. Each stratum is shuffled (seeded) and dealt round-robin,
    continuing where the previous stratum stopped, so fold sizes differ by at most one woman.
    """
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    is_abnormal = pd.Series(np.asarray(abnormal, dtype=bool), index=np.asarray(patients)).groupby(level=0).any()
    if len(is_abnormal) < folds:
        raise ValueError(f"{len(is_abnormal)} women cannot fill {folds} folds")
    rng = np.random.default_rng(seed)
    fold_of, dealt = {}, 0
    for stratum in (True, False):
        women = np.array(sorted(is_abnormal.index[is_abnormal == stratum]), dtype=object)
        rng.shuffle(women)
        for woman in women:
            fold_of[str(woman)] = dealt % folds
            dealt += 1
    return fold_of


def fold_splits(tiles: pd.DataFrame, fold_of: dict[str, int], fold: int | None, inner_val: float, seed: int) -> pd.DataFrame:
    """A copy of the tile table split for one fold: `test` = the held-out fold, `val` = an inner validation of about
    `inner_val` of the other women (stratified by abnormal woman, seeded per fold), `train` = the rest. Fold None
    holds no woman out (the final model, trained on every woman): `val` is drawn from all of them.

    Thresholds, calibration and early stopping see `val` only, never the held-out fold.
    """
    result = tiles.copy()
    result["fold"] = result["patient_id"].map(fold_of)
    if result["fold"].isna().any():
        raise SplitLeakError(
            f"tiles of women without a fold: {sorted(result.loc[result['fold'].isna(), 'patient_id'].unique())[:5]}"
        )
    held_out = result["fold"] == fold if fold is not None else pd.Series(False, index=result.index)
    abnormal = result[~held_out].groupby("patient_id")["label_normal"].max()
    rng = np.random.default_rng([seed] if fold is None else [seed, fold])
    val_women = set()
    for stratum in (1, 0):
        women = np.array(sorted(abnormal.index[abnormal == stratum]), dtype=object)
        rng.shuffle(women)
        wanted = int(round(inner_val * len(women)))
        val_women |= set(women[: max(wanted, 1) if len(women) > 1 else wanted])  # a stratum of two or more gives one
    result["split"] = np.where(held_out, "test", np.where(result["patient_id"].isin(val_women), "val", "train"))
    result["kept"] = True
    check_patient_disjoint(result)
    return result
