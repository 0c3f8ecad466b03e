"""File-level stages that the workflow's scripts (and the CLI) call: read inputs, call the pure functions, write outputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mammo import split as splitting
from mammo.extract import BackgroundTiles, cbis_tiles, chunk_of, ddsm_normal_tiles, mias_tiles
from mammo.io import FormatError
from mammo.io.cbis import csv_records, read_case_descriptions
from mammo.io.ddsm import find_normal_scans, listed_scans
from mammo.io.mias import index_info
from mammo.tables import REJECTED_COLUMNS, account, read_table, write_table
from mammo.tiles import Method2, NormalThresholds, NormalTiling


def index_cbis(csv_paths: list[str], rois_out: str, rejected_out: str, summary_out: str) -> None:
    rois, rejected = read_case_descriptions(csv_paths)
    accepted = list(zip(rois["source_file"], rois["row"].astype(int)))
    counts = account(csv_records(csv_paths), accepted, list(zip(rejected["file"], rejected["row"].astype(int))))
    summary = {"collection": "cbis-ddsm", "unit": "CSV records (one ROI each)", **counts,
               "patients": int(rois["patient_id"].nunique()), "scans": int(rois["scan_id"].nunique())}  # fmt: skip
    _write_index(summary, summary_out, {rois_out: rois, rejected_out: rejected})


def index_ddsm(root: str, scans_out: str, rejected_out: str, summary_out: str) -> None:
    scans, rejected = find_normal_scans(root)
    counts = account(listed_scans(root), scans["scan_id"].tolist(), rejected["item"].tolist())
    summary = {"collection": "ddsm", "unit": "views listed in .ics files (an unreadable .ics counts once)", **counts,
               "patients": int(scans["patient_id"].nunique()), "cases": int(scans["case"].nunique())}  # fmt: skip
    _write_index(summary, summary_out, {scans_out: scans, rejected_out: rejected})


def index_mias(info_path: str, images_out: str, rois_out: str, rejected_out: str, summary_out: str) -> None:
    images, rois, rejected, counts = index_info(info_path)
    summary = {"collection": "mini-mias", "unit": "Info.txt annotation rows", **counts,
               "images": len(images), "abnormal_images": int(images["label_normal"].sum()), "rois": len(rois)}  # fmt: skip
    _write_index(summary, summary_out, {images_out: images, rois_out: rois, rejected_out: rejected})


def _write_index(summary: dict, summary_out: str, tables: dict[str, pd.DataFrame]) -> None:
    """Write a source's tables and its summary, which states inputs = accepted + rejected."""
    for path, table in tables.items():
        write_table(table, path)
    write_json(summary, summary_out)


def write_json(result: dict, path: str | Path) -> None:
    """Write a stage's JSON result and show it in the stage's log."""
    text = json.dumps(result, indent=2)
    Path(path).write_text(text + "\n")
    print(text)


def tiles_cbis(rois_path: str, root: str, dataset: str, recipe: dict, audit: dict, chunk: int, chunks: int,
               tiles_out: str, table_out: str, rejected_out: str) -> None:  # fmt: skip
    """ROI tiles of one chunk of scans, the recipe's background negatives if any, and the shortcut audit's tissue tiles."""
    rois = read_table(rois_path)
    rois = rois[[chunk_of(scan, chunks) == chunk for scan in rois["scan_id"]]]
    method = Method2(**recipe["roi"])
    negatives = {"audit": _background(audit)}
    if "cbis_background" in recipe:
        negatives["background"] = _background(recipe["cbis_background"])
    images, table, rejected = cbis_tiles(rois, root, dataset, method, recipe["seed"], tiles_out, negatives)
    _write_chunk(images, table, rejected, tiles_out, table_out, rejected_out)


def _background(settings: dict) -> BackgroundTiles:
    thresholds = NormalThresholds(**settings["thresholds"])
    return BackgroundTiles(settings["per_scan"], settings["max_overlap"], settings["margin"], _tiling(settings), thresholds)


def tiles_ddsm(scans_path: str, dataset: str, recipe: dict, chunk: int, chunks: int,
               tiles_out: str, table_out: str, rejected_out: str) -> None:  # fmt: skip
    scans = read_table(scans_path)
    scans = scans[[chunk_of(case, chunks) == chunk for case in scans["case"]]]
    normals = recipe["normals"]
    thresholds = {scanner: NormalThresholds(**values) for scanner, values in normals["thresholds"].items()}
    images, table, rejected = ddsm_normal_tiles(scans, dataset, thresholds, _tiling(normals), recipe["seed"], tiles_out)
    _write_chunk(images, table, rejected, tiles_out, table_out, rejected_out)


def tiles_mias(images_path: str, rois_path: str, dataset: str, recipe: dict,
               tiles_out: str, table_out: str, rejected_out: str, summary_out: str) -> None:  # fmt: skip
    """The external test set of one recipe; every ROI and normal scan is tiled or rejected (summary.json says so)."""
    images, rois = read_table(images_path), read_table(rois_path)
    mias = recipe["mias"]
    method = Method2(**{**recipe["roi"], "tile": mias["tile"]})
    thresholds = NormalThresholds(**mias["thresholds"])
    tiles, table, rejected = mias_tiles(images, rois, dataset, method, thresholds, _tiling(mias), mias["scale"], recipe["seed"], tiles_out)
    table["split"], table["kept"] = "mias", True
    items = rois["roi_id"].tolist() + [f"mias:{refnum}" for refnum in images.loc[images["label_normal"] == 0, "refnum"]]
    tiled = table["tile_id"].str.split("/").str[1].unique().tolist()
    summary = {"collection": "mini-mias", "unit": "ROIs with coordinates and normal scans",
               **account(items, tiled, rejected["item"].tolist()), "tiles": len(table),
               "per_class": {str(k): int(v) for k, v in table["class_code"].value_counts().sort_index().items()}}  # fmt: skip
    _write_chunk(tiles, table, rejected, tiles_out, table_out, rejected_out)
    write_json(summary, summary_out)


def _tiling(settings: dict) -> NormalTiling:
    """The tissue grid of a recipe entry (normals, mias, cbis_background)."""
    return NormalTiling(tile=settings["tile"], stride=settings["stride"], border_crop=settings["border_crop"])


def _write_chunk(images, table, rejected, tiles_out, table_out, rejected_out) -> None:
    Path(tiles_out).parent.mkdir(parents=True, exist_ok=True)
    np.save(tiles_out, images)
    write_table(table, table_out)
    write_table(rejected, rejected_out)
    print(f"{len(table)} tiles, {len(rejected)} rejected")


def split_dataset(tile_tables: list[str], rejected_tables: list[str], sources: dict[str, str], recipe: dict,
                  tiles_out: str, audit_out: str, rejected_out: str, summary_out: str) -> None:  # fmt: skip
    """Assign patient-level splits, balance, and reconcile: every input ROI/scan is tiled or rejected.

    The shortcut audit's tissue tiles are set apart (never trained on) and follow their patient's split.
    """
    tiles = pd.concat([read_table(p) for p in tile_tables], ignore_index=True)
    rejected = pd.concat([read_table(p) for p in rejected_tables], ignore_index=True)[REJECTED_COLUMNS]
    is_audit = tiles["method"] == "audit"
    audit, tiles = tiles[is_audit].copy(), tiles[~is_audit]
    tiles = splitting.assign_splits(tiles, recipe["seed"])
    tiles = splitting.balance(tiles, recipe["abnormal_fraction"], recipe["seed"])
    patient_split = tiles.drop_duplicates("patient_id").set_index("patient_id")["split"]
    audit["split"] = audit["patient_id"].map(patient_split).fillna("")  # "": a patient none of whose ROIs was tiled
    summary = splitting.summary(tiles)
    summary["reconciliation"] = reconcile(tiles, rejected, sources)
    summary["audit_tiles"] = {str(k): int(v) for k, v in audit["split"].value_counts().sort_index().items()}
    write_table(tiles, tiles_out)
    write_table(audit, audit_out)
    write_table(rejected, rejected_out)
    write_json(summary, summary_out)


def reconcile(tiles: pd.DataFrame, rejected: pd.DataFrame, sources: dict[str, str]) -> dict:
    """Count inputs per source and prove each is in the tile table or the rejected table."""
    rois = read_table(sources["cbis_rois"])
    scans = read_table(sources["ddsm_scans"])
    roi_tiles = tiles[(tiles["source"] == "cbis-ddsm") & (tiles["method"] == "method2")]
    tiled_rois = {tile_id.split("/")[1] for tile_id in roi_tiles["tile_id"]}
    tiled_scans = set(tiles.loc[tiles["source"] == "ddsm", "scan_id"])
    rejected_items = set(rejected["item"].astype(str))
    lost_rois = sorted(set(rois["roi_id"]) - tiled_rois - rejected_items)
    lost_scans = sorted(set(scans["scan_id"]) - tiled_scans - rejected_items)
    if lost_rois or lost_scans:
        raise ValueError(f"inputs neither tiled nor rejected: ROIs {lost_rois[:5]}, scans {lost_scans[:5]}")
    return {
        "cbis_rois": len(rois),
        "cbis_rois_tiled": len(tiled_rois),
        "ddsm_scans": len(scans),
        "ddsm_scans_tiled": len(tiled_scans),
        "rejected_rows": len(rejected),
    }


def write_records(tiles_path: str, split: str, shard: int, shards: int, shard_out: str) -> None:
    """Write the kept tiles of one split whose position modulo `shards` is `shard`."""
    from mammo.records import tile_loader, write_shard

    tiles = read_table(tiles_path)
    chosen = splitting.kept(tiles)
    chosen = chosen[chosen["split"] == split].iloc[shard::shards]
    write_shard(chosen, tile_loader(), shard_out)
    print(f"{split} shard {shard + 1}/{shards}: {len(chosen)} tiles")


def train_model(train_paths: list[str], val_paths: list[str], settings: dict, out_dir: str) -> None:
    from mammo.train import TrainConfig, train

    train(train_paths, val_paths, TrainConfig.from_settings(settings), out_dir)


def evaluate_model(model_path: str, sets: dict[str, list[str]], settings: dict, metrics_out: str, predictions_out: str) -> None:
    """Predict each set once (no augmentation; the test-time contrast only); write metrics.json and predictions.tsv."""
    from mammo.evaluate import evaluate_set
    from mammo.inference import load_tile_model
    from mammo.records import read_dataset
    from mammo.train import TrainConfig, configure_tensorflow, make_dataset

    config = TrainConfig.from_settings(settings)
    configure_tensorflow(config.seed, config.threads)
    model = load_tile_model(model_path)
    result = {"model": config.model, "labels": config.labels, "test_contrast": settings["test_contrast"], "sets": {}}
    tables = []
    for name, paths in sets.items():
        examples = [
            (e["tile_id"].decode(), e["patient_id"].decode(), int(e["label"])) for e in read_dataset(paths).as_numpy_iterator()
        ]
        table = pd.DataFrame(examples, columns=["tile_id", "patient_id", "class_code"])
        images = make_dataset(paths, "label", config.batch_size, settings["test_contrast"]).map(lambda image, *_: image)
        probabilities = model.predict(images, verbose=2) if len(table) else np.zeros((0, config.num_classes))
        table.insert(0, "set", name)
        table["p_abnormal"] = 1.0 - probabilities[:, 0]
        result["sets"][name] = evaluate_set(table["class_code"].to_numpy(), probabilities, settings["threshold"])
        tables.append(table)
    write_table(pd.concat(tables, ignore_index=True), predictions_out)
    write_json(result, metrics_out)


def plot_model(history_path: str, predictions_path: str, curves_out: str, roc_out: str) -> None:
    from mammo.plots import roc_pr_curves, training_curves

    training_curves(pd.read_csv(history_path), curves_out)
    roc_pr_curves(read_table(predictions_path), roc_out)


def plot_montage(tile_tables: list[str], seed: int, out: str) -> None:
    from mammo.plots import montage
    from mammo.records import tile_loader

    tiles = pd.concat([read_table(path) for path in tile_tables], ignore_index=True)
    montage(splitting.kept(tiles), tile_loader(), out, seed=seed)


def analyse_scan(scan_path: str, model_path: str, out_dir: str, windowing, contrast: float = 1.0, stem: str | None = None) -> dict:
    """Heatmap (.npy), overlay (.png) and top regions (.json) of one scan, named `stem` (default: the file's); returns the JSON."""
    import time

    import cv2

    from mammo.heatmap import overlay, regions, score_scan, thumbnail
    from mammo.inference import load_tile_model, predictor, read_temperature
    from mammo.io.scan import read_scan

    started = time.perf_counter()
    scan = read_scan(scan_path)  # a bad scan fails before TensorFlow starts
    model = load_tile_model(model_path)
    result = score_scan(scan, predictor(model, contrast), windowing)
    found = regions(result, windowing, read_temperature(model_path))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or scan_stem(scan_path)
    np.save(out / f"{stem}.heatmap.npy", result.heatmap)
    cv2.imwrite(str(out / f"{stem}.overlay.png"), overlay(*thumbnail(scan), result.heatmap, found))
    summary = {
        "scan": str(scan_path),
        "model": str(model_path),
        "shape": list(result.shape),
        "stride": windowing.stride,
        "scale": windowing.scale,
        "windows_scored": int(len(result.scores)),
        "windows_skipped": int(result.windows_total - len(result.scores)),
        "max_score": round(float(result.scores.max()), 6) if len(result.scores) else None,
        "seconds": round(time.perf_counter() - started, 2),
        "regions": found,
    }
    write_json(summary, out / f"{stem}.regions.json")
    return summary


def scan_stem(path: str | Path) -> str:
    """A scan's file name without its format suffixes: A_0002_1.LEFT_CC.LJPEG.gz -> A_0002_1.LEFT_CC."""
    name = Path(path).name.removesuffix(".gz")
    return name.rsplit(".", 1)[0] if "." in name else name


def list_scan_targets(tiles_path: str, cbis_rois_path: str, ddsm_scans_path: str, mias_images_path: str,
                      cbis_root: str, mias_scale: float, out: str) -> None:  # fmt: skip
    from mammo.scan_eval import scan_targets

    tables = [read_table(path) for path in (tiles_path, cbis_rois_path, ddsm_scans_path, mias_images_path)]
    targets = scan_targets(*tables, cbis_root, mias_scale)
    write_table(targets, out)
    print(targets.groupby(["set", "source", "label_normal"]).size().to_string())


def score_scans(targets_path: str, cbis_rois_path: str, mias_rois_path: str, cbis_root: str, model_path: str,
                settings: dict, windowing: dict, chunk: int, chunks: int,
                scans_out: str, regions_out: str, heatmaps_out: str, rejected_out: str) -> None:  # fmt: skip
    """Heatmaps and top regions of one chunk of target scans, each region marked with the lesions it overlaps."""
    from mammo.extract import roi_mask
    from mammo.heatmap import Windowing, regions, score_scan, thumbnail
    from mammo.inference import load_tile_model, predictor, read_temperature
    from mammo.io.scan import read_scan
    from mammo.scan_eval import circle_mask, lesions_hit
    from mammo.train import configure_tensorflow
    from tqdm import tqdm

    targets = read_table(targets_path)
    targets = targets[[chunk_of(scan_id, chunks) == chunk for scan_id in targets["scan_id"]]]
    cbis_rois, mias_rois = read_table(cbis_rois_path), read_table(mias_rois_path)
    configure_tensorflow(settings["seed"], settings["threads"])
    predict = predictor(load_tile_model(model_path), settings["test_contrast"])
    temperature = read_temperature(model_path)
    scans, found_rows, rejected, arrays = [], [], [], {}
    for _, target in tqdm(targets.iterrows(), total=len(targets), desc="scans"):
        try:
            scan = read_scan(target["path"])
        except FormatError as err:
            rejected.append({"file": str(err.path), "row": target["scan_id"], "item": target["scan_id"], "stage": "read_scan", "reason": err.reason})
            continue
        lesions, lesion_problems = {}, []
        if target["source"] == "cbis-ddsm":
            for _, roi in cbis_rois[cbis_rois["scan_id"] == target["scan_id"]].iterrows():
                try:
                    lesions[roi["roi_id"]] = roi_mask(cbis_root, roi, scan.shape)
                except FormatError as err:
                    lesion_problems.append(f"{roi['roi_id']}: {err.reason}")
        elif target["source"] == "mias":
            for _, roi in mias_rois[mias_rois["refnum"] == target["scan_id"].removeprefix("mias:")].iterrows():
                lesions[roi["roi_id"]] = circle_mask(scan.shape, scan.shape[0] - int(roi["y"]), int(roi["x"]), int(roi["radius"]))
        settings_for_scan = Windowing(**{**windowing, "scale": float(target["scale"])})
        result = score_scan(scan, predict, settings_for_scan)
        found = regions(result, settings_for_scan, temperature)
        for rank, region in enumerate(found, start=1):
            hit = ";".join(lesions_hit(region["box"], lesions))
            found_rows.append({"scan_id": target["scan_id"], "rank": rank, "box": ",".join(map(str, region["box"])),
                               "score": region["score"], "calibrated": region["calibrated"], "lesions_hit": hit})  # fmt: skip
        scans.append({**target.to_dict(), "rows": scan.shape[0], "cols": scan.shape[1],
                      "windows_scored": len(result.scores), "windows_total": result.windows_total,
                      "max_score": float(result.scores.max()) if len(result.scores) else float("nan"),
                      "lesions": ";".join(lesions), "lesion_problems": "; ".join(lesion_problems)})  # fmt: skip
        image8, factor = thumbnail(scan, 512)
        arrays[f"{target['scan_id']}/heatmap"] = result.heatmap.astype(np.float32)
        arrays[f"{target['scan_id']}/thumbnail"] = image8
        arrays[f"{target['scan_id']}/factor"] = np.float64(factor)
    write_table(pd.DataFrame(scans), scans_out)
    write_table(pd.DataFrame(found_rows, columns=["scan_id", "rank", "box", "score", "calibrated", "lesions_hit"]), regions_out)
    write_table(pd.DataFrame(rejected, columns=REJECTED_COLUMNS), rejected_out)
    np.savez_compressed(heatmaps_out, **arrays)
    print(f"{len(scans)} scans scored, {len(rejected)} rejected")


def evaluate_scans(scans_paths: list[str], regions_paths: list[str], heatmaps_paths: list[str], threshold: float,
                   metrics_out: str, froc_out: str, froc_plot: str, cases_plot: str) -> None:  # fmt: skip
    """Scan-level metrics per set (test, mias), the FROC table and plot, and heatmaps of a few right and wrong scans."""
    from mammo.plots import froc_plot as draw_froc
    from mammo.plots import scan_cases
    from mammo.scan_eval import scan_metrics

    scans = pd.concat([read_table(path) for path in scans_paths], ignore_index=True)
    found = pd.concat([read_table(path) for path in regions_paths], ignore_index=True)
    result, curves = {"threshold": threshold, "score": "maximum window P(abnormal)", "sets": {}}, []
    for name, part in scans.groupby("set", sort=True):
        result["sets"][name], curve = scan_metrics(part, found[found["scan_id"].isin(part["scan_id"])], threshold)
        curves.append(curve.assign(set=name))
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=["threshold", "fp_per_scan", "sensitivity", "set"])
    write_table(curve, froc_out)
    draw_froc(curve, froc_plot)
    arrays = {}
    for path in heatmaps_paths:
        with np.load(path) as archive:
            arrays.update({key: archive[key] for key in archive.files})
    scan_cases(scans, found, arrays, threshold, cases_plot)
    write_json(result, metrics_out)


def uci_baselines(seed: int, repeats: int, jobs: int, metrics_out: str, plot_out: str) -> None:
    """The study's classical-ML comparison (nested, scaled) and the features by diagnosis."""
    from mammo.plots import feature_boxplots
    from mammo.uci import load, nested_cv

    features, labels, names = load()
    feature_boxplots(features, labels, names, plot_out)
    result = nested_cv(seed, repeats, jobs=jobs)
    write_json(result, metrics_out)
