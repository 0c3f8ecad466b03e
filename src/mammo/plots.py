"""PNG figures: training curves, ROC and PR curves, tile montages, FROC curves and scan heatmaps."""

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


def froc_plot(curve: pd.DataFrame, out: str | Path) -> None:
    """FROC: lesion sensitivity against false-positive regions per scan, one line per scan set."""
    figure, axis = plt.subplots(figsize=(5.5, 4.5))
    for name, part in curve.groupby("set", sort=True):
        if part["sensitivity"].notna().any():
            axis.step(part["fp_per_scan"], part["sensitivity"], where="post", label=name)
    for rate in (1, 2, 4):
        axis.axvline(rate, color="grey", linewidth=0.6, linestyle=":")
    axis.set(xlabel="false-positive regions per scan", ylabel="lesion sensitivity", title="FROC", ylim=(0, 1.02))
    if axis.get_legend_handles_labels()[0]:
        axis.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def scan_cases(scans: pd.DataFrame, regions: pd.DataFrame, arrays: dict, threshold: float, out: str | Path, per_kind: int = 2) -> None:
    """Heatmaps of the most confident right and wrong scans: true/false positives and negatives at the threshold."""
    from mammo.heatmap import overlay

    scored = scans[scans["windows_scored"] > 0]
    abnormal, normal = scored[scored["label_normal"] == 1], scored[scored["label_normal"] == 0]
    kinds = {
        "true positive": abnormal[abnormal["max_score"] >= threshold].nlargest(per_kind, "max_score"),
        "false negative": abnormal[abnormal["max_score"] < threshold].nsmallest(per_kind, "max_score"),
        "false positive": normal[normal["max_score"] >= threshold].nlargest(per_kind, "max_score"),
        "true negative": normal[normal["max_score"] < threshold].nsmallest(per_kind, "max_score"),
    }
    cases = [(kind, row) for kind, chosen in kinds.items() for _, row in chosen.iterrows()]
    figure, axes = plt.subplots(1, max(len(cases), 1), figsize=(3 * max(len(cases), 1), 4.2), squeeze=False)
    for axis, (kind, row) in zip(axes[0], cases):
        key = row["scan_id"]
        found = [
            {"box": [int(v) for v in region["box"].split(",")], "score": float(region["score"])}
            for _, region in regions[regions["scan_id"] == key].sort_values("rank").iterrows()
        ]
        picture = overlay(arrays[f"{key}/thumbnail"], float(arrays[f"{key}/factor"]), arrays[f"{key}/heatmap"], found)
        axis.imshow(picture[..., ::-1])
        axis.set_title(f"{kind}\n{key[:28]}\nscore {row['max_score']:.2f}", fontsize=8)
    for axis in axes[0]:
        axis.axis("off")
    if not cases:
        axes[0][0].text(0.5, 0.5, "no scans scored", ha="center", va="center")
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)


def feature_boxplots(features: np.ndarray, labels: np.ndarray, names: list[str], out: str | Path) -> None:
    """Exploratory view of the UCI features: standardised values by diagnosis (benign vs malignant), one box pair each."""
    standardised = (features - features.mean(axis=0)) / features.std(axis=0)
    figure, axis = plt.subplots(figsize=(14, 5))
    positions = np.arange(len(names)) * 3
    for offset, (label, colour) in enumerate(((0, "tab:blue"), (1, "tab:red"))):
        parts = axis.boxplot(standardised[labels == label], positions=positions + offset, widths=0.8, patch_artist=True,
                             showfliers=False)  # fmt: skip
        for box in parts["boxes"]:
            box.set_facecolor(colour)
    axis.set_xticks(positions + 0.5, names, rotation=75, fontsize=8)
    axis.set_ylabel("standardised value")
    axis.set_title("UCI Wisconsin features by diagnosis (blue benign, red malignant)")
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)
