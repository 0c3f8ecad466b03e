"""One row of the real-data ablation table from a finished mias_cv run: pooled and per-fold tile figures, whole-film
figures (both localisation criteria) and each job's time per fold from the run's benchmark files.

    python bench/ablation_row.py "online crops" [--root .] [--model 1.0.0.35.mias]

Prints a markdown row (README, "Results on real mammograms"), each film score's figures and the job times
(BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

JOBS = ("train", "export", "evaluate", "score_films")


def tile_cells(metrics: dict) -> list[str]:
    pooled = metrics["sets"]["out_of_fold"]["raw"]
    low, high = pooled["ci95"]["roc_auc"]
    spread = metrics["fold_spread"]["roc_auc"]
    return [
        f"{pooled['roc_auc']:.3f} [{low:.3f}, {high:.3f}]",
        f"{spread['mean']:.3f} ± {spread['sd']:.3f}",
        f"{pooled['pr_auc']:.3f}",
    ]


def film_cells(metrics: dict) -> list[str]:
    films = metrics["sets"]["out_of_fold"]
    centre, box = films["localisation"], films["localisation"]["box_criterion"]
    rates = " / ".join(f"{centre['sensitivity_at_fp_per_scan'][rate]:.2f}" for rate in ("1", "2", "4"))
    return [f"{films['roc_auc']:.3f}", f"{centre['top_region_on_lesion']:.0%} ({box['top_region_on_lesion']:.0%})", rates]


def film_score_lines(metrics: dict) -> list[str]:
    """Each film score's film ROC-AUC with its interval over women, woman ROC-AUC, film ROC-AUC among fatty,
    glandular and dense films (mini-MIAS F / G / D), and where a score re-ranks the regions, its FROC."""
    lines = []
    for name, rates in metrics.get("film_scores", {}).items():
        if not isinstance(rates, dict):
            continue  # the counts beside the scores
        low, high = rates["ci95"]["roc_auc"]
        density = " / ".join(f"{rates['by_density'][key]['roc_auc']:.3f}" for key in "FGD" if key in rates.get("by_density", {}))
        froc = rates.get("localisation", {}).get("sensitivity_at_fp_per_scan")
        lines.append(
            f"{name}: film {rates['roc_auc']:.3f} [{low:.3f}, {high:.3f}], woman {rates['women']['roc_auc']:.3f}"
            + (f", F / G / D {density}" if density else "")
            + (f", FROC at 1 / 2 / 4 {' / '.join(f'{froc[rate]:.2f}' for rate in ('1', '2', '4'))}" if froc else "")
        )
    return lines


def job_seconds(root: Path, model: str) -> dict[str, tuple[float, float]]:
    """Mean wall and CPU seconds per fold of each job (Snakemake's benchmark files): on a shared machine the CPU
    seconds compare, the wall seconds do not."""
    found = {}
    for job in JOBS:
        pattern = (
            f"benchmarks/mias_cv/{job}_{model}_*.tsv"
            if job != "export"
            else f"benchmarks/mias_cv/model_{model}/fold_*/export.tsv"
        )
        files = sorted(root.glob(pattern))
        if files:
            table = pd.concat([pd.read_csv(path, sep="\t") for path in files])
            found[job] = (float(table["s"].mean()), float(table["cpu_time"].mean()))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--model", default="1.0.0.35.mias")
    args = parser.parse_args()
    results = args.root / "results" / "mias_cv" / f"model_{args.model}"
    tiles = json.loads((results / "metrics.json").read_text())
    films = json.loads((results / "scans" / "metrics.json").read_text())
    print("| " + " | ".join([args.name, *tile_cells(tiles), *film_cells(films)]) + " |")
    print("\n".join(film_score_lines(films)))
    seconds = job_seconds(args.root, args.model)
    print("per fold, wall / CPU seconds: " + ", ".join(f"{job} {wall:.0f} / {cpu:.0f}" for job, (wall, cpu) in seconds.items()))


if __name__ == "__main__":
    main()
