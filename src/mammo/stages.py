"""File-level stages that the workflow's scripts (and the CLI) call: read inputs, call the pure functions, write outputs."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from mammo import split as splitting
from mammo.extract import BackgroundTiles, EdgeTiles, cbis_tiles, chunk_numbers, ddsm_normal_tiles, in_chunk, mias_tiles
from mammo.io import FormatError
from mammo.io.cbis import csv_records, read_case_descriptions, resolve
from mammo.io.ddsm import find_normal_scans, listed_scans
from mammo.io.mias import index_info, unpack_archive
from mammo.tables import REJECTED_COLUMNS, account, read_table, write_table
from mammo.tiles import NormalThresholds, NormalTiling, roi_method


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


def chunk_scan_files(table_path: str, kind: str, chunk: int, chunks: int, root: str = "") -> list[str]:
    """The image files one chunk job reads (its declared inputs: replacing a scan reruns only its jobs).

    kind: "cbis" (rois.tsv: scan, crop and mask DICOMs), "ddsm" (scans.tsv), "mias" (images.tsv, one job),
    "targets" (targets.tsv of whole-scan analysis). Missing files are left out: the job rejects their rows.
    """
    listed = _listed_files_by_chunk(table_path, Path(table_path).stat().st_mtime_ns, kind, chunks, root)[chunk]
    return sorted(str(path) for path in listed if path.exists())


@functools.lru_cache(maxsize=64)
def _listed_files_by_chunk(table_path: str, modified_ns: int, kind: str, chunks: int, root: str) -> dict[int, list[Path]]:
    """Every chunk's listed files from one read of the index (the DAG asks once per chunk job); the modification
    time in the cache key makes a rewritten index read again."""
    table = read_table(table_path)
    key = {"cbis": "scan_id", "ddsm": "case", "targets": "scan_id", "mias": None}[kind]
    numbers = chunk_numbers(table, key, chunks)

    def files(part: pd.DataFrame) -> list[Path]:
        if kind == "cbis":
            columns = ("image_file_path", "cropped_image_file_path", "roi_mask_file_path")
            return sorted({resolve(root, relative) for column in columns for relative in part[column]})
        return sorted(set(map(Path, part["path"])))

    return {chunk: files(table[numbers == chunk]) for chunk in range(chunks)}


def tiles_cbis(rois_path: str, root: str, dataset: str, recipe: dict, audit: dict, chunk: int, chunks: int,
               tiles_out: str, table_out: str, rejected_out: str) -> None:  # fmt: skip
    """ROI tiles of one chunk of scans, the recipe's background negatives if any, and the shortcut audit's tissue tiles."""
    rois = read_table(rois_path)
    rois = in_chunk(rois, "scan_id", chunk, chunks)
    method = roi_method(recipe["roi"])
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
    scans = in_chunk(scans, "case", chunk, chunks)
    normals = recipe["normals"]
    thresholds = {scanner: NormalThresholds(**values) for scanner, values in normals["thresholds"].items()}
    images, table, rejected = ddsm_normal_tiles(scans, dataset, thresholds, _tiling(normals), recipe["seed"], tiles_out)
    _write_chunk(images, table, rejected, tiles_out, table_out, rejected_out)


def tiles_mias(images_path: str, rois_path: str, dataset: str, recipe: dict,
               tiles_out: str, table_out: str, rejected_out: str, summary_out: str) -> None:  # fmt: skip
    """The external test set of one recipe; every ROI and normal scan is tiled or rejected (summary.json says so)."""
    images, rois = read_table(images_path), read_table(rois_path)
    mias = recipe["mias"]
    method = roi_method(recipe["roi"], tile=mias["tile"])
    thresholds = NormalThresholds(**mias["thresholds"])
    tiles, table, rejected = mias_tiles(images, rois, dataset, method, thresholds, _tiling(mias), mias["scale"], recipe["seed"], tiles_out)
    table["split"], table["kept"] = "mias", True
    _write_chunk(tiles, table, rejected, tiles_out, table_out, rejected_out)
    write_json(_mias_summary(images, rois, table, rejected), summary_out)


def _mias_summary(images: pd.DataFrame, rois: pd.DataFrame, table: pd.DataFrame, rejected: pd.DataFrame) -> dict:
    """Every ROI with coordinates and every normal scan is tiled or rejected; normal tiles of abnormal scans (lesion-free
    and edge tiles) are counted beside them."""
    items = rois["roi_id"].tolist() + [f"mias:{refnum}" for refnum in images.loc[images["label_normal"] == 0, "refnum"]]
    abnormal_scans = set(images.loc[images["label_normal"] != 0, "refnum"])
    beside = table["scan_id"].isin(abnormal_scans) & table["method"].isin(["lesion_free", "edge"])
    lesion_free = table["method"] == "lesion_free"
    tiled = table.loc[~beside, "tile_id"].str.split("/").str[1].unique().tolist()
    return {"collection": "mini-mias", "unit": "ROIs with coordinates and normal scans",
            **account(items, tiled, rejected["item"].tolist()), "tiles": len(table),
            "lesion_free_tiles": int(lesion_free.sum()), "lesion_free_scans": int(table.loc[lesion_free, "scan_id"].nunique()),
            "edge_tiles": int((table["method"] == "edge").sum()),
            "per_class": {str(k): int(v) for k, v in table["class_code"].value_counts().sort_index().items()}}  # fmt: skip


def unpack_mias(archive: str, info_out: str) -> None:
    """The official mini-MIAS archive, checked and unpacked once, so that its folder holds Info.txt and the films."""
    info = unpack_archive(archive, Path(info_out).parent)
    print(f"{archive} -> {info.parent}")


def tiles_mias_cv(images_path: str, rois_path: str, settings: dict, scans: dict,
                  tiles_out: str, table_out: str, rejected_out: str, summary_out: str) -> None:  # fmt: skip
    """Tiles of every mini-MIAS film for cross-validation, each tagged with its woman's fold.

    Abnormal tiles from every ROI with coordinates (the recipe's extraction method); normal tiles from normal films
    and from abnormal films away from every lesion circle grown by `lesion_margin`, and up to `edges_per_film` of
    the windows that whole-film scanning (`scans`: stride, min_tissue) scores but the tissue thresholds reject.
    """
    from mammo.heatmap import Windowing

    images, rois = read_table(images_path), read_table(rois_path)
    method = roi_method(settings["roi"], tile=settings["tile"])
    normals = {**settings["normals"], "tile": settings["tile"]}
    thresholds = NormalThresholds(**normals["thresholds"])
    lesion_free = BackgroundTiles(10**9, 0.0, settings["lesion_margin"], _tiling(normals), thresholds)
    windowing = Windowing(stride=scans["stride"], min_tissue=scans["min_tissue"])
    edges = EdgeTiles(settings["edges_per_film"], windowing) if settings["edges_per_film"] else None
    tiles, table, rejected = mias_tiles(images, rois, "mias_cv", method, thresholds, _tiling(normals), settings["scale"],
                                        settings["seed"], tiles_out, lesion_free, edges)  # fmt: skip
    fold_of = splitting.woman_folds(images["patient_id"], images["label_normal"], settings["folds"], settings["seed"])
    table["fold"] = table["patient_id"].map(fold_of)
    summary = _mias_summary(images, rois, table, rejected)
    summary["folds"] = {
        str(fold): {"women": sum(f == fold for f in fold_of.values()),
                    "abnormal_women": int(images[images["patient_id"].map(fold_of) == fold].groupby("patient_id")["label_normal"].max().sum()),
                    "tiles": int((table["fold"] == fold).sum()), "abnormal_tiles": int(table.loc[table["fold"] == fold, "label_normal"].sum())}
        for fold in range(settings["folds"])
    }  # fmt: skip
    _write_chunk(tiles, table, rejected, tiles_out, table_out, rejected_out)
    write_json(summary, summary_out)


def mias_cv_fold(tiles_path: str, images_path: str, fold: int, settings: dict, split_out: str, films_out: str) -> None:
    """One fold's tile table (its held-out women are `test`, an inner validation of the others `val`, the rest `train`)
    and its held-out films, every one of them, for whole-film detection."""
    from mammo.heatmap import windowing_scale
    from mammo.scan_eval import TARGET_COLUMNS

    tiles, images = read_table(tiles_path), read_table(images_path)
    fold_of = splitting.woman_folds(images["patient_id"], images["label_normal"], settings["folds"], settings["seed"])
    if (tiles["patient_id"].map(fold_of) != tiles["fold"].astype(int)).any():
        raise ValueError(f"{tiles_path}: folds differ from those of {images_path}; rerun the tile stage")
    films = images[images["patient_id"].map(fold_of) == fold]
    films = pd.DataFrame({"scan_id": "mias:" + films["refnum"], "set": "out_of_fold", "source": "mias", "patient_id": films["patient_id"],
                          "path": films["path"], "scale": windowing_scale(settings["scale"]), "label_normal": films["label_normal"]})  # fmt: skip
    write_table(films[TARGET_COLUMNS], films_out)
    split = splitting.fold_splits(tiles, fold_of, fold, settings["inner_val"], settings["seed"])
    split = splitting.balance(split, settings["abnormal_fraction"], settings["seed"] + fold)
    # the held-out women are scored whole, every tile but the edge windows (those are judged on whole films), so that
    # tile figures stay comparable with and without edge training tiles
    split.loc[split["split"] == "test", "kept"] = split["method"] != "edge"
    write_table(split, split_out)
    write_json({"fold": fold, **splitting.summary(split)}, Path(split_out).with_suffix(".json"))


def _tiling(settings: dict) -> NormalTiling:
    """The tissue grid of a recipe entry (normals, mias, cbis_background)."""
    downscale = tuple(settings["downscale"]) if "downscale" in settings else None
    stride = settings["stride"] if isinstance(settings["stride"], int) else tuple(settings["stride"])
    return NormalTiling(tile=settings["tile"], stride=stride, border_crop=settings["border_crop"], downscale=downscale)


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
    roi_tiles = tiles[(tiles["source"] == "cbis-ddsm") & tiles["method"].isin(["method1", "method2"])]
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


def evaluate_model(model_path: str, sets: dict[str, list[str]], tile_tables: list[str], settings: dict, evaluation: dict,
                   out: dict[str, str]) -> None:  # fmt: skip
    """Predict each set once per test-time contrast (no augmentation); fit the temperature and choose the
    operating points on validation; write metrics.json and the tables behind its figures.

    `out` names the files: metrics, predictions, card (the model card, mammo.card), sweep, reliability, subgroups.
    """
    from mammo import evaluate as ev
    from mammo.card import model_card, write_card
    from mammo.inference import load_tile_model
    from mammo.labels import LABEL_SETS
    from mammo.records import read_dataset
    from mammo.train import TrainConfig, configure_tensorflow, make_dataset

    config = TrainConfig.from_settings(settings)
    configure_tensorflow(config.seed, config.threads)
    model = load_tile_model(model_path)
    attributes = pd.concat([read_table(path) for path in tile_tables], ignore_index=True).set_index("tile_id")
    replicates, seed, bins = evaluation["bootstrap"], evaluation["seed"], evaluation["calibration_bins"]

    tables = {}
    for name, paths in sets.items():
        ids = [tile_id.decode() for tile_id in read_dataset(paths).map(lambda e: e["tile_id"]).as_numpy_iterator()]
        unknown = sorted(set(ids) - set(attributes.index))
        if unknown:
            raise ValueError(f"{paths[0]}: tiles missing from the tile tables {tile_tables}: {unknown[:5]}")
        tables[name] = attributes.loc[ids].reset_index()
        tables[name].insert(0, "set", name)

    def predict(name: str, contrast: float) -> np.ndarray:
        if not len(tables[name]):
            return np.zeros((0, config.num_classes))
        images = make_dataset(sets[name], config.labels, config.batch_size, contrast).map(lambda image, *_: image)
        return model.predict(images, verbose=2).astype(np.float64)  # float64: the TSV round-trips it exactly

    probabilities = {name: predict(name, settings["test_contrast"]) for name in sets}
    classes = np.asarray(LABEL_SETS[config.labels][1])  # the model's class of each 5-class code
    fit = ev.fit_temperature(probabilities["val"], classes[tables["val"]["class_code"].to_numpy().astype(int)])
    temperature = fit["temperature"]
    for name, table in tables.items():
        table["p_abnormal"] = ev.p_abnormal(probabilities[name])
        table["p_abnormal_calibrated"] = ev.p_abnormal(probabilities[name], temperature)
        if config.num_classes > 2:
            for code, class_name in enumerate(LABEL_SETS[config.labels][0]):
                table[f"p_{class_name}"] = probabilities[name][:, code]
    val = tables["val"]
    thresholds = {"fixed": settings["threshold"],
                  **ev.operating_points(val["label_normal"], val["p_abnormal"], evaluation["min_recall"], evaluation["min_specificity"])}  # fmt: skip
    result = {
        "model": config.model, "labels": config.labels, "test_contrast": settings["test_contrast"],
        "score": "P(abnormal) = 1 - P(normal), raw model output; thresholds apply to it",
        "bootstrap": {"replicates": replicates, "unit": "patient", "seed": seed, "interval": "95% percentile"},
        "calibration": {"method": "temperature scaling", "fitted_on": "val", **fit},
        "operating_points": {name: {"threshold": value, "chosen_on": "config (the study's fixed threshold)" if name == "fixed" else "val"}
                             for name, value in thresholds.items()},
        "sets": {},
    }  # fmt: skip
    sweeps, reliability, subgroups = [], [], []
    for name, table in tables.items():
        multi = probabilities[name] if config.num_classes > 2 else None
        result["sets"][name] = ev.assess_set(table, thresholds, replicates, seed, bins, config.labels, multi)
        sweeps.append(ev.threshold_sweep(table["label_normal"], table["p_abnormal"]).assign(set=name))
        for kind, column in (("raw", "p_abnormal"), ("calibrated", "p_abnormal_calibrated")):
            reliability.append(ev.reliability_bins(table["label_normal"], table[column], bins).assign(set=name, calibration=kind))
        rows = ev.subgroup_metrics(table, settings["threshold"], replicates, seed)
        subgroups += [{"set": name, **{k: v for k, v in row.items() if k not in ("ci95", "confusion_matrix")}, **_flat_intervals(row)} for row in rows]
        result["sets"][name]["subgroups"] = {"threshold": "fixed", "rows": rows}
    result["contrast_sweep"] = {}
    for contrast in evaluation["contrast_sweep"]:
        swept = probabilities if contrast == settings["test_contrast"] else {name: predict(name, contrast) for name in sets}
        result["contrast_sweep"][str(contrast)] = {
            name: ev.binary_metrics(tables[name]["label_normal"], ev.p_abnormal(swept[name]), settings["threshold"],
                                    tables[name]["patient_id"], replicates, seed, bins)  # fmt: skip
            for name in sets
        }
    write_table(pd.concat(tables.values(), ignore_index=True), out["predictions"])
    write_table(pd.concat(sweeps, ignore_index=True), out["sweep"])
    write_table(pd.concat(reliability, ignore_index=True), out["reliability"])
    write_table(pd.DataFrame(subgroups), out["subgroups"])
    write_card(model_card(settings, model.dtype_policy.name, temperature, thresholds, tile_tables), out["card"])
    write_json(result, out["metrics"])


def _flat_intervals(metrics: dict) -> dict:
    """A result's intervals as table columns: <rate>_low, <rate>_high."""
    return {f"{name}_{end}": value for name, pair in metrics.get("ci95", {}).items() for end, value in zip(("low", "high"), pair)}


def plot_model(inputs: dict[str, str], out: dict[str, str]) -> None:
    """Every figure of one trained model, from its history and the evaluation's tables (`out` names them)."""
    from mammo import plots
    from mammo.records import tile_loader

    metrics = json.loads(Path(inputs["metrics"]).read_text())
    predictions = read_table(inputs["predictions"])
    plots.training_curves(pd.read_csv(inputs["history"]), out["curves"])
    plots.roc_pr_curves(predictions, out["roc"])
    ece = {(name, kind): entry[kind]["ece"] for name, entry in metrics["sets"].items() for kind in ("raw", "calibrated")}
    plots.reliability_diagram(pd.read_csv(inputs["reliability"], sep="\t"), ece, out["reliability"])
    points = {name: entry["threshold"] for name, entry in metrics["operating_points"].items()}
    plots.threshold_curves(pd.read_csv(inputs["sweep"], sep="\t"), points, out["thresholds"])
    matrices = {}
    for name, entry in metrics["sets"].items():
        for point, result in entry["operating_points"].items():
            matrices[f"{name} at {point} ({result['threshold']:.2f})"] = result["confusion_matrix"]
        if "multiclass" in entry:
            matrices[f"{name}, {entry['multiclass']['label_set']} (arg max)"] = entry["multiclass"]["confusion_matrix"]
    plots.confusion_matrices(matrices, out["confusion"], per_row=len(matrices) // len(metrics["sets"]))  # a row per set
    fixed = metrics["operating_points"]["fixed"]["threshold"]
    predicted = predictions["p_abnormal"] >= fixed
    wrong = predictions[predicted != (predictions["label_normal"] == 1)]
    errors = wrong.assign(kind=np.where(wrong["label_normal"] == 1, "false negative", "false positive"))
    plots.error_montage(errors, tile_loader(), out["errors"])


def shortcut_audit(model_path: str, tiles_path: str, audit_path: str, settings: dict, evaluation: dict,
                   result_out: str, plot_out: str) -> None:  # fmt: skip
    """Does the model's score tell the collections apart on normal tissue alone? CBIS-DDSM tissue away from
    every ROI against DDSM normal tissue, both from held-out (validation and test) patients; AUC 0.5 = no shortcut."""
    from mammo.evaluate import binary_metrics, p_abnormal
    from mammo.inference import load_tile_model, predictor
    from mammo.plots import collection_scores
    from mammo.records import tile_loader
    from mammo.train import configure_tensorflow

    held_out = ("val", "test")
    tiles, audit = read_table(tiles_path), read_table(audit_path)
    ddsm = tiles[(tiles["source"] == "ddsm") & tiles["split"].isin(held_out)]
    cbis = audit[audit["split"].isin(held_out)]
    both = pd.concat([cbis, ddsm], ignore_index=True)
    configure_tensorflow(settings["seed"], settings["threads"])
    predict = predictor(load_tile_model(model_path), settings["test_contrast"])
    images = tile_loader()
    scores = [predict(np.stack([images(row) for _, row in both.iloc[start : start + 32].iterrows()]))
              for start in range(0, len(both), 32)]  # fmt: skip
    both["p_abnormal"] = p_abnormal(np.concatenate(scores)) if scores else []
    is_cbis = (both["source"] == "cbis-ddsm").to_numpy()
    metrics = binary_metrics(is_cbis, both["p_abnormal"], None, both["patient_id"], evaluation["bootstrap"], evaluation["seed"])
    auc = metrics["roc_auc"]
    result = {
        "question": "does P(abnormal) separate CBIS-DDSM from DDSM normal tissue? (0.5: no)",
        "patients": "validation and test splits",
        "tiles": {"cbis-ddsm": int(is_cbis.sum()), "ddsm": int((~is_cbis).sum())},
        "mean_p_abnormal": {name: (float(part.mean()) if len(part) else None)
                            for name, part in (("cbis-ddsm", both["p_abnormal"][is_cbis]), ("ddsm", both["p_abnormal"][~is_cbis]))},
        "collection_auc": auc,
        "ci95": metrics["ci95"]["roc_auc"],
        "flag_above": evaluation["shortcut"]["flag_auc"],
        "flagged": bool(auc is not None and auc > evaluation["shortcut"]["flag_auc"]),
    }  # fmt: skip
    collection_scores(both, result, plot_out)
    write_json(result, result_out)


def comparison_tables(metrics_paths: list[str], shortcut_paths: list[str], runs: list[dict], out_dir: str) -> None:
    """results/tables/<table>.csv and .md: the study's Tables 1-3 across every trained dataset and model."""
    from mammo.comparison import markdown, study_tables

    for run, metrics_path, shortcut_path in zip(runs, metrics_paths, shortcut_paths):
        run["metrics"] = json.loads(Path(metrics_path).read_text())
        run["shortcut"] = json.loads(Path(shortcut_path).read_text())
    for name, table in study_tables(runs).items():
        table.to_csv(Path(out_dir) / f"{name}.csv", index=False)
        (Path(out_dir) / f"{name}.md").write_text(markdown(table))
        print(f"{name}\n{markdown(table)}")


def benchmark_table(folder: str, table_out: str, markdown_out: str) -> None:
    """One row per job from Snakemake's benchmark files (the last repeat of each), slowest first."""
    from mammo.comparison import markdown

    rows = []
    for path in sorted(Path(folder).rglob("*.tsv")):
        last = pd.read_csv(path, sep="\t").iloc[-1]
        rows.append({"job": str(path.relative_to(folder).with_suffix("")), "seconds": round(float(last["s"]), 2),
                     "max_rss_mb": round(float(last["max_rss"]), 1) if str(last["max_rss"]) != "-" else None})  # fmt: skip
    table = pd.DataFrame(rows, columns=["job", "seconds", "max_rss_mb"]).sort_values("seconds", ascending=False)
    table.to_csv(table_out, index=False)
    text = markdown(table, empty="(no benchmark files yet)")
    Path(markdown_out).write_text(text)
    print(text)


def plot_montage(tile_tables: list[str], seed: int, out: str) -> None:
    from mammo.plots import montage
    from mammo.records import tile_loader

    tiles = pd.concat([read_table(path) for path in tile_tables], ignore_index=True)
    montage(splitting.kept(tiles), tile_loader(), out, seed=seed)


def analyse_scan(scan_path: str, model_path: str, out_dir: str, windowing, stem: str | None = None, force: bool = False) -> dict:
    """Heatmap (.npy), overlay (.png) and top regions (.json) of one scan, named `stem` (default: the file's); returns the JSON."""
    return analyse_scans([(scan_path, stem or scan_stem(scan_path), windowing)], model_path, out_dir, force=force)[0]


def analyse_scans(scans: list[tuple], model_path: str, out_dir: str, contrast: float | None = None, force: bool = False) -> list[dict]:
    """Heatmap, overlay and top regions of each (scan path, output stem, Windowing), with one model load for all.

    The test-time contrast and the temperature come from the model's card (`contrast` overrides the first); a model
    without a card is scored at contrast 1.0 without calibration, and says so.

    Nothing is written when two scans share a stem or an output exists already (unless `force`). A scan that cannot
    be analysed (unreadable, no breast window) does not stop the others: the failures are raised at the end, after
    a summary table of every scan; a single scan's own error is raised as it is.
    """
    import time

    import cv2
    from tqdm import tqdm

    from mammo.heatmap import overlay, regions, score_scan, thumbnail
    from mammo.card import CARD_FILE, read_card
    from mammo.inference import load_tile_model, predictor
    from mammo.io.scan import read_scan

    stems = [stem for _, stem, _ in scans]
    shared = sorted({stem for stem in stems if stems.count(stem) > 1})
    if shared:
        raise ValueError(f"several scans would write the outputs named {', '.join(shared[:5])}: give them other names")
    out = Path(out_dir)
    outputs = {stem: [out / f"{stem}.{suffix}" for suffix in ("heatmap.npy", "overlay.png", "regions.json")] for stem in stems}
    existing = [str(path) for paths in outputs.values() for path in paths if path.exists()]
    if existing and not force:
        raise ValueError(f"{', '.join(existing[:5])}{' ...' if len(existing) > 5 else ''} exist(s): not overwritten "
                         "(use --force, or another --out)")  # fmt: skip
    if len(scans) == 1:
        read_scan(scans[0][0])  # a bad single scan fails before TensorFlow starts
    card = read_card(model_path)  # a bad card fails before any scan is scored
    if card is None:
        print(f"no {CARD_FILE} beside {model_path} (a model not evaluated yet): contrast {contrast or 1.0}, no calibration")
    temperature = card["temperature"] if card else None
    contrast = contrast or (card["test_contrast"] if card else 1.0)
    predict = predictor(load_tile_model(model_path), contrast)
    summaries, failures = [], []
    for scan_path, stem, windowing in tqdm(scans, desc="scans", disable=len(scans) == 1):
        started = time.perf_counter()
        try:
            scan = read_scan(scan_path)
            result = score_scan(scan, predict, windowing)
            if not len(result.scores):
                raise ValueError(f"{scan_path}: no window holds {windowing.min_tissue:.0%} breast tissue "
                                 f"({result.shape[0]}x{result.shape[1]} pixels): nothing scored")  # fmt: skip
        except (FormatError, ValueError) as err:
            if len(scans) == 1:
                raise
            failures.append(str(err))
            continue
        found = regions(result, windowing, temperature)
        heatmap_path, overlay_path, regions_path = outputs[stem]
        out.mkdir(parents=True, exist_ok=True)
        np.save(heatmap_path, result.heatmap)
        if not cv2.imwrite(str(overlay_path), overlay(*thumbnail(scan), result.heatmap, found)):
            raise OSError(f"{overlay_path}: could not write the overlay PNG")
        summary = {
            "scan": str(scan_path),
            "model": str(model_path),
            "test_contrast": contrast,
            "temperature": temperature,
            "shape": list(result.shape),
            "stride": windowing.stride,
            "scale": windowing.scale,
            "windows_scored": int(len(result.scores)),
            "windows_skipped": int(result.windows_total - len(result.scores)),
            "max_score": round(float(result.scores.max()), 6),
            "seconds": round(time.perf_counter() - started, 2),
            "regions": found,
        }
        Path(regions_path).write_text(json.dumps(summary, indent=2) + "\n")
        summaries.append(summary)
    if len(scans) > 1:
        print(f"{'scan':<40}{'windows':>9}{'max P(abnormal)':>17}{'seconds':>9}")
        for summary in summaries:
            print(f"{Path(summary['scan']).name:<40}{summary['windows_scored']:>9}{summary['max_score']:>17.4f}{summary['seconds']:>9.2f}")
        print(f"{len(summaries)} of {len(scans)} scans analysed into {out}")
    else:
        print(json.dumps(summaries[0], indent=2))
    if failures:
        raise ValueError(f"{len(failures)} of {len(scans)} scans could not be analysed: {'; '.join(failures[:3])}")
    return summaries


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


def score_scans(targets_path: str, cbis_rois_path: str | None, mias_rois_path: str, cbis_root: str, model_path: str,
                settings: dict, windowing: dict, chunk: int, chunks: int,
                scans_out: str, regions_out: str, heatmaps_out: str, rejected_out: str) -> None:  # fmt: skip
    """Heatmaps and top regions of one chunk of target scans, each region marked with the lesions it overlaps; the
    test-time contrast and temperature from the model's card."""
    from mammo.card import read_card
    from mammo.extract import mias_centre, roi_mask
    from mammo.heatmap import Windowing, regions, score_scan, thumbnail
    from mammo.inference import load_tile_model, predictor
    from mammo.io.scan import read_scan
    from mammo.scan_eval import circle_mask, lesions_hit
    from mammo.train import configure_tensorflow
    from tqdm import tqdm

    targets = read_table(targets_path)
    targets = in_chunk(targets, "scan_id", chunk, chunks)
    cbis_rois = read_table(cbis_rois_path) if cbis_rois_path else pd.DataFrame(columns=["scan_id"])
    mias_rois = read_table(mias_rois_path)
    configure_tensorflow(settings["seed"], settings["threads"])
    card = read_card(model_path)
    if card is None:
        raise ValueError(f"{model_path}: no model card beside it; evaluate the model first")
    predict = predictor(load_tile_model(model_path), card["test_contrast"])
    temperature = card["temperature"]
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
                lesions[roi["roi_id"]] = circle_mask(scan.shape, *mias_centre(roi, 1.0, scan.shape[0]), int(roi["radius"]))
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


def mias_cv_metrics(fold_metrics: list[str], fold_predictions: list[str], settings: dict, evaluation: dict,
                    metrics_out: str, predictions_out: str) -> None:  # fmt: skip
    """Pool the out-of-fold predictions of every fold: one metrics.json with intervals from a bootstrap over women.

    Each fold's operating points were chosen on its inner validation and are applied to its held-out tiles only;
    the threshold-free rates rank all out-of-fold scores together. Per-fold figures and their spread beside them.
    """
    from mammo import evaluate as ev

    replicates, seed, bins = evaluation["bootstrap"], evaluation["seed"], evaluation["calibration_bins"]
    results = [json.loads(Path(path).read_text()) for path in fold_metrics]
    predictions = [read_table(path) for path in fold_predictions]
    pooled = pd.concat([table[table["set"] == "test"].assign(fold=fold) for fold, table in enumerate(predictions)], ignore_index=True)
    if pooled["tile_id"].duplicated().any():
        raise ValueError(f"tiles predicted by two folds: {pooled.loc[pooled['tile_id'].duplicated(), 'tile_id'].head(5).tolist()}")
    splitting.check_patient_disjoint(pooled.assign(split=pooled["fold"].astype(str)))
    y, score, women = pooled["label_normal"].to_numpy(), pooled["p_abnormal"].to_numpy(float), pooled["patient_id"].to_numpy()
    entry = ev.assess_set(pooled, {}, replicates, seed, bins)
    entry["women"] = entry.pop("patients")
    operating_points = {}
    for name in results[0]["operating_points"]:
        per_fold = [result["operating_points"][name]["threshold"] for result in results]
        operating_points[name] = {"threshold": dict(enumerate(per_fold)), "chosen_on": results[0]["operating_points"][name]["chosen_on"]
                                  .replace("val", "each fold's inner validation (its training women only)")}  # fmt: skip
        if None not in per_fold:
            metrics = ev.binary_metrics(y, score, pooled["fold"].map(dict(enumerate(per_fold))).to_numpy(float), women, replicates, seed, bins)
            metrics["threshold"] = "per fold, see operating_points"
            entry["operating_points"][name] = ev.pick_rates(metrics, ("threshold", *ev.THRESHOLD_RATES, "confusion_matrix"))
    entry["subgroups"] = {"threshold": "fixed", "rows": ev.subgroup_metrics(pooled, settings["threshold"], replicates, seed)}
    folds = {}
    for fold, result in enumerate(results):
        held_out = result["sets"]["test"]
        folds[str(fold)] = {"n": held_out["n"], "women": held_out["patients"], "roc_auc": held_out["raw"]["roc_auc"],
                            "pr_auc": held_out["raw"]["pr_auc"], "inner_val_roc_auc": result["sets"]["val"]["raw"]["roc_auc"],
                            **{f"{rate}_fixed": held_out["operating_points"]["fixed"][rate] for rate in ("accuracy", "recall", "specificity")}}  # fmt: skip
    spread = {}
    for rate in ("roc_auc", "pr_auc", "accuracy_fixed", "recall_fixed", "specificity_fixed"):
        values = np.array([f[rate] for f in folds.values() if f[rate] is not None], float)
        spread[rate] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                        "min": float(values.min()), "max": float(values.max())} if len(values) else None  # fmt: skip
    result = {
        "model": results[0]["model"], "labels": results[0]["labels"], "test_contrast": results[0]["test_contrast"],
        "score": results[0]["score"],
        "protocol": {"recipe": "mias_cv", "folds": len(results), "grouped_by": "woman (mdb(2k-1), mdb(2k))",
                     "stratified_by": "abnormal woman", "seed": settings["seed"], "inner_val": settings["inner_val"],
                     "scale": settings["scale"]},
        "bootstrap": {"replicates": replicates, "unit": "woman", "seed": seed, "interval": "95% percentile"},
        "operating_points": operating_points,
        "sets": {"out_of_fold": entry},
        "folds": folds,
        "fold_spread": spread,
    }  # fmt: skip
    write_table(pooled, predictions_out)
    write_json(result, metrics_out)
