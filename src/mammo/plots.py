"""PNG figures: training curves, ROC and PR curves, tile montages, FROC curves and scan heatmaps."""

from __future__ import annotations

from pathlib import Path

import matplotlib

from mammo.heatmap import overlay

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mammo.evaluate import precision_recall_curve, roc_curve  # noqa: E402
from mammo.labels import CLASS_NAMES  # noqa: E402


def training_curves(history: pd.DataFrame, out: str | Path) -> None:
    """Loss, accuracy and (when logged) the PR-AUC of P(abnormal) per epoch, training and validation."""
    metrics = [metric for metric in ("loss", "accuracy", "abnormal_pr_auc") if metric in history]
    figure, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 4), squeeze=False)
    epochs = history["epoch"] + 1
    for axis, metric in zip(axes[0], metrics):
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


def montage(
    tiles: pd.DataFrame, images, out: str | Path, per_row: int = 8, seed: int = 0, rows: str = "class_code", blocks: str = "split"
) -> None:
    """Random tiles per class (rows) and split (blocks), for visual review; `images(row)` returns a tile. With
    rows="source" and blocks="label_normal": each collection's normal and abnormal tiles side by side, which shows
    its intensity mapping to the shared 8-bit tile space."""
    rng = np.random.default_rng(seed)
    row_names, block_names = _montage_names(tiles, rows), _montage_names(tiles, blocks)
    figure, axes = plt.subplots(
        len(row_names), len(block_names), figsize=(per_row * len(block_names), 1.3 * len(row_names)), squeeze=False
    )
    for column, (block, block_name) in enumerate(block_names.items()):
        for row, (value, row_name) in enumerate(row_names.items()):
            matching = tiles[(tiles[blocks] == block) & (tiles[rows] == value)]
            chosen = matching
            if len(chosen) > per_row:
                chosen = chosen.iloc[np.sort(rng.choice(len(chosen), per_row, replace=False))]
            strip = np.zeros((150, 150 * per_row), dtype=np.uint8)
            for slot, (_, tile_row) in enumerate(chosen.iterrows()):
                strip[:, slot * 150 : (slot + 1) * 150] = images(tile_row)[::2, ::2][:150, :150]
            axis = axes[row][column]
            axis.imshow(strip, cmap="gray", vmin=0, vmax=255)
            axis.set_title(f"{block_name}: {row_name} ({len(matching)})", fontsize=9)
            axis.axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=80)
    plt.close(figure)


def hard_negative_picture(tiles: np.ndarray, table: pd.DataFrame, out: str | Path, per_round: int = 16) -> None:
    """The highest-scoring hard negatives of each mining round (rows), each captioned with its score and location."""
    rounds = sorted(table["round"].unique()) if len(table) else []
    figure, axes = plt.subplots(
        max(len(rounds), 1), per_round, figsize=(1.4 * per_round, 1.8 * max(len(rounds), 1)), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for row, number in enumerate(rounds):
        best = table[table["round"] == number].sort_values("score", ascending=False, kind="stable").head(per_round)
        for slot, (index, window) in enumerate(best.iterrows()):
            axes[row][slot].imshow(tiles[index], cmap="gray", vmin=0, vmax=255)
            axes[row][slot].set_title(f"round {number}\n{window['score']:.2f} {window['location']}", fontsize=6)
    _save(figure, out, None if rounds else axes[0][0], "no hard negatives mined (hard_negatives.rounds: 0)")


def _montage_names(tiles: pd.DataFrame, key: str) -> dict:
    """The values of a montage's rows or blocks, in order, with their names."""
    if key == "class_code":
        return dict(CLASS_NAMES)
    if key == "label_normal":
        return {0: "normal", 1: "abnormal"}
    present = set(tiles[key])
    order = [s for s in ("train", "val", "test", "mias") if s in present] if key == "split" else sorted(present)
    return {value: str(value) for value in order}


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


def scan_cases(
    scans: pd.DataFrame, regions: pd.DataFrame, arrays: dict, threshold: float, out: str | Path, per_kind: int = 2
) -> None:
    """Heatmaps of the most confident right and wrong scans: true/false positives and negatives at the threshold."""

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
        parts = axis.boxplot(
            standardised[labels == label], positions=positions + offset, widths=0.8, patch_artist=True, showfliers=False
        )
        for box in parts["boxes"]:
            box.set_facecolor(colour)
    axis.set_xticks(positions + 0.5, names, rotation=75, fontsize=8)
    axis.set_ylabel("standardised value")
    axis.set_title("UCI Wisconsin features by diagnosis (blue benign, red malignant)")
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)


def _set_panels(sets: list[str], width: float):
    """One panel per set side by side (one empty panel when there is no set)."""
    figure, axes = plt.subplots(1, max(len(sets), 1), figsize=(width * max(len(sets), 1), 4.5), squeeze=False)
    return figure, axes[0]


def _save(figure, out: str | Path, empty_axis=None, empty_message: str = "") -> None:
    """Write the figure; an empty figure says why it is empty."""
    if empty_axis is not None:
        empty_axis.text(0.5, 0.5, empty_message, ha="center", va="center")
        empty_axis.axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def reliability_diagram(bins: pd.DataFrame, ece: dict[tuple[str, str], float | None], out: str | Path) -> None:
    """Observed share abnormal against mean P(abnormal) per score bin, raw and calibrated, one panel per set;
    `ece[(set, calibration)]` is the expected calibration error of each curve (from metrics.json)."""
    sets = list(dict.fromkeys(bins["set"]))
    figure, axes = _set_panels(sets, 4.5)
    for axis, name in zip(axes, sets):
        part = bins[bins["set"] == name]
        axis.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect calibration")
        for calibration in dict.fromkeys(part["calibration"]):
            curve = part[part["calibration"] == calibration].sort_values("bin_low")
            # empty bins carry NaN means: they hold no tiles and draw nothing
            filled = curve[(curve["n"] > 0) & curve["mean_score"].notna() & curve["fraction_abnormal"].notna()]
            value = ece.get((name, calibration))
            described = "undefined" if value is None else f"{value:.3f}"
            axis.plot(
                filled["mean_score"],
                filled["fraction_abnormal"],
                marker="o" if calibration == "raw" else "s",
                label=f"{calibration} (ECE {described})",
            )
        axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted P(abnormal)", ylabel="observed share abnormal", title=name)
        axis.set_aspect("equal")
        axis.legend(loc="upper left", fontsize=8)
    _save(figure, out, None if sets else axes[0], "no calibration bins")


def threshold_curves(sweep: pd.DataFrame, operating_points: dict[str, float], out: str | Path) -> None:
    """Tile rates against the P(abnormal) threshold, one panel per set, with the named operating points marked."""
    sets = list(dict.fromkeys(sweep["set"]))
    figure, axes = _set_panels(sets, 5.5)
    for axis, name in zip(axes, sets):
        part = sweep[sweep["set"] == name].sort_values("threshold")
        for rate in ("accuracy", "precision", "recall", "specificity", "f1"):
            if rate in part:
                # NaN (an undefined rate, e.g. precision with nothing called abnormal) leaves a gap, not a fake zero.
                axis.plot(part["threshold"], part[rate], label=rate)
        for label, value in operating_points.items():
            if value is None or not np.isfinite(value):
                continue
            axis.axvline(value, color="grey", linewidth=0.8, linestyle="--")
            axis.text(
                value,
                0.02,
                f" {label} ({value:.2f})",
                transform=axis.get_xaxis_transform(),
                rotation=90,
                ha="right",
                va="bottom",
                fontsize=7,
                color="dimgrey",
            )
        axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold on P(abnormal)", ylabel="rate", title=name)
        axis.legend(loc="center right", fontsize=8)
    _save(figure, out, None if sets else axes[0], "no threshold sweep")


def confusion_matrices(matrices: dict[str, dict], out: str | Path, per_row: int = 4) -> None:
    """Confusion matrices as metrics.json holds them ({labels, rows_true_cols_predicted}), coloured by share of the
    true class and annotated with counts; `per_row` panels per row (e.g. the operating points of one set)."""
    names = list(matrices)
    side = max(4.0, 1.5 + 0.9 * max((len(m["labels"]) for m in matrices.values()), default=2))
    columns = min(max(len(names), 1), per_row)
    rows = -(-max(len(names), 1) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(side * columns, side * rows), squeeze=False)
    for axis in axes.flat[len(names) :]:
        axis.axis("off")
    for axis, name in zip(axes.flat, names):
        labels = matrices[name]["labels"]
        counts = np.asarray(matrices[name]["rows_true_cols_predicted"], dtype=np.int64)
        if counts.shape != (len(labels), len(labels)):
            raise ValueError(f"confusion matrix {name!r} has shape {counts.shape}, expected {len(labels)}x{len(labels)}")
        totals = counts.sum(axis=1, keepdims=True)
        # A class absent from the truth has no shares to show; 0 keeps the row visible without a division warning.
        shares = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
        image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (row, column), count in np.ndenumerate(counts):
            axis.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=9,
                color="white" if shares[row, column] > 0.5 else "black",
            )
        axis.set_xticks(range(len(labels)), labels, rotation=40, ha="right", fontsize=8)
        axis.set_yticks(range(len(labels)), labels, fontsize=8)
        axis.set(xlabel="predicted class", ylabel="true class", title=name)
        figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of true class")
    if not names:
        axes[0][0].text(0.5, 0.5, "no confusion matrices", ha="center", va="center")
        axes[0][0].axis("off")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def error_montage(errors: pd.DataFrame, images, out: str | Path, per_kind: int = 8) -> None:
    """Most confident misclassified tiles, one row per set and kind; `images(row)` returns a tile."""
    if errors.empty:
        figure, axis = plt.subplots(figsize=(4, 2.5))
        axis.text(0.5, 0.5, "no misclassified tiles", ha="center", va="center", fontsize=14)
        axis.axis("off")
        figure.savefig(out, dpi=100)
        plt.close(figure)
        return
    kinds = list(dict.fromkeys(["false positive", "false negative", *errors["kind"]]))
    groups = []
    for name in dict.fromkeys(errors["set"]):
        for kind in kinds:
            part = errors[(errors["set"] == name) & (errors["kind"] == kind)]
            if part.empty:
                continue
            # Missed lesions are worst when scored lowest; false alarms when scored highest.
            if kind == "false negative":
                chosen = part.nsmallest(per_kind, "p_abnormal")
            else:
                chosen = part.nlargest(per_kind, "p_abnormal")
            groups.append((name, kind, len(part), chosen))
    columns = max(len(chosen) for *_, chosen in groups)
    figure, axes = plt.subplots(len(groups), columns, figsize=(1.7 * columns + 1.2, 2.0 * len(groups)), squeeze=False)
    for row, (name, kind, total, chosen) in enumerate(groups):
        for axis in axes[row]:
            axis.axis("off")
        for axis, (_, tile_row) in zip(axes[row], chosen.iterrows()):
            axis.imshow(images(tile_row), cmap="gray", vmin=0, vmax=255)
            axis.set_title(f"{tile_row['p_abnormal']:.2f}", fontsize=8)
        axes[row][0].text(
            -0.1, 0.5, f"{name}\n{kind}\n({total} tiles)", transform=axes[row][0].transAxes, ha="right", va="center", fontsize=8
        )
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)


def collection_scores(scored: pd.DataFrame, result: dict, out: str | Path) -> None:
    """Histograms of P(abnormal) on normal tissue per group (column `group`: the scans with ROIs, the normal scans),
    titled with the collection AUC of the audit."""
    figure, axis = plt.subplots(figsize=(7, 4))
    edges = np.linspace(0, 1, 21)
    for group, part in scored.groupby("group", sort=True):
        axis.hist(part["p_abnormal"], bins=edges, alpha=0.6, density=True, label=f"{group} ({len(part)} tiles)")
    auc, (low, high) = result["collection_auc"], result["ci95"]
    described = "undefined" if auc is None else f"{auc:.3f} [{low:.3f}, {high:.3f}]"
    verdict = "  FLAGGED: the score tells the collections apart" if result["flagged"] else ""
    axis.set(xlabel="P(abnormal) on normal tissue", ylabel="density", title=f"collection AUC {described}{verdict}")
    if len(scored):
        axis.legend()
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
