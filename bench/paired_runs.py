"""Two finished mias_cv runs on the same folds, compared pair-wise: tile ROC-AUC and PR-AUC on the same out-of-fold
tiles, film ROC-AUC of each film score on the same films, each difference (A - B) with its 95% interval from one
bootstrap over women (mammo.evaluate.paired_difference). Intervals of the two runs alone overlap far more often
than their paired difference is in doubt: this says whether a lever moved a figure.

    python bench/paired_runs.py RUN_A RUN_B [--model-a 1.0.0.35.mias] [--model-b 1.0.0.35.mias]

RUN_A and RUN_B are the folders the runs were made in (each with results/mias_cv/)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mammo.evaluate import paired_difference
from mammo.film_scores import FILM_SCORES


def run_tables(root: Path, model: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A run's out-of-fold tile predictions and its held-out films' scores (every fold's)."""
    results = root / "results" / "mias_cv" / f"model_{model}"
    tiles = pd.read_csv(results / "predictions.tsv", sep="\t", dtype={"patient_id": str})
    films = pd.concat(
        [pd.read_csv(path, sep="\t", dtype={"patient_id": str}) for path in sorted((results / "scans").glob("fold_*.films.tsv"))]
    )
    return tiles, films


def paired_rows(
    a: tuple[pd.DataFrame, pd.DataFrame], b: tuple[pd.DataFrame, pd.DataFrame], replicates: int, seed: int
) -> list[dict]:
    """One row per figure: its value in A and B and their difference with the interval; the items both runs scored.
    Tiles pair only when both runs cut the same tiles (another scale or tiling reuses tile names for other pixels)."""
    rows = []
    if set(a[0]["tile_id"]) == set(b[0]["tile_id"]):
        tiles = a[0].merge(b[0][["tile_id", "p_abnormal"]], on="tile_id", suffixes=("_a", "_b"))
        for rate in ("roc_auc", "pr_auc"):
            paired = paired_difference(
                tiles["label_normal"], tiles["p_abnormal_a"], tiles["p_abnormal_b"], tiles["patient_id"], replicates, seed, rate
            )
            rows.append({"figure": f"tile {rate.replace('_', '-').upper()}", "items": len(tiles), **paired})
    else:
        print("the runs cut different tiles (another scale or tiling): tile figures are not paired")
    scores = [score for score in FILM_SCORES if score in a[1] and score in b[1]]  # a run made before a score was added lacks it
    films = a[1].merge(b[1][["scan_id", *scores]], on="scan_id", suffixes=("_a", "_b"))
    for score in scores:
        paired = paired_difference(
            films["label_normal"], films[f"{score}_a"], films[f"{score}_b"], films["patient_id"], replicates, seed
        )
        rows.append({"figure": f"film ROC-AUC ({score})", "items": len(films), **paired})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_a", type=Path)
    parser.add_argument("run_b", type=Path)
    parser.add_argument("--model-a", default="1.0.0.35.mias")
    parser.add_argument("--model-b", default="1.0.0.35.mias")
    parser.add_argument("--replicates", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = paired_rows(run_tables(args.run_a, args.model_a), run_tables(args.run_b, args.model_b), args.replicates, args.seed)
    print(f"A: {args.run_a} ({args.model_a}); B: {args.run_b} ({args.model_b}); {args.replicates} replicates over women")
    print("| figure | items | A | B | A - B [95%] |")
    print("|---|---|---|---|---|")
    for row in rows:
        low, high = row["ci95"]
        print(
            f"| {row['figure']} | {row['items']} | {row['a']:.3f} | {row['b']:.3f} | {row['difference']:+.3f} [{low:+.3f}, {high:+.3f}] |"
        )


if __name__ == "__main__":
    main()
