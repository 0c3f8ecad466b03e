"""Metrics computed once over a whole evaluated set (never averaged over batches), with patient-level
bootstrap intervals, calibration by temperature and operating points chosen on validation.

Every rate is computed by one weighted engine: the point estimate weighs each tile 1; a bootstrap
replicate weighs each tile by how often its patient was drawn. So the interval and the value come from
the same code, and a replicate costs a matrix product instead of a copy of the set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mammo.labels import CLASS_NAMES, LABEL_SETS

THRESHOLD_RATES = ("accuracy", "precision", "recall", "specificity", "f1")
SCORE_RATES = ("roc_auc", "pr_auc", "brier", "ece")
SWEEP_THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.05), 2)
_REPLICATES_PER_BLOCK = 100  # bounds memory: a block holds replicates x tiles weights


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


def _divide(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Element-wise ratio, NaN where the denominator is 0 (the rate is undefined)."""
    numerator, denominator = np.broadcast_arrays(np.asarray(numerator, float), np.asarray(denominator, float))
    return np.divide(numerator, denominator, out=np.full(numerator.shape, np.nan), where=denominator > 0)


def _weighted_rates(y: np.ndarray, score: np.ndarray, threshold: float | None, weights: np.ndarray, bins: int = 10) -> dict:
    """Every rate for each row of `weights` (replicates x tiles): arrays of one value per replicate.

    Threshold rates are left out when `threshold` is None.
    """
    rates = {}
    positives, negatives = weights @ y, weights @ ~y
    total = positives + negatives
    if threshold is not None:
        predicted = score >= threshold
        tp, fp = weights @ (y & predicted), weights @ (~y & predicted)
        fn, tn = positives - tp, negatives - fp
        rates.update(
            accuracy=_divide(tp + tn, total),
            precision=_divide(tp, tp + fp),
            recall=_divide(tp, positives),
            specificity=_divide(tn, negatives),
            f1=_divide(2 * tp, 2 * tp + fp + fn),
            confusion=np.stack([tn, fp, fn, tp], axis=1),
        )
    # ranking: tied scores form one group; a positive beats the negatives of lower groups, ties count half
    order = np.argsort(score, kind="mergesort")
    starts = np.r_[0, np.flatnonzero(np.diff(score[order])) + 1]
    positive_groups = np.add.reduceat(weights[:, order] * y[order], starts, axis=1)
    negative_groups = np.add.reduceat(weights[:, order] * ~y[order], starts, axis=1)
    below = np.cumsum(negative_groups, axis=1) - negative_groups
    rates["roc_auc"] = _divide(np.sum(positive_groups * (below + 0.5 * negative_groups), axis=1), positives * negatives)
    # average precision: from the highest score group down, precision at each group times its recall step
    hits_above = np.cumsum(positive_groups[:, ::-1], axis=1)
    all_above = hits_above + np.cumsum(negative_groups[:, ::-1], axis=1)
    step_precision = np.nan_to_num(_divide(hits_above, all_above))
    rates["pr_auc"] = _divide(np.sum(positive_groups[:, ::-1] * step_precision, axis=1), positives)
    rates["brier"] = _divide(weights @ (score - y) ** 2, total)
    # expected calibration error: per equal-width bin |observed - predicted| mass, over all tiles
    bin_of = np.minimum((score * bins).astype(int), bins - 1)
    members = np.eye(bins)[bin_of]
    gap = np.abs(weights @ (members * y[:, None]) - weights @ (members * score[:, None]))
    rates["ece"] = _divide(gap.sum(axis=1), total)
    return rates


def _value(array: np.ndarray) -> float | None:
    value = float(np.ravel(array)[0])
    return None if np.isnan(value) else value


def patient_bootstrap(patients, replicates: int, seed: int):
    """Yield blocks of tile weights (replicates x tiles): patients drawn with replacement, seeded."""
    _, patient_of_tile = np.unique(np.asarray(patients).astype(str), return_inverse=True)
    count = patient_of_tile.max() + 1 if len(patient_of_tile) else 0
    rng = np.random.default_rng(seed)
    for start in range(0, replicates, _REPLICATES_PER_BLOCK):
        size = min(_REPLICATES_PER_BLOCK, replicates - start)
        drawn = rng.multinomial(count, np.full(count, 1.0 / count), size=size) if count else np.zeros((size, 0))
        yield drawn[:, patient_of_tile].astype(float)


def _interval(samples: np.ndarray) -> list[float | None]:
    """95% percentile interval over the replicates where the rate is defined."""
    defined = samples[~np.isnan(samples)]
    if not len(defined):
        return [None, None]
    return [float(v) for v in np.percentile(defined, [2.5, 97.5])]


def binary_metrics(
    y_true, score, threshold: float | None = 0.5, patients=None, replicates: int = 0, seed: int = 0, bins: int = 10
) -> dict:
    """Rates at a threshold on P(abnormal) (none when threshold is None), AUCs, Brier score, ECE and the
    confusion matrix [[TN, FP], [FN, TP]]; with `patients`, a 95% patient-bootstrap interval per rate (`ci95`)."""
    y, score = np.asarray(y_true).astype(bool), np.asarray(score, float)
    point = _weighted_rates(y, score, threshold, np.ones((1, len(y))), bins)
    names = (THRESHOLD_RATES if threshold is not None else ()) + SCORE_RATES
    metrics = {"n": int(len(y)), "threshold": threshold, **{name: _value(point[name]) for name in names}}
    metrics["majority_baseline_accuracy"] = _value(_divide(max(y.sum(), (~y).sum()), len(y)))
    if threshold is not None:
        tn, fp, fn, tp = (int(v) for v in point["confusion"][0])
        metrics["confusion_matrix"] = {"labels": ["normal", "abnormal"], "rows_true_cols_predicted": [[tn, fp], [fn, tp]]}
    if patients is not None and replicates:
        blocks = [
            _weighted_rates(y, score, threshold, weights, bins) for weights in patient_bootstrap(patients, replicates, seed)
        ]
        metrics["ci95"] = {name: _interval(np.concatenate([block[name] for block in blocks])) for name in names}
    return metrics


def paired_difference(y_true, score_a, score_b, patients, replicates: int, seed: int, rate: str = "roc_auc") -> dict:
    """A threshold-free rate (SCORE_RATES) of two scores of the same items, and the 95% interval of their
    difference a - b from one patient bootstrap: each replicate draws the patients once and rates both scores on
    that draw, so what the two share (which patients are easy) cancels out of the interval."""
    y = np.asarray(y_true).astype(bool)
    a, b = np.asarray(score_a, float), np.asarray(score_b, float)
    ones = np.ones((1, len(y)))
    value_a, value_b = (_value(_weighted_rates(y, score, None, ones)[rate]) for score in (a, b))
    differences = np.concatenate(
        [
            _weighted_rates(y, a, None, weights)[rate] - _weighted_rates(y, b, None, weights)[rate]
            for weights in patient_bootstrap(patients, replicates, seed)
        ]
    )
    both = value_a is not None and value_b is not None
    return {
        "rate": rate,
        "a": value_a,
        "b": value_b,
        "difference": value_a - value_b if both else None,
        "ci95": _interval(differences),
        "replicates": replicates,
    }


def multiclass_metrics(classes_true, probabilities, class_names, patients=None, replicates: int = 0, seed: int = 0) -> dict:
    """Results of a multi-class model over its own classes: accuracy, per-class precision and recall, macro-F1
    and the confusion matrix (rows true, columns predicted = arg max), with patient-bootstrap intervals."""
    codes = np.asarray(classes_true).astype(int)
    classes = np.asarray(probabilities).shape[1]
    predicted = np.asarray(probabilities).argmax(axis=1)
    cells = np.eye(classes * classes)[codes * classes + predicted]  # one-hot confusion cell of each tile

    def rates(weights: np.ndarray) -> dict:
        confusion = (weights @ cells).reshape(-1, classes, classes)
        hits = np.diagonal(confusion, axis1=1, axis2=2)
        precision, recall = _divide(hits, confusion.sum(axis=1)), _divide(hits, confusion.sum(axis=2))
        f1 = np.nan_to_num(_divide(2 * precision * recall, precision + recall))
        present = confusion.sum(axis=2) > 0  # macro-F1 over the classes present in the set
        result = {
            "accuracy": _divide(hits.sum(axis=1), confusion.sum(axis=(1, 2))),
            "macro_f1": _divide((f1 * present).sum(axis=1), present.sum(axis=1)),
            "confusion": confusion,
        }
        for code in range(classes):
            result[f"precision_{class_names[code]}"], result[f"recall_{class_names[code]}"] = precision[:, code], recall[:, code]
        return result

    point = rates(np.ones((1, len(codes))))
    names = [name for name in point if name != "confusion"]
    metrics = {name: _value(point[name]) for name in names}
    metrics["confusion_matrix"] = {
        "labels": list(class_names),
        "rows_true_cols_predicted": point["confusion"][0].astype(int).tolist(),
    }
    if patients is not None and replicates:
        blocks = [rates(weights) for weights in patient_bootstrap(patients, replicates, seed)]
        metrics["ci95"] = {name: _interval(np.concatenate([block[name] for block in blocks])) for name in names}
    return metrics


def threshold_sweep(y_true, score, thresholds=SWEEP_THRESHOLDS) -> pd.DataFrame:
    """Threshold rates at each threshold (one row per threshold)."""
    rows = []
    for threshold in thresholds:
        metrics = binary_metrics(y_true, score, float(threshold))
        rows.append({"threshold": float(threshold), **{name: metrics[name] for name in THRESHOLD_RATES}})
    return pd.DataFrame(rows, columns=["threshold", *THRESHOLD_RATES])


def operating_points(y_true, score, min_recall: float, min_specificity: float) -> dict[str, float | None]:
    """Thresholds chosen on one set (validation): best F1; the highest threshold that keeps recall at least
    `min_recall`; the lowest that keeps specificity at least `min_specificity`. Candidates are the set's scores."""
    y, score = np.asarray(y_true).astype(bool), np.asarray(score, float)
    candidates = np.unique(score)[::-1]  # highest threshold first: recall grows, specificity falls
    predicted = score[None, :] >= candidates[:, None]
    tp, fp = (predicted & y).sum(axis=1), (predicted & ~y).sum(axis=1)
    recall, specificity = _divide(tp, y.sum()), _divide((~y).sum() - fp, (~y).sum())
    f1 = np.nan_to_num(_divide(2 * tp, 2 * tp + fp + (y.sum() - tp)))
    keeps_recall = np.flatnonzero(recall >= min_recall)
    keeps_specificity = np.flatnonzero(specificity >= min_specificity)
    return {
        "best_f1": float(candidates[np.argmax(f1)]) if y.any() else None,
        f"recall_{min_recall:.2f}": float(candidates[keeps_recall[0]]) if len(keeps_recall) else None,
        f"specificity_{min_specificity:.2f}": float(candidates[keeps_specificity[-1]]) if len(keeps_specificity) else None,
    }


def _logits(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, float), 1e-12, 1.0))


def scale_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """Softmax of the model's log-probabilities divided by the temperature (the ranking of classes is kept)."""
    scaled = _logits(probabilities) / temperature
    scaled -= scaled.max(axis=1, keepdims=True)
    exponentials = np.exp(scaled)
    return exponentials / exponentials.sum(axis=1, keepdims=True)


def p_abnormal(probabilities: np.ndarray, temperature: float | None = None) -> np.ndarray:
    """The score of every label set: P(abnormal) = 1 - P(normal), after temperature scaling when one is given."""
    probabilities = np.asarray(probabilities)
    if not len(probabilities):
        return np.zeros(0)
    return 1.0 - (scale_temperature(probabilities, temperature) if temperature else probabilities)[:, 0]


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(-np.mean(_logits(probabilities)[np.arange(len(labels)), np.asarray(labels).astype(int)]))


TEMPERATURE_BOUNDS = (0.25, 20.0)  # below 0.25 a fit would only sharpen a validation set that is already separated


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature that minimises the negative log-likelihood of the labels (fitted on validation), with the
    likelihood before and after and whether the fit stopped at a bound (a perfectly separated set has no optimum)."""

    def nll(temperature: float) -> float:
        return negative_log_likelihood(scale_temperature(probabilities, temperature), labels)

    if not len(labels):
        return {"temperature": 1.0, "nll_before": None, "nll_after": None, "at_bound": False}
    # imported here: half a second that the many jobs reaching this module through mammo.heatmap never use
    from scipy.optimize import minimize_scalar

    low, high = np.log(TEMPERATURE_BOUNDS)
    found = minimize_scalar(lambda log_t: nll(np.exp(log_t)), bounds=(low, high), method="bounded", options={"xatol": 1e-5})
    temperature = float(np.exp(found.x))
    at_bound = bool(min(abs(found.x - low), abs(found.x - high)) < 1e-3)
    return {"temperature": temperature, "nll_before": nll(1.0), "nll_after": nll(temperature), "at_bound": at_bound}


def reliability_bins(y_true, score, bins: int = 10) -> pd.DataFrame:
    """Per equal-width bin of P(abnormal): tiles, mean predicted score and observed share abnormal."""
    y, score = np.asarray(y_true).astype(float), np.asarray(score, float)
    bin_of = np.minimum((score * bins).astype(int), bins - 1)
    rows = []
    for number in range(bins):
        inside = bin_of == number
        rows.append(
            {
                "bin_low": number / bins,
                "bin_high": (number + 1) / bins,
                "n": int(inside.sum()),
                "mean_score": float(score[inside].mean()) if inside.any() else np.nan,
                "fraction_abnormal": float(y[inside].mean()) if inside.any() else np.nan,
            }
        )
    return pd.DataFrame(rows)


# Lesion attributes are blank for normal tissue: their subgroups are that lesion kind against every normal tile.
LESION_ATTRIBUTES = ("abnormality_type", "pathology", "subtlety")
CASE_ATTRIBUTES = ("density", "source", "scanner")


def subgroup_metrics(table: pd.DataFrame, threshold: float, replicates: int, seed: int) -> list[dict]:
    """Binary metrics per value of each attribute: a case attribute selects its tiles, normal and abnormal;
    a lesion attribute selects its abnormal tiles plus all normal tiles of the set."""
    rows = []
    normal = table["label_normal"] == 0
    for attribute in (*LESION_ATTRIBUTES, *CASE_ATTRIBUTES):
        values = table.loc[~normal if attribute in LESION_ATTRIBUTES else table.index, attribute].astype(str)
        for value in sorted(set(values) - {""}):
            chosen = table[attribute].astype(str) == value
            part = table[chosen | normal] if attribute in LESION_ATTRIBUTES else table[chosen]
            metrics = binary_metrics(part["label_normal"], part["p_abnormal"], threshold, part["patient_id"], replicates, seed)
            rows.append(
                {
                    "attribute": attribute,
                    "value": value,
                    "abnormal": int(part["label_normal"].sum()),
                    "normal": int((part["label_normal"] == 0).sum()),
                    **metrics,
                }
            )
    return rows


def pick_rates(metrics: dict, names) -> dict:
    """Some rates of a binary_metrics result, with their intervals."""
    picked = {name: metrics[name] for name in names}
    if "ci95" in metrics:
        picked["ci95"] = {name: metrics["ci95"][name] for name in names if name in metrics["ci95"]}
    return picked


def assess_set(
    part: pd.DataFrame,
    thresholds: dict[str, float | None],
    replicates: int,
    seed: int,
    bins: int,
    label_set: str = "binary",
    class_probabilities: np.ndarray | None = None,
) -> dict:
    """Everything metrics.json says about one evaluated set.

    `part` has one row per tile: class_code, label_normal, patient_id, p_abnormal and p_abnormal_calibrated.
    Rates at each named threshold (chosen elsewhere, never on this set unless it is validation); the
    threshold-free rates of the raw and the calibrated score; a multi-class model's results over its own label set
    (5-class, type or pathology) when its class probabilities are given.
    """
    y, patients = part["label_normal"].to_numpy(), part["patient_id"].to_numpy()
    raw = binary_metrics(y, part["p_abnormal"], None, patients, replicates, seed, bins)
    calibrated = binary_metrics(y, part["p_abnormal_calibrated"], None, patients, replicates, seed, bins)
    entry = {
        "n": int(len(part)),
        "patients": int(pd.Series(patients).nunique()),
        "counts_per_class": {name: int(np.sum(part["class_code"] == code)) for code, name in CLASS_NAMES.items()},
        "majority_baseline_accuracy": raw["majority_baseline_accuracy"],
        "raw": pick_rates(raw, SCORE_RATES),
        "calibrated": pick_rates(calibrated, SCORE_RATES),
        "operating_points": {},
    }
    for name, threshold in thresholds.items():
        if threshold is not None:
            metrics = binary_metrics(y, part["p_abnormal"], threshold, patients, replicates, seed, bins)
            entry["operating_points"][name] = pick_rates(metrics, ("threshold", *THRESHOLD_RATES, "confusion_matrix"))
    if class_probabilities is not None:
        names, classes = LABEL_SETS[label_set]
        truth = np.asarray(classes)[part["class_code"].to_numpy().astype(int)]
        entry["multiclass"] = {
            "label_set": label_set,
            **multiclass_metrics(truth, class_probabilities, names, patients, replicates, seed),
        }
    return entry
