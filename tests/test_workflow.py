"""Workflow tests: the whole DAG on the tiny config, from generated native files to metrics.json."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from snakemake_run import LIGHT_MODEL, ROOT, SNAKEMAKE, TINY, light_config, snakemake, tiny_config, tiny_workdir, write_config

TARGET = "results/ds9/model_1.0.0.35/metrics.json"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    return tiny_workdir(tmp_path_factory, "tiny", "all")


@pytest.mark.workflow
def test_tiny_run_writes_metrics_for_validation_test_and_mias(tiny_run):
    """metrics.json follows its schema; a few numbers recomputed independently from predictions.tsv with scikit-learn."""
    import jsonschema
    import yaml
    from sklearn.metrics import accuracy_score, brier_score_loss, recall_score, roc_auc_score

    metrics = json.loads((tiny_run / TARGET).read_text())
    jsonschema.validate(metrics, yaml.safe_load((ROOT / "workflow/schemas/metrics.schema.yaml").read_text()))
    assert metrics["model"] == "1.0.0.35" and metrics["bootstrap"]["replicates"] >= 1000
    assert list(metrics["sets"]) == ["val", "test", "mias"]
    assert set(metrics["operating_points"]) == {"fixed", "best_f1", "recall_0.90", "specificity_0.90"}
    assert sorted(metrics["contrast_sweep"]) == ["1.0", "1.8"]  # as in config/tiny.yaml
    uci = json.loads((tiny_run / "results/uci/metrics.json").read_text())
    assert uci["models"]["logistic_regression"]["accuracy"]["mean"] > 0.95
    predictions = pd.read_csv(tiny_run / "results/ds9/model_1.0.0.35/predictions.tsv", sep="\t")
    for name in ("val", "test", "mias"):
        entry, part = metrics["sets"][name], predictions[predictions["set"] == name]
        truth = (part["class_code"] > 0).astype(int)
        assert entry["n"] == len(part) == sum(entry["counts_per_class"].values())
        assert entry["counts_per_class"]["normal"] > 0 and entry["n"] - entry["counts_per_class"]["normal"] > 0
        assert entry["patients"] == part["patient_id"].nunique()
        assert entry["raw"]["roc_auc"] == pytest.approx(roc_auc_score(truth, part["p_abnormal"]))
        assert entry["calibrated"]["brier"] == pytest.approx(brier_score_loss(truth, part["p_abnormal_calibrated"]))
        for point, settings in metrics["operating_points"].items():
            if settings["threshold"] is None:
                continue
            result, predicted = entry["operating_points"][point], (part["p_abnormal"] >= settings["threshold"]).astype(int)
            assert result["threshold"] == settings["threshold"]  # val's thresholds, applied unchanged to test and MIAS
            assert result["accuracy"] == pytest.approx(accuracy_score(truth, predicted))
            assert result["recall"] == pytest.approx(recall_score(truth, predicted))
            matrix = result["confusion_matrix"]["rows_true_cols_predicted"]
            assert sum(map(sum, matrix)) == entry["n"]
            for rate, (low, high) in result["ci95"].items():
                assert low is None or low - 1e-9 <= result[rate] <= high + 1e-9, (name, point, rate)
    from mammo.card import read_card, tables_sha256

    card = read_card(tiny_run / "results/ds9/model_1.0.0.35/model.keras")  # schema-valid
    assert card["temperature"] == metrics["calibration"]["temperature"] > 0
    assert (
        card["test_contrast"] == metrics["test_contrast"]
        and card["labels"] == "binary"
        and card["classes"] == ["normal", "abnormal"]
    )
    assert card["thresholds"] == {name: point["threshold"] for name, point in metrics["operating_points"].items()}
    assert card["trained_on"]["sha256"] == tables_sha256([tiny_run / path for path in card["trained_on"]["tile_tables"]])


@pytest.mark.workflow
def test_tiny_run_evaluates_a_five_class_model(tiny_run):
    import jsonschema
    import yaml
    from sklearn.metrics import confusion_matrix

    metrics = json.loads((tiny_run / "results/ds9/model_1.0.0.35l/metrics.json").read_text())
    jsonschema.validate(metrics, yaml.safe_load((ROOT / "workflow/schemas/metrics.schema.yaml").read_text()))
    predictions = pd.read_csv(tiny_run / "results/ds9/model_1.0.0.35l/predictions.tsv", sep="\t")
    classes = ["normal", "benign_calcification", "benign_mass", "malignant_calcification", "malignant_mass"]
    test = predictions[predictions["set"] == "test"]
    predicted = test[[f"p_{name}" for name in classes]].to_numpy().argmax(axis=1)
    five = metrics["sets"]["test"]["multiclass"]
    assert five["label_set"] == "five_class"
    assert (
        five["confusion_matrix"]["rows_true_cols_predicted"]
        == confusion_matrix(test["class_code"], predicted, labels=range(5)).tolist()
    )
    assert test["p_abnormal"].to_numpy() == pytest.approx(1 - test["p_normal"].to_numpy())
    table2 = pd.read_csv(tiny_run / "results/tables/multiclass_test.csv")
    assert table2["Model"].astype(str).tolist() == ["1.0.0.35l"] and "Macro-F1" in table2


ARCHITECTURES = {
    "1.0.0.29": {"model": "1.0.0.29"},
    "1.0.0.46": {"model": "1.0.0.46", "mixed_precision": "mixed_bfloat16"},
    "vgg16_lite": {"model": "vgg16_lite", "stages": [{"epochs": 1, "abnormal_weight": 3.0, "contrast": 1.0}]},
    "inception_v4_lite": {"model": "inception_v4_lite", "labels": "type"},
    "vgg19_transfer": {"model": "vgg19_transfer", "labels": "pathology"},
    "inception_v3_transfer": {"model": "inception_v3_transfer"},
    # the study's transfer: the 5-class model's layers, convolutions frozen, a new binary head that trains
    "1.0.0.35b": {"model": "1.0.0.35", "init": "1.0.0.35l", "freeze": "convolutions"},
}


@pytest.mark.workflow
def test_every_architecture_trains_and_is_evaluated(tiny_run):
    """Each registered architecture (and a label set, a multi-stage schedule, bfloat16 and a frozen transfer
    among them) trains for a few steps on the tiny dataset and gets its metrics.json: those of ARCHITECTURES here,
    the study's model in the tiny run, the light network in the other collections' recipes (below)."""
    import jsonschema
    import keras
    import yaml

    from mammo.models import MODELS, load_builders

    load_builders()
    assert {settings["model"] for settings in ARCHITECTURES.values()} | {"1.0.0.35", LIGHT_MODEL} == set(MODELS)
    config = tiny_config()
    base = config["models"]["1.0.0.35"]
    quick = {"epochs": 1, "steps_per_epoch": 2, "batchnorm_batches": 1}
    config["models"].update(
        {name: {**base, **quick, "tensorboard": name == "vgg16_lite", **extra} for name, extra in ARCHITECTURES.items()}
    )
    config["evaluation"]["contrast_sweep"] = [1.0]
    configfile = write_config(tiny_run, "architectures", config)
    targets = [f"results/ds9/model_{name}/metrics.json" for name in ARCHITECTURES]
    plan = snakemake(tiny_run, *targets, "-n", "--quiet", "rules", "--configfile", configfile).stdout
    assert re.search(rf"^train\s+{len(ARCHITECTURES)}$", plan, re.MULTILINE) and not re.search(
        r"^(records|split|tiles_\w+)\s", plan, re.MULTILINE
    )
    snakemake(tiny_run, *targets, "--cores", "2", "--configfile", configfile)
    schema = yaml.safe_load((ROOT / "workflow/schemas/metrics.schema.yaml").read_text())
    for name, extra in ARCHITECTURES.items():
        model_dir = tiny_run / f"results/ds9/model_{name}"
        metrics = json.loads((model_dir / "metrics.json").read_text())
        jsonschema.validate(metrics, schema)
        history = pd.read_csv(model_dir / "history.csv")
        assert list(history["epoch"]) == list(range(1 + len(extra.get("stages", [])))), name
    logs = tiny_run / "results/ds9/model_vgg16_lite/tensorboard"
    assert list((logs / "train").glob("events.out.tfevents.*")) and list((logs / "validation").glob("events.out.tfevents.*"))
    assert metrics["sets"]["test"]["operating_points"]["fixed"]["confusion_matrix"]["labels"] == ["normal", "abnormal"]
    by_type = json.loads((tiny_run / "results/ds9/model_inception_v4_lite/metrics.json").read_text())
    assert by_type["sets"]["test"]["multiclass"]["confusion_matrix"]["labels"] == ["normal", "calcification", "mass"]
    source = keras.models.load_model(tiny_run / "results/ds9/model_1.0.0.35l/model.keras")
    transferred = keras.models.load_model(tiny_run / "results/ds9/model_1.0.0.35b/model.keras")
    for layer in ("block1a_conv", "block5a_conv"):  # frozen: exactly the source's convolutions
        assert all(
            np.array_equal(a, b)
            for a, b in zip(source.get_layer(layer).get_weights(), transferred.get_layer(layer).get_weights())
        )
    assert not np.array_equal(source.get_layer("fc1_dense").get_weights()[0], transferred.get_layer("fc1_dense").get_weights()[0])
    assert transferred.get_layer("probabilities").trainable and transferred.get_layer("probabilities").output.shape[-1] == 2
    log = (tiny_run / "logs/ds9/train_1.0.0.35b.log").read_text()
    assert "initialised from results/ds9/model_1.0.0.35l/model.keras" in log


@pytest.mark.workflow
def test_killed_training_resumes_from_its_last_epoch(tiny_run):
    """SIGKILL to the training process in its second epoch; requesting the target again trains only what was left."""
    import os
    import signal
    import subprocess
    import time

    config = tiny_config()
    # whole passes, so that the kill lands inside the second epoch on a fast machine too
    whole_passes = {key: value for key, value in config["models"]["1.0.0.35"].items() if key != "steps_per_epoch"}
    config["models"] = {"resumed": {**whole_passes, "epochs": 2}}
    config["runs"] = ["ds9/resumed"]
    configfile = write_config(tiny_run, "resume", config)
    target = ("results/ds9/model_resumed/model.keras", "--cores", "2", "--configfile", configfile)
    command = [str(SNAKEMAKE), "--snakefile", str(ROOT / "workflow" / "Snakefile"), "--directory", str(tiny_run), *target]
    run = subprocess.Popen(command, cwd=tiny_run, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = tiny_run / "logs/ds9/train_resumed.log"
    deadline = time.time() + 600
    while not (log.exists() and "Epoch 2/2" in log.read_text()):
        assert run.poll() is None and time.time() < deadline, "training ended before its second epoch"
        time.sleep(0.5)
    time.sleep(3)  # inside the second epoch
    trainers = [int(pid) for pid in os.listdir("/proc") if pid.isdigit() and _is_training(int(pid), tiny_run)]
    assert len(trainers) == 1
    os.kill(trainers[0], signal.SIGKILL)
    run.wait(timeout=120)
    assert run.returncode != 0 and not (tiny_run / "results/ds9/model_resumed/model.keras").exists()
    assert (tiny_run / "results/ds9/model_resumed/progress/stage0").is_dir()  # the backup of the first epoch
    snakemake(tiny_run, *target)
    resumed = log.read_text()
    assert "Epoch 2/2" in resumed and "Epoch 1/2" not in resumed
    history = pd.read_csv(tiny_run / "results/ds9/model_resumed/history.csv")
    assert list(history["epoch"]) == [0, 1]
    assert not (tiny_run / "results/ds9/model_resumed/progress").exists()


def _is_training(pid: int, workdir: Path) -> bool:
    """A process running this workdir's train rule script."""
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        return (
            "train.py" in command and ".snakemake/scripts" in command and Path(f"/proc/{pid}/cwd").resolve() == workdir.resolve()
        )
    except OSError:
        return False


@pytest.mark.workflow
def test_method1_recipes_tile_split_and_show_their_tiles(tiny_run):
    """Datasets 6 and 8 of the default config (extraction method 1, normal scans shrunk by 1.8-3.2) on the tiny data."""
    targets = ["results/ds6/summary.json", "results/ds8/summary.json", "results/ds8/montage.png"]
    snakemake(tiny_run, *targets, "--cores", "2", "--configfile", *TINY)
    rois = pd.read_csv(tiny_run / "results/sources/cbis/rois.tsv", sep="\t")
    for name in ("ds6", "ds8"):
        tiles = pd.read_csv(tiny_run / f"results/{name}/tiles.tsv", sep="\t", dtype={"patient_id": str})
        abnormal = tiles[tiles["label_normal"] == 1]
        assert (abnormal["method"] == "method1").all()
        per_roi = abnormal.groupby(abnormal["tile_id"].str.split("/").str[1]).size()
        assert per_roi.min() >= 2 and len(per_roi) == len(rois)  # (a) original size and (b) zoomed, for every ROI
        normal = tiles[tiles["source"] == "ddsm"]
        sides = normal["box"].map(lambda box: (lambda t, l, b, r: b - t)(*map(int, box.split(","))))
        assert sides.between(round(1.8 * 299), round(3.2 * 299)).all() and sides.nunique() > 1  # drawn per scan
        summary = json.loads((tiny_run / f"results/{name}/summary.json").read_text())
        assert summary["reconciliation"]["cbis_rois_tiled"] == len(rois)
    assert (tiny_run / "results/ds8/montage.png").stat().st_size > 10_000


@pytest.mark.workflow
def test_tiny_run_reports_subgroups_thresholds_and_the_shortcut_audit(tiny_run):
    model_dir = tiny_run / "results/ds9/model_1.0.0.35"
    subgroups = pd.read_csv(model_dir / "subgroups.tsv", sep="\t", dtype={"value": str})
    assert {"abnormality_type", "pathology", "density", "source", "scanner", "subtlety"} <= set(subgroups["attribute"])
    sweep = pd.read_csv(model_dir / "thresholds.tsv", sep="\t")
    assert len(sweep) == 3 * 19 and sweep["threshold"].min() == 0.05 and sweep["threshold"].max() == 0.95
    audit = pd.read_csv(tiny_run / "results/ds9/audit_tiles.tsv", sep="\t", dtype={"patient_id": str})
    tiles = pd.read_csv(tiny_run / "results/ds9/tiles.tsv", sep="\t", dtype={"patient_id": str})
    assert len(audit) > 0 and (audit["method"] == "audit").all() and not (tiles["method"] == "audit").any()
    split_of = tiles.drop_duplicates("patient_id").set_index("patient_id")["split"]
    assert (audit["split"] == audit["patient_id"].map(split_of)).all()  # audit tiles follow their patient
    shortcut = json.loads((model_dir / "shortcut.json").read_text())
    assert shortcut["tiles"]["roi_scans"] == int(audit["split"].isin(["val", "test"]).sum())
    assert shortcut["flagged"] == (shortcut["collection_auc"] is not None and shortcut["collection_auc"] > shortcut["flag_above"])
    for table in ("binary_test", "multiclass_test", "mias"):
        assert (tiny_run / f"results/tables/{table}.csv").exists()
    table1 = pd.read_csv(tiny_run / "results/tables/binary_test.csv")
    assert table1.loc[0, "Model"] == "1.0.0.35" and re.match(r"^\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]$", table1.loc[0, "Accuracy"])


@pytest.mark.workflow
def test_tiny_run_outputs_reconcile_and_split_by_patient(tiny_run):
    tiles = pd.read_csv(tiny_run / "results/ds9/tiles.tsv", sep="\t", dtype={"patient_id": str})
    assert (tiles.groupby("patient_id")["split"].nunique() == 1).all()
    summary = json.loads((tiny_run / "results/ds9/summary.json").read_text())
    counts = summary["reconciliation"]
    rejected = pd.read_csv(tiny_run / "results/ds9/rejected.tsv", sep="\t", dtype=str, keep_default_na=False)
    rois = pd.read_csv(tiny_run / "results/sources/cbis/rois.tsv", sep="\t")
    assert counts["cbis_rois"] == len(rois)
    rejected_rois = set(rejected["item"]) & set(rois["roi_id"])
    assert counts["cbis_rois_tiled"] + len(rejected_rois) == counts["cbis_rois"]
    scans = pd.read_csv(tiny_run / "results/sources/ddsm/scans.tsv", sep="\t")
    rejected_scans = set(rejected["item"]) & set(scans["scan_id"])
    assert counts["ddsm_scans_tiled"] + len(rejected_scans) == counts["ddsm_scans"] == len(scans)
    for split in ("train", "val", "test"):
        assert summary["splits"][split]["tiles"] > 0


@pytest.mark.workflow
def test_tiny_run_accounts_for_every_source_input(tiny_run):
    """Each index stage states inputs = accepted + rejected; the MIAS test set accounts for its ROIs and normal scans."""
    for source, unit in (("cbis", "CSV records"), ("ddsm", "views listed"), ("mias", "Info.txt annotation rows")):
        summary = json.loads((tiny_run / f"results/sources/{source}/summary.json").read_text())
        assert summary["inputs"] == summary["accepted"] + summary["rejected"] > 0
        assert summary["unit"].startswith(unit)
    mias = json.loads((tiny_run / "results/ds9/mias/summary.json").read_text())
    rois = pd.read_csv(tiny_run / "results/sources/mias/rois.tsv", sep="\t")
    images = pd.read_csv(tiny_run / "results/sources/mias/images.tsv", sep="\t")
    assert mias["inputs"] == len(rois) + (images["label_normal"] == 0).sum() == mias["accepted"] + mias["rejected"]
    tiles = pd.read_csv(tiny_run / "results/ds9/mias/tiles.tsv", sep="\t")
    assert (tiles["split"] == "mias").all() and sum(mias["per_class"].values()) == len(tiles)


@pytest.mark.workflow
def test_tiny_run_saves_model_history_and_records(tiny_run):
    model_dir = tiny_run / "results/ds9/model_1.0.0.35"
    history = pd.read_csv(model_dir / "history.csv")
    assert len(history) == 1 and {"loss", "val_loss", "accuracy"} <= set(history.columns)
    assert (model_dir / "model.keras").stat().st_size > 1_000_000
    shards = sorted((tiny_run / "results/ds9/records").glob("*.tfrecord"))
    assert len(shards) == 8  # train, val, test and mias, two shards each


@pytest.mark.workflow
def test_tiny_run_scores_whole_test_scans(tiny_run):
    """Scan-level target: test-split patients only (plus MIAS), max-window ROC-AUC, localisation and FROC."""
    scans_dir = tiny_run / "results/ds9/model_1.0.0.35/scans"
    metrics = json.loads((scans_dir / "metrics.json").read_text())
    assert sorted(metrics["sets"]) == ["mias", "test"]
    tiles = pd.read_csv(tiny_run / "results/ds9/tiles.tsv", sep="\t", dtype={"patient_id": str})
    targets = pd.read_csv(tiny_run / "results/ds9/scans/targets.tsv", sep="\t", dtype={"patient_id": str})
    test_split = targets[targets["set"] == "test"]
    assert set(test_split["patient_id"]) <= set(tiles.loc[tiles["split"] == "test", "patient_id"])
    assert set(test_split["source"]) == {"cbis-ddsm", "ddsm"}
    scored = pd.concat([pd.read_csv(p, sep="\t") for p in scans_dir.glob("chunk_*.scans.tsv")])
    assert sorted(scored["scan_id"]) == sorted(targets["scan_id"])
    test = metrics["sets"]["test"]
    assert test["scans"] == len(test_split) and test["abnormal"] == int(test_split["label_normal"].sum()) > 0
    assert set(test["localisation"]["sensitivity_at_fp_per_scan"]) == {"1", "2", "4"}
    assert set(test["localisation"]["box_criterion"]["sensitivity_at_fp_per_scan"]) == {"1", "2", "4"}
    # windows are wider than twice the 10 mm margin: a region whose centre finds a lesion also overlaps it
    regions = pd.concat([pd.read_csv(p, sep="\t", keep_default_na=False) for p in scans_dir.glob("chunk_*.regions.tsv")])
    for centred, hit in zip(regions["lesions_centred"], regions["lesions_hit"]):
        assert set(filter(None, centred.split(";"))) <= set(filter(None, hit.split(";")))
    froc = pd.read_csv(scans_dir / "froc.tsv", sep="\t")
    assert froc["fp_per_scan"].is_monotonic_increasing or len(froc.groupby("set")) > 1
    for name in ("froc.png", "cases.png"):
        assert (scans_dir / name).stat().st_size > 5_000


@pytest.mark.workflow
def test_mammo_scan_with_the_model_and_its_card_gives_the_workflows_regions(tiny_run, tmp_path):
    """A model file and its card copied elsewhere: `mammo scan` finds the same regions, scores and calibrated
    probabilities as the workflow's whole-scan scoring (contrast and temperature read from the card, not the config)."""
    import subprocess
    import sys

    scans_dir = tiny_run / "results/ds9/model_1.0.0.35/scans"
    regions = pd.concat([pd.read_csv(p, sep="\t") for p in scans_dir.glob("chunk_*.regions.tsv")])
    targets = pd.read_csv(tiny_run / "results/ds9/scans/targets.tsv", sep="\t")
    target = targets[targets["scan_id"].isin(regions["scan_id"]) & (targets["source"] == "cbis-ddsm")].iloc[0]
    for name in ("model.keras", "model.onnx", "model.json"):
        shutil.copy(tiny_run / "results/ds9/model_1.0.0.35" / name, tmp_path / name)
    windowing = tiny_config()["scans"]
    command = [
        str(Path(sys.executable).with_name("mammo")),
        "scan",
        str(tiny_run / target["path"]),
        "--model",
        str(tmp_path / "model.onnx"),  # the export, as the workflow scores: the same engine, the same numbers
        "--out",
        str(tmp_path / "out"),
        "--stride",
        str(windowing["stride"]),
        "--min-tissue",
        str(windowing["min_tissue"]),
        "--top",
        str(windowing["top"]),
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    found = json.loads(next((tmp_path / "out").glob("*.regions.json")).read_text())["regions"]
    expected = regions[regions["scan_id"] == target["scan_id"]].sort_values("rank")
    assert [",".join(map(str, region["box"])) for region in found] == expected["box"].tolist()
    assert [region["score"] for region in found] == pytest.approx(expected["score"].tolist(), abs=1e-6)
    assert [region["calibrated"] for region in found] == pytest.approx(expected["calibrated"].tolist(), abs=1e-6)


@pytest.fixture(scope="module")
def inference_only_install(tmp_path_factory) -> Path:
    """`pip install .` (the inference-only install) of this tree into a fresh virtual environment: no TensorFlow."""
    import subprocess
    import sys

    folder = tmp_path_factory.mktemp("inference_only")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, folder / name)
    shutil.copytree(ROOT / "src", folder / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    venv = folder / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    result = subprocess.run([venv / "bin/python", "-m", "pip", "install", "--quiet", str(folder)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    return venv


@pytest.mark.workflow
def test_inference_only_install_scans_like_the_keras_path(tiny_run, inference_only_install, tmp_path):
    """The export and its card alone, in an environment without TensorFlow: `mammo scan` finds the regions that
    the Keras model finds through TensorFlow, on a CBIS-DDSM DICOM, a DDSM LJPEG and a mini-MIAS film of the demo."""
    import subprocess
    import sys

    python = inference_only_install / "bin/python"
    assert subprocess.run([python, "-c", "import tensorflow"], capture_output=True).returncode == 1
    assert subprocess.run([python, "-c", "import keras"], capture_output=True).returncode == 1
    trained = tiny_run / "results/ds9/model_1.0.0.35"
    (tmp_path / "deployed").mkdir()
    for name in ("model.onnx", "model.json"):
        shutil.copy(trained / name, tmp_path / "deployed" / name)
    targets = pd.read_csv(tiny_run / "results/ds9/scans/targets.tsv", sep="\t")
    scans = [str(tiny_run / targets[targets["source"] == source]["path"].iloc[0]) for source in ("cbis-ddsm", "ddsm")]
    scans.append(str(next((tiny_run / "resources/demo/mias").glob("*.pgm"))))
    windowing = tiny_config()["scans"]
    options = ["--stride", str(windowing["stride"]), "--min-tissue", str(windowing["min_tissue"]), "--threads", "2"]
    runs = {
        "export": [inference_only_install / "bin/mammo", "--model", tmp_path / "deployed/model.onnx"],
        "keras": [Path(sys.executable).with_name("mammo"), "--model", trained / "model.keras", "--engine", "tensorflow"],
    }
    found = {}
    for name, (command, *model) in runs.items():
        result = subprocess.run(
            [command, "scan", *scans, *map(str, model), *options, "--out", tmp_path / name], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr[-3000:]
        found[name] = {path.name: json.loads(path.read_text()) for path in (tmp_path / name).glob("*.regions.json")}
    assert len(found["export"]) == len(scans) and found["export"].keys() == found["keras"].keys()
    for stem, exported in found["export"].items():
        keras_run = found["keras"][stem]
        assert exported["inference"]["engine"] == "openvino" and keras_run["inference"]["engine"] == "tensorflow"
        assert [region["box"] for region in exported["regions"]] == [region["box"] for region in keras_run["regions"]], stem
        scores = [[region["score"] for region in run["regions"]] for run in (exported, keras_run)]
        assert scores[0] == pytest.approx(scores[1], abs=1e-4), stem
        heatmaps = [np.load(tmp_path / name / stem.replace("regions.json", "heatmap.npy")) for name in runs]
        assert np.array_equal(np.isnan(heatmaps[0]), np.isnan(heatmaps[1])), stem  # the same windows scored
        assert np.nanmax(np.abs(heatmaps[0] - heatmaps[1])) < 1e-4, stem


@pytest.mark.workflow
def test_tiny_run_draws_plots_and_builds_the_report(tiny_run):
    from html.parser import HTMLParser

    import cv2

    figures = ["montage.png"] + [
        f"model_1.0.0.35/{name}.png"
        for name in ("training_curves", "roc_pr", "reliability", "thresholds", "confusion", "errors", "shortcut")
    ]
    for name in figures:
        image = cv2.imread(str(tiny_run / "results/ds9" / name))
        assert image is not None and min(image.shape[:2]) >= 200 and image.std() > 10, name  # one montage row is 200 px
    snakemake(tiny_run, "--configfile", *TINY, "--report", "report.html")
    report = (tiny_run / "report.html").read_text(errors="replace")
    assert report.lstrip().lower().startswith("<!doctype html") and report.rstrip().lower().endswith("</html>")

    class Tags(HTMLParser):
        opened = closed = 0

        def handle_starttag(self, tag, attrs):
            self.opened += tag in ("html", "body", "head")

        def handle_endtag(self, tag):
            self.closed += tag in ("html", "body", "head")

    parser = Tags()
    parser.feed(report)
    assert parser.opened == parser.closed == 3
    for name in ("montage.png", "roc_pr.png", "froc.png", "reliability.png", "shortcut.png", "binary_test.csv", "benchmarks.csv"):
        assert name in report, name


CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
EVERY_FIGURE_DECODED = """
const done = arguments[arguments.length - 1];
const entries = Object.entries(results);
Promise.all(entries.map(([path, entry]) => {
    if (!entry.mime_type.startsWith("image/")) {
        return fetch(entry.data_uri).then(r => r.text()).then(text => ({path, kind: "text", lines: text.trim().split("\\n").length}));
    }
    const image = new Image();
    const loaded = new Promise(resolve => {
        image.onload = () => resolve({path, kind: "image", width: image.naturalWidth, height: image.naturalHeight});
        image.onerror = () => resolve({path, kind: "image", width: 0, height: 0});
    });
    image.src = entry.data_uri;
    return loaded;
})).then(done);
"""


@pytest.mark.workflow
@pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Chromium and its WebDriver (apt: chromium chromium-driver; .ci/run installs them)",
)
def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    """The Snakemake report in a real browser: the app renders its landing page, every embedded figure decodes
    to a non-empty image, every table holds rows, and the console shows no error. The landing page's screenshot
    is kept beside the test (report_landing.png)."""
    import cv2
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.support.ui import WebDriverWait

    report = tiny_run / "report.html"
    if not report.exists():
        snakemake(tiny_run, "--configfile", *TINY, "--report", "report.html")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)  # the given driver: nothing downloaded
    try:
        driver.set_script_timeout(60)
        driver.get(report.as_uri())
        WebDriverWait(driver, 60).until(lambda d: d.execute_script("return document.querySelector('#app').innerText.length") > 0)
        landing = driver.find_element("id", "app").text
        shown = driver.save_screenshot(str(tmp_path / "report_landing.png"))
        loaded = driver.execute_async_script(EVERY_FIGURE_DECODED)
        console = driver.get_log("browser")
    finally:
        driver.quit()
    assert shown and "Models" in landing and "Whole scans" in landing, landing[:500]
    screenshot = cv2.imread(str(tmp_path / "report_landing.png"))
    assert screenshot.shape[1] == 1400 and screenshot.shape[0] > 600 and screenshot.std() > 10  # drawn, not blank
    images = [entry for entry in loaded if entry["kind"] == "image"]
    tables = [entry for entry in loaded if entry["path"].endswith((".csv", ".tsv"))]
    assert len(images) >= 10 and all(entry["width"] > 0 and entry["height"] > 0 for entry in images), images
    names = {Path(entry["path"]).name for entry in loaded}
    assert {"montage.png", "roc_pr.png", "froc.png", "reliability.png", "shortcut.png"} <= names
    assert {"binary_test.csv", "benchmarks.csv"} <= names and all(entry["lines"] >= 2 for entry in tables), tables
    errors = [entry["message"] for entry in console if entry["level"] == "SEVERE"]
    assert not errors, errors


@pytest.mark.workflow
def test_one_configured_scan_is_a_target(tiny_run):
    """scans.files names scans to analyse one by one: a DDSM LJPEG (with its .ics) and a mini-MIAS PGM."""
    config = tiny_config()
    ljpeg = sorted((tiny_run / "resources/demo/ddsm").rglob("*.LJPEG*"))[0]
    config["scans"]["files"] = {"ddsm_one": str(ljpeg), "mias_one": "resources/demo/mias/mdb001.pgm"}
    configfile = write_config(tiny_run, "tiny_files", config)
    targets = [
        f"results/ds9/model_1.0.0.35/scan/{name}.{kind}"
        for name in ("ddsm_one", "mias_one")
        for kind in ("heatmap.npy", "overlay.png", "regions.json")
    ]
    snakemake(tiny_run, *targets, "--cores", "2", "--configfile", configfile)
    mias = json.loads((tiny_run / "results/ds9/model_1.0.0.35/scan/mias_one.regions.json").read_text())
    assert mias["scale"] == pytest.approx(5.16) and mias["shape"] == [1024, 1024] and mias["windows_scored"] > 0
    ddsm = json.loads((tiny_run / "results/ds9/model_1.0.0.35/scan/ddsm_one.regions.json").read_text())
    assert ddsm["scale"] == 1.0 and all(0 <= region["score"] <= 1 for region in ddsm["regions"])


@pytest.mark.workflow
def test_recipe_with_cbis_background_tiles_is_added_by_config(tiny_run):
    """ds9b = ds9 + CBIS-DDSM background negatives, added in the config only; sources are not indexed again."""
    config = tiny_config()
    config["datasets"]["ds9b"] = {
        **config["datasets"]["ds9"],
        "cbis_background": {
            "per_scan": 3,
            "max_overlap": 0.0,
            "margin": 20,
            "tile": 400,
            "stride": 200,
            "border_crop": 0.07,
            "thresholds": {"mean_min": 30, "var_min": 10, "var_max": 3000},
        },
    }
    configfile = write_config(tiny_run, "tiny_b", config)
    plan = snakemake(tiny_run, "results/ds9b/summary.json", "-n", "--quiet", "rules", "--configfile", configfile)
    assert "index_cbis" not in plan.stdout and "tiles_cbis" in plan.stdout
    snakemake(tiny_run, "results/ds9b/summary.json", "--cores", "2", "--configfile", configfile)
    tiles = pd.read_csv(tiny_run / "results/ds9b/tiles.tsv", sep="\t", dtype={"patient_id": str})
    background = tiles[tiles["method"] == "background"]
    assert len(background) > 0 and (background["label_normal"] == 0).all() and (background["source"] == "cbis-ddsm").all()
    assert (tiles.groupby("patient_id")["split"].nunique() == 1).all()
    plain = pd.read_csv(tiny_run / "results/ds9/tiles.tsv", sep="\t", dtype={"patient_id": str})
    assert set(tiles.loc[tiles["method"] != "background", "tile_id"].str.split("/").str[1:].str.join("/")) == set(
        plain["tile_id"].str.split("/").str[1:].str.join("/")
    )


@pytest.mark.workflow
def test_ds9_from_ddsm_outlines_and_from_both_collections(tiny_run):
    """ds9 built from the demo's DDSM abnormal cases instead of CBIS-DDSM (ds9_ddsm), and from both (ds9_both): trained,
    evaluated and scanned whole; with both, the DDSM films that are CBIS-DDSM films are used once and their women are
    one patient in one split; every ROI of either collection is tiled or rejected."""
    targets = [
        f"results/{name}/model_{LIGHT_MODEL}/{output}"
        for name in ("ds9_ddsm", "ds9_both")
        for output in ("metrics.json", "scans/metrics.json", "shortcut.json")
    ]
    snakemake(tiny_run, *targets, "--cores", "2", "--configfile", light_config(tiny_run))
    ddsm_rois = pd.read_csv(tiny_run / "results/sources/ddsm_abnormal/rois.tsv", sep="\t")
    cbis_rois = pd.read_csv(tiny_run / "results/sources/cbis/rois.tsv", sep="\t")
    read = {
        name: (
            pd.read_csv(tiny_run / f"results/{name}/tiles.tsv", sep="\t", dtype={"patient_id": str}),
            json.loads((tiny_run / f"results/{name}/summary.json").read_text()),
            pd.read_csv(tiny_run / f"results/{name}/rejected.tsv", sep="\t", dtype=str, keep_default_na=False),
        )
        for name in ("ds9_ddsm", "ds9_both")
    }
    tiles, summary, _ = read["ds9_ddsm"]
    assert set(tiles["source"]) == {"ddsm"} and summary["reconciliation"]["ddsm_rois_tiled"] == len(ddsm_rois)
    for split in ("train", "val", "test"):
        assert summary["splits"][split]["per_class"].keys() - {"0"}, split  # abnormal DDSM women in every split
    targets_table = pd.read_csv(tiny_run / "results/ds9_ddsm/scans/targets.tsv", sep="\t")
    outlined = targets_table[(targets_table["source"] == "ddsm") & (targets_table["label_normal"] == 1)]
    assert len(outlined) > 0 and set(outlined["scan_id"]) <= set(ddsm_rois["scan_id"])
    scans = pd.concat(
        pd.read_csv(p, sep="\t") for p in (tiny_run / f"results/ds9_ddsm/model_{LIGHT_MODEL}/scans").glob("chunk_*.scans.tsv")
    )
    assert (scans.loc[scans["source"] == "ddsm", "lesions"].fillna("") != "").sum() == len(outlined)  # outlines as lesions
    tiles, summary, rejected = read["ds9_both"]
    same = pd.read_csv(tiny_run / "results/ds9_both/same_films.tsv", sep="\t")
    assert same["other_patient_id"].nunique() == 4 and (same["correlation"] > 0.99).all()  # the demo's cases 1, 3, 5, 7
    assert summary["same_films"]["closest_other_film"] < 0.9
    assert not tiles["patient_id"].isin(same["other_patient_id"]).any()
    assert not tiles.loc[tiles["source"] == "ddsm", "scan_id"].isin(same["other_scan_id"]).any()
    assert (tiles.groupby("patient_id")["split"].nunique() == 1).all()
    counts = summary["reconciliation"]
    shared = set(rejected.loc[rejected["stage"] == "same_film", "item"])
    assert shared == set(ddsm_rois.loc[ddsm_rois["scan_id"].isin(same["other_scan_id"]), "roi_id"])
    assert counts["ddsm_rois_tiled"] + len(shared) == counts["ddsm_rois"] and counts["cbis_rois_tiled"] == len(cbis_rois)
    assert {"cbis-ddsm", "ddsm"} <= set(tiles.loc[tiles["label_normal"] == 1, "source"])
    for name, (_, summary, _) in read.items():
        metrics = json.loads((tiny_run / f"results/{name}/model_{LIGHT_MODEL}/metrics.json").read_text())
        assert metrics["sets"]["test"]["n"] == summary["splits"]["test"]["tiles"]
        assert metrics["sets"]["test"]["raw"]["roc_auc"] is not None
        shortcut = json.loads((tiny_run / f"results/{name}/model_{LIGHT_MODEL}/shortcut.json").read_text())
        # held-out tissue beside ROIs comes from the recipe's ROI collections (whichever gave such tiles here)
        assert set(shortcut["roi_scans_from"]) <= ({"ddsm"} if name == "ds9_ddsm" else {"cbis-ddsm", "ddsm"})
        assert shortcut["tiles"]["normal_scans"] > 0


@pytest.mark.workflow
def test_ds9_from_a_vindr_collection(tiny_run):
    """ds9's method on the demo's VinDr-Mammo-style collection (ds9_vindr): boxed findings as ROIs, BI-RADS 1 breasts
    as normal tissue, each image at the CBIS-DDSM scale by its pixel spacing; trained, evaluated, scanned whole and
    audited; the official split kept by study; every finding and image tiled or rejected."""
    outputs = ("metrics.json", "scans/metrics.json", "shortcut.json")
    targets = [f"results/ds9_vindr/model_{LIGHT_MODEL}/{name}" for name in outputs]
    snakemake(tiny_run, *targets, "results/ds9_vindr/montage.png", "--cores", "2", "--configfile", light_config(tiny_run))
    images = pd.read_csv(tiny_run / "results/sources/vindr/images.tsv", sep="\t", dtype=str)
    findings = pd.read_csv(tiny_run / "results/sources/vindr/findings.tsv", sep="\t", dtype=str)
    tiles = pd.read_csv(tiny_run / "results/ds9_vindr/tiles.tsv", sep="\t", dtype=str)
    rejected = pd.read_csv(tiny_run / "results/ds9_vindr/rejected.tsv", sep="\t", dtype=str, keep_default_na=False)
    summary = json.loads((tiny_run / "results/ds9_vindr/summary.json").read_text())
    assert set(tiles["source"]) == {"vindr"} and set(tiles["patient_id"].str.removeprefix("vindr:")) <= set(images["patient_id"])
    official = images.drop_duplicates("patient_id").set_index("patient_id")["split"]
    first = tiles.drop_duplicates("patient_id")
    split_of = pd.Series(first["split"].to_numpy(), index=first["patient_id"].str.removeprefix("vindr:"))
    assert (split_of[official.reindex(split_of.index) == "train"] == "train").all()
    assert set(split_of[official.reindex(split_of.index) == "test"]) == {"val", "test"}  # test studies halved
    assert (tiles.groupby("patient_id")["split"].nunique() == 1).all()
    normal_images = set(images.loc[images["breast_birads"] == "1", "scan_id"])
    assert set(tiles.loc[tiles["method"] == "normal_grid", "scan_id"]) <= normal_images
    counts = summary["reconciliation"]
    assert counts["vindr_findings"] == len(findings) and counts["vindr_images"] == len(images)
    for split in ("train", "val", "test"):
        assert {"0"} < set(summary["splits"][split]["per_class"]), split  # normal and abnormal tiles in every split
    assert rejected["reason"].str.contains("leaves the").sum() == 1  # the demo's box past the edge, from the index
    targets_table = pd.read_csv(tiny_run / "results/ds9_vindr/scans/targets.tsv", sep="\t")
    vindr = targets_table[targets_table["source"] == "vindr"]
    assert len(vindr) > 0 and vindr["scale"].round(3).eq(round(0.085 / 0.045, 3)).all()
    scans = pd.concat(
        pd.read_csv(p, sep="\t") for p in (tiny_run / f"results/ds9_vindr/model_{LIGHT_MODEL}/scans").glob("chunk_*.scans.tsv")
    )
    abnormal = scans[(scans["source"] == "vindr") & (scans["label_normal"] == 1)]
    boxed = abnormal[abnormal["scan_id"].isin(findings["scan_id"])]
    assert len(boxed) > 0 and (boxed["lesions"].fillna("") != "").all()  # boxes as the lesions to hit
    metrics = json.loads((tiny_run / f"results/ds9_vindr/model_{LIGHT_MODEL}/metrics.json").read_text())
    assert metrics["sets"]["test"]["raw"]["roc_auc"] is not None
    shortcut = json.loads((tiny_run / f"results/ds9_vindr/model_{LIGHT_MODEL}/shortcut.json").read_text())
    assert set(shortcut["roi_scans_from"]) <= {"vindr"} and shortcut["tiles"]["normal_scans"] > 0


@pytest.mark.workflow
def test_ds9_from_your_own_images(tiny_run):
    """ds9's method on the demo's own-images CSV (ds9_own; README, "Your own images"): lesions given as boxes,
    circles and mask files tiled, normal images on the tissue grid, women split 80/10/10 with both classes in every
    split, every CSV row an image's, a tiled lesion, or rejected."""
    targets = ["results/ds9_own/summary.json", "results/ds9_own/montage.png", "results/collections/montage.png"]
    snakemake(tiny_run, *targets, "--cores", "2", "--configfile", *TINY)
    assert (tiny_run / "results/collections/montage.png").stat().st_size > 50_000  # every collection's tiles, a row each
    images = pd.read_csv(tiny_run / "results/sources/own/images.tsv", sep="\t", dtype=str)
    findings = pd.read_csv(tiny_run / "results/sources/own/findings.tsv", sep="\t", dtype=str, keep_default_na=False)
    index = json.loads((tiny_run / "results/sources/own/summary.json").read_text())
    assert index["inputs"] == index["accepted"] + index["rejected"] and index["rejected"] == 2
    tiles = pd.read_csv(tiny_run / "results/ds9_own/tiles.tsv", sep="\t", dtype=str)
    summary = json.loads((tiny_run / "results/ds9_own/summary.json").read_text())
    assert set(tiles["source"]) == {"own"} and (tiles.groupby("patient_id")["split"].nunique() == 1).all()
    assert summary["reconciliation"]["own_findings_tiled"] == summary["reconciliation"]["own_findings"] == len(findings)
    assert (findings["mask_path"] != "").any() and (findings["centre_row"] != "").any() and (findings["box_top"] != "").any()
    for split in ("train", "val", "test"):
        assert {"0"} < set(summary["splits"][split]["per_class"]), split
    assert set(tiles.loc[tiles["method"] == "normal_grid", "scan_id"]) <= set(
        images.loc[images["label_normal"] == "0", "scan_id"]
    )


@pytest.mark.workflow
def test_second_run_has_nothing_to_do(tiny_run):
    result = snakemake(tiny_run, TARGET, "-n", "--configfile", *TINY)
    assert "Nothing to be done" in result.stdout + result.stderr


def planned_rules(workdir: Path, change) -> set[str]:
    """The rules Snakemake's dry run would run for `all` after `change(config)` in a copy of the tiny config."""
    config = tiny_config()
    change(config)
    configfile = write_config(workdir, "changed", config)
    plan = snakemake(workdir, "all", "-n", "--quiet", "rules", "--configfile", configfile).stdout
    return {line.split()[0] for line in plan.splitlines() if re.match(r"^[a-z_]+\s+\d+$", line)} - {"all", "total"}


@pytest.mark.workflow
def test_changed_training_parameter_reruns_training_and_what_follows_only(tiny_run):
    def contrast(config):
        config["models"]["1.0.0.35"]["contrast"] = 1.2

    expected = {"train", "export_model", "evaluate", "plot_model", "score_scans", "scan_metrics", "shortcut_audit", "tables"}
    expected.add("benchmark_table")
    assert planned_rules(tiny_run, contrast) == expected


@pytest.mark.workflow
def test_changed_normal_tile_threshold_reruns_tiles_and_downstream_not_indexing(tiny_run):
    def threshold(config):
        config["datasets"]["ds9"]["normals"]["thresholds"]["HOWTEK"]["mean_min"] = 31

    planned = planned_rules(tiny_run, threshold)
    assert {"tiles_ddsm", "split", "records", "train", "evaluate", "montage", "scan_targets"} <= planned
    assert not planned & {"demo_data", "index_cbis", "index_ddsm", "index_mias", "tiles_cbis", "tiles_mias"}


def planned_after_replacing(workdir: Path, path: Path) -> dict[str, int]:
    """Jobs per rule of the dry run of `all` after `path` is written anew (its age restored afterwards)."""
    import os

    before = path.stat()
    try:
        path.write_bytes(path.read_bytes())  # a replacement, as far as a file's age tells
        plan = snakemake(workdir, "all", "-n", "--quiet", "rules", "--configfile", *TINY).stdout
    finally:
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return {m[1]: int(m[2]) for m in re.finditer(r"^([a-z_]+)\s+(\d+)$", plan, re.MULTILINE)}


@pytest.mark.workflow
def test_replaced_scan_reruns_only_the_jobs_that_read_it(tiny_run):
    """Tile and whole-scan jobs declare the image files of their chunk: a replaced scan reruns the jobs that read
    it and what follows from their outputs, not the other chunks, the indexing or the other collections."""
    targets = pd.read_csv(tiny_run / "results/ds9/scans/targets.tsv", sep="\t", dtype={"patient_id": str})
    ddsm = planned_after_replacing(tiny_run, tiny_run / targets[targets["source"] == "ddsm"].iloc[0]["path"])
    assert ddsm["tiles_ddsm"] == 1  # of the two chunks; the split, training and scoring follow from it
    assert not set(ddsm) & {"demo_data", "index_cbis", "index_ddsm", "index_mias", "tiles_cbis", "tiles_mias"}
    # a mini-MIAS scan is a test set, never trained on: its tiles, the evaluation and what follows, no training
    mias = planned_after_replacing(tiny_run, tiny_run / targets[targets["source"] == "mias"].iloc[0]["path"])
    assert mias["tiles_mias"] == 1 and mias["evaluate"] == 2 and mias["score_scans"] >= 2
    assert mias["records"] == 2 and not set(mias) & {"index_mias", "tiles_cbis", "tiles_ddsm", "split", "train", "scan_targets"}
    result = snakemake(tiny_run, "all", "-n", "--configfile", *TINY)
    assert "Nothing to be done" in result.stdout + result.stderr


@pytest.mark.workflow
def test_missing_scan_is_rejected_with_its_file(tiny_run, tmp_path):
    """A deleted full scan lands in the rejected table with the file and reason; the run still completes."""
    workdir = tmp_path / "broken"
    shutil.copytree(tiny_run / "config", workdir / "config")
    shutil.copytree(tiny_run / "resources", workdir / "resources")
    rois = pd.read_csv(tiny_run / "results/sources/cbis/rois.tsv", sep="\t")
    victim = workdir / "resources/demo/cbis-ddsm" / rois["image_file_path"].iloc[0]
    victim.unlink()
    snakemake(workdir, "results/ds9/summary.json", "--cores", "2", "--configfile", *TINY)
    rejected = pd.read_csv(workdir / "results/ds9/rejected.tsv", sep="\t", dtype=str, keep_default_na=False)
    hits = rejected[rejected["file"].str.endswith(str(victim.relative_to(workdir)))]
    assert len(hits) == (rois["image_file_path"] == rois["image_file_path"].iloc[0]).sum()
    assert (hits["reason"] == "file not found").all()
