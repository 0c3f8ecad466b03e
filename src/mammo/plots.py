"""PNG figures: training curves, ROC and PR curves, tile montages."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mammo.evaluate import roc_curve, precision_recall_curve  # noqa: E402
from mammo.labels import CLASS_NAMES  # noqa: E402


def training_curves(history: pd.DataFrame, out: str | Path) -> None:
    """Loss and accuracy per epoch, training and validation."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    epochs = history["epoch"] + 1
    for axis, metric in zip(axes, ("loss", "accuracy")):
        axis.plot(epochs, history[metric], marker="o", label="train")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], marker="o", label="validation")
        axis.set_xlabel("epoch")
        axis.set_ylabel(metric)
        axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def roc_pr_curves(predictions: pd.DataFrame, out: str | Path) -> None:
    """ROC and precision-recall curves of P(abnormal), one line per evaluated set."""
    figure, (roc_axis, pr_axis) = plt.subplots(1, 2, figsize=(10, 4.5))
    for name, part in predictions.groupby("set", sort=False):
        truth = (part["class_code"] > 0).to_numpy()
        score = part["p_abnormal"].to_numpy()
        if truth.all() or not truth.any():
            continue
        fpr, tpr = roc_curve(truth, score)
        roc_axis.plot(fpr, tpr, label=name)
        recall, precision = precision_recall_curve(truth, score)
        pr_axis.step(recall, precision, where="post", label=name)
    roc_axis.plot([0, 1], [0, 1], color="grey", linestyle=":")
    roc_axis.set(xlabel="1 - specificity", ylabel="sensitivity (recall)", title="ROC")
    pr_axis.set(xlabel="recall", ylabel="precision", title="Precision-recall", ylim=(0, 1.02))
    for axis in (roc_axis, pr_axis):
        axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def montage(tiles: pd.DataFrame, images, out: str | Path, per_row: int = 8, seed: int = 0) -> None:
    """Random tiles per class (rows) and split (blocks), for visual review; `images(row)` returns a tile."""
    rng = np.random.default_rng(seed)
    splits = [s for s in ("train", "val", "test", "mias") if s in set(tiles["split"])]
    codes = sorted(CLASS_NAMES)
    figure, axes = plt.subplots(len(codes), len(splits), figsize=(per_row * len(splits), 1.3 * len(codes)), squeeze=False)
    for column, split in enumerate(splits):
        for row, code in enumerate(codes):
            chosen = tiles[(tiles["split"] == split) & (tiles["class_code"] == code)]
            if len(chosen) > per_row:
                chosen = chosen.iloc[np.sort(rng.choice(len(chosen), per_row, replace=False))]
            strip = np.zeros((150, 150 * per_row), dtype=np.uint8)
            for slot, (_, tile_row) in enumerate(chosen.iterrows()):
                strip[:, slot * 150 : (slot + 1) * 150] = images(tile_row)[::2, ::2][:150, :150]
            axis = axes[row][column]
            axis.imshow(strip, cmap="gray", vmin=0, vmax=255)
            axis.set_title(f"{split}: {CLASS_NAMES[code]} ({len(tiles[(tiles['split'] == split) & (tiles['class_code'] == code)])})", fontsize=9)
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)
