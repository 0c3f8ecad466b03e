"""Stages of workflow/rules/scans.smk and of `mammo scan`: whole-scan heatmaps, regions and their evaluation."""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo.atomic import npy_bytes, png_bytes, write_atomically
from mammo.card import CARD_FILE, WINDOWING_KEYS, read_card, reads_surround, window_scale_for
from mammo.extract import roi_mask
from mammo.film_scores import FILM_SCORES, RELATIVE_SCORES, FilmWindows, film_arrays, film_score, film_windows
from mammo.graph import in_chunk
from mammo.heatmap import ScanScores, Windowing, exam_picture, hung_overlay, overlay, regions, score_scan, thumbnail
from mammo.inference import open_engine
from mammo.io import FormatError
from mammo.io.ddsm import outline_mask
from mammo.io.listed import finding_mask, listed_scale, mirrored
from mammo.io.scan import read_scan
from mammo.scan_eval import (
    REGION_COLUMNS,
    film_metrics,
    froc_above_film,
    lesion_window_ranks,
    margin_pixels,
    mias_lesions,
    rates_by_density,
    region_hits,
    scan_metrics,
    scan_targets,
)
from mammo.sources import (
    EXAM_OUTPUT_SUFFIXES,
    LISTED,
    SCAN_OUTPUT_SUFFIXES,
    exam_name,
    hanging,
    scan_identity,
    window_scale_of,
)
from mammo.tables import REJECTED_COLUMNS, read_table, write_json, write_table


def analyse_scan(
    scan_path: str, model_path: str, out_dir: str, windowing, inference: dict, stem: str | None = None, force: bool = False
) -> dict:
    """Heatmap (.npy), overlay (.png) and top regions (.json) of one scan, named `stem` (default: its identity,
    mammo.sources.scan_identity); returns the JSON."""
    return analyse_scans([(scan_path, stem, windowing)], model_path, out_dir, inference=inference, force=force)[0]


def scan_name_and_windowing(
    scan_path: str, stem: str | None, windowing: Windowing, scanning: dict | None = None
) -> tuple[str, Windowing]:
    """The name of a scan's outputs (`stem`, else its identity) and its windowing: each field left None taken from the
    model card's scanning section `scanning` (without one: Windowing's default), a scale None from the card for this
    scan (mammo.card.window_scale_for), without one guessed from the scan's file (mammo.sources.window_scale_of);
    the surround channel always as the card says. A header that cannot be read is a FormatError naming the scan."""
    defaults = Windowing()
    card = {key: scanning[key] for key in WINDOWING_KEYS if key in scanning} if scanning else {}
    given = {
        field.name: card.get(field.name, getattr(defaults, field.name))
        for field in fields(Windowing)
        if field.name != "scale" and getattr(windowing, field.name) is None
    }
    given["surround"] = reads_surround(scanning)  # what the model reads, never the caller's choice
    try:
        stem = stem or scan_identity(scan_path)
        if windowing.scale is None:
            given["scale"] = window_scale_for(scanning, scan_path) if scanning else window_scale_of(scan_path)
    except Exception as err:  # pydicom's parse errors of a header cut short: struct.error, BytesLengthException, ...
        raise FormatError(scan_path, f"not a readable header ({type(err).__name__}: {str(err).split('. ')[0]})") from None
    return stem, replace(windowing, **given)


# how an exam picture hangs a woman's films (mammo.heatmap.hung_overlay), said in her exam record
HANGING = (
    "radiologists' hanging: the right breast on the viewer's left, the left breast on the right, each mirrored where "
    "its film was stored the other way round, so that the chest walls face each other"
)


def analyse_scans(
    scans: list[tuple],
    model_path: str,
    out_dir: str,
    contrast: float | None = None,
    inference: dict | None = None,
    force: bool = False,
    exams: bool = False,
) -> list[dict]:
    """Heatmap, overlay and top regions of each (scan path, output stem, Windowing), with one model load for all; a
    stem None names the outputs by the scan's identity, a Windowing field None is the model card's (a scale None: the
    scan's own for this model; scan_name_and_windowing).

    The model runs through `inference` (engine, precision, threads; default: the fastest installed engine at
    float32). The test-time contrast and the temperature come from the model's card (`contrast` overrides the
    first); a model without a card is scored at contrast 1.0 without calibration, and says so; where the card has no
    scanning section (a card of format 1) or there is none, each scan's scale is guessed from its file, and it says
    so. A film's score is its windows' aggregate (the card's; max without one).

    With `exams`, the films are read woman by woman (mammo.sources.hanging): per woman an exam record
    <woman>.exam.json (her films with their scores and partners; her score: the maximum of her films') and a picture
    <woman>.exam.png of her breasts side by side, each with its heatmap and top regions, as radiologists hang them
    (HANGING); a film whose woman or side its file does not tell is analysed alone, and both are said.

    Nothing is written when two scans (or two women) share a name or an output exists already (unless `force`). A
    scan that cannot be analysed (unreadable, no breast window, its outputs not written) does not stop the others:
    the failures are raised at the end, after a summary table of every scan; a single scan's own error is raised as it
    is. A scan's three outputs are written together or not at all, and so are a woman's two.
    """
    card = read_card(model_path)  # a bad card fails before any scan is read
    scanning = card.get("scanning") if card else None
    named, failures = [], []
    for scan_path, stem, windowing in scans:
        try:
            named.append((scan_path, *scan_name_and_windowing(scan_path, stem, windowing, scanning)))
        except FormatError as err:
            if len(scans) == 1:
                raise
            failures.append(str(err))
    paths = [scan_path for scan_path, _, _ in named]
    women, alone = hanging(paths) if exams else ({}, paths)
    out = Path(out_dir)
    outputs = {stem: [out / f"{stem}{suffix}" for suffix in SCAN_OUTPUT_SUFFIXES] for _, stem, _ in named}
    exam_names = {woman: exam_name(woman) for woman in women}
    for kind, names in (("scans", [stem for _, stem, _ in named]), ("women", list(exam_names.values()))):
        shared = sorted({name for name in names if names.count(name) > 1})
        if shared:
            raise ValueError(f"several {kind} would write the outputs named {', '.join(shared[:5])}: give them other names")
    exam_outputs = {woman: [out / f"{name}{suffix}" for suffix in EXAM_OUTPUT_SUFFIXES] for woman, name in exam_names.items()}
    # lexists: a symlink at an output name, even a dangling one, is something there (--force replaces the link itself)
    existing = [str(path) for paths in [*outputs.values(), *exam_outputs.values()] for path in paths if os.path.lexists(path)]
    if existing and not force:
        raise ValueError(
            f"{', '.join(existing[:5])}{' ...' if len(existing) > 5 else ''} exist(s): not overwritten "
            "(use --force, or another --out)"
        )
    if len(scans) == 1:
        read_scan(scans[0][0])  # a bad single scan fails before TensorFlow starts
    if card is None:
        print(f"no {CARD_FILE} beside {model_path} (a model not evaluated yet): contrast {contrast or 1.0}, no calibration")
    if scanning is None and any(windowing.scale is None for _, _, windowing in scans):
        warnings.warn(
            f"{model_path}: no model card with a scanning section beside it (none, or one of format 1): each scan's "
            "window scale is guessed from its file (5.16 for a mini-MIAS PGM, a DICOM by its pixel spacing, else 1); "
            "--scale sets it",
            stacklevel=2,
        )
    temperature = card["temperature"] if card else None
    contrast = contrast or (card["test_contrast"] if card else 1.0)
    aggregate = scanning["aggregate"] if scanning else {"method": "max"}
    engine = open_engine(model_path, **(inference or {}))
    predict = engine.predictor(contrast)
    windowing_of = {scan_path: (stem, windowing) for scan_path, stem, windowing in named}

    def scored(scan_path: str) -> tuple[np.ndarray, ScanScores, FilmWindows, float]:
        """One scan read and scored: the scan, its windows' scores, its windows and frame as the film score reads them
        (for itself and as its partner's other breast), and when it started."""
        windowing = windowing_of[scan_path][1]
        started = time.perf_counter()
        scan = read_scan(scan_path)
        result = score_scan(scan, predict, windowing)
        if not len(result.scores):
            raise ValueError(
                f"{scan_path}: no window holds {windowing.min_tissue:.0%} breast tissue "
                f"({result.shape[0]}x{result.shape[1]} pixels): nothing scored"
            )
        return scan, result, film_windows(result, windowing.factor), started

    def written(scan_path: str, side: str | None, partner: str | None) -> tuple[dict, np.ndarray | None]:
        """One scored scan's outputs written, its summary (its film score, with its partner's film where that was
        scored and the aggregate uses the other breast), and its film as hung beside its partner (a side given)."""
        stem, windowing = windowing_of[scan_path]
        scan, result, film, started = results[scan_path]
        other = results[partner][2] if partner in results else None
        score, used_other = film_score(aggregate, film, other)
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
            "surround": windowing.surround,
            "windows_scored": int(len(result.scores)),
            "windows_skipped": int(result.windows_total - len(result.scores)),
            "max_score": round(float(result.scores.max()), 6),
            "breast_level": round(result.level, 2) if np.isfinite(result.level) else None,
            "film_score": round(score, 6),
            "aggregate": aggregate,
            "other_breast": other_breast_said(aggregate, used_other),
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
        return summary, hung_overlay(scan, result, found, side) if side else None

    # a woman's films one after another, so that only her films (scored, then pictured) are held until her exam is
    # written; a film's partner is the film of her other breast in the same view
    groups = [
        (woman, [(side, path, partner) for _, *row in rows for side, path, partner in zip("RL", row, row[::-1]) if path])
        for woman, rows in women.items()
    ]
    groups += [(None, [(None, scan_path, None)]) for scan_path in alone]
    summaries, written_exams, results = [], [], {}
    progress = tqdm(total=len(named), desc="scans", disable=len(scans) == 1)
    for woman, films in groups:
        results.clear()
        analysed = {}
        for _, scan_path, _ in films:
            try:
                results[scan_path] = scored(scan_path)
            except (FormatError, ValueError, OSError) as err:
                if len(scans) == 1:
                    raise
                failures.append(str(err))
        for side, scan_path, partner in films:
            if scan_path in results:
                try:
                    analysed[scan_path] = written(scan_path, side, partner)
                except OSError as err:
                    if len(scans) == 1:
                        raise
                    failures.append(str(err))
            progress.update()
        summaries += [summary for summary, _ in analysed.values()]
        if woman is None or not analysed:
            continue
        record, picture = exam(woman, women[woman], analysed, windowing_of, model_path)
        json_path, png_path = exam_outputs[woman]
        try:
            write_atomically({json_path: (json.dumps(record, indent=2) + "\n").encode(), png_path: png_bytes(picture, png_path)})
        except OSError as err:
            if len(scans) == 1:
                raise
            failures.append(str(err))
            continue
        written_exams.append(record)
    progress.close()
    if len(scans) > 1:
        print(f"{'scan':<40}{'windows':>9}{'max P(abnormal)':>17}{'seconds':>9}")
        for summary in summaries:
            print(
                f"{Path(summary['scan']).name:<40}{summary['windows_scored']:>9}{summary['max_score']:>17.4f}{summary['seconds']:>9.2f}"
            )
        print(f"{len(summaries)} of {len(scans)} scans analysed into {out}")
    else:
        print(json.dumps(summaries[0], indent=2))
    if exams:
        print(exams_said(written_exams, alone))
    if failures:
        raise ValueError(f"{len(failures)} of {len(scans)} scans could not be analysed: {'; '.join(failures[:3])}")
    return summaries


def other_breast_said(aggregate: dict, used: bool) -> str:
    """How a film's score came to be with respect to the woman's other breast (said in its regions JSON)."""
    if used and aggregate["method"] == "level_difference":
        return "used: the breast's grey level against the other breast's"
    if used:
        return "used: the film's windows against the matching places of the other breast's film"
    if aggregate.get("uses_other_breast"):
        return "missing: the other breast's film was not scored with it, so the film was scored without it"
    return "not used by this model's aggregate"


def exam(
    woman: str,
    rows: list[tuple[str, str | None, str | None]],
    analysed: dict[str, tuple[dict, np.ndarray]],
    windowing_of: dict[str, tuple[str, Windowing]],
    model_path: str,
) -> tuple[dict, np.ndarray]:
    """A woman's exam record and picture from her analysed films (summary and hung overlay by scan path), hung as
    mammo.sources.hanging pairs them; a film that could not be analysed leaves its partner without one."""
    films, picture_rows = [], []
    for view, *pair in rows:
        kept = [scan_path if scan_path in analysed else None for scan_path in pair]
        stems = [windowing_of[scan_path][0] if scan_path else None for scan_path in kept]
        panels = []
        for side, scan_path, stem, partner in zip("RL", kept, stems, stems[::-1]):
            where = f"{side} {view}".strip()
            if scan_path is None:
                panels.append((None, f"{where}: no film"))
                continue
            summary, panel = analysed[scan_path]
            films.append(
                {
                    "film": stem,
                    "scan": str(scan_path),
                    "side": side,
                    "view": view,
                    "score": summary["film_score"],
                    "partner": partner,
                }
            )
            panels.append((panel, f"{where} {stem}: {summary['film_score']:.2f}"))
        if any(panel is not None for panel, _ in panels):
            picture_rows.append(tuple(panels))
    record = {
        "woman": woman,
        "model": str(model_path),
        "score": max(film["score"] for film in films),
        "score_is": "the maximum of her films' scores",
        "films": films,
        "hanging": HANGING,
    }
    return record, exam_picture(picture_rows)


def exams_said(records: list[dict], alone: list[str]) -> str:
    """What `mammo scan` says of the exams it wrote: how many, the films without a partner, the films of no known
    woman."""
    lonely = [film["film"] for record in records for film in record["films"] if film["partner"] is None]
    lines = [f"{len(records)} exam(s) written, one per woman (<woman>.exam.json and .exam.png)"]
    if lonely:
        lines.append(f"without a partner film of the other breast: {', '.join(lonely)}")
    if alone:
        names = ", ".join(Path(scan_path).name for scan_path in alone)
        lines.append(f"not paired (their files tell no woman and side): {names}")
    return "\n".join(lines)


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
    card_file: str | None = None,
) -> None:
    """Heatmaps and top regions of one chunk of target scans, each region marked with the lesions it overlaps; the
    test-time contrast and temperature from the model's card (beside it, or `card_file`)."""
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
    card = read_card(model_path, card_file)
    if card is None:
        raise ValueError(f"{card_file or model_path}: no model card (beside the model); evaluate the model first")
    engine = open_engine(model_path, inference["engine"], inference["precision"], settings["threads"])
    print(f"inference: {engine.describe()}")
    predict = engine.predictor(card["test_contrast"])
    temperature = card["temperature"]
    surround = reads_surround(card.get("scanning"))  # what the model reads
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
            lesions = mias_lesions(mias_rois, target["scan_id"], scan.shape)
        settings_for_scan = Windowing(**{**windowing, "scale": float(target["scale"]), "surround": surround})
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
                    **region_hits(region["box"], lesions, margin),
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
                "lesion_ranks": lesion_window_ranks(result.windows, result.scores, lesions, margin),
                "lesion_problems": "; ".join(lesion_problems),
            }
        )
        image8, factor = thumbnail(scan, 512)
        arrays[f"{target['scan_id']}/heatmap"] = result.heatmap.astype(np.float32)
        arrays[f"{target['scan_id']}/thumbnail"] = image8
        arrays[f"{target['scan_id']}/factor"] = np.float64(factor)
        arrays.update(film_arrays(target["scan_id"], film_windows(result, settings_for_scan.factor)))
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
    evaluation: dict,
    metrics_out: str,
    froc_out: str,
    froc_plot: str,
    cases_plot: str,
    mias_rois_path: str | None = None,
    film_scores_paths: list[str] | None = None,
    mias_images_path: str | None = None,
) -> None:
    """Scan-level metrics per set (test, mias) with intervals from a bootstrap over women (`evaluation`: bootstrap
    replicates and seed), the FROC table and plot, and heatmaps of a few right and wrong scans. With the mini-MIAS
    ROI index, the localisation per class of lesion (CIRC, SPIC, MISC, ARCH, ASYM, CALC). With the film scores of
    the same films (mammo.stages.crossval.fold_film_scores), each score's film and woman rates (`film_scores`; the
    learnt ones at P = 0.5, the maximum window at `threshold`). With the mini-MIAS image index, the film rates per
    breast density (its Info.txt's background tissue: F fatty, G fatty-glandular, D dense)."""
    from mammo.plots import froc_plot as draw_froc  # here, not above: scoring jobs need no Matplotlib
    from mammo.plots import scan_cases

    scans = pd.concat([read_table(path) for path in scans_paths], ignore_index=True)
    # a scan without a breast window has no score: an empty cell, which read_table keeps as text
    scans["max_score"] = pd.to_numeric(scans["max_score"], errors="coerce")
    found = pd.concat([read_table(path) for path in regions_paths], ignore_index=True)
    lesion_classes = None
    if mias_rois_path is not None:
        rois = read_table(mias_rois_path)
        lesion_classes = dict(zip(rois["roi_id"], rois["abnormality_class"]))
    densities = None
    if mias_images_path is not None:
        images = read_table(mias_images_path)
        densities = dict(zip("mias:" + images["refnum"], images["background"]))
    result, curves = {"threshold": threshold, "score": "maximum window P(abnormal)", "sets": {}}, []
    for name, part in scans.groupby("set", sort=True):
        regions = found[found["scan_id"].isin(part["scan_id"])]
        result["sets"][name], curve = scan_metrics(
            part, regions, threshold, evaluation["bootstrap"], evaluation["seed"], lesion_classes, densities
        )
        curves.append(curve.assign(set=name))
    curve = (
        pd.concat(curves, ignore_index=True)
        if curves
        else pd.DataFrame(columns=["threshold", "fp_per_scan", "sensitivity", "set"])
    )
    arrays = {}
    for path in heatmaps_paths:
        with np.load(path) as archive:
            arrays.update({key: archive[key] for key in archive.files})
    if film_scores_paths:
        films = pd.concat([read_table(path) for path in film_scores_paths], ignore_index=True)
        # rates at a threshold: the max at the tiles' operating threshold, a learnt P(abnormal) at 0.5; a relative
        # score ranks films, it has no threshold
        thresholds = {"max": threshold, **dict.fromkeys(RELATIVE_SCORES), "learned": 0.5, "learned_other_breast": 0.5}
        replicates, seed = evaluation["bootstrap"], evaluation["seed"]
        result["film_scores"] = {"films": int(len(films)), "other_breast_used": int((films["other_breast"] == "used").sum())}
        for name in FILM_SCORES:
            result["film_scores"][name] = film_metrics(films, name, thresholds[name], replicates, seed)
            if densities is not None:
                result["film_scores"][name]["by_density"] = rates_by_density(
                    films, name, thresholds[name], densities, replicates, seed
                )
        # the cross-validation's films: one set, every film with a window scored in `films`
        window_scores = {scan_id: arrays[f"{scan_id}/scores"] for scan_id in films["scan_id"]}
        result["film_scores"]["above_film"]["localisation"] = froc_above_film(found, scans, window_scores)
    write_table(curve, froc_out)
    draw_froc(curve, froc_plot)
    scan_cases(scans, found, arrays, threshold, cases_plot)
    write_json(result, metrics_out)
