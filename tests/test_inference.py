"""Inference engines: the exported model (ONNX through OpenVINO or ONNX Runtime) gives Keras's probabilities,
the engine is chosen and refused with reasons, and a model changed since its card was written is not used."""

from __future__ import annotations

import shutil
from dataclasses import asdict

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="exporting needs TensorFlow (pip install .[workflow])")

from mammo.card import CBIS_TILE_SCALE, card_path, model_card, scanning_section, write_card  # noqa: E402
from mammo.heatmap import Windowing  # noqa: E402
from mammo.inference import (  # noqa: E402
    apply_contrast,
    export_onnx,
    installed_engines,
    open_engine,
    resolved_precision,
    tile_graph,
    trained_dtype_policy,
)

FLOAT32_AGREEMENT = 1e-4  # issue bound on P(abnormal); measured about 1e-7 (BENCHMARKS.md)
BFLOAT16_AGREEMENT = 5e-2  # bfloat16 keeps 8 bits of mantissa; measured bound on the demo model in BENCHMARKS.md


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    """Tiles with a breast-like spread of grey levels: smooth blobs plus noise, some dark background."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:299, :299]
    images = []
    for _ in range(12):
        cy, cx, r = rng.uniform(0, 299, 2).tolist() + [rng.uniform(40, 200)]
        blob = 200 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r**2))
        images.append(np.clip(blob + rng.normal(40, 25, blob.shape), 0, 255).astype(np.uint8))
    return np.stack(images)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A random-weight model 1.0.0.35 and its ONNX export, in one folder."""
    from mammo.models import build

    folder = tmp_path_factory.mktemp("exported")
    build("1.0.0.35", 2).save(folder / "model.keras")
    export_onnx(folder / "model.keras", folder / "model.onnx")
    return folder


@pytest.mark.parametrize("factor", [0.5, 1.0, 1.5, 2.0])
def test_the_graphs_contrast_is_trainings_contrast_to_the_grey_level(tiles, factor):
    import keras

    pixels = keras.Sequential([keras.Input((299, 299, 1)), keras.layers.Flatten()])
    graph = tile_graph(pixels)
    seen = np.asarray(graph([tiles, np.full((len(tiles), 1), factor, np.float32)])).reshape(tiles.shape)
    expected = np.asarray(apply_contrast(tiles[..., None], factor))[..., 0]
    assert np.array_equal(seen, expected)


@pytest.mark.parametrize("contrast", [1.0, 1.5])
def test_every_installed_engine_agrees_with_keras_in_float32(exported, tiles, contrast):
    engines = installed_engines()
    assert {"tensorflow", "openvino", "onnxruntime"} <= set(engines)  # all three are in the workflow install
    keras_scores = open_engine(exported / "model.keras", "tensorflow").predictor(contrast)(tiles)
    for name in engines:
        engine = open_engine(exported / "model.keras", name)
        scores = engine.predictor(contrast)(tiles)
        assert np.abs(scores - keras_scores).max() < FLOAT32_AGREEMENT, name
        assert engine.describe()["engine"] == name and engine.describe()["precision"] == "float32"


def test_bfloat16_openvino_stays_within_its_bound(exported, tiles):
    keras_scores = open_engine(exported / "model.keras", "tensorflow").predictor(1.5)(tiles)
    engine = open_engine(exported / "model.onnx", "openvino", "bfloat16")
    assert np.abs(engine.predictor(1.5)(tiles) - keras_scores).max() < BFLOAT16_AGREEMENT
    assert engine.describe()["precision"] == "bfloat16"


def test_auto_precision_is_bfloat16_only_through_openvino_on_a_cpu_with_bfloat16_arithmetic(exported, monkeypatch):
    import mammo.inference as inference

    monkeypatch.setattr(inference, "cpu_computes_bfloat16", lambda: True)
    assert resolved_precision("auto") == resolved_precision("auto", "openvino") == "bfloat16"
    assert resolved_precision("auto", "onnxruntime") == resolved_precision("auto", "tensorflow") == "float32"
    assert resolved_precision("float32") == "float32" and resolved_precision("bfloat16", "tensorflow") == "bfloat16"
    monkeypatch.setattr(inference, "installed_engines", lambda: ["onnxruntime", "tensorflow"])
    assert resolved_precision("auto") == "float32"  # no OpenVINO: nothing here runs bfloat16
    monkeypatch.undo()
    monkeypatch.setattr(inference, "cpu_computes_bfloat16", lambda: False)
    assert resolved_precision("auto") == "float32"  # emulated bfloat16 is slower than float32
    # the engine records what it computes in, not "auto"
    assert open_engine(exported / "model.onnx", "auto", "auto").describe()["precision"] == "float32"
    assert open_engine(exported / "model.onnx", "onnxruntime", "auto").describe()["precision"] == "float32"


def test_a_model_trained_in_mixed_bfloat16_with_tiles_averaged_and_standardised_exports_and_runs_in_float32(tiles, tmp_path):
    import keras

    from mammo.models import build

    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:  # the tile's averaging (its odd edge over its own pixels) and standardisation (float32 under any policy) go
        # through the export as the convolutions do
        build("1.0.0.35", 2, standardise_tiles=True, input_pool=2).save(tmp_path / "model.keras")
    finally:
        keras.mixed_precision.set_global_policy("float32")
    # the card's training precision, read from the saved model without Keras
    assert trained_dtype_policy(tmp_path / "model.keras") == "mixed_bfloat16"
    build("1.0.0.46", 2).save(tmp_path / "float32.keras")
    assert trained_dtype_policy(tmp_path / "float32.keras") == "float32"
    export_onnx(tmp_path / "model.keras", tmp_path / "model.onnx")  # OpenVINO refuses an export with bfloat16 nodes
    keras_scores = open_engine(tmp_path / "model.keras", "tensorflow").predictor(1.5)(tiles)
    assert keras_scores.dtype == np.float32
    for name in ("openvino", "onnxruntime"):
        scores = open_engine(tmp_path / "model.keras", name).predictor(1.5)(tiles)
        assert np.abs(scores - keras_scores).max() < FLOAT32_AGREEMENT, name


def test_auto_takes_the_fastest_engine_that_has_its_file(exported, tmp_path):
    assert open_engine(exported / "model.keras").name == "openvino"  # its export lies beside it
    assert open_engine(exported / "model.onnx").name == "openvino"
    shutil.copy(exported / "model.keras", tmp_path / "model.keras")
    assert open_engine(tmp_path / "model.keras").name == "tensorflow"  # not exported: only TensorFlow runs it
    (tmp_path / "deployed").mkdir()
    shutil.copy(exported / "model.onnx", tmp_path / "deployed" / "model.onnx")  # the export alone, no Keras file
    assert open_engine(tmp_path / "deployed" / "model.onnx").model_file.endswith("model.onnx")


@pytest.mark.parametrize(
    "engine, precision, problem",
    [
        ("tflite", "float32", "engine 'tflite': one of auto"),
        ("auto", "int4", "precision 'int4': one of float32, bfloat16"),
        ("tensorflow", "bfloat16", "engine tensorflow cannot run it (tensorflow runs float32 only)"),
        ("onnxruntime", "bfloat16", "engine onnxruntime cannot run it (onnxruntime runs float32 only)"),
    ],
)
def test_engine_and_precision_are_refused_with_the_reason(exported, engine, precision, problem):
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        open_engine(exported / "model.keras", engine, precision)


def test_an_engine_without_its_file_or_package_says_what_is_missing(exported, tmp_path, monkeypatch):
    shutil.copy(exported / "model.keras", tmp_path / "model.keras")
    with pytest.raises(ValueError, match=r"engine openvino cannot run it \(.*model.onnx not found\)"):
        open_engine(tmp_path / "model.keras", "openvino")
    with pytest.raises(FileNotFoundError, match="model file not found"):
        open_engine(tmp_path / "missing.onnx")
    monkeypatch.setattr("mammo.inference.installed_engines", lambda: ["tensorflow"])
    with pytest.raises(ValueError, match="the package openvino is not installed"):
        open_engine(exported / "model.onnx", "openvino")
    monkeypatch.setattr("mammo.inference.installed_engines", lambda: [])
    with pytest.raises(ValueError, match="no installed engine .none. runs it at float32.*needs OpenVINO or ONNX Runtime"):
        open_engine(exported / "model.onnx")


def test_a_model_changed_since_its_card_is_refused(exported, tmp_path):
    from mammo.models import build

    for name in ("model.keras", "model.onnx"):
        shutil.copy(exported / name, tmp_path / name)
    (tmp_path / "tiles.tsv").write_text("tile_id\n")
    settings = {"model": "1.0.0.35", "labels": "binary", "epochs": 1, "test_contrast": 1.0}
    engine = open_engine(tmp_path / "model.onnx").describe()
    files = [tmp_path / "model.keras", tmp_path / "model.onnx"]
    scanning = scanning_section("cbis", CBIS_TILE_SCALE, asdict(Windowing()))
    card = model_card(settings, "float32", 1.0, {"fixed": 0.5}, [tmp_path / "tiles.tsv"], files, engine, scanning)
    write_card(card, card_path(files[0]))
    assert open_engine(tmp_path / "model.onnx").name == "openvino"  # the weights the card judged
    build("1.0.0.35", 2).save(tmp_path / "model.keras")  # retrained, not exported nor evaluated again
    for path in files:
        with pytest.raises(ValueError, match=r"model.keras: changed since its card model.json was written"):
            open_engine(path)


def test_export_leaves_nothing_behind_when_it_fails(tmp_path):
    (tmp_path / "model.keras").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable Keras model"):
        export_onnx(tmp_path / "model.keras", tmp_path / "model.onnx")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.keras"]


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("0", "0")])
def test_tensorflow_gets_onednn_unless_the_user_said_otherwise(given, expected):
    """TensorFlow turns oneDNN on by default only on AVX-512 CPUs; importing mammo asks for it everywhere."""
    import os
    import subprocess
    import sys

    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    code = "import mammo, os; print(os.environ['TF_ENABLE_ONEDNN_OPTS'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected
