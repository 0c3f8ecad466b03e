"""Hostile input to `mammo scan`'s model and scanning stage: a film cut inside its header, a model that outputs NaN,
an export that is empty, cut short or takes other tiles, a card of another model, a full disk, a symlink at an
output name, and memory that must not grow with the number of films.

The models here are written with ONNX's own helpers (no TensorFlow): tile_graph's inputs and output, a few
operations, built in milliseconds."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import pytest
from stand_in_model import save_stand_in_model

from mammo.heatmap import Windowing
from mammo.inference import check_probabilities, open_engine

onnx = pytest.importorskip("onnx", reason="building test models needs onnx (pip install .[workflow])")
from onnx import TensorProto, helper  # noqa: E402

MAMMO = Path(sys.executable).with_name("mammo")
EXPORT_ENGINES = ("openvino", "onnxruntime")
SCAN_OPTIONS = ("--stride", "20", "--min-tissue", "0")  # many small windows, background ones too


def tile_model(path: Path, tile: int = 299, classes: int = 2, channels: int = 4, poison: float = 0.0) -> Path:
    """An ONNX model with tile_graph's inputs and output: uint8 tiles (n, tile, tile) and contrast (n, 1) in, class
    probabilities (n, classes) out, through one strided convolution of `channels` filters (its input at full size in
    float32 is what a compiled batch shape costs). `poison` is added to the logits (NaN: a model that outputs NaN)."""
    rng = np.random.default_rng(0)
    weights = {
        "kernel": rng.normal(0, 0.01, (channels, 1, 3, 3)).astype(np.float32),
        "dense": rng.normal(0, 1, (channels, classes)).astype(np.float32),
        "shape": np.array([-1, 1, tile, tile], np.int64),
        "poison": np.array([poison], np.float32),
    }
    nodes = [
        helper.make_node("Cast", ["tiles"], ["grey"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["grey", "shape"], ["image"]),
        helper.make_node("Conv", ["image", "kernel"], ["features"], strides=[4, 4]),  # cheap to run
        helper.make_node("Relu", ["features"], ["active"]),
        helper.make_node("GlobalAveragePool", ["active"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("MatMul", ["flat", "dense"], ["scores"]),
        helper.make_node("Mul", ["scores", "contrast"], ["contrasted"]),
        helper.make_node("Add", ["contrasted", "poison"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiles",
        [
            helper.make_tensor_value_info("tiles", TensorProto.UINT8, ["n", tile, tile]),
            helper.make_tensor_value_info("contrast", TensorProto.FLOAT, ["n", 1]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", classes])],
        [onnx.numpy_helper.from_array(value, name) for name, value in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def write_card(model_file: Path, labels: str = "binary", named: str | None = None) -> Path:
    """A valid card beside `model_file`, judging it (or the file `named` instead)."""
    from mammo.card import CBIS_TILE_SCALE, card_path, model_card, scanning_section, write_card

    tiles = model_file.parent / "tiles.tsv"
    tiles.write_text("tile_id\n")
    judged = model_file.with_name(named) if named else model_file
    if named:
        judged.write_bytes(b"other weights")
    settings = {"model": "1.0.0.35", "labels": labels, "epochs": 1, "test_contrast": 1.0}
    engine = {"engine": "openvino", "version": "1", "precision": "float32"}
    scanning = scanning_section("cbis", CBIS_TILE_SCALE, asdict(Windowing()))
    card = model_card(settings, "float32", 1.0, {"fixed": 0.5}, [str(tiles)], [judged], engine, scanning)
    write_card(card, card_path(model_file))
    return card_path(model_file)


def breast_film(path: Path, shape: tuple[int, int]) -> Path:
    """A 16-bit PNG: a smooth grey ramp (compresses to little; every window is scored with --min-tissue 0)."""
    ramp = np.linspace(8000, 50000, shape[1], dtype=np.float64)[None, :] + np.linspace(0, 8000, shape[0])[:, None]
    cv2.imwrite(str(path), ramp.astype(np.uint16))
    return path


def mammo_scan(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MAMMO), "scan", *args], capture_output=True, text=True)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return tile_model(tmp_path_factory.mktemp("model") / "model.onnx")


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, (12, 299, 299), dtype=np.uint8)


# ----------------------------------------------------------------------------- the model's outputs (issue 28, 4)
def test_non_finite_outputs_are_not_probabilities_and_name_the_model():
    with pytest.raises(ValueError, match=r"model.onnx: the model's outputs are not class probabilities \(2 NaN"):
        check_probabilities(np.array([[np.nan, np.nan], [0.3, 0.7]]), "model.onnx")
    with pytest.raises(ValueError, match=r"model.onnx: .*\(1 NaN or infinite"):
        check_probabilities(np.array([[np.inf, 0.0]]), "model.onnx")


def test_scan_with_a_model_that_outputs_nan_fails_naming_it(model, tmp_path):
    poisoned = tile_model(tmp_path / "nan" / "model.onnx", poison=np.nan)
    film = breast_film(tmp_path / "film.png", (700, 700))
    result = mammo_scan(str(film), "--model", str(poisoned), "--out", str(tmp_path / "out"), *SCAN_OPTIONS)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"{poisoned}: the model's outputs are not class probabilities" in result.stderr and "NaN" in result.stderr
    assert not (tmp_path / "out" / "film.regions.json").exists()


# ----------------------------------------------------------------------------- the export itself (issue 28, 5)
@pytest.mark.parametrize("engine", EXPORT_ENGINES)
@pytest.mark.parametrize("damage", ["empty", "cut short"])
def test_an_unreadable_export_is_one_line_naming_it(model, tmp_path, engine, damage):
    broken = tmp_path / "model.onnx"
    broken.write_bytes(b"" if damage == "empty" else model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(ValueError, match=f"{broken}: not a readable ONNX model \\({engine}: ") as error:
        open_engine(broken, engine)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("engine", EXPORT_ENGINES)
def test_an_export_that_takes_other_tiles_is_refused_before_scoring(tmp_path, engine):
    small = tile_model(tmp_path / "small" / "model.onnx", tile=64)
    with pytest.raises(ValueError, match=r"model.onnx: not a tile model of this pipeline: it takes tiles \('n', 64, 64\) uint8"):
        open_engine(small, engine)
    no_contrast = tile_model(tmp_path / "renamed" / "model.onnx")
    renamed = onnx.load(no_contrast)
    renamed.graph.input[1].name = "factor"
    renamed.graph.node[7].input[1] = "factor"
    onnx.save(renamed, no_contrast)
    with pytest.raises(ValueError, match=r"it takes tiles \('n', 299, 299\) uint8, factor \('n', 1\) float32"):
        open_engine(no_contrast, engine)


@pytest.mark.parametrize("engine", EXPORT_ENGINES)
def test_an_export_gives_its_class_count(model, engine):
    assert open_engine(model, engine).classes == 2


# ----------------------------------------------------------------------------- the card (issue 28, 6)
def test_a_card_of_another_model_file_is_refused_naming_both(model, tmp_path):
    beside = tmp_path / "model.onnx"
    beside.write_bytes(model.read_bytes())
    card = write_card(beside, named="other.onnx")
    with pytest.raises(ValueError, match=f"{card}: judged other.onnx, not {beside}: the card of another model"):
        open_engine(beside, "onnxruntime")


@pytest.mark.parametrize("engine", EXPORT_ENGINES)
def test_a_card_with_another_class_count_is_refused_naming_both(model, tmp_path, engine):
    beside = tmp_path / "model.onnx"
    beside.write_bytes(model.read_bytes())
    card = write_card(beside, labels="type")  # normal, calcification, mass: 3 classes
    with pytest.raises(ValueError, match=f"{card}: 3 classes \\(normal, calcification, mass\\), but {beside} gives 2"):
        open_engine(beside, engine)
    write_card(beside)
    assert open_engine(beside, engine).classes == 2  # its own card


# ----------------------------------------------------------------------------- padding (issue 28, 14)
def test_openvino_pads_short_batches_to_one_compiled_shape_with_the_same_probabilities(model, tiles, monkeypatch):
    import openvino

    reference = open_engine(model, "onnxruntime").predictor(1.5)(tiles)
    compiled_shapes = []
    compile_model = openvino.Core.compile_model

    def counted(core, graph, *args, **kwargs):
        compiled_shapes.append(tuple(graph.inputs[0].get_shape()))
        return compile_model(core, graph, *args, **kwargs)

    monkeypatch.setattr(openvino.Core, "compile_model", counted)
    predict = open_engine(model, "openvino").predictor(1.5)
    in_batches = np.concatenate([predict(tiles[:5]), predict(tiles[5:10]), predict(tiles[10:11]), predict(tiles[11:])])
    assert in_batches.shape == reference.shape
    assert np.abs(in_batches - reference).max() < 1e-6  # the real rows of a padded batch: their own probabilities
    assert np.abs(predict(tiles[:2]) - in_batches[:2]).max() < 1e-6
    assert compiled_shapes == [(5, 299, 299)]  # one compiled model serves every batch


# ----------------------------------------------------------------------------- a film cut in its header (issue 28, 2)
@pytest.mark.parametrize("as_folder", [False, True], ids=["files", "folder"])
def test_a_dicom_cut_inside_its_header_fails_alone(model, tmp_path, as_folder):
    """A film cut inside its file meta header (its group length's value): reading its identity raised struct.error /
    BytesLengthException before any film was analysed (in a folder: while the folder was listed); now it is one
    failed film among the others."""
    from mammo.io.dicom import write_dicom

    whole = tmp_path / "whole.dcm"
    write_dicom(whole, np.full((700, 700), 30000, np.uint16), "Mass-Test_P_00001_LEFT_CC", "1.2", "1.2.3")
    folder = tmp_path / "films"
    folder.mkdir()
    cut = folder / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[:142])  # 128-byte preamble, DICM, then 2 bytes into (0002,0000)'s value
    film = breast_film(folder / "film.png", (700, 700))
    inputs = [str(folder)] if as_folder else [str(cut), str(film)]
    result = mammo_scan(*inputs, "--model", str(model), "--out", str(tmp_path / "out"), *SCAN_OPTIONS)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "1 of 2 scans could not be analysed" in result.stderr and f"{cut}: not a readable" in result.stderr
    assert len([line for line in result.stderr.splitlines() if "could not be analysed" in line]) == 1  # one line, no traceback
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "film.heatmap.npy",
        "film.overlay.png",
        "film.regions.json",
    ]


# ----------------------------------------------------------------------------- writing the outputs (issue 28, 7)
def analyse_film(film: Path, model: Path, out: Path, force: bool = False) -> list[dict]:
    from mammo.heatmap import Windowing
    from mammo.stages.scans import analyse_scans

    windowing = Windowing(stride=20, scale=None, min_tissue=0.0)
    return analyse_scans([(str(film), None, windowing)], str(model), str(out), inference={"engine": "openvino"}, force=force)


def test_a_full_disk_leaves_no_output_of_the_scan_and_the_rerun_writes_them(model, tmp_path, monkeypatch, full_disk):
    film = breast_film(tmp_path / "film.png", (700, 700))
    full_disk("overlay")  # the heatmap is written first
    with pytest.raises(OSError, match=r"film.overlay.png: could not write \(No space left on device\)"):
        analyse_film(film, model, tmp_path / "out")
    monkeypatch.undo()
    assert list((tmp_path / "out").iterdir()) == []  # no heatmap, no partial file
    analyse_film(film, model, tmp_path / "out")  # the rerun needs no --force
    assert len(list((tmp_path / "out").iterdir())) == 3


def test_a_symlink_at_an_output_name_is_never_followed_out_of_the_folder(model, tmp_path):
    film = breast_film(tmp_path / "film.png", (700, 700))
    (tmp_path / "outside").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "film.heatmap.npy").symlink_to(tmp_path / "outside" / "stolen.npy")  # dangling
    (tmp_path / "out" / ".film.regions.json.partial").symlink_to(tmp_path / "outside" / "stolen.json")

    def everything() -> list[str]:
        return sorted(str(path.relative_to(tmp_path)) for path in tmp_path.rglob("*"))

    before = everything()
    with pytest.raises(ValueError, match=r"film.heatmap.npy exist\(s\): not overwritten"):
        analyse_film(film, model, tmp_path / "out")
    assert everything() == before
    analyse_film(film, model, tmp_path / "out", force=True)  # replaces the link itself
    assert not (tmp_path / "out" / "film.heatmap.npy").is_symlink() and np.load(tmp_path / "out" / "film.heatmap.npy").ndim == 2
    assert sorted(set(everything()) - set(before)) == ["out/film.overlay.png", "out/film.regions.json"]
    assert [path.name for path in (tmp_path / "outside").iterdir()] == []


# ----------------------------------------------------------------------------- memory over many films (issue 28, 14)
PEAK_RSS = (
    "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
)
MEMORY_MARGIN_MB = 30  # measured: +4 MB (OpenVINO), -5 MB (ONNX Runtime); +63 MB for OpenVINO before padding


@pytest.fixture(scope="module")
def many_films(tmp_path_factory) -> Path:
    """300 small films whose widths give 6 to 44 windows each (stride 20, scale 2): most last-batch sizes of 32 are met."""
    folder = tmp_path_factory.mktemp("films")
    for number in range(300):
        breast_film(folder / f"film{number:03d}.png", (300, 310 + 10 * (number % 20)))
    return folder


def peak_rss_mb(films: list[Path], model: Path, engine: str, out: Path) -> float:
    """Peak resident memory of `mammo scan FILMS` in a process of its own."""
    command = [str(MAMMO), "scan", *map(str, films), "--model", str(model), "--engine", engine, "--out", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, *command, *SCAN_OPTIONS, "--scale", "2", "--threads", "2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout) / 1024  # kilobytes on Linux


@pytest.fixture(scope="module")
def keras_model(tmp_path_factory) -> Path:
    """A Keras tile model as small as `tile_model` (one strided convolution), for the TensorFlow engine."""
    return save_stand_in_model(tmp_path_factory.mktemp("keras") / "model.keras")


@pytest.mark.parametrize("engine", [*EXPORT_ENGINES, "tensorflow"])
def test_scan_memory_does_not_grow_with_the_number_of_films(many_films, model, tmp_path, engine, request):
    model = request.getfixturevalue("keras_model") if engine == "tensorflow" else model
    films = sorted(many_films.iterdir())
    few = peak_rss_mb(films[-10:], model, engine, tmp_path / "few")  # the 10 widest: a film's own memory is in both
    many = peak_rss_mb(films, model, engine, tmp_path / "many")
    assert many <= few + MEMORY_MARGIN_MB, f"{engine}: {few:.0f} MB for 10 films, {many:.0f} MB for 300"
