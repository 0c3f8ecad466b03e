"""Finished mias_cv runs on the same folds and films, read together: each film's window scores averaged over the runs
(an ensemble of their fold models; the runs must have scored the same windows, as runs of one windowing do), its
regions and lesion hits found again as the scoring job finds them, and the maximum window's film figures printed:
film and woman ROC-AUC with intervals over women, the top region on the lesion (centre and box criteria, per class of
lesion) and FROC. One run alone gives back its own scans/metrics.json figures.

    python bench/combined_runs.py RUN [RUN ...] [--model 1.0.0.35.mias]

Each RUN is the folder a run was made in (with results/mias_cv/ and results/sources/mias/)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.heatmap import Windowing, top_regions
from mammo.scan_eval import lesion_window_ranks, margin_pixels, mias_lesions, region_hits, scan_metrics
from mammo.tables import read_table


def combined_scans(roots: list[Path], model: str, rois: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first run's scans table with each film's maximum and lesion ranks from the runs' mean window scores, and
    the regions of those scores (top and overlap as Windowing's defaults, which the workflow's config keeps)."""
    windowing, scans, regions = Windowing(), [], []
    folders = [root / "results" / "mias_cv" / f"model_{model}" / "scans" for root in roots]
    for table in sorted(folders[0].glob("fold_*.scans.tsv")):
        fold = table.name.removesuffix(".scans.tsv")
        archives = [np.load(folder / f"{fold}.heatmaps.npz") for folder in folders]
        for _, film in read_table(table).iterrows():
            scan_id, shape = film["scan_id"], (int(film["rows"]), int(film["cols"]))
            if int(film["windows_scored"]) == 0:
                scans.append(film.to_dict())
                continue
            boxes = archives[0][f"{scan_id}/boxes"]
            if any(not np.array_equal(archive[f"{scan_id}/boxes"], boxes) for archive in archives[1:]):
                raise ValueError(f"{scan_id}: the runs scored other windows (another stride or scale)")
            scores = np.mean([archive[f"{scan_id}/scores"].astype(np.float64) for archive in archives], axis=0)
            lesions = mias_lesions(rois, scan_id, shape)
            margin = margin_pixels(film["source"], float(film["scale"]))
            for rank, index in enumerate(top_regions(boxes, scores, windowing.top, windowing.overlap), start=1):
                regions.append(
                    {
                        "scan_id": scan_id,
                        "rank": rank,
                        "score": scores[index],
                        **region_hits(boxes[index], lesions, margin),
                    }
                )
            scans.append(
                {
                    **film.to_dict(),
                    "max_score": float(scores.max()),
                    "lesion_ranks": lesion_window_ranks(boxes, scores, lesions, margin),
                }
            )
    combined = pd.DataFrame(scans)
    combined["max_score"] = pd.to_numeric(combined["max_score"], errors="coerce")
    return combined, pd.DataFrame(regions)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--model", default="1.0.0.35.mias")
    parser.add_argument("--replicates", type=int, default=1000)  # the config's evaluation.bootstrap and seed
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    rois = read_table(args.runs[0] / "results" / "sources" / "mias" / "rois.tsv")
    scans, regions = combined_scans(args.runs, args.model, rois)
    classes = dict(zip(rois["roi_id"], rois["abnormality_class"]))
    figures, _ = scan_metrics(scans, regions, 0.5, args.replicates, args.seed, classes)
    where = figures["localisation"]
    low, high = figures["ci95"]["roc_auc"]
    print(f"{' + '.join(str(run) for run in args.runs)} ({args.model}), {len(scans)} films")
    print(f"film ROC-AUC {figures['roc_auc']:.3f} [{low:.3f}, {high:.3f}], woman {figures['women']['roc_auc']:.3f}")
    print(
        f"top region on the lesion {where['top_region_on_lesion']:.0%} (box {where['box_criterion']['top_region_on_lesion']:.0%}); "
        + ", ".join(f"{name} {part['top_region_on_lesion']:.0%}" for name, part in where["by_class"].items())
    )
    print("FROC at 1 / 2 / 4: " + " / ".join(f"{where['sensitivity_at_fp_per_scan'][rate]:.2f}" for rate in ("1", "2", "4")))


if __name__ == "__main__":
    main()
