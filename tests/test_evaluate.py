"""Metrics computed once over a whole set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from mammo.evaluate import (
    assess_set,
    binary_metrics,
    fit_temperature,
    multiclass_metrics,
    negative_log_likelihood,
    operating_points,
    paired_difference,
    patient_bootstrap,
    reliability_bins,
    scale_temperature,
    subgroup_metrics,
    threshold_sweep,
)


def roc_auc(y, score):
    return binary_metrics(y, score, None)["roc_auc"]


def average_precision(y, score):
    return binary_metrics(y, score, None)["pr_auc"]


@pytest.mark.parametrize("seed", range(8))
def test_roc_auc_and_average_precision_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    y = rng.random(n) < rng.uniform(0.1, 0.9)
    y[0], y[1] = True, False
    score = np.round(rng.random(n) + 0.3 * y, 1)  # coarse scores: many ties, inside and across classes
    assert len(np.unique(score)) < n
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_metrics_on_continuous_scores_and_int_labels():
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 1000)
    score = rng.random(1000) + 0.5 * y
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)


def test_auc_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5  # all tied: ties count half
    assert roc_auc([0, 1, 1], [0.3, 0.3, 0.9]) == pytest.approx(0.75)
    assert average_precision([1, 0, 1, 0], [0.9, 0.8, 0.7, 0.1]) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision([1, 1], [0.2, 0.4]) == 1.0


def test_auc_none_when_only_one_class():
    assert roc_auc([1, 1, 1], [0.1, 0.5, 0.9]) is None
    assert roc_auc([0, 0], [0.1, 0.5]) is None
    assert average_precision([0, 0, 0], [0.1, 0.5, 0.9]) is None
    metrics = binary_metrics(np.array([0, 0, 0]), np.array([0.2, 0.7, 0.1]))
    assert metrics["roc_auc"] is None and metrics["pr_auc"] is None
    assert metrics["recall"] is None and metrics["precision"] == 0.0
    metrics = binary_metrics(np.array([1, 1]), np.array([0.2, 0.7]))
    assert metrics["roc_auc"] is None and metrics["pr_auc"] == 1.0
    assert metrics["specificity"] is None


def test_binary_metrics_hand_made():
    y = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    score = np.array([0.9, 0.6, 0.5, 0.2, 0.7, 0.1, 0.3, 0.49, 0.0, 0.4])
    # predicted (>= 0.5): 1 1 1 0 | 1 0 0 0 0 0 -> TP 3, FN 1, FP 1, TN 5
    metrics = binary_metrics(y, score)
    assert metrics["n"] == 10 and metrics["threshold"] == 0.5
    assert metrics["confusion_matrix"]["rows_true_cols_predicted"] == [[5, 1], [1, 3]]
    assert metrics["confusion_matrix"]["labels"] == ["normal", "abnormal"]
    assert metrics["accuracy"] == pytest.approx(0.8)
    assert metrics["precision"] == pytest.approx(0.75)
    assert metrics["recall"] == pytest.approx(0.75)
    assert metrics["specificity"] == pytest.approx(5 / 6)
    assert metrics["f1"] == pytest.approx(0.75)
    assert metrics["majority_baseline_accuracy"] == pytest.approx(0.6)
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, score))


def test_binary_metrics_threshold_and_asymmetric_case():
    y = np.array([1, 1, 0, 0, 0])
    score = np.array([0.8, 0.3, 0.35, 0.1, 0.9])
    metrics = binary_metrics(y, score, threshold=0.3)
    # predicted (>= 0.3): 1 1 1 0 1 -> TP 2, FN 0, FP 2, TN 1
    assert metrics["confusion_matrix"]["rows_true_cols_predicted"] == [[1, 2], [0, 2]]
    assert metrics["precision"] == pytest.approx(0.5)
    assert metrics["recall"] == pytest.approx(1.0)
    assert metrics["specificity"] == pytest.approx(1 / 3)
    assert metrics["f1"] == pytest.approx(2 * 0.5 * 1.0 / 1.5)
    assert metrics["accuracy"] == pytest.approx(0.6)


def test_binary_metrics_no_positive_predictions():
    metrics = binary_metrics(np.array([1, 0, 1]), np.array([0.1, 0.2, 0.3]))
    assert metrics["precision"] is None and metrics["recall"] == 0.0 and metrics["f1"] == 0.0


def _scored_set(seed: int, patients: int = 40, tiles: int = 5):
    rng = np.random.default_rng(seed)
    patient = np.repeat([f"p{i}" for i in range(patients)], tiles)
    y = np.repeat(rng.random(patients) < 0.4, tiles)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, score, patient


@pytest.mark.parametrize("seed", range(4))
def test_bootstrap_weights_give_sklearn_weighted_metrics(seed):
    """A replicate weighs each tile by its patient's draw count: every rate equals sklearn's with those sample weights."""
    y, score, patient = _scored_set(seed)
    weights = next(patient_bootstrap(patient, 5, seed))
    assert weights.shape == (5, len(y)) and weights.sum(axis=1).tolist() == [len(y)] * 5  # 40 patients of 5 tiles drawn
    from mammo.evaluate import _weighted_rates

    rates = _weighted_rates(y, score, 0.5, weights)
    for row, w in enumerate(weights):
        assert rates["roc_auc"][row] == pytest.approx(roc_auc_score(y, score, sample_weight=w))
        assert rates["pr_auc"][row] == pytest.approx(average_precision_score(y, score, sample_weight=w))
        assert rates["brier"][row] == pytest.approx(brier_score_loss(y, score, sample_weight=w))
        precision, recall, f1, _ = precision_recall_fscore_support(
            y, score >= 0.5, sample_weight=w, average="binary", zero_division=np.nan
        )
        assert (rates["precision"][row], rates["recall"][row], rates["f1"][row]) == pytest.approx(
            (precision, recall, f1), nan_ok=True
        )


def test_intervals_resample_patients_not_tiles():
    y, score, patient = _scored_set(1, patients=30, tiles=1)
    one = binary_metrics(y, score, 0.5, patient, replicates=1000, seed=5)
    # the same patients with ten tiles each: a tile bootstrap would narrow the interval, a patient bootstrap cannot
    ten = binary_metrics(np.repeat(y, 10), np.repeat(score, 10), 0.5, np.repeat(patient, 10), replicates=1000, seed=5)
    for name in ("accuracy", "recall", "specificity", "roc_auc"):
        assert ten["ci95"][name] == pytest.approx(one["ci95"][name]), name
        low, high = one["ci95"][name]
        assert low <= one[name] <= high and high - low > 0.05, name
    assert binary_metrics(y, score, 0.5, patient, replicates=1000, seed=5)["ci95"] == one["ci95"]  # seeded
    assert binary_metrics(y, score, 0.5, patient, replicates=1000, seed=6)["ci95"] != one["ci95"]


def test_paired_difference_rates_both_scores_on_each_draw_of_patients():
    """Each replicate's difference is sklearn's weighted ROC-AUC of a minus b on the same patient draw; the shared
    draw makes the paired interval narrower than the two scores' own intervals."""
    y, score, patient = _scored_set(2)
    other = np.clip(score + np.random.default_rng(9).normal(0, 0.05, len(score)), 0, 1)  # b: a with a little noise
    paired = paired_difference(y, score, other, patient, replicates=200, seed=4)
    assert paired["a"] == pytest.approx(roc_auc_score(y, score)) and paired["b"] == pytest.approx(roc_auc_score(y, other))
    assert paired["difference"] == pytest.approx(paired["a"] - paired["b"])
    weights = np.concatenate(list(patient_bootstrap(patient, 200, 4)))
    by_hand = [roc_auc_score(y, score, sample_weight=w) - roc_auc_score(y, other, sample_weight=w) for w in weights]
    assert paired["ci95"] == pytest.approx(list(np.percentile(by_hand, [2.5, 97.5])))
    alone = binary_metrics(y, score, None, patient, replicates=200, seed=4)["ci95"]["roc_auc"]
    assert paired["ci95"][1] - paired["ci95"][0] < (alone[1] - alone[0]) / 2
    same = paired_difference(y, score, score, patient, replicates=200, seed=4)
    assert same["difference"] == 0 and same["ci95"] == [0, 0]
    assert paired_difference(y, score, other, patient, 200, 4, rate="pr_auc")["a"] == pytest.approx(
        average_precision_score(y, score)
    )


def test_interval_of_an_undefined_rate_is_empty():
    metrics = binary_metrics([0, 0, 0], [0.2, 0.7, 0.1], 0.5, ["a", "b", "c"], replicates=1000)
    assert metrics["ci95"]["recall"] == [None, None] and metrics["ci95"]["specificity"][1] == pytest.approx(1.0)


def test_expected_calibration_error_and_reliability_bins():
    y = np.array([0, 0, 1, 1, 1, 0, 1, 1])
    score = np.array([0.05, 0.15, 0.12, 0.55, 0.58, 0.95, 0.91, 0.99])
    bins = reliability_bins(y, score, bins=10)
    assert bins["n"].sum() == 8 and bins.loc[0, "n"] == 1 and bins.loc[1, "n"] == 2 and bins.loc[9, "n"] == 3
    assert bins.loc[1, "fraction_abnormal"] == 0.5 and bins.loc[1, "mean_score"] == pytest.approx(0.135)
    filled = bins[bins["n"] > 0]
    expected = float((filled["n"] * (filled["fraction_abnormal"] - filled["mean_score"]).abs()).sum() / 8)
    assert binary_metrics(y, score, None)["ece"] == pytest.approx(expected)
    assert binary_metrics(y, score, None)["brier"] == pytest.approx(brier_score_loss(y, score))
    assert "accuracy" not in binary_metrics(y, score, None)


def test_multiclass_metrics_match_sklearn():
    rng = np.random.default_rng(3)
    codes = rng.integers(0, 5, 300)
    probabilities = rng.dirichlet(np.ones(5), 300)
    probabilities[np.arange(300), codes] += rng.random(300)  # better than chance
    names = ["normal", "benign_calcification", "benign_mass", "malignant_calcification", "malignant_mass"]
    metrics = multiclass_metrics(codes, probabilities, names, [f"p{i // 3}" for i in range(300)], replicates=1000, seed=1)
    predicted = probabilities.argmax(axis=1)
    precision, recall, _, _ = precision_recall_fscore_support(codes, predicted, labels=range(5), zero_division=0)
    assert metrics["recall_benign_mass"] == pytest.approx(recall[2]) and metrics["precision_malignant_mass"] == pytest.approx(
        precision[4]
    )
    assert metrics["macro_f1"] == pytest.approx(f1_score(codes, predicted, average="macro"))
    assert metrics["confusion_matrix"]["rows_true_cols_predicted"] == confusion_matrix(codes, predicted, labels=range(5)).tolist()
    low, high = metrics["ci95"]["macro_f1"]
    assert low < metrics["macro_f1"] < high


def test_operating_points_are_the_extreme_thresholds_that_meet_their_target():
    y, score, _ = _scored_set(2, patients=200, tiles=1)
    points = operating_points(y, score, 0.9, 0.9)
    assert set(points) == {"best_f1", "recall_0.90", "specificity_0.90"}
    candidates = np.unique(score)
    f1s = [binary_metrics(y, score, t)["f1"] for t in candidates]
    assert binary_metrics(y, score, points["best_f1"])["f1"] == pytest.approx(max(f1s))
    recall_ok = [t for t in candidates if binary_metrics(y, score, t)["recall"] >= 0.9]
    assert points["recall_0.90"] == max(recall_ok)
    specificity_ok = [t for t in candidates if binary_metrics(y, score, t)["specificity"] >= 0.9]
    assert points["specificity_0.90"] == min(specificity_ok)
    assert operating_points(np.zeros(5, bool), np.linspace(0, 1, 5), 0.9, 0.9)["best_f1"] is None


def test_threshold_sweep_rows_equal_binary_metrics():
    y, score, _ = _scored_set(4)
    sweep = threshold_sweep(y, score)
    assert sweep["threshold"].tolist()[0] == 0.05 and sweep["threshold"].tolist()[-1] == 0.95 and len(sweep) == 19
    row = sweep[sweep["threshold"] == 0.3].iloc[0]
    expected = binary_metrics(y, score, 0.3)
    assert row["recall"] == pytest.approx(expected["recall"]) and row["specificity"] == pytest.approx(expected["specificity"])
    assert sweep["recall"].is_monotonic_decreasing


def test_temperature_scaling_fixes_overconfidence_and_keeps_the_ranking():
    rng = np.random.default_rng(0)
    true_p = rng.uniform(0.02, 0.98, 4000)
    labels = (rng.random(4000) < true_p).astype(int)  # labels drawn with the honest probability
    logit = np.log(true_p / (1 - true_p)) * 3.0  # an overconfident model: logits three times too large
    probabilities = np.stack([1 / (1 + np.exp(logit)), 1 / (1 + np.exp(-logit))], axis=1)
    fit = fit_temperature(probabilities, labels)
    temperature = fit["temperature"]
    assert 2.0 < temperature < 4.5 and fit["nll_after"] < fit["nll_before"] and not fit["at_bound"]
    calibrated = scale_temperature(probabilities, temperature)
    assert negative_log_likelihood(calibrated, labels) < negative_log_likelihood(probabilities, labels)
    assert np.array_equal(calibrated.argmax(axis=1), probabilities.argmax(axis=1))
    assert binary_metrics(labels, calibrated[:, 1], None)["ece"] < binary_metrics(labels, probabilities[:, 1], None)["ece"]
    assert fit_temperature(calibrated, labels)["temperature"] == pytest.approx(1.0, abs=0.05)
    separated = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])  # no optimum: the fit stops at the lower bound
    stopped = fit_temperature(separated, np.array([0, 1, 0]))
    assert stopped["at_bound"] and stopped["temperature"] == pytest.approx(0.25, rel=1e-2)


def _set_table(seed: int) -> pd.DataFrame:
    y, score, patient = _scored_set(seed, patients=60, tiles=2)
    rng = np.random.default_rng(seed)
    codes = np.where(y, rng.integers(1, 5, len(y)), 0)
    return pd.DataFrame(
        {
            "class_code": codes,
            "label_normal": y.astype(int),
            "patient_id": patient,
            "p_abnormal": score,
            "p_abnormal_calibrated": np.clip(score * 0.9 + 0.05, 0, 1),
            "abnormality_type": np.where(codes == 0, "", np.where(codes % 2 == 0, "mass", "calcification")),
            "pathology": np.where(codes == 0, "", np.where(codes > 2, "MALIGNANT", "BENIGN")),
            "subtlety": np.where(codes == 0, "", (codes % 5 + 1).astype(str)),
            "density": rng.integers(1, 5, len(y)).astype(str),
            "source": np.where(y, "cbis-ddsm", "ddsm"),
            "scanner": np.where(y, "cbis", "HOWTEK"),
        }
    )


def test_assess_set_reports_every_rate_with_its_interval():
    table = _set_table(5)
    entry = assess_set(table, {"fixed_0.50": 0.5, "best_f1": 0.4, "recall_0.90": None}, 1000, 1, 10)
    assert entry["n"] == 120 and entry["patients"] == 60 and sum(entry["counts_per_class"].values()) == 120
    assert set(entry["operating_points"]) == {"fixed_0.50", "best_f1"}  # an unreachable target is left out
    fixed = entry["operating_points"]["fixed_0.50"]
    assert fixed["threshold"] == 0.5 and set(fixed["ci95"]) == {"accuracy", "precision", "recall", "specificity", "f1"}
    y, score = table["label_normal"], table["p_abnormal"]
    assert fixed["recall"] == pytest.approx(((score >= 0.5) & (y == 1)).sum() / y.sum())
    assert entry["raw"]["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert entry["calibrated"]["brier"] == pytest.approx(brier_score_loss(y, table["p_abnormal_calibrated"]))
    for block in (entry["raw"], entry["calibrated"], fixed):
        for name, (low, high) in block["ci95"].items():
            assert low <= block[name] <= high, name
    assert "multiclass" not in entry
    probabilities = np.random.default_rng(0).dirichlet(np.ones(5), 120)
    multi = assess_set(table, {"fixed": 0.5}, 1000, 1, 10, "five_class", probabilities)["multiclass"]
    assert multi["label_set"] == "five_class" and "macro_f1" in multi
    by_type = assess_set(
        table, {"fixed": 0.5}, 1000, 1, 10, "type", probabilities[:, :3] / probabilities[:, :3].sum(axis=1, keepdims=True)
    )
    truth = np.array([0, 1, 2, 1, 2])[table["class_code"]]  # normal, calcification, mass
    assert by_type["multiclass"]["confusion_matrix"]["labels"] == ["normal", "calcification", "mass"]
    assert (
        np.asarray(by_type["multiclass"]["confusion_matrix"]["rows_true_cols_predicted"]).sum(axis=1).tolist()
        == np.bincount(truth, minlength=3).tolist()
    )


def test_subgroups_of_lesion_attributes_hold_every_normal_tile():
    table = _set_table(6)
    rows = {(row["attribute"], row["value"]): row for row in subgroup_metrics(table, 0.5, 1000, 2)}
    normals = int((table["label_normal"] == 0).sum())
    mass = rows[("abnormality_type", "mass")]
    assert mass["normal"] == normals and mass["abnormal"] == int((table["abnormality_type"] == "mass").sum())
    assert mass["roc_auc"] == pytest.approx(roc_auc_score(*_part(table, table["abnormality_type"] == "mass")))
    assert {value for attribute, value in rows if attribute == "pathology"} == {"BENIGN", "MALIGNANT"}
    dense = rows[("density", "4")]
    assert dense["normal"] + dense["abnormal"] == int((table["density"] == "4").sum())
    assert rows[("source", "ddsm")]["recall"] is None and rows[("source", "ddsm")]["specificity"] is not None
    assert "ci95" in mass


def _part(table, chosen):
    part = table[chosen | (table["label_normal"] == 0)]
    return part["label_normal"], part["p_abnormal"]
