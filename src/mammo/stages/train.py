"""Stages of workflow/rules/train.smk: train a model, evaluate it (metrics, model card) and plot its figures.

Keras takes its backend once, when it is first imported (TensorFlow imports it too), so this module imports neither
before a stage has chosen it: training on the model entry's `backend` (mammo.backend). Evaluation imports neither
unless its engine is TensorFlow: it reads the records with NumPy and runs the export.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo import evaluate as ev
from mammo.backend import model_backend, use_keras_backend
from mammo.card import model_card, write_card
from mammo.inference import open_engine, trained_dtype_policy
from mammo.labels import LABEL_SETS
from mammo.records import read_tiles, tile_batches, tile_loader
from mammo.tables import read_table, write_json, write_table
from mammo.train_config import TrainConfig


def train_model(
    train_paths: list[str],
    val_paths: list[str],
    settings: dict,
    out_dir: str,
    lesion_paths=(),
    mine=None,
    place_negatives=(),
) -> None:
    """Train a model entry's settings; `lesion_paths`: context patches of the training lesions (online crops); `mine`:
    hard negatives of the training films; `place_negatives`: (tiles, weight) streams of normal windows at the training
    lesions' places (mammo.train.train)."""
    # the model entry's backend wins over a KERAS_BACKEND in the environment, so that its card says what trained
    use_keras_backend(model_backend(settings))
    from mammo.train import train

    train(train_paths, val_paths, TrainConfig.from_settings(settings), out_dir, lesion_paths, mine, place_negatives)


def evaluate_model(
    model_files: list[str],
    sets: dict[str, list[str]],
    tile_tables: list[str],
    settings: dict,
    evaluation: dict,
    inference: dict,
    scanning: dict,
    out: dict[str, str],
) -> None:
    """Predict each set once per test-time contrast (no augmentation) through the configured inference engine; fit
    the temperature and choose the operating points on validation; write metrics.json and the tables behind its
    figures. `model_files`: model.keras and its export model.onnx (the card records both); `scanning`: the card's
    scanning section (mammo.card.scanning_section).

    `out` names the files: metrics, predictions, card (the model card, mammo.card), sweep, reliability, subgroups.
    """
    config = TrainConfig.from_settings(settings)
    # no TensorFlow here unless the engine is TensorFlow: the tiles are read from their records with NumPy
    engine = open_engine(model_files[0], inference["engine"], inference["precision"], config.threads)
    attributes = pd.concat([read_table(path) for path in tile_tables], ignore_index=True).set_index("tile_id")
    replicates, seed, bins = evaluation["bootstrap"], evaluation["seed"], evaluation["calibration_bins"]

    tables = {}
    for name, paths in sets.items():
        ids = [record["tile_id"] for record in read_tiles(paths)]
        unknown = sorted(set(ids) - set(attributes.index))
        if unknown:
            raise ValueError(f"{paths[0]}: tiles missing from the tile tables {tile_tables}: {unknown[:5]}")
        tables[name] = attributes.loc[ids].reset_index()
        tables[name].insert(0, "set", name)

    def predict(name: str, contrast: float) -> np.ndarray:
        if not len(tables[name]):
            return np.zeros((0, config.num_classes))
        batches = tqdm(
            tile_batches(sets[name], config.batch_size),
            total=-(-len(tables[name]) // config.batch_size),
            desc=f"{name} at contrast {contrast}",
        )
        run = engine.predictor(contrast)
        return np.concatenate([run(batch) for batch in batches]).astype(np.float64)  # float64: the TSV round-trips it

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
    thresholds = {
        "fixed": settings["threshold"],
        **ev.operating_points(val["label_normal"], val["p_abnormal"], evaluation["min_recall"], evaluation["min_specificity"]),
    }
    result = {
        "model": config.model,
        "labels": config.labels,
        "test_contrast": settings["test_contrast"],
        "inference": engine.describe(),
        "score": "P(abnormal) = 1 - P(normal), raw model output; thresholds apply to it",
        "bootstrap": {"replicates": replicates, "unit": "patient", "seed": seed, "interval": "95% percentile"},
        "calibration": {"method": "temperature scaling", "fitted_on": "val", **fit},
        "operating_points": {
            name: {"threshold": value, "chosen_on": "config (the study's fixed threshold)" if name == "fixed" else "val"}
            for name, value in thresholds.items()
        },
        "sets": {},
    }
    sweeps, reliability, subgroups = [], [], []
    for name, table in tables.items():
        multi = probabilities[name] if config.num_classes > 2 else None
        result["sets"][name] = ev.assess_set(table, thresholds, replicates, seed, bins, config.labels, multi)
        sweeps.append(ev.threshold_sweep(table["label_normal"], table["p_abnormal"]).assign(set=name))
        for kind, column in (("raw", "p_abnormal"), ("calibrated", "p_abnormal_calibrated")):
            reliability.append(ev.reliability_bins(table["label_normal"], table[column], bins).assign(set=name, calibration=kind))
        rows = ev.subgroup_metrics(table, settings["threshold"], replicates, seed)
        subgroups += [
            {"set": name, **{k: v for k, v in row.items() if k not in ("ci95", "confusion_matrix")}, **_flat_intervals(row)}
            for row in rows
        ]
        result["sets"][name]["subgroups"] = {"threshold": "fixed", "rows": rows}
    result["contrast_sweep"] = {}
    for contrast in evaluation["contrast_sweep"]:
        swept = probabilities if contrast == settings["test_contrast"] else {name: predict(name, contrast) for name in sets}
        result["contrast_sweep"][str(contrast)] = {
            name: ev.binary_metrics(
                tables[name]["label_normal"],
                ev.p_abnormal(swept[name]),
                settings["threshold"],
                tables[name]["patient_id"],
                replicates,
                seed,
                bins,
            )
            for name in sets
        }
    write_table(pd.concat(tables.values(), ignore_index=True), out["predictions"])
    write_table(pd.concat(sweeps, ignore_index=True), out["sweep"])
    write_table(pd.concat(reliability, ignore_index=True), out["reliability"])
    write_table(pd.DataFrame(subgroups), out["subgroups"])
    card = model_card(
        settings,
        trained_dtype_policy(model_files[0]),
        temperature,
        thresholds,
        tile_tables,
        model_files,
        engine.describe(),
        scanning,
    )
    write_card(card, out["card"])
    write_json(result, out["metrics"])


def _flat_intervals(metrics: dict) -> dict:
    """A result's intervals as table columns: <rate>_low, <rate>_high."""
    return {f"{name}_{end}": value for name, pair in metrics.get("ci95", {}).items() for end, value in zip(("low", "high"), pair)}


def plot_model(inputs: dict[str, str], out: dict[str, str]) -> None:
    """Every figure of one trained model, from its history and the evaluation's tables (`out` names them)."""
    from mammo import plots  # here, not above: training and evaluation jobs need no Matplotlib

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
