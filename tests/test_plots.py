"""Evaluation figures: reliability diagrams, threshold curves, confusion matrices and error montages."""

from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from mammo import plots
from mammo.plots import confusion_matrices, error_montage, reliability_diagram, threshold_curves

FIVE_CLASSES = ["normal", "benign_calcification", "benign_mass", "malignant_calcification", "malignant_mass"]


def assert_picture(path: Path) -> None:
    """The PNG exists, is big enough to read and is not a blank canvas."""
    assert path.is_file()
    picture = cv2.imread(str(path))
    assert picture is not None
    assert min(picture.shape[:2]) > 200
    assert picture.std() > 10


@pytest.fixture
def kept_figures(monkeypatch) -> list:
    """Figures the plotting functions close, kept so a test can read back titles, legends and texts."""
    kept = []
    close = plt.close

    def keep(figure=None):
        kept.append(figure)
        close(figure)

    monkeypatch.setattr(plots.plt, "close", keep)
    return kept


def texts(figure) -> list[str]:
    return [text.get_text() for axis in figure.axes for text in axis.texts]


def legend_labels(figure) -> list[list[str]]:
    return [[t.get_text() for t in axis.get_legend().get_texts()] for axis in figure.axes if axis.get_legend()]


def calibration_bins(sets=("val", "test"), empty_bins=(), n_bins=10, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for name in sets:
        for calibration in ("raw", "calibrated"):
            for index in range(n_bins):
                low, high = index / n_bins, (index + 1) / n_bins
                n = 0 if index in empty_bins else int(rng.integers(5, 50))
                mean = (low + high) / 2 if n else np.nan
                observed = np.clip(mean + rng.normal(0, 0.1), 0, 1) if n else np.nan
                rows.append(
                    dict(
                        set=name,
                        calibration=calibration,
                        bin_low=low,
                        bin_high=high,
                        n=n,
                        mean_score=mean,
                        fraction_abnormal=observed,
                    )
                )
    return pd.DataFrame(rows)


def test_reliability_diagram_draws_one_panel_per_set(tmp_path, kept_figures):
    bins = calibration_bins(sets=("val", "test", "mias"))
    reliability_diagram(bins, {}, tmp_path / "reliability.png")
    assert_picture(tmp_path / "reliability.png")
    (figure,) = kept_figures
    assert [axis.get_title() for axis in figure.axes] == ["val", "test", "mias"]
    assert figure.axes[0].get_xlabel() == "predicted P(abnormal)"
    assert figure.axes[0].get_ylabel() == "observed share abnormal"
    assert figure.axes[0].get_xlim() == (0, 1) and figure.axes[0].get_ylim() == (0, 1)


def test_reliability_diagram_skips_empty_bins_and_names_each_curves_ece(tmp_path, kept_figures):
    bins = calibration_bins(sets=("val",), empty_bins=(0, 1, 9))
    reliability_diagram(bins, {("val", "raw"): 0.0812, ("val", "calibrated"): None}, tmp_path / "reliability.png")
    assert_picture(tmp_path / "reliability.png")
    (figure,) = kept_figures
    labels = legend_labels(figure)[0]
    assert "perfect calibration" in labels
    assert "raw (ECE 0.081)" in labels and "calibrated (ECE undefined)" in labels
    # The raw and calibrated curves plot only the 7 filled bins, none of them NaN.
    curves = [line for line in figure.axes[0].lines if line.get_label() != "perfect calibration"]
    assert len(curves) == 2
    for line in curves:
        assert len(line.get_xdata()) == 7
        assert np.isfinite(np.asarray(line.get_xdata(), dtype=float)).all()


def threshold_sweep(sets=("val", "test")) -> pd.DataFrame:
    thresholds = np.linspace(0, 1, 51)
    rows = []
    for name in sets:
        recall = 1 - thresholds**2
        specificity = np.sqrt(thresholds)
        precision = 0.3 + 0.6 * thresholds
        # Nothing is called abnormal at the top thresholds: precision and F1 are undefined there.
        precision[thresholds > 0.95] = np.nan
        f1 = 2 * precision * recall / (precision + recall)
        accuracy = 0.5 * (recall + specificity)
        rows.append(
            pd.DataFrame(
                dict(
                    set=name,
                    threshold=thresholds,
                    accuracy=accuracy,
                    precision=precision,
                    recall=recall,
                    specificity=specificity,
                    f1=f1,
                )
            )
        )
    return pd.concat(rows, ignore_index=True)


OPERATING_POINTS = {"best_f1": 0.42, "recall_0.90": 0.2, "specificity_0.90": 0.7, "fixed_0.5": 0.5}


def test_threshold_curves_mark_every_operating_point(tmp_path, kept_figures):
    threshold_curves(threshold_sweep(), OPERATING_POINTS, tmp_path / "thresholds.png")
    assert_picture(tmp_path / "thresholds.png")
    (figure,) = kept_figures
    assert [axis.get_title() for axis in figure.axes] == ["val", "test"]
    for axis in figure.axes:
        labels = [line.get_label() for line in axis.lines]
        for rate in ("accuracy", "precision", "recall", "specificity", "f1"):
            assert rate in labels
        dashed = [line for line in axis.lines if line.get_linestyle() == "--"]
        assert sorted(float(line.get_xdata()[0]) for line in dashed) == sorted(OPERATING_POINTS.values())
        written = [text.get_text() for text in axis.texts]
        for name in OPERATING_POINTS:
            assert any(name in text for text in written)


def test_threshold_curves_tolerate_nan_rates(tmp_path):
    sweep = threshold_sweep(sets=("mias",))
    sweep.loc[sweep["threshold"] < 0.1, "specificity"] = np.nan
    sweep["f1"] = np.nan
    threshold_curves(sweep, {"fixed_0.5": 0.5}, tmp_path / "thresholds.png")
    assert_picture(tmp_path / "thresholds.png")


def test_confusion_matrices_binary_annotates_counts(tmp_path, kept_figures):
    binary = ["normal", "abnormal"]
    matrices = {
        "val": {"labels": binary, "rows_true_cols_predicted": [[50, 10], [5, 35]]},
        "test": {"labels": binary, "rows_true_cols_predicted": [[40, 20], [8, 32]]},
    }
    confusion_matrices(matrices, tmp_path / "confusion.png")
    assert_picture(tmp_path / "confusion.png")
    (figure,) = kept_figures
    titles = [axis.get_title() for axis in figure.axes]
    assert "val" in titles and "test" in titles
    for count in ("50", "10", "5", "35", "40", "20", "8", "32"):
        assert count in texts(figure)


def test_confusion_matrices_five_classes_with_an_empty_row(tmp_path, kept_figures):
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 30, size=(5, 5))
    counts[3] = 0  # no malignant calcification among the true classes
    confusion_matrices(
        {"test": {"labels": FIVE_CLASSES, "rows_true_cols_predicted": counts.tolist()}}, tmp_path / "confusion.png"
    )
    assert_picture(tmp_path / "confusion.png")
    (figure,) = kept_figures
    panel = figure.axes[0]
    shares = panel.images[0].get_array()
    assert np.all(shares[3] == 0)
    assert np.allclose(shares.sum(axis=1)[[0, 1, 2, 4]], 1)
    assert [label.get_text() for label in panel.get_xticklabels()] == FIVE_CLASSES
    assert panel.get_xticklabels()[0].get_rotation() > 0


def test_confusion_matrices_reject_a_matrix_of_the_wrong_size(tmp_path):
    with pytest.raises(ValueError, match="shape"):
        confusion_matrices(
            {"val": {"labels": FIVE_CLASSES, "rows_true_cols_predicted": [[1, 2], [3, 4]]}}, tmp_path / "confusion.png"
        )


def misclassified(seed=2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for name, count in (("val", 12), ("test", 5), ("mias", 3)):
        for kind in ("false positive", "false negative"):
            for index in range(count):
                score = rng.uniform(0.5, 1) if kind == "false positive" else rng.uniform(0, 0.5)
                rows.append(dict(set=name, kind=kind, p_abnormal=score, tile_id=f"{name}-{kind[6]}-{index}"))
    return pd.DataFrame(rows).sample(frac=1, random_state=seed).reset_index(drop=True)


def recording_images(asked: list):
    rng = np.random.default_rng(0)

    def images(row) -> np.ndarray:
        asked.append(row["tile_id"])
        return rng.integers(0, 256, size=(299, 299), dtype=np.uint8)

    return images


def test_error_montage_draws_the_most_confident_mistakes(tmp_path):
    errors = misclassified()
    asked: list[str] = []
    error_montage(errors, recording_images(asked), tmp_path / "errors.png", per_kind=4)
    assert_picture(tmp_path / "errors.png")
    assert len(asked) == len(set(asked))
    drawn = errors.set_index("tile_id").loc[asked]
    for (name, kind), part in errors.groupby(["set", "kind"]):
        shown = drawn[(drawn["set"] == name) & (drawn["kind"] == kind)]
        assert len(shown) == min(4, len(part))
        if kind == "false positive":
            expected = part.nlargest(4, "p_abnormal")
        else:
            expected = part.nsmallest(4, "p_abnormal")
        assert set(shown.index) == set(expected["tile_id"])


def test_error_montage_orders_each_row_by_confidence(tmp_path):
    errors = misclassified()
    asked: list[str] = []
    error_montage(errors[errors["set"] == "val"], recording_images(asked), tmp_path / "errors.png")
    scores = errors.set_index("tile_id").loc[asked]
    positives = scores[scores["kind"] == "false positive"]["p_abnormal"].to_numpy()
    negatives = scores[scores["kind"] == "false negative"]["p_abnormal"].to_numpy()
    assert len(positives) == len(negatives) == 8
    assert np.all(np.diff(positives) <= 0)
    assert np.all(np.diff(negatives) >= 0)


def test_error_montage_of_no_errors_still_writes_a_picture(tmp_path, kept_figures):
    empty = pd.DataFrame(columns=["set", "kind", "p_abnormal", "tile_id"])
    asked: list[str] = []
    error_montage(empty, recording_images(asked), tmp_path / "errors.png")
    assert_picture(tmp_path / "errors.png")
    assert asked == []
    assert "no misclassified tiles" in texts(kept_figures[0])


def test_training_curves_draw_each_logged_metric_for_training_and_validation(tmp_path, kept_figures):
    history = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "loss": [1.0, 0.7, 0.5],
            "val_loss": [1.1, 0.8, 0.7],
            "accuracy": [0.6, 0.7, 0.8],
            "val_accuracy": [0.5, 0.6, 0.7],
            "abnormal_pr_auc": [0.3, 0.5, 0.6],
            "val_abnormal_pr_auc": [0.2, 0.4, 0.5],
        }
    )
    plots.training_curves(history, tmp_path / "curves.png")
    assert_picture(tmp_path / "curves.png")
    (figure,) = kept_figures
    assert [axis.get_ylabel() for axis in figure.axes] == ["loss", "accuracy", "abnormal_pr_auc"]
    assert legend_labels(figure) == [["train", "validation"]] * 3
    assert list(figure.axes[2].lines[1].get_ydata()) == [0.2, 0.4, 0.5]
    plots.training_curves(history[["epoch", "loss", "accuracy"]], tmp_path / "older.png")  # a history without PR-AUC
    assert [axis.get_ylabel() for axis in kept_figures[1].axes] == ["loss", "accuracy"]
