"""UCI Wisconsin baselines: scaled classifiers, tuned inside the training folds only, reach the published range."""

from __future__ import annotations

import pytest

from mammo.uci import PUBLISHED_ACCURACY, load, models, nested_cv


@pytest.fixture(scope="module")
def result():
    return nested_cv(seed=1, repeats=1, jobs=2)


def test_data_is_the_wdbc_table():
    features, labels, names = load()
    assert features.shape == (569, 30) and len(names) == 30
    assert labels.sum() == 212  # malignant is the positive class


def test_scaled_models_reach_the_published_range(result):
    accuracy = {name: entry["accuracy"]["mean"] for name, entry in result["models"].items()}
    assert set(accuracy) == set(models(1))
    for name in ("svm_rbf", "logistic_regression", "mlp"):
        assert accuracy[name] == pytest.approx(0.975, abs=0.015), name  # about 0.97-0.98 with scaling
    assert abs(max(accuracy.values()) - PUBLISHED_ACCURACY) <= 0.015
    assert 0.88 <= accuracy["decision_tree"] <= 0.96  # about 0.92
    assert all(
        value > result["majority_baseline_accuracy"] + 0.2 for value in accuracy.values()
    )  # the study's unscaled SVM/MLP were at it


def test_every_metric_has_mean_and_sd(result):
    assert result["majority_baseline_accuracy"] == pytest.approx(357 / 569, abs=1e-4)
    for entry in result["models"].values():
        for metric in ("accuracy", "recall", "roc_auc"):
            assert 0.5 < entry[metric]["mean"] <= 1 and 0 <= entry[metric]["sd"] < 0.15
