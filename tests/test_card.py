"""The model card (model.json): written valid, read back, refused with the file named when it is not a card."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from mammo.card import FORMAT, card_path, file_sha256, model_card, read_card, tables_sha256, write_card

SETTINGS = {
    "model": "1.0.0.35",
    "labels": "five_class",
    "epochs": 4,
    "stages": [{"epochs": 2}],
    "contrast": 1.1,
    "abnormal_weight": 5.0,
    "flips": True,
    "seed": 42,
    "test_contrast": 1.5,
    "threshold": 0.5,
}
ENGINE = {"engine": "openvino", "version": "2026.4.1", "precision": "float32", "model_file": "model.onnx"}


def card_of(settings: dict, folder) -> dict:
    """The card of a model trained with `settings`, its files (tile table, model.keras, model.onnx) made in `folder`."""
    (folder / "tiles.tsv").write_text("tile_id\tlabel_normal\nds9/a/0\t1\n")
    for name in ("model.keras", "model.onnx"):
        (folder / name).write_bytes(name.encode())
    return model_card(
        settings,
        "mixed_bfloat16",
        1.7,
        {"fixed": 0.5, "best_f1": 0.31, "recall_0.90": None},
        [str(folder / "tiles.tsv")],
        [str(folder / "model.keras"), str(folder / "model.onnx")],
        ENGINE,
    )


@pytest.fixture
def card(tmp_path) -> dict:
    return card_of(SETTINGS, tmp_path)


def test_card_holds_what_inference_needs_and_where_the_model_came_from(card, tmp_path):
    write_card(card, card_path(tmp_path / "model.keras"))
    read = read_card(tmp_path / "model.keras")
    assert read == json.loads(json.dumps(card)) and read["format"] == FORMAT
    assert len(read["classes"]) == 5 and read["classes"][0] == "normal"
    assert read["training"]["epochs"] == 6 and read["training"]["dtype_policy"] == "mixed_bfloat16"  # every stage counted
    assert read["test_contrast"] == 1.5 and read["temperature"] == 1.7 and read["thresholds"]["recall_0.90"] is None
    assert read["input"]["tile"] == 299 and read["input"]["dtype"] == "uint8"
    assert read["trained_on"]["sha256"] == tables_sha256([str(tmp_path / "tiles.tsv")])
    assert read["weights"] == {name: file_sha256(tmp_path / name) for name in ("model.keras", "model.onnx")}
    assert read["evaluated_with"] == {"engine": "openvino", "version": "2026.4.1", "precision": "float32"}


def test_card_records_the_keras_backend_that_trained_the_model(card, tmp_path):
    assert card["training"]["backend"] == "tensorflow"  # where the model's entry names none
    write_card(card_of({**SETTINGS, "backend": "jax"}, tmp_path), card_path(tmp_path / "model.keras"))
    assert read_card(tmp_path / "model.keras")["training"]["backend"] == "jax"
    with pytest.raises(Exception, match="'torch' is not one of"):
        write_card(card_of({**SETTINGS, "backend": "torch"}, tmp_path), tmp_path / "other.json")
    # a card written before the backend was recorded (the model trained on TensorFlow) is still read
    earlier = {**card, "training": {key: value for key, value in card["training"].items() if key != "backend"}}
    card_path(tmp_path / "model.keras").write_text(json.dumps(earlier))
    assert "backend" not in read_card(tmp_path / "model.keras")["training"]


def test_the_tile_table_hash_changes_with_the_table(tmp_path):
    table = tmp_path / "tiles.tsv"
    table.write_text("tile_id\nds9/a/0\n")
    before = tables_sha256([str(table)])
    table.write_text("tile_id\nds9/a/1\n")
    assert tables_sha256([str(table)]) != before


def test_a_model_without_a_card_has_none(tmp_path):
    assert read_card(tmp_path / "model.keras") is None


@pytest.mark.parametrize(
    "change, problem",
    [
        (lambda c: {**c, "temperature": 0}, "temperature"),
        (lambda c: {**c, "labels": "colour"}, "labels"),
        (lambda c: {k: v for k, v in c.items() if k != "test_contrast"}, "'test_contrast' is a required property"),
        (lambda c: {**c, "thresholds": {"best_f1": 0.3}}, "'fixed' is a required property"),
        (lambda c: {**c, "input": {**c["input"], "tile": 224}}, "input"),
        (lambda c: {**c, "surprise": 1}, "surprise"),
        (lambda c: {**c, "weights": {"model.onnx": "abc"}}, "weights"),
        (lambda c: {k: v for k, v in c.items() if k != "evaluated_with"}, "'evaluated_with' is a required property"),
    ],
)
def test_read_card_names_the_file_and_the_problem(card, tmp_path, change, problem):
    card_path(tmp_path / "model.keras").write_text(json.dumps(change(card)))
    with pytest.raises(ValueError, match="model.json: not a model card") as error:
        read_card(tmp_path / "model.keras")
    assert problem in str(error.value)


def test_write_card_refuses_an_invalid_card(card, tmp_path):
    with pytest.raises(Exception, match="temperature"):
        write_card({**card, "temperature": -1.0}, tmp_path / "model.json")
    assert not (tmp_path / "model.json").exists()


def test_inference_needs_neither_training_nor_tensorflow_to_import():
    modules = "('mammo.train', 'tensorflow', 'keras', 'openvino', 'onnxruntime')"
    code = f"import sys, mammo.inference, mammo.card; print(sorted(m for m in sys.modules if m in {modules}))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stderr[-2000:]
