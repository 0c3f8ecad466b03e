"""The model card (model.json): written valid, read back (an older format too), refused with the file named when it is
not a card; its scanning section gives each scan its window scale."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

import pytest

from mammo.card import (
    CBIS_TILE_SCALE,
    FORMAT,
    FORMAT_1,
    INPUT_1,
    card_path,
    file_sha256,
    model_card,
    read_card,
    scanning_section,
    tables_sha256,
    window_scale_for,
    write_card,
)
from mammo.heatmap import Windowing

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
# a mini-MIAS model trained at the films' own scale (config/ablations/mias_scale1.yaml), judged with stride 150
SCANNING = scanning_section("mias", 1.0, {**asdict(Windowing()), "stride": 150})


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
        SCANNING,
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
    assert read["training"]["standardise_tiles"] is False  # the entry does not name it
    assert card_of({**SETTINGS, "standardise_tiles": True}, tmp_path)["training"]["standardise_tiles"] is True
    assert read["training"]["input_pool"] == 1  # nor this
    assert card_of({**SETTINGS, "input_pool": 2}, tmp_path)["training"]["input_pool"] == 2
    # the averaging share as the epochs it averaged: the last half of 4 + 2
    assert read["training"]["average_from"] == 0
    assert card_of({**SETTINGS, "average_last": 0.5}, tmp_path)["training"]["average_from"] == 4
    assert read["test_contrast"] == 1.5 and read["temperature"] == 1.7 and read["thresholds"]["recall_0.90"] is None
    assert read["input"]["tile"] == 299 and read["input"]["dtype"] == "uint8"
    assert read["trained_on"]["sha256"] == tables_sha256([str(tmp_path / "tiles.tsv")])
    assert read["weights"] == {name: file_sha256(tmp_path / name) for name in ("model.keras", "model.onnx")}
    assert read["evaluated_with"] == {"engine": "openvino", "version": "2026.4.1", "precision": "float32"}
    scanning = read["scanning"]
    assert scanning["collection"] == "mias" and scanning["tile_scale"] == 1.0 and scanning["window_scale"] == 2.0
    assert (scanning["stride"], scanning["min_tissue"], scanning["skip_muscle"]) == (150, 0.75, True)
    assert (scanning["top"], scanning["overlap"]) == (8, 0.25) and "batch_size" not in scanning
    assert scanning["aggregate"] == {"method": "max"} and scanning["uses_other_breast"] is False


def test_a_card_of_format_1_is_read_still_without_a_scanning_section(card, tmp_path):
    older = {key: value for key, value in card.items() if key != "scanning"} | {"format": FORMAT_1, "input": INPUT_1}
    card_path(tmp_path / "model.keras").write_text(json.dumps(older))
    assert read_card(tmp_path / "model.keras") == older
    card_path(tmp_path / "model.keras").write_text(json.dumps({**older, "input": card["input"]}))
    with pytest.raises(ValueError, match="model.json: not a model card \\(input:"):
        read_card(tmp_path / "model.keras")


def test_each_scan_is_windowed_at_the_scale_of_the_model_that_reads_it():
    """A mini-MIAS film at the card's window scale (2.0 for a model trained at 1.0, not the 5.16 of the study's 2.58);
    a scan of another collection by its pixel size against the model's films; a CBIS-scale model as before."""
    assert window_scale_for(SCANNING, "all-mias/mdb001.pgm") == 2.0
    assert window_scale_for(SCANNING, "scan.png") == pytest.approx(2.0 / 5.16)
    study = scanning_section("mias", 2.58, asdict(Windowing()))
    assert study["window_scale"] == pytest.approx(5.16) and window_scale_for(study, "mdb002.pgm") == pytest.approx(5.16)
    cbis = scanning_section("cbis", CBIS_TILE_SCALE, asdict(Windowing()))
    assert cbis["window_scale"] == 1.0 and window_scale_for(cbis, "x/000000.dcm") == 1.0
    assert window_scale_for(cbis, "mdb001.pgm") == pytest.approx(5.16)


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


def test_card_names_the_pretrained_weights_a_model_started_from(card, tmp_path):
    assert "initialised_from" not in card["training"]  # started at random
    pretrained = tmp_path / "pretrain" / "model.keras"
    pretrained.parent.mkdir()
    pretrained.write_bytes(b"pre-trained weights")
    started = card_of({**SETTINGS, "initialised_from": str(pretrained)}, tmp_path)
    write_card(started, card_path(tmp_path / "model.keras"))
    recorded = read_card(tmp_path / "model.keras")["training"]["initialised_from"]
    assert recorded == {"path": str(pretrained), "sha256": file_sha256(pretrained)}


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
        (lambda c: {k: v for k, v in c.items() if k != "scanning"}, "'scanning' is a required property"),
        (lambda c: {**c, "scanning": {**c["scanning"], "aggregate": {"method": "mean"}}}, "scanning/aggregate/method"),
        (lambda c: {**c, "scanning": {**c["scanning"], "aggregate": {"method": "above_median"}}}, "scanning/aggregate"),
        (lambda c: {**c, "scanning": {**c["scanning"], "aggregate": {"method": "level_difference"}}}, "scanning/aggregate"),
        (
            lambda c: {
                **c,
                "scanning": {
                    **c["scanning"],
                    "aggregate": {"method": "level_difference", "uses_other_breast": False, "plus_max": True},
                },
            },
            "scanning/aggregate",
        ),
        (lambda c: {**c, "scanning": {**c["scanning"], "uses_other_breast": True}}, "scanning/uses_other_breast"),
        (lambda c: {**c, "scanning": {**c["scanning"], "collection": "vindr"}}, "scanning/collection"),
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


def test_a_card_says_whether_its_model_reads_the_surround_channel_and_refuses_to_say_it_half(tmp_path):
    from mammo.stages.scans import scan_name_and_windowing

    scanning = scanning_section("mias", 2.58, {**asdict(Windowing()), "surround": True})
    surround = {**card_of({**SETTINGS, "channels": 2}, tmp_path), "scanning": scanning}
    assert surround["input"]["channels"] == 2 and "3 times wider" in surround["input"]["second_channel"]
    write_card(surround, tmp_path / "model.json")
    assert read_card(tmp_path / "model.keras")["scanning"]["surround"] is True
    film = tmp_path / "mdb001.pgm"
    _, windowing = scan_name_and_windowing(str(film), "mdb001", Windowing(None, None, None, 8, None, None, None, False), scanning)
    assert windowing.surround is True  # from the card, whatever the caller's windowing said
    # one half of the card without the other: refused, naming the file
    half = {**surround, "scanning": {**scanning, "surround": False}}
    (tmp_path / "model.json").write_text(json.dumps(half))
    with pytest.raises(ValueError, match=r"model.json: not a model card \(scanning/surround: False, but input/channels: 2"):
        read_card(tmp_path / "model.keras")
    # a card written before the surround channel: read, its model's windows alone
    before = {key: value for key, value in SCANNING.items() if key != "surround"}
    _, windowing = scan_name_and_windowing(str(film), "mdb001", Windowing(None, None, None, 8, None, None, None, None), before)
    assert windowing.surround is False
