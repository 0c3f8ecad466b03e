"""Stages of workflow/rules/scans.smk and of `mammo scan`: whole-scan heatmaps, regions and their evaluation."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo.atomic import npy_bytes, png_bytes, write_atomically
from mammo.card import CARD_FILE, read_card
from mammo.extract import roi_mask
from mammo.graph import in_chunk
from mammo.heatmap import Windowing, overlay, regions, score_scan, thumbnail
from mammo.inference import open_engine
from mammo.io import FormatError
from mammo.io.ddsm import outline_mask
from mammo.io.listed import finding_mask, listed_scale, mirrored
from mammo.io.mias import mias_centre
from mammo.io.scan import read_scan
from mammo.plots import froc_plot as draw_froc
from mammo.plots import scan_cases
from mammo.scan_eval import (
    REGION_COLUMNS,
    circle_mask,
    lesions_centred,
    lesions_hit,
    margin_pixels,
    scan_metrics,
    scan_targets,
)
from mammo.sources import LISTED, SCAN_OUTPUT_SUFFIXES, scan_identity, window_scale_of
from mammo.tables import REJECTED_COLUMNS, read_table, write_json, write_table


def analyse_scan(
    scan_path: str, model_path: str, out_dir: str, windowing, inference: dict, stem: str | None = None, force: bool = False
) -> dict:
    """Heatmap (.npy), overlay (.png) and top regions (.json) of one scan, named `stem` (default: its identity,
    mammo.sources.scan_identity); returns the JSON."""
    return analyse_scans([(scan_path, stem, windowing)], model_path, out_dir, inference=inference, force=force)[0]


def scan_name_and_windowing(scan_path: str, stem: str | None, windowing: Windowing) -> tuple[str, Windowing]:
    """The name of a scan's outputs (`stem`, else its identity) and its windowing (scale None: the scan's own,
    mammo.sources.window_scale_of); a header that cannot be read is a FormatError naming the scan."""
    try:
        stem = stem or scan_identity(scan_path)
        if windowing.scale is None:
            windowing = replace(windowing, scale=window_scale_of(scan_path))
    except Exception as err:  # pydicom's parse errors of a header cut short: struct.error, BytesLengthException, ...
        raise FormatError(scan_path, f"not a readable header ({type(err).__name__}: {str(err).split('. ')[0]})") from None
    return stem, windowing


def analyse_scans(
    scans: list[tuple],
    model_path: str,
    out_dir: str,
    contrast: float | None = None,
    inference: dict | None = None,
    force: bool = False,
) -> list[dict]:
    """Heatmap, overlay and top regions of each (scan path, output stem, Windowing), with one model load for all; a
    stem None names the outputs by the scan's identity, a Windowing scale None windows it at its own scale.

    The model runs through `inference` (engine, precision, threads; default: the fastest installed engine at
    float32). The test-time contrast and the temperature come from the model's card (`contrast` overrides the
    first); a model without a card is scored at contrast 1.0 without calibration, and says so.

    Nothing is written when two scans share a stem or an output exists already (unless `force`). A scan that cannot
    be analysed (unreadable, no breast window, its outputs not written) does not stop the others: the failures are
    raised at the end, after a summary table of every scan; a single scan's own error is raised as it is. A scan's
    three outputs are written together or not at all.
    """
    named, failures = [], []
    for scan_path, stem, windowing in scans:
        try:
            named.append((scan_path, *scan_name_and_windowing(scan_path, stem, windowing)))
        except FormatError as err:
            if len(scans) == 1:
                raise
            failures.append(str(err))
    stems = [stem for _, stem, _ in named]
    shared = sorted({stem for stem in stems if stems.count(stem) > 1})
    if shared:
        raise ValueError(f"several scans would write the outputs named {', '.join(shared[:5])}: give them other names")
    out = Path(out_dir)
    outputs = {stem: [out / f"{stem}{suffix}" for suffix in SCAN_OUTPUT_SUFFIXES] for stem in stems}
    # lexists: a symlink at an output name, even a dangling one, is something there (--force replaces the link itself)
    existing = [str(path) for paths in outputs.values() for path in paths if os.path.lexists(path)]
    if existing and not force:
        raise ValueError(
            f"{', '.join(existing[:5])}{' ...' if len(existing) > 5 else ''} exist(s): not overwritten "
            "(use --force, or another --out)"
        )
    if len(scans) == 1:
        read_scan(scans[0][0])  # a bad single scan fails before TensorFlow starts
    card = read_card(model_path)  # a bad card fails before any scan is scored
    if card is None:
        print(f"no {CARD_FILE} beside {model_path} (a model not evaluated yet): contrast {contrast or 1.0}, no calibration")
    temperature = card["temperature"] if card else None
    contrast = contrast or (card["test_contrast"] if card else 1.0)
    engine = open_engine(model_path, **(inference or {}))
    predict = engine.predictor(contrast)
    summaries = []
    for scan_path, stem, windowing in tqdm(named, desc="scans", disable=len(scans) == 1):
        started = time.perf_counter()
        try:
            scan = read_scan(scan_path)
            result = score_scan(scan, predict, windowing)
            if not len(result.scores):
                raise ValueError(
                    f"{scan_path}: no window holds {windowing.min_tissue:.0%} breast tissue "
                    f"({result.shape[0]}x{result.shape[1]} pixels): nothing scored"
                )
            found = regions(result, windowing, temperature)
            summary = {
                "scan": str(scan_path),
                "model": str(model_path),
                "test_contrast": contrast,
                "temperature": temperature,
                "inference": engine.describe(),
                "shape": list(result.shape),
                "stride": windowing.stride,
                "scale": windowing.scale,
                "windows_scored": int(len(result.scores)),
                "windows_skipped": int(result.windows_total - len(result.scores)),
                "max_score": round(float(result.scores.max()), 6),
                "seconds": round(time.perf_counter() - started, 2),
                "regions": found,
            }
            heatmap_path, overlay_path, regions_path = outputs[stem]
            out.mkdir(parents=True, exist_ok=True)
            write_atomically(
                {
                    heatmap_path: npy_bytes(result.heatmap),
                    overlay_path: png_bytes(
                        overlay(*thumbnail(scan), result.heatmap, found, breast=result.breast, muscle=result.muscle),
                        overlay_path,
                    ),
                    regions_path: (json.dumps(summary, indent=2) + "\n").encode(),
                }
            )
        except (FormatError, ValueError, OSError) as err:
            if len(scans) == 1:
                raise
            failures.append(str(err))
            continue
        summaries.append(summary)
    if len(scans) > 1:
        print(f"{'scan':<40}{'windows':>9}{'max P(abnormal)':>17}{'seconds':>9}")
        for summary in summaries:
            print(
                f"{Path(summary['scan']).name:<40}{summary['windows_scored']:>9}{summary['max_score']:>17.4f}{summary['seconds']:>9.2f}"
            )
        print(f"{len(summaries)} of {len(scans)} scans analysed into {out}")
    else:
        print(json.dumps(summaries[0], indent=2))
    if failures:
        raise ValueError(f"{len(failures)} of {len(scans)} scans could not be analysed: {'; '.join(failures[:3])}")
    return summaries


def list_scan_targets(indexes: dict[str, str], cbis_root: str, mias_scale: float, out: str) -> None:
    """The whole scans to score. `indexes`: the split's tiles, mias_images and the indexes of the sources the recipe
    reads (cbis_rois, ddsm_rois, ddsm_scans, <listed>_images and _findings)."""
    tables = {name: read_table(path) for name, path in indexes.items()}
    cbis_rois = tables.get("cbis_rois", pd.DataFrame(columns=["scan_id", "patient_id", "image_file_path"]))
    # listed collections are scored at their own resolution: windows of CBIS-scale 598 pixels by their pixel size
    listed = {source: tables[f"{source}_images"] for source in LISTED if f"{source}_images" in tables}
    for images in listed.values():
        images["scale"] = [listed_scale(path, pixel_mm) for path, pixel_mm in zip(images["path"], images["pixel_mm"])]
    targets = scan_targets(
        tables["tiles"],
        cbis_rois,
        tables.get("ddsm_scans", pd.DataFrame(columns=["scan_id", "patient_id", "path"])),
        tables["mias_images"],
        cbis_root,
        mias_scale,
        tables.get("ddsm_rois"),
        listed,
    )
    write_table(targets, out)
    print(targets.groupby(["set", "source", "label_normal"]).size().to_string())


def score_scans(
    targets_path: str,
    lesion_indexes: dict[str, str],
    cbis_root: str,
    model_path: str,
    settings: dict,
    inference: dict,
    windowing: dict,
    chunk: int,
    chunks: int,
    scans_out: str,
    regions_out: str,
    heatmaps_out: str,
    rejected_out: str,
) -> None:
    """Heatmaps and top regions of one chunk of target scans, each region marked with the lesions it overlaps; the
    test-time contrast and temperature from the model's card."""
    targets = read_table(targets_path)
    targets = in_chunk(targets, "scan_id", chunk, chunks)
    indexes = {name: read_table(path) for name, path in lesion_indexes.items()}
    cbis_rois = indexes.get("cbis_rois", pd.DataFrame(columns=["scan_id"]))
    ddsm_rois = indexes.get("ddsm_rois", pd.DataFrame(columns=["scan_id"]))
    listed = {
        source: indexes[f"{source}_findings"].merge(indexes[f"{source}_images"][["scan_id", "width"]], on="scan_id")
        for source in LISTED
        if f"{source}_findings" in indexes
    }
    mias_rois = indexes["mias_rois"]
    # each ROI source: its lesions, and how one is drawn on a scan as read (a listed image may have been flipped)
    masks = {
        "cbis-ddsm": (cbis_rois, lambda roi, shape, flipped: roi_mask(cbis_root, roi, shape)),
        "ddsm": (ddsm_rois, lambda roi, shape, flipped: outline_mask(roi, shape)),
        **{
            source: (findings, lambda roi, shape, flipped: finding_mask(roi, shape, 1.0, flipped, roi["width"]))
            for source, findings in listed.items()
        },
    }
    card = read_card(model_path)
    if card is None:
        raise ValueError(f"{model_path}: no model card beside it; evaluate the model first")
    engine = open_engine(model_path, inference["engine"], inference["precision"], settings["threads"])
    print(f"inference: {engine.describe()}")
    predict = engine.predictor(card["test_contrast"])
    temperature = card["temperature"]
    scans, found_rows, rejected, arrays = [], [], [], {}
    for _, target in tqdm(targets.iterrows(), total=len(targets), desc="scans"):
        try:
            scan = read_scan(target["path"])
        except FormatError as err:
            rejected.append(
                {
                    "file": str(err.path),
                    "row": target["scan_id"],
                    "item": target["scan_id"],
                    "stage": "read_scan",
                    "reason": err.reason,
                }
            )
            continue
        lesions, lesion_problems = {}, []
        if target["source"] in masks:
            rois, read_mask = masks[target["source"]]
            flipped = target["source"] in listed and mirrored(target["path"])  # once a scan: its header is read
            for _, roi in rois[rois["scan_id"] == target["scan_id"]].iterrows():
                try:
                    lesions[roi["roi_id"]] = read_mask(roi, scan.shape, flipped)
                except FormatError as err:
                    lesion_problems.append(f"{roi['roi_id']}: {err.reason}")
        elif target["source"] == "mias":
            for _, roi in mias_rois[mias_rois["refnum"] == target["scan_id"].removeprefix("mias:")].iterrows():
                lesions[roi["roi_id"]] = circle_mask(scan.shape, *mias_centre(roi, 1.0, scan.shape[0]), int(roi["radius"]))
        settings_for_scan = Windowing(**{**windowing, "scale": float(target["scale"])})
        result = score_scan(scan, predict, settings_for_scan)
        found = regions(result, settings_for_scan, temperature)
        margin = margin_pixels(target["source"], float(target["scale"]))
        for rank, region in enumerate(found, start=1):
            found_rows.append(
                {
                    "scan_id": target["scan_id"],
                    "rank": rank,
                    "box": ",".join(map(str, region["box"])),
                    "score": region["score"],
                    "calibrated": region["calibrated"],
                    "lesions_hit": ";".join(lesions_hit(region["box"], lesions)),
                    "lesions_centred": ";".join(lesions_centred(region["box"], lesions, margin)),
                }
            )
        scans.append(
            {
                **target.to_dict(),
                "rows": scan.shape[0],
                "cols": scan.shape[1],
                "windows_scored": len(result.scores),
                "windows_total": result.windows_total,
                "max_score": float(result.scores.max()) if len(result.scores) else float("nan"),
                "lesions": ";".join(lesions),
                "lesion_problems": "; ".join(lesion_problems),
            }
        )
        image8, factor = thumbnail(scan, 512)
        arrays[f"{target['scan_id']}/heatmap"] = result.heatmap.astype(np.float32)
        arrays[f"{target['scan_id']}/thumbnail"] = image8
        arrays[f"{target['scan_id']}/factor"] = np.float64(factor)
    write_table(pd.DataFrame(scans), scans_out)
    write_table(pd.DataFrame(found_rows, columns=REGION_COLUMNS), regions_out)
    write_table(pd.DataFrame(rejected, columns=REJECTED_COLUMNS), rejected_out)
    np.savez_compressed(heatmaps_out, **arrays)
    print(f"{len(scans)} scans scored, {len(rejected)} rejected")


def evaluate_scans(
    scans_paths: list[str],
    regions_paths: list[str],
    heatmaps_paths: list[str],
    threshold: float,
    metrics_out: str,
    froc_out: str,
    froc_plot: str,
    cases_plot: str,
) -> None:
    """Scan-level metrics per set (test, mias), the FROC table and plot, and heatmaps of a few right and wrong scans."""
    scans = pd.concat([read_table(path) for path in scans_paths], ignore_index=True)
    # a scan without a breast window has no score: an empty cell, which read_table keeps as text
    scans["max_score"] = pd.to_numeric(scans["max_score"], errors="coerce")
    found = pd.concat([read_table(path) for path in regions_paths], ignore_index=True)
    result, curves = {"threshold": threshold, "score": "maximum window P(abnormal)", "sets": {}}, []
    for name, part in scans.groupby("set", sort=True):
        result["sets"][name], curve = scan_metrics(part, found[found["scan_id"].isin(part["scan_id"])], threshold)
        curves.append(curve.assign(set=name))
    curve = (
        pd.concat(curves, ignore_index=True)
        if curves
        else pd.DataFrame(columns=["threshold", "fp_per_scan", "sensitivity", "set"])
    )
    write_table(curve, froc_out)
    draw_froc(curve, froc_plot)
    arrays = {}
    for path in heatmaps_paths:
        with np.load(path) as archive:
            arrays.update({key: archive[key] for key in archive.files})
    scan_cases(scans, found, arrays, threshold, cases_plot)
    write_json(result, metrics_out)
