"""Stages of workflow/rules/report.smk: the shortcut audit, comparison tables and the benchmark table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.comparison import markdown, study_tables
from mammo.evaluate import binary_metrics, p_abnormal
from mammo.inference import open_engine
from mammo.plots import collection_scores
from mammo.records import tile_loader
from mammo.tables import read_table, write_json


def shortcut_audit(
    model_path: str,
    tiles_path: str,
    audit_path: str,
    settings: dict,
    evaluation: dict,
    inference: dict,
    result_out: str,
    plot_out: str,
) -> None:
    """Does the model's score tell the collections apart on normal tissue alone? Tissue of the scans with ROIs
    (CBIS-DDSM's, DDSM's outlined cases, VinDr-Mammo's images with findings) away from every ROI against the tissue
    grid of the normal scans (DDSM's normal cases, VinDr-Mammo's BI-RADS 1 breasts), both from held-out (validation
    and test) patients; AUC 0.5 = no shortcut, undefined where a group has no tile."""
    held_out = ("val", "test")
    tiles, audit = read_table(tiles_path), read_table(audit_path)
    normal = tiles[(tiles["method"] == "normal_grid") & tiles["split"].isin(held_out)]
    beside_rois = audit[audit["split"].isin(held_out)]
    groups = {"roi_scans": beside_rois, "normal_scans": normal}
    both = pd.concat([part.assign(group=name) for name, part in groups.items()], ignore_index=True)
    engine = open_engine(model_path, inference["engine"], inference["precision"], settings["threads"])
    predict = engine.predictor(settings["test_contrast"])
    images = tile_loader()
    scores = [
        predict(np.stack([images(row) for _, row in both.iloc[start : start + 32].iterrows()]))
        for start in range(0, len(both), 32)
    ]
    both["p_abnormal"] = p_abnormal(np.concatenate(scores)) if scores else []
    beside = (both["group"] == "roi_scans").to_numpy()
    if beside.all() or not beside.any():
        auc, interval = None, [None, None]
    else:
        metrics = binary_metrics(
            beside, both["p_abnormal"], None, both["patient_id"], evaluation["bootstrap"], evaluation["seed"]
        )
        auc, interval = metrics["roc_auc"], metrics["ci95"]["roc_auc"]
    result = {
        "question": "does P(abnormal) separate tissue of the scans with ROIs from that of normal scans? (0.5: no)",
        "patients": "validation and test splits",
        "roi_scans_from": sorted(beside_rois["source"].unique().tolist()),
        "tiles": {name: int((both["group"] == name).sum()) for name in groups},
        "mean_p_abnormal": {
            name: (float(part.mean()) if len(part) else None) for name, part in both.groupby("group")["p_abnormal"]
        },
        "inference": engine.describe(),
        "collection_auc": auc,
        "ci95": interval,
        "flag_above": evaluation["shortcut"]["flag_auc"],
        "flagged": bool(auc is not None and auc > evaluation["shortcut"]["flag_auc"]),
    }
    collection_scores(both, result, plot_out)
    write_json(result, result_out)


def comparison_tables(metrics_paths: list[str], shortcut_paths: list[str], runs: list[dict], out_dir: str) -> None:
    """results/tables/<table>.csv and .md: the study's Tables 1-3 across every trained dataset and model."""
    for run, metrics_path, shortcut_path in zip(runs, metrics_paths, shortcut_paths):
        run["metrics"] = json.loads(Path(metrics_path).read_text())
        run["shortcut"] = json.loads(Path(shortcut_path).read_text())
    for name, table in study_tables(runs).items():
        table.to_csv(Path(out_dir) / f"{name}.csv", index=False)
        (Path(out_dir) / f"{name}.md").write_text(markdown(table))
        print(f"{name}\n{markdown(table)}")


def benchmark_table(folder: str, table_out: str, markdown_out: str) -> None:
    """One row per job from Snakemake's benchmark files (the last repeat of each), slowest first."""
    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        last = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append(
            {
                "job": str(path.relative_to(folder).with_suffix("")),
                "seconds": round(float(last["s"]), 2),
                "max_rss_mb": round(float(last["max_rss"]), 1) if str(last["max_rss"]) != "-" else None,
            }
        )
    table = pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb"]).sort_values("seconds", ascending=False)
    table.to_csv(table_out, index=False)
    text = markdown(table, empty="(no benchmark files yet)")
    Path(markdown_out).write_text(text)
    print(text)
