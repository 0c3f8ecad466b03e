"""Metrics computed once over a whole evaluated set (never averaged over batches)."""

from __future__ import annotations

import numpy as np

from mammo.labels import CLASS_NAMES


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve as the Mann-Whitney statistic (ties count half)."""
    y_true = np.asarray(y_true).astype(bool)
    positives, negatives = int(y_true.sum()), int((~y_true).sum())
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = np.asarray(score)[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(average, counts)
    return float((ranks[y_true].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate) at every distinct score, from (0, 0) to (1, 1)."""
    hits, last_of_tie = _ranked(y_true, score)
    true_positives = np.cumsum(hits)[last_of_tie]
    false_positives = last_of_tie + 1 - true_positives
    return (
        np.r_[0.0, false_positives / max((~hits).sum(), 1)],
        np.r_[0.0, true_positives / max(hits.sum(), 1)],
    )


def precision_recall_curve(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(recall, precision) at every distinct score, highest threshold first."""
    hits, last_of_tie = _ranked(y_true, score)
    true_positives = np.cumsum(hits)[last_of_tie]
    return true_positives / max(hits.sum(), 1), true_positives / (last_of_tie + 1)


def _ranked(y_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Truth sorted by decreasing score, and the last index of each run of tied scores."""
    order = np.argsort(-np.asarray(score), kind="mergesort")
    sorted_scores = np.asarray(score)[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]
    return np.asarray(y_true).astype(bool)[order], last_of_tie


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the precision-recall curve as average precision (step-wise, no interpolation)."""
    if not np.asarray(y_true).astype(bool).any():
        return None
    recall, precision = precision_recall_curve(y_true, score)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _ratio(numerator: int, denominator: int) -> float | None:
    return float(numerator / denominator) if denominator else None


def binary_metrics(y_true: np.ndarray, score: np.ndarray, threshold: float = 0.5) -> dict:
    """Rates at a threshold on P(abnormal), AUCs and the confusion matrix [[TN, FP], [FN, TP]]."""
    y_true = np.asarray(y_true).astype(int)
    predicted = (np.asarray(score) >= threshold).astype(int)
    tp = int(np.sum((predicted == 1) & (y_true == 1)))
    tn = int(np.sum((predicted == 0) & (y_true == 0)))
    fp = int(np.sum((predicted == 1) & (y_true == 0)))
    fn = int(np.sum((predicted == 0) & (y_true == 1)))
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    majority = max(tp + fn, tn + fp)
    return {
        "n": int(len(y_true)),
        "threshold": threshold,
        "accuracy": _ratio(tp + tn, len(y_true)),
        "precision": precision,
        "recall": recall,
        "specificity": _ratio(tn, tn + fp),
        "f1": f1,
        "roc_auc": roc_auc(y_true, score),
        "pr_auc": average_precision(y_true, score),
        "confusion_matrix": {"labels": ["normal", "abnormal"], "rows_true_cols_predicted": [[tn, fp], [fn, tp]]},
        "majority_baseline_accuracy": _ratio(majority, len(y_true)),
    }


def evaluate_set(class_codes: np.ndarray, probabilities: np.ndarray, threshold: float = 0.5) -> dict:
    """Metrics of one set: abnormal vs normal from P(abnormal) = 1 - P(normal), plus counts per class."""
    class_codes = np.asarray(class_codes).astype(int)
    score = 1.0 - np.asarray(probabilities)[:, 0]
    metrics = binary_metrics(class_codes > 0, score, threshold)
    metrics["counts_per_class"] = {CLASS_NAMES[c]: int(np.sum(class_codes == c)) for c in CLASS_NAMES}
    return metrics
