"""How far is the demo from real films? Measured on mini-MIAS tiles of the same geometry (299 at 2.58x).

1. Realism: a small classifier (logistic regression on the intensity histogram and the radial power
   spectrum of each tile, woman-grouped 5-fold CV) tells real normal tiles from generated normal tiles;
   its ROC-AUC is the figure (0.5: indistinguishable, 1.0: trivially told apart). Beside it the
   power-spectrum slope (beta of 1/f^beta) and the intensity percentiles of both.
2. Transfer: a demo-trained model scored on every real tile (ROC-AUC of P(abnormal), normal vs abnormal).

Inputs are workflow outputs: the real tiles of `results/mias_cv/` (data.mias pointing at the real films),
the generated mini-MIAS tiles of `results/ds9/mias/` and a demo model.

Usage: .venv/bin/python bench/bench_realism.py --real results/mias_cv --demo results/ds9/mias
           [--model results/ds9/model_1.0.0.35/model.keras]
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import pandas as pd

BINS = 32  # intensity histogram bins
RINGS = 24  # radial frequency rings of the power spectrum


def tiles_of(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    table = pd.read_csv(folder / "tiles.tsv", sep="\t", dtype={"patient_id": str})
    return np.load(folder / "tiles.npy"), table


def radial_spectrum(tile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean power per ring of spatial frequency (cycles/pixel), DC and the outer corners left out."""
    centred = tile.astype(np.float64) - tile.mean()
    power = np.abs(np.fft.fftshift(np.fft.fft2(centred * np.outer(np.hanning(tile.shape[0]), np.hanning(tile.shape[1]))))) ** 2
    fy = np.fft.fftshift(np.fft.fftfreq(tile.shape[0]))[:, None]
    fx = np.fft.fftshift(np.fft.fftfreq(tile.shape[1]))[None, :]
    radius = np.hypot(fy, fx)
    edges = np.geomspace(2.0 / tile.shape[0], 0.5, RINGS + 1)
    ring = np.digitize(radius, edges) - 1
    inside = (ring >= 0) & (ring < RINGS)
    total = np.bincount(ring[inside], weights=power[inside], minlength=RINGS)
    count = np.bincount(ring[inside], minlength=RINGS)
    return np.sqrt(edges[:-1] * edges[1:]), total / np.maximum(count, 1)


def features(tiles: np.ndarray) -> np.ndarray:
    rows = []
    for tile in tiles:
        histogram = np.histogram(tile, bins=BINS, range=(0, 256))[0] / tile.size
        _, spectrum = radial_spectrum(tile)
        rows.append(np.concatenate([histogram, np.log10(spectrum + 1e-9)]))
    return np.array(rows)


def spectrum_slope(tiles: np.ndarray) -> float:
    """beta of power ~ 1/f^beta, fitted on the median spectrum between 0.01 and 0.25 cycles/pixel."""
    spectra = [radial_spectrum(tile) for tile in tiles]
    frequency = spectra[0][0]
    power = np.median([s[1] for s in spectra], axis=0)
    band = (frequency > 0.01) & (frequency < 0.25)
    return float(-np.polyfit(np.log10(frequency[band]), np.log10(power[band]), 1)[0])


def realism_auc(real: np.ndarray, real_groups: np.ndarray, demo: np.ndarray, demo_groups: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.concatenate([features(real), features(demo)])
    y = np.r_[np.zeros(len(real)), np.ones(len(demo))]
    groups = np.r_[["real:" + g for g in real_groups], ["demo:" + g for g in demo_groups]]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=0.1))
    scores = cross_val_predict(model, x, y, groups=groups, cv=GroupKFold(5), method="predict_proba")[:, 1]
    return float(roc_auc_score(y, scores))


def transfer(model_path: Path, tiles: np.ndarray, table: pd.DataFrame, contrast: float) -> dict:
    from mammo.evaluate import binary_metrics, p_abnormal
    from mammo.inference import open_engine

    predict = open_engine(model_path).predictor(contrast)
    scores = p_abnormal(np.concatenate([predict(tiles[start : start + 64]) for start in range(0, len(tiles), 64)]))
    metrics = binary_metrics(table["label_normal"], scores, 0.5, table["patient_id"], 1000, 3)
    return {key: metrics[key] for key in ("n", "roc_auc", "pr_auc", "accuracy", "recall", "specificity")} | {
        "roc_auc_ci95": metrics["ci95"]["roc_auc"]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, default=Path("results/mias_cv"))
    parser.add_argument("--demo", type=Path, default=Path("results/ds9/mias"))
    parser.add_argument("--model", type=Path, help="a demo-trained model to score the real tiles with")
    parser.add_argument("--contrast", type=float, default=1.0)
    parser.add_argument("--sample", type=int, default=1500, help="at most this many real normal tiles (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    real_tiles, real_table = tiles_of(args.real)
    demo_tiles, demo_table = tiles_of(args.demo)
    rng = np.random.default_rng(args.seed)
    real_normal = np.flatnonzero((real_table["method"] == "normal_grid").to_numpy())
    real_normal = np.sort(rng.choice(real_normal, min(args.sample, len(real_normal)), replace=False))
    demo_normal = np.flatnonzero((demo_table["label_normal"] == 0).to_numpy())
    print(
        f"machine: {platform.processor() or platform.machine()}; real normal tiles {len(real_normal)}, demo normal tiles {len(demo_normal)}"
    )
    result = {
        "realism_auc": realism_auc(
            real_tiles[real_normal],
            real_table["patient_id"].to_numpy()[real_normal],
            demo_tiles[demo_normal],
            demo_table["patient_id"].to_numpy()[demo_normal],
            args.seed,
        ),
        "spectrum_slope": {"real": spectrum_slope(real_tiles[real_normal]), "demo": spectrum_slope(demo_tiles[demo_normal])},
        "intensity_percentiles_5_25_50_75_95": {
            "real": np.percentile(real_tiles[real_normal], [5, 25, 50, 75, 95]).tolist(),
            "demo": np.percentile(demo_tiles[demo_normal], [5, 25, 50, 75, 95]).tolist(),
        },
    }
    if args.model:
        result["demo_model_on_real_tiles"] = transfer(args.model, real_tiles, real_table, args.contrast)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
