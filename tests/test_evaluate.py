"""Metrics computed once over a whole set."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from mammo.evaluate import average_precision, binary_metrics, evaluate_set, roc_auc


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


def test_evaluate_set_counts_per_class():
    codes = np.array([0, 0, 0, 1, 2, 2, 3, 4, 4, 4])
    probabilities = np.zeros((10, 5))
    probabilities[:, 0] = [0.9, 0.8, 0.3, 0.2, 0.4, 0.6, 0.1, 0.05, 0.55, 0.0]  # P(normal)
    probabilities[:, 1] = 1 - probabilities[:, 0]
    metrics = evaluate_set(codes, probabilities)
    assert metrics["counts_per_class"] == {
        "normal": 3, "benign_calcification": 1, "benign_mass": 2, "malignant_calcification": 1, "malignant_mass": 3,
    }  # fmt: skip
    # abnormal score = 1 - P(normal): abnormal predicted for scores >= 0.5
    y = codes > 0
    score = 1 - probabilities[:, 0]
    predicted = score >= 0.5
    tp, fn = int((predicted & y).sum()), int((~predicted & y).sum())
    fp, tn = int((predicted & ~y).sum()), int((~predicted & ~y).sum())
    assert metrics["confusion_matrix"]["rows_true_cols_predicted"] == [[tn, fp], [fn, tp]] == [[2, 1], [2, 5]]
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, score))
    assert metrics["n"] == 10


def test_evaluate_set_binary_probabilities_and_one_class():
    codes = np.array([1, 3, 4])
    probabilities = np.array([[0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    metrics = evaluate_set(codes, probabilities)
    assert metrics["roc_auc"] is None
    assert metrics["counts_per_class"]["normal"] == 0
    assert metrics["recall"] == pytest.approx(2 / 3)
