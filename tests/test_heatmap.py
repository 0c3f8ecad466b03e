"""Whole-scan analysis: windows at the training geometry, breast segmentation, heatmaps, regions, scan-level metrics."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_run import ROOT
from stand_in_model import save_stand_in_model

from mammo.demo import anatomy
from mammo.evaluate import p_abnormal
from mammo.heatmap import (
    Windowing,
    batches,
    breast_mask,
    overlay,
    regions,
    score_scan,
    thumbnail,
    tissue_windows,
    top_regions,
    window_starts,
    working_image,
)
from mammo.intensity import od_to_uint16, to_uint8
from mammo.io.mias import MIAS_SCALE
from mammo.scan_eval import circle_mask, froc, lesions_hit, scan_metrics, scan_targets, sensitivity_at
from mammo.sources import SOURCES, window_scale_of, windowing_scale
from mammo.tiles import TILE_SIZE, downscale, upscale

MAMMO = Path(sys.executable).with_name("mammo")
LESION_LEVEL = 250  # 8-bit value of the synthetic lesion below; the tissue stays under it


@pytest.fixture(scope="module")
def one_lesion_scan() -> tuple[np.ndarray, np.ndarray]:
    """A generated breast (3000x1800, chest wall left) with one mass, and the mass mask."""
    rng = np.random.default_rng(4)
    od, breast = anatomy.normal_breast((3000, 1800), rng, chest_wall_left=True)
    lesion = anatomy.add_mass(od, breast, rng, malignant=True, size=260)
    scan = od_to_uint16(np.maximum(od, 0.85))  # tissue below the lesion level
    scan[lesion.mask] = LESION_LEVEL << 8
    return scan, lesion.mask


def lesion_detector(calls: list | None = None):
    """A stand-in model: P(abnormal) = share of lesion-level pixels in the window (records each batch)."""

    def predict(batch: np.ndarray) -> np.ndarray:
        assert batch.dtype == np.uint8 and batch.shape[1:] == (TILE_SIZE, TILE_SIZE)
        if calls is not None:
            calls.append(batch.copy())
        share = (batch >= LESION_LEVEL).mean(axis=(1, 2)) * 4  # proportional: windows holding more lesion score higher
        p = np.clip(share, 0, 1)
        return np.stack([1 - p, p], axis=1)

    return predict


def test_windows_equal_training_tiles_cut_at_598_and_downscaled():
    rng = np.random.default_rng(0)
    scan = rng.integers(0, 65536, (1400, 1000)).astype(np.uint16)
    image8 = working_image(scan, Windowing())
    for top, left in [(0, 0), (300, 200), (802, 402)]:  # even offsets
        tile = downscale(to_uint8(scan[top : top + 598, left : left + 598]))
        window = image8[top // 2 : top // 2 + TILE_SIZE, left // 2 : left // 2 + TILE_SIZE]
        assert np.abs(tile.astype(int) - window.astype(int)).max() <= 1


def test_window_starts_cover_the_axis():
    assert window_starts(299, 150).tolist() == [0]
    assert window_starts(600, 150).tolist() == [0, 150, 301]
    starts = window_starts(1000, 74)
    assert starts[0] == 0 and starts[-1] == 1000 - TILE_SIZE and np.all(np.diff(starts) <= 1.5 * 74)
    assert window_starts(700, 150).tolist() == [0, 150, 300, 401]  # a gap over half a step gets its own window


def test_mias_windows_cover_the_film_area_of_its_training_tiles():
    """mini-MIAS tiles are 299 pixels of the film upscaled 2.58x (model scale, half the CBIS-DDSM scale); a
    whole-scan window must see the same film area, so the film is worked on at 2.58x, not 1.29x."""
    rng = np.random.default_rng(1)
    film = (rng.integers(0, 256, (1024, 1024)) * 257).astype(np.uint16)
    windowing = Windowing(scale=windowing_scale(MIAS_SCALE))
    image8 = working_image(film, windowing)
    tiled = to_uint8(upscale(film, MIAS_SCALE))  # what mias_tiles cuts its 299 tiles from
    assert image8.shape == tiled.shape == (2642, 2642)
    assert np.abs(image8.astype(int) - tiled.astype(int)).mean() < 1
    assert windowing.factor == pytest.approx(MIAS_SCALE)
    assert working_image(np.zeros((200, 100), np.uint16), Windowing()).shape == (TILE_SIZE, TILE_SIZE)  # padded


def test_breast_mask_drops_labels_and_borders(one_lesion_scan):
    scan, _ = one_lesion_scan
    with_label = scan.copy()
    with_label[100:260, 1300:1700] = 65535  # a film label, away from the breast
    with_label[:30, :] = 65000  # a bright scanner border touching the breast
    image8 = working_image(with_label, Windowing())
    mask = breast_mask(image8)
    assert not mask[50:130, 650:850].any() and not mask[:10, 700:].any()
    assert mask[750, 200] and 0.3 < mask.mean() < 0.8


def test_heatmap_has_the_scan_aspect_and_its_maximum_on_the_lesion(one_lesion_scan):
    scan, lesion = one_lesion_scan
    windowing = Windowing(stride=149, min_tissue=0.5)
    result = score_scan(scan, lesion_detector(), windowing)
    rows, cols = result.heatmap.shape
    cell = windowing.step / windowing.factor  # scan pixels per heatmap cell
    assert abs(rows * cell - scan.shape[0]) < cell and abs(cols * cell - scan.shape[1]) < cell
    peak = np.unravel_index(np.nanargmax(result.heatmap), result.heatmap.shape)
    peak_box = (int(peak[0] * cell), int(peak[1] * cell), int((peak[0] + 1) * cell), int((peak[1] + 1) * cell))
    assert lesion[peak_box[0] : peak_box[2], peak_box[1] : peak_box[3]].any()
    best = regions(result, windowing)[0]
    assert lesions_hit(best["box"], {"mass": lesion}) == ["mass"] and best["score"] > 0.5


def test_background_windows_are_skipped_and_memory_is_batched(one_lesion_scan):
    scan, _ = one_lesion_scan
    calls: list[np.ndarray] = []
    windowing = Windowing(stride=299, min_tissue=0.75, batch_size=7)
    result = score_scan(scan, lesion_detector(calls), windowing)
    assert 0 < len(result.scores) < result.windows_total  # the background half is not scored
    assert all(len(batch) <= 7 for batch in calls) and sum(map(len, calls)) == len(result.scores)
    assert all((batch > 0).mean() >= 0.7 for batch in np.concatenate(calls)[:, None])  # every window mostly breast
    assert np.isnan(result.heatmap[:, -1]).all()  # the far side of the scan is background


def test_tissue_windows_thresholds():
    mask = np.zeros((600, 600), bool)
    mask[:, :300] = True
    corners, total = tissue_windows(mask, Windowing(stride=299, min_tissue=0.9))
    assert total == 9 and corners[:, 1].max() == 0
    assert len(tissue_windows(mask, Windowing(stride=299, min_tissue=0.0))[0]) == 9


def test_batches_are_views_of_the_image():
    image = np.arange(400 * 500, dtype=np.uint32).reshape(400, 500).astype(np.uint8)
    corners = np.array([[0, 0], [10, 20], [101, 201]])
    (batch,) = list(batches(image, corners, Windowing(batch_size=8)))
    for window, (top, left) in zip(batch, corners):
        assert np.array_equal(window, image[top : top + TILE_SIZE, left : left + TILE_SIZE])


def test_top_regions_suppress_overlaps():
    windows = np.array([[0, 0, 100, 100], [10, 10, 110, 110], [200, 200, 300, 300], [0, 90, 100, 190]])
    scores = np.array([0.9, 0.8, 0.7, 0.6])
    assert top_regions(windows, scores, 5, 0.25) == [0, 2, 3]
    assert top_regions(windows, scores, 2, 0.25) == [0, 2]
    assert top_regions(windows, scores, 5, 1.0) == [0, 1, 2, 3]


def test_temperature_one_keeps_probabilities_and_higher_softens():
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.5, 0.2]])
    probabilities[2] = [0.5, 0.5]
    assert np.allclose(p_abnormal(probabilities, 1.0), 1 - probabilities[:, 0])
    softer = p_abnormal(probabilities, 3.0)
    assert softer[0] > 0.1 and softer[1] < 0.8 and np.isclose(softer[2], 0.5)
    five = np.array([[0.6, 0.1, 0.1, 0.1, 0.1]])
    assert np.isclose(p_abnormal(five, 1.0)[0], 0.4)


def test_overlay_is_the_thumbnail_size(one_lesion_scan):
    scan, _ = one_lesion_scan
    result = score_scan(scan, lesion_detector(), Windowing())
    image8, factor = thumbnail(scan, 512)
    picture = overlay(image8, factor, result.heatmap, regions(result, Windowing()))
    assert picture.shape == (*image8.shape, 3) and max(image8.shape) == 512
    assert picture[..., 2].astype(int).sum() != picture[..., 0].astype(int).sum()  # heat is coloured


# ----------------------------------------------------------------------------- scan-level evaluation
def test_froc_and_sensitivity_at_rates():
    scans = pd.DataFrame({"scan_id": ["a", "b", "c", "d"], "lesions": ["a1", "b1;b2", "", ""]})
    regions_table = pd.DataFrame(
        {
            "scan_id": ["a", "c", "b", "d", "b", "c"],
            "score": [0.9, 0.8, 0.7, 0.6, 0.5, 0.4],
            "lesions_hit": ["a1", "", "b1", "", "b2;b1", ""],
        }
    )
    curve = froc(regions_table, scans, "lesions_hit")
    assert curve["sensitivity"].tolist() == [1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0, 1.0]
    assert curve["fp_per_scan"].tolist() == [0, 0.25, 0.25, 0.5, 0.5, 0.75]
    assert sensitivity_at(curve, 0.25) == round(2 / 3, 4) and sensitivity_at(curve, 1) == 1.0
    assert sensitivity_at(curve.assign(sensitivity=None), 1) is None


def test_scan_metrics_against_scikit_learn():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 40)
    scores = np.clip(labels * 0.4 + rng.random(40) * 0.6, 0, 1)
    scans = pd.DataFrame(
        {
            "scan_id": [f"s{i}" for i in range(40)],
            "label_normal": labels,
            "max_score": scores,
            "windows_scored": 5,
            "lesions": [f"l{i}" if y else "" for i, y in enumerate(labels)],
        }
    )
    top = pd.DataFrame(
        {
            "scan_id": scans["scan_id"],
            "rank": 1,
            "score": scores,
            "lesions_hit": [f"l{i}" if y and i % 2 else "" for i, y in enumerate(labels)],
            "lesions_centred": [f"l{i}" if y and i % 2 else "" for i, y in enumerate(labels)],
        }
    )
    result, _ = scan_metrics(scans, top, 0.5)
    assert result["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert "ci95" not in result and "women" not in result  # without bootstrap replicates
    # with them: intervals over women, and each woman (two films here) scored by her higher film
    women = scans.assign(patient_id=[f"w{i // 2}" for i in range(40)])
    resampled, _ = scan_metrics(women, top, 0.5, replicates=200, seed=2)
    low, high = resampled["ci95"]["roc_auc"]
    assert low < resampled["roc_auc"] < high and resampled["roc_auc"] == result["roc_auc"]
    per_woman = women.groupby("patient_id")[["label_normal", "max_score"]].max()
    assert resampled["women"]["n"] == 20
    assert resampled["women"]["roc_auc"] == pytest.approx(roc_auc_score(per_woman["label_normal"], per_woman["max_score"]))
    assert resampled["women"]["ci95"]["roc_auc"][0] < resampled["women"]["roc_auc"]
    # per class of lesion: here the top region finds every odd-numbered lesion (CIRC) and no even-numbered one (CALC)
    classes = {f"l{i}": "CIRC" if i % 2 else "CALC" for i in range(40)}
    by_class = scan_metrics(scans, top, 0.5, lesion_classes=classes)[0]["localisation"]["by_class"]
    assert by_class["CIRC"] == {"lesions": int(labels[1::2].sum()), "top_region_on_lesion": 1.0}
    assert by_class["CALC"] == {"lesions": int(labels[0::2].sum()), "top_region_on_lesion": 0.0}
    hits = [i % 2 == 1 for i, y in enumerate(labels) if y]
    assert result["localisation"]["top_region_on_lesion"] == pytest.approx(np.mean(hits), abs=1e-4)
    assert result["localisation"]["abnormal_scans_with_outline"] == labels.sum()
    # per breast density: each density's films ranked among themselves; a film of no known density kept apart
    densities = {f"s{i}": "D" if i < 20 else "F" for i in range(38)}
    by_density = scan_metrics(scans, top, 0.5, densities=densities)[0]["by_density"]
    assert sorted(by_density) == ["D", "F", "unknown"] and by_density["unknown"]["n"] == 2
    assert by_density["D"]["n"] == 20 and by_density["D"]["abnormal"] == labels[:20].sum()
    assert by_density["D"]["roc_auc"] == pytest.approx(roc_auc_score(labels[:20], scores[:20]))
    assert by_density["F"]["roc_auc"] == pytest.approx(roc_auc_score(labels[20:38], scores[20:38]))


def test_scan_targets_take_test_patients_only():
    tiles = pd.DataFrame(
        {"patient_id": ["cbis:P1", "cbis:P2", "ddsm:A-1", "ddsm:B-2"], "split": ["test", "train", "test", "val"]}
    )
    rois = pd.DataFrame(
        {"patient_id": ["P1", "P1", "P2"], "scan_id": ["P1_L", "P1_L", "P2_R"], "image_file_path": ["x.dcm", "x.dcm", "y.dcm"]}
    )
    scans = pd.DataFrame({"patient_id": ["A-1", "A-1", "B-2"], "scan_id": ["A.1", "A.2", "B.1"], "path": ["a1", "a2", "b1"]})
    mias = pd.DataFrame({"refnum": ["mdb001"], "patient_id": ["mias:001"], "path": ["m.pgm"], "label_normal": [1]})
    targets = scan_targets(tiles, rois, scans, mias, "root", 2.58)
    assert targets["scan_id"].tolist() == ["mias:mdb001", "A.1", "A.2", "P1_L"]
    assert targets.set_index("scan_id").loc["mias:mdb001", "scale"] == pytest.approx(5.16)  # windows as the 2.58x tiles
    assert targets.set_index("scan_id")["label_normal"].to_dict() == {"mias:mdb001": 1, "A.1": 0, "A.2": 0, "P1_L": 1}
    # a recipe with DDSM's outlined cases: a test woman's outlined views are abnormal targets, once per view
    tiles.loc[len(tiles)] = ["ddsm:C-3", "test"]
    outlined = pd.DataFrame({"patient_id": ["C-3", "C-3", "D-4"], "scan_id": ["C.1", "C.1", "D.1"], "path": ["c1", "c1", "d1"]})
    targets = scan_targets(tiles, rois, scans, mias, "root", 2.58, outlined)
    assert targets.set_index("scan_id")["label_normal"].to_dict() == {"mias:mdb001": 1, "A.1": 0, "A.2": 0, "C.1": 1, "P1_L": 1}
    assert targets.set_index("scan_id").loc["C.1", "source"] == "ddsm"


def test_circle_mask_and_lesion_hits():
    mask = circle_mask((100, 100), 50, 60, 10)
    assert mask[50, 60] and not mask[50, 75] and mask.sum() == pytest.approx(np.pi * 100, rel=0.15)
    assert lesions_hit((0, 0, 45, 100), {"c": mask}) == ["c"]
    assert lesions_hit((0, 0, 39, 100), {"c": mask}) == []


# ----------------------------------------------------------------------------- command line
def test_cli_clear_errors_for_an_unreadable_scan_and_a_foreign_model(tmp_path):
    import keras

    bad_scan = tmp_path / "broken.dcm"
    bad_scan.write_bytes(b"not a dicom")
    foreign = tmp_path / "foreign.keras"
    inputs = keras.Input((64, 64, 3))
    keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(inputs))).save(foreign)
    result = subprocess.run([MAMMO, "scan", str(bad_scan), "--model", str(foreign)], capture_output=True, text=True)
    assert result.returncode == 1 and str(bad_scan) in result.stderr
    good_scan = tmp_path / "scan.png"
    import cv2

    cv2.imwrite(str(good_scan), np.full((700, 600), 30000, np.uint16))
    result = subprocess.run([MAMMO, "scan", str(good_scan), "--model", str(foreign)], capture_output=True, text=True)
    assert result.returncode == 1 and "foreign.keras" in result.stderr and "(None, 64, 64, 3)" in result.stderr
    result = subprocess.run(
        [MAMMO, "scan", str(good_scan), "--model", str(tmp_path / "none.keras")], capture_output=True, text=True
    )
    assert result.returncode == 1 and "model file not found" in result.stderr


def test_cli_writes_heatmap_overlay_and_regions(one_lesion_scan, tmp_path):
    import cv2

    save_stand_in_model(tmp_path / "model.keras")  # random weights: the outputs' form is under test, not the model
    write_test_card(tmp_path, temperature=2.0, test_contrast=1.5)
    scan, _ = one_lesion_scan
    cv2.imwrite(str(tmp_path / "scan.png"), scan[::2, ::2])
    result = subprocess.run(
        [
            MAMMO,
            "scan",
            str(tmp_path / "scan.png"),
            "--model",
            str(tmp_path / "model.keras"),
            "--out",
            str(tmp_path / "out"),
            "--top",
            "3",
        ],
        capture_output=True,
        text=True,
        # TensorFlow announces oneDNN at start-up only where it turns it on by default (AVX-512 CPUs): asked for, it
        # does on every x86 CPU, so the start-up lines are there to be kept off the terminal
        env={**os.environ, "TF_ENABLE_ONEDNN_OPTS": "1"},
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out/scan.regions.json").read_text())
    heatmap = np.load(tmp_path / "out/scan.heatmap.npy")
    assert summary["shape"] == [1500, 900] and summary["windows_scored"] > 0 and len(summary["regions"]) <= 3
    assert all(region["calibrated"] is not None for region in summary["regions"])
    assert summary["temperature"] == 2.0 and summary["test_contrast"] == 1.5  # both from the model card
    assert summary["inference"]["engine"] == "tensorflow"  # not exported: only TensorFlow runs model.keras
    assert "oneDNN" not in result.stderr + result.stdout and "oneDNN" in (tmp_path / "out/tensorflow.log").read_text()
    assert abs(heatmap.shape[0] / heatmap.shape[1] - 1500 / 900) < 0.3
    assert cv2.imread(str(tmp_path / "out/scan.overlay.png")).shape[:2] == (1024, 614)


@pytest.fixture(scope="module")
def scan_cli_inputs(one_lesion_scan, tmp_path_factory) -> Path:
    """A folder with a scan (16-bit PNG), a random-weight tile model and a logits model beside it, each with its
    export: `mammo scan` runs them on OpenVINO, as it does every exported model, without starting TensorFlow (the
    Keras path has its own test above)."""
    import cv2
    import keras

    from mammo.inference import export_onnx

    folder = save_stand_in_model(tmp_path_factory.mktemp("scan_cli") / "model.keras").parent
    inputs = keras.Input((TILE_SIZE, TILE_SIZE, 1))
    pooled = keras.layers.GlobalAveragePooling2D()(keras.layers.Rescaling(1.0)(inputs))
    (folder / "logits").mkdir()
    keras.Model(inputs, keras.layers.Dense(2, bias_initializer=keras.initializers.Constant([20.0, -20.0]))(pooled)).save(
        folder / "logits" / "model.keras"
    )
    for model in (folder / "model.keras", folder / "logits" / "model.keras"):
        export_onnx(model, model.with_suffix(".onnx"))
    cv2.imwrite(str(folder / "scan.png"), one_lesion_scan[0][::2, ::2])
    cv2.imwrite(str(folder / "blank.png"), np.zeros((50, 50), np.uint16))
    return folder


def scan_with(model: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """`mammo scan ARGS --model MODEL` (run in `cwd`), its output captured."""
    return subprocess.run([MAMMO, "scan", *args, "--model", str(model)], capture_output=True, text=True, cwd=cwd)


def run_scan(folder: Path, *args: str, model: str = "model.keras") -> subprocess.CompletedProcess:
    return scan_with(folder / model, *args, cwd=folder)


def copy_model(inputs: Path, folder: Path) -> Path:
    """The stand-in model and its export copied into `folder`: its model.keras."""
    for name in ("model.keras", "model.onnx"):
        shutil.copy(inputs / name, folder / name)
    return folder / "model.keras"


@pytest.mark.parametrize(
    "option, value",
    [
        ("--stride", "0"),
        ("--stride", "-5"),
        ("--scale", "0"),
        ("--batch-size", "0"),
        ("--min-tissue", "2"),
        ("--min-tissue", "-1"),
        ("--top", "0"),
    ],
)
def test_cli_refuses_values_that_make_no_sense(scan_cli_inputs, option, value):
    result = run_scan(scan_cli_inputs, "scan.png", option, value, "--out", "never")
    assert result.returncode == 2 and option in result.stderr and not (scan_cli_inputs / "never").exists()


def test_cli_says_when_nothing_could_be_scored(scan_cli_inputs):
    result = run_scan(scan_cli_inputs, "blank.png", "--out", "blank_out")
    assert result.returncode == 1 and "blank.png" in result.stderr and "nothing scored" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_refuses_a_model_that_gives_logits(scan_cli_inputs):
    result = run_scan(scan_cli_inputs, "scan.png", "--out", "logits_out", model="logits/model.keras")
    assert result.returncode == 1 and "not class probabilities" in result.stderr and "Traceback" not in result.stderr


def write_test_card(
    folder: Path,
    temperature: float = 1.0,
    test_contrast: float = 1.0,
    collection: str = "cbis",
    tile_scale: float = 0.5,
    **windowing,
) -> dict:
    """A valid model card beside folder/model.keras and its export where there is one (its tile table: a one-line
    file), its tiles cut from `collection`'s films resized by `tile_scale`, judged with Windowing's defaults but the
    `windowing` given."""
    from mammo.card import card_path, model_card, scanning_section, write_card

    (folder / "tiles.tsv").write_text("tile_id\n")
    settings = {"model": "1.0.0.35", "labels": "binary", "epochs": 1, "test_contrast": test_contrast}
    engine = {"engine": "tensorflow", "version": "3", "precision": "float32"}
    card = model_card(
        settings,
        "float32",
        temperature,
        {"fixed": 0.5, "best_f1": 0.3},
        [str(folder / "tiles.tsv")],
        [path for path in (folder / "model.keras", folder / "model.onnx") if path.exists()],
        engine,
        scanning_section(collection, tile_scale, {**asdict(Windowing()), **windowing}),
    )
    write_card(card, card_path(folder / "model.keras"))
    return card


@pytest.mark.parametrize(
    "card, problem",
    [
        ("{}", "'format' is a required property"),
        ("[1, 2]", "is not of type 'object'"),
        ("not json", "not JSON"),
        ("negative temperature", "temperature"),
    ],
)
def test_cli_names_a_bad_model_card_before_scoring(scan_cli_inputs, tmp_path, card, problem):
    copy_model(scan_cli_inputs, tmp_path)
    if card == "negative temperature":
        valid = write_test_card(tmp_path)
        card = json.dumps({**valid, "temperature": -1})
    (tmp_path / "model.json").write_text(card)
    result = scan_with(tmp_path / "model.keras", str(scan_cli_inputs / "scan.png"), "--out", str(tmp_path / "out"))
    assert result.returncode == 1 and "model.json: not a model card" in result.stderr and problem in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_cli_takes_contrast_from_the_card_unless_told(scan_cli_inputs, tmp_path):
    copy_model(scan_cli_inputs, tmp_path)
    write_test_card(tmp_path, test_contrast=1.8)
    for extra, expected in (((), 1.8), (("--contrast", "1.2"), 1.2)):
        out = tmp_path / f"out{expected}"
        result = scan_with(tmp_path / "model.keras", str(scan_cli_inputs / "scan.png"), "--out", str(out), *extra)
        assert result.returncode == 0, result.stderr
        assert json.loads((out / "scan.regions.json").read_text())["test_contrast"] == expected
    # no card: contrast 1.0, uncalibrated, and it says so
    result = run_scan(scan_cli_inputs, "scan.png", "--out", str(tmp_path / "bare"))
    assert result.returncode == 0 and "no model.json beside" in result.stdout + result.stderr
    summary = json.loads((tmp_path / "bare" / "scan.regions.json").read_text())
    assert summary["test_contrast"] == 1.0 and summary["temperature"] is None


def test_cli_never_overwrites_without_force(scan_cli_inputs, tmp_path):
    out = tmp_path / "out"
    first = run_scan(scan_cli_inputs, "scan.png", "--out", str(out))
    assert first.returncode == 0, first.stderr
    before = (out / "scan.regions.json").read_bytes()
    (out / "scan.regions.json").write_text("{}")
    again = run_scan(scan_cli_inputs, "scan.png", "--out", str(out))
    assert again.returncode == 1 and "not overwritten" in again.stderr and (out / "scan.regions.json").read_text() == "{}"
    forced = run_scan(scan_cli_inputs, "scan.png", "--out", str(out), "--force")
    assert (
        forced.returncode == 0
        and json.loads((out / "scan.regions.json").read_text())["windows_scored"] == json.loads(before)["windows_scored"]
    )


def test_cli_reports_a_failed_overlay_write(scan_cli_inputs, tmp_path):
    out = tmp_path / "out"
    (out / "scan.overlay.png").mkdir(parents=True)  # the PNG cannot be written there
    result = run_scan(scan_cli_inputs, "scan.png", "--out", str(out), "--force")
    assert result.returncode == 1 and "scan.overlay.png: could not write" in result.stderr


def test_cli_refuses_two_scans_that_would_share_outputs(scan_cli_inputs, tmp_path):
    """Every CBIS-DDSM full mammogram is 000000.dcm: the second would silently replace the first's outputs."""
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        shutil.copy(scan_cli_inputs / "scan.png", tmp_path / folder / "000000.png")
    result = run_scan(
        scan_cli_inputs, str(tmp_path / "a/000000.png"), str(tmp_path / "b/000000.png"), "--out", str(tmp_path / "out")
    )
    assert result.returncode == 1 and "outputs named 000000" in result.stderr and not (tmp_path / "out").exists()


def test_cli_scores_every_film_of_a_mias_archive(scan_cli_inputs, demo_root, tmp_path):
    import tarfile

    films = sorted((demo_root / "mias").glob("*.pgm"))[:2]
    info = "\n".join(
        line
        for line in (demo_root / "mias" / "Info.txt").read_text().splitlines()
        if not line.startswith("mdb") or line[:6] in {f.stem for f in films}
    )
    (tmp_path / "Info.txt").write_text(info + "\n")
    with tarfile.open(tmp_path / "all-mias.tar.gz", "w:gz") as tar:
        for path in [tmp_path / "Info.txt", *films]:
            tar.add(path, arcname=f"all-mias/{path.name}")
    result = run_scan(scan_cli_inputs, str(tmp_path / "all-mias.tar.gz"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").glob("*.regions.json")) == [f"{f.stem}.regions.json" for f in films]
    assert "2 of 2 scans analysed" in result.stdout + result.stderr  # the summary table
    summary = json.loads((tmp_path / "out" / f"{films[0].stem}.regions.json").read_text())
    assert summary["scale"] == pytest.approx(5.16) and summary["windows_scored"] > 0


def test_cli_windows_each_film_as_the_model_card_says_and_options_override_it(scan_cli_inputs, demo_root, tmp_path):
    """A model trained on mini-MIAS films at their own scale (1.0) windows a film at 2.0, not at the 5.16 a PGM was
    guessed at, with the stride, tissue share and muscle choice it was judged with; an option given overrides each."""
    copy_model(scan_cli_inputs, tmp_path)
    write_test_card(tmp_path, collection="mias", tile_scale=1.0, stride=150, min_tissue=0.5, skip_muscle=False, top=3)
    film = str(demo_root / "mias" / "mdb001.pgm")
    result = scan_with(tmp_path / "model.keras", film, "--out", str(tmp_path / "card"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "guessed" not in result.stderr
    summary = json.loads((tmp_path / "card" / "mdb001.regions.json").read_text())
    assert summary["scale"] == 2.0 and summary["stride"] == 150 and len(summary["regions"]) <= 3
    assert summary["film_score"] == summary["max_score"] and summary["aggregate"] == {"method": "max"}
    options = ("--scale", "3", "--stride", "400", "--min-tissue", "0.6", "--skip-muscle", "--top", "8")
    result = scan_with(tmp_path / "model.keras", film, "--out", str(tmp_path / "options"), *options)
    assert result.returncode == 0, result.stderr[-2000:]
    told = json.loads((tmp_path / "options" / "mdb001.regions.json").read_text())
    assert told["scale"] == 3 and told["stride"] == 400 and told["windows_scored"] != summary["windows_scored"]
    help_text = subprocess.run([MAMMO, "scan", "--help"], capture_output=True, text=True).stdout
    assert help_text.count("the model card's") >= 4  # --stride, --min-tissue, --skip-muscle, --top (and --contrast)


def test_cli_with_a_card_of_format_1_guesses_the_scale_and_says_so(scan_cli_inputs, demo_root, tmp_path):
    from mammo.card import FORMAT_1, INPUT_1

    copy_model(scan_cli_inputs, tmp_path)
    card = write_test_card(tmp_path, collection="mias", tile_scale=1.0)
    older = {key: value for key, value in card.items() if key != "scanning"} | {"format": FORMAT_1, "input": INPUT_1}
    (tmp_path / "model.json").write_text(json.dumps(older))
    result = scan_with(tmp_path / "model.keras", str(demo_root / "mias" / "mdb001.pgm"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    (warning,) = [line for line in result.stderr.splitlines() if "guessed" in line]
    assert warning.startswith("UserWarning: ") and "no model card with a scanning section" in warning
    assert json.loads((tmp_path / "out" / "mdb001.regions.json").read_text())["scale"] == pytest.approx(5.16)


# ----------------------------------------------------------------------------- films paired by woman
def test_films_are_paired_by_woman_side_and_view(tmp_path):
    """mini-MIAS by number (mdb(2k-1) right, mdb(2k) left); DICOM by PatientID and ImageLaterality (else
    Laterality) and ViewPosition; CBIS-DDSM and DDSM by their identity; a file that tells no woman and side alone."""
    from mammo.io.dicom import write_dicom
    from mammo.sources import film_breast, hanging

    pixels = np.zeros((8, 8), np.uint16)
    for name, header in {
        "a.dcm": {"ImageLaterality": "R", "ViewPosition": "CC"},
        "b.dicom": {"ImageLaterality": "L", "ViewPosition": "CC"},
        "c.dcm": {"Laterality": "L", "ViewPosition": "MLO"},
        "d.dcm": {"ViewPosition": "CC"},  # no side: not paired
    }.items():
        write_dicom(tmp_path / name, pixels, "woman 7", "1.2", "1.3", header=header)
    write_dicom(tmp_path / "000000.dcm", pixels, "Calc-Test_P_00038_LEFT_MLO", "1.2", "1.3")
    dicoms = [str(tmp_path / name) for name in ("c.dcm", "d.dcm", "b.dicom", "a.dcm", "000000.dcm")]
    films = ["all-mias/mdb004.pgm", "all-mias/mdb001.pgm", "all-mias/mdb002.pgm", "scan.png", "B_3024_1.RIGHT_CC.LJPEG"]
    women, alone = hanging(films + dicoms)
    assert women == {
        "B_3024_1": [("CC", "B_3024_1.RIGHT_CC.LJPEG", None)],
        "P_00038": [("MLO", None, dicoms[4])],
        "mias:001": [("MLO", "all-mias/mdb001.pgm", "all-mias/mdb002.pgm")],
        "mias:002": [("MLO", None, "all-mias/mdb004.pgm")],
        "woman 7": [("CC", dicoms[3], dicoms[2]), ("MLO", None, dicoms[0])],
    }
    assert alone == ["scan.png", dicoms[1]]
    assert film_breast("MDB003.PGM").side == "R" and film_breast("mdb010.pgm").woman == "mias:005"


def test_exam_names_stay_in_the_output_folder(tmp_path):
    from mammo.sources import exam_name

    assert exam_name("mias:001") == "mias_001" and exam_name("P_00038") == "P_00038"
    for patient in ("../../outside", "/etc/passwd", ".hidden", "a\\b", ".."):
        path = tmp_path / f"{exam_name(patient)}.exam.json"
        assert path.parent == tmp_path and not path.name.startswith(".") and ".." not in path.parts
    # two women whose ids give one name: refused before anything is read or written
    from mammo.io.dicom import write_dicom
    from mammo.stages.scans import analyse_scans

    for number, patient in enumerate(("a/b", "a:b")):
        write_dicom(tmp_path / f"{number}.dcm", np.zeros((8, 8), np.uint16), patient, "1.2", "1.3", header={"Laterality": "L"})
    scans = [(str(tmp_path / f"{number}.dcm"), None, Windowing()) for number in (0, 1)]
    with pytest.raises(ValueError, match="several women would write the outputs named a_b"):
        analyse_scans(scans, str(tmp_path / "model.onnx"), str(tmp_path / "out"), exams=True)
    assert not (tmp_path / "out").exists()


def test_each_film_is_hung_with_its_chest_wall_facing_the_other_breast(one_lesion_scan):
    """The generated breast has its chest wall on the left: as a left breast it is hung as stored, as a right breast
    mirrored (the radiologists' hanging puts the right breast on the viewer's left, chest walls in the middle)."""
    from mammo.heatmap import chest_wall_on_left, exam_picture, hung_overlay

    scan, _ = one_lesion_scan
    result = score_scan(scan, lesion_detector(), Windowing(stride=598))
    found = regions(result, Windowing(stride=598, top=1))
    hung = {side: hung_overlay(scan, result, found, side) for side in "RL"}
    for side, picture in hung.items():
        breast = picture.max(axis=2) > 60
        assert chest_wall_on_left(breast) == (side == "L")
    assert np.array_equal(
        hung["L"], overlay(*thumbnail(scan, 768), result.heatmap, found, breast=result.breast, muscle=result.muscle)
    )
    picture = exam_picture([((hung["R"], "R MLO a: 0.90"), (None, "L MLO: no film"))])
    assert picture.shape[1] > 2 * hung["R"].shape[1] and picture.shape[0] > hung["R"].shape[0]


def test_cli_writes_one_exam_per_woman_with_her_films_side_by_side(scan_cli_inputs, demo_root, tmp_path):
    import cv2

    copy_model(scan_cli_inputs, tmp_path)
    write_test_card(tmp_path, collection="mias", tile_scale=1.0)  # 1024-pixel windowing: quick
    (tmp_path / "films").mkdir()
    for name in ("mdb001.pgm", "mdb002.pgm", "mdb003.pgm"):
        shutil.copy(demo_root / "mias" / name, tmp_path / "films" / name)
    shutil.copy(demo_root / "mias" / "mdb004.pgm", tmp_path / "films" / "renamed.pgm")  # no number: no woman known
    out = tmp_path / "out"
    result = scan_with(tmp_path / "model.keras", str(tmp_path / "films"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(path.name for path in out.glob("*.exam.*")) == [
        "mias_001.exam.json",
        "mias_001.exam.png",
        "mias_002.exam.json",
        "mias_002.exam.png",
    ]
    both = json.loads((out / "mias_001.exam.json").read_text())
    films = {film["film"]: film for film in both["films"]}
    assert both["woman"] == "mias:001" and set(films) == {"mdb001", "mdb002"}
    assert (films["mdb001"]["side"], films["mdb001"]["partner"], films["mdb002"]["partner"]) == ("R", "mdb002", "mdb001")
    for name, film in films.items():
        assert film["score"] == json.loads((out / f"{name}.regions.json").read_text())["film_score"]
    assert both["score"] == max(film["score"] for film in films.values()) and "chest walls face" in both["hanging"]
    alone = json.loads((out / "mias_002.exam.json").read_text())
    assert [(film["film"], film["side"], film["partner"]) for film in alone["films"]] == [("mdb003", "R", None)]
    said = result.stdout
    assert "2 exam(s) written" in said and "without a partner film of the other breast: mdb003" in said
    assert "not paired (their files tell no woman and side): renamed.pgm" in said
    picture = cv2.imread(str(out / "mias_001.exam.png"))
    overlay_width = cv2.imread(str(out / "mdb001.overlay.png")).shape[1]
    assert picture.shape[1] > 1.5 * min(overlay_width, 768) and picture.shape[0] < 1.5 * 768  # two films, one row
    # an exam already there is not overwritten without --force, though the films' outputs are gone
    for path in out.glob("mdb*"):
        path.unlink()
    again = scan_with(tmp_path / "model.keras", str(tmp_path / "films"), "--out", str(out))
    assert again.returncode == 1 and "mias_001.exam.json" in again.stderr and "not overwritten" in again.stderr
    assert not list(out.glob("mdb*"))
    forced = scan_with(tmp_path / "model.keras", str(tmp_path / "films"), "--out", str(out), "--force")
    assert forced.returncode == 0 and json.loads((out / "mias_001.exam.json").read_text()) == both


def test_real_films_pair_into_108_women_with_a_right_and_a_left_film(real_mias_archive, tmp_path):
    from mammo.cli import scan_inputs
    from mammo.sources import hanging

    films = scan_inputs([str(real_mias_archive)], str(tmp_path))
    women, alone = hanging(films)
    assert len(films) == 216 and len(women) == 108 and alone == []
    for woman, rows in women.items():
        ((view, right, left),) = rows
        assert view == "MLO" and right and left, woman
        assert int(Path(right).stem[3:]) + 1 == int(Path(left).stem[3:]) and int(Path(right).stem[3:]) % 2 == 1


def test_each_collection_answers_its_window_scale_and_files(tmp_path):
    """The registry of collections: mini-MIAS films are scanned at the scale their tiles were cut at (5.16 CBIS-DDSM
    pixels a film pixel), the DDSM collections at 1; a file of no collection (a PNG) at 1; a DICOM by the pixel
    spacing it states (a full-field digital image at 0.09 mm: 2), at 1 without one (CBIS-DDSM's films)."""
    from mammo.io.dicom import write_dicom
    from mammo.io.listed import CBIS_PIXEL_MM

    assert window_scale_of("all-mias/mdb001.pgm") == pytest.approx(5.16) == SOURCES["mias"].window_scale
    assert window_scale_of("x/000000.dcm") == window_scale_of("A_0001_1.LEFT_CC.LJPEG") == window_scale_of("scan.png") == 1.0
    write_dicom(
        tmp_path / "i.dicom", np.zeros((8, 8), np.uint16), "s", "1.2", "1.3", header={"PixelSpacing": [2 * CBIS_PIXEL_MM] * 2}
    )
    assert window_scale_of(tmp_path / "i.dicom") == pytest.approx(2.0)
    rows = pd.DataFrame({"path": ["b.pgm", "a.pgm", "a.pgm"]})
    assert SOURCES["mias"].files(rows) == [Path("a.pgm"), Path("b.pgm")] and SOURCES["mias"].chunk_key is None


# ----------------------------------------------------------------------------- scan identity
def test_scan_identity_of_each_collection(tmp_path):
    from mammo.io.dicom import write_dicom
    from mammo.sources import scan_identity

    pixels = np.zeros((8, 8), np.uint16)
    write_dicom(tmp_path / "000000.dcm", pixels, "Calc-Training_P_00038_RIGHT_MLO", "1.2", "1.2.3")
    write_dicom(tmp_path / "000001.dcm", pixels, "Calc-Training_P_00038_RIGHT_MLO_2", "1.2", "1.2.3")  # an ROI mask
    write_dicom(tmp_path / "other.dcm", pixels, "somebody", "1.2", "1.2.3")
    (tmp_path / "broken.dcm").write_bytes(b"not a dicom")
    assert scan_identity(tmp_path / "000000.dcm") == "P_00038_RIGHT_MLO"
    assert scan_identity(tmp_path / "000001.dcm") == "P_00038_RIGHT_MLO_2"
    assert scan_identity(tmp_path / "other.dcm") == "other" and scan_identity(tmp_path / "broken.dcm") == "broken"
    assert scan_identity("cases/normals/normal_01/case0002/A_0002_1.LEFT_CC.LJPEG") == "A_0002_1_LEFT_CC"
    assert scan_identity("A_0002_1.RIGHT_MLO.LJPEG.gz") == "A_0002_1_RIGHT_MLO"
    assert scan_identity("mdb001.pgm") == "mdb001" and scan_identity("my.scan.png") == "my.scan"


def test_scan_identity_of_a_real_cbis_ddsm_film(shared):
    """The convention pinned to a real film: folder Mass-Test_P_00173_LEFT_CC, file 000000.dcm, PatientID alike."""
    from mammo.sources import scan_files, scan_identity

    (film,) = scan_files(shared / "data/cbis-ddsm-real")
    assert film.name == "000000.dcm" and scan_identity(film) == "P_00173_LEFT_CC"


def test_a_folder_of_cbis_ddsm_holds_one_scan_per_film(demo_root, tmp_path):
    from mammo.sources import scan_files, scan_identity

    films = scan_files(demo_root / "cbis")
    breasts = set()  # Mass-Training_P_00001_LEFT_CC and Calc-Training_P_00001_LEFT_CC name one film
    for table in (demo_root / "cbis").glob("*_case_description_*_set.csv"):
        breasts |= {path.split("/")[0].split("_", 1)[1] for path in pd.read_csv(table)["image file path"]}
    identities = [scan_identity(path) for path in films]
    assert sorted(identities) == sorted(breasts)  # every film once, no ROI crop or mask
    assert all(path.name == "000000.dcm" for path in films)
    shutil.copy(films[0], tmp_path / "copy.dcm")  # the same film under another name: still one scan
    (tmp_path / "sub").mkdir()
    shutil.copy(films[0], tmp_path / "sub" / "copy.dcm")
    assert len(scan_files(tmp_path)) == 1


def test_cli_names_outputs_by_scan_identity_and_never_overwrites(scan_cli_inputs, demo_root, tmp_path):
    """Two CBIS-DDSM films, both called 000000.dcm: two sets of outputs named by breast and view, a summary; the
    same command again says what it would overwrite and writes nothing."""
    from mammo.sources import scan_files, scan_identity

    films = scan_files(demo_root / "cbis")[:2]
    result = run_scan(scan_cli_inputs, *map(str, films), "--out", str(tmp_path / "out"), "--min-tissue", "0.3")
    assert result.returncode == 0, result.stderr[-2000:]
    names = sorted(path.name for path in (tmp_path / "out").glob("*.regions.json"))
    assert names == sorted(f"{scan_identity(path)}.regions.json" for path in films) and len(set(names)) == 2
    assert "2 of 2 scans analysed" in result.stdout
    written = {path: path.stat().st_mtime_ns for path in (tmp_path / "out").iterdir()}
    again = run_scan(scan_cli_inputs, *map(str, films), "--out", str(tmp_path / "out"), "--min-tissue", "0.3")
    assert again.returncode == 1 and "not overwritten (use --force" in again.stderr and names[0].split(".")[0] in again.stderr
    assert {path: path.stat().st_mtime_ns for path in (tmp_path / "out").iterdir()} == written


def test_cli_scans_every_scan_under_a_folder(scan_cli_inputs, demo_root, tmp_path):
    (tmp_path / "scans" / "deep").mkdir(parents=True)
    for path in sorted((demo_root / "mias").glob("*.pgm"))[:2]:
        shutil.copy(path, tmp_path / "scans" / "deep" / path.name)
    (tmp_path / "scans" / "notes.txt").write_text("not a scan")
    result = run_scan(scan_cli_inputs, str(tmp_path / "scans"), "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(list((tmp_path / "out").glob("*.regions.json"))) == 2 and "2 of 2 scans analysed" in result.stdout
    (tmp_path / "empty").mkdir()
    result = run_scan(scan_cli_inputs, str(tmp_path / "empty"), "--out", str(tmp_path / "none"))
    assert result.returncode == 1 and "no scan files under it" in result.stderr


def test_scan_metrics_stage_takes_a_scan_without_breast_windows(tmp_path):
    """A scan with no window of enough breast has no score (an empty cell in its chunk's table): the stage still
    reports the set and draws the cases (it compared text with the threshold before)."""
    from mammo.stages.scans import evaluate_scans
    from mammo.tables import write_table

    columns = {"set": "test", "source": "vindr", "patient_id": "vindr:s", "path": "x", "scale": 1.0, "rows": 64, "cols": 64}
    columns |= {"lesions": "", "lesion_problems": ""}
    scans = pd.DataFrame(
        [
            {
                **columns,
                "lesions": "a:1",
                "scan_id": "a",
                "label_normal": 1,
                "windows_scored": 3,
                "windows_total": 4,
                "max_score": 0.9,
            },
            {**columns, "scan_id": "b", "label_normal": 0, "windows_scored": 2, "windows_total": 4, "max_score": 0.2},
            {**columns, "scan_id": "c", "label_normal": 0, "windows_scored": 0, "windows_total": 4, "max_score": np.nan},
        ]
    )
    write_table(scans.iloc[:2], tmp_path / "chunk_0.tsv")
    write_table(scans.iloc[2:], tmp_path / "chunk_1.tsv")  # this chunk's max_score column is all empty
    regions = pd.DataFrame(
        {
            "scan_id": ["a", "b"],
            "rank": [1, 1],
            "box": ["0,0,32,32", "0,0,32,32"],
            "score": [0.9, 0.2],
            "lesions_hit": ["a:1", ""],
            "lesions_centred": ["a:1", ""],
        }
    )
    write_table(regions, tmp_path / "regions.tsv")
    arrays = {
        f"{key}/{name}": value
        for key in "abc"
        for name, value in (
            ("heatmap", np.zeros((4, 4), np.float32)),
            ("thumbnail", np.zeros((64, 64), np.uint8)),
            ("factor", np.float64(1.0)),
        )
    }
    np.savez(tmp_path / "heatmaps.npz", **arrays)
    out = {name: str(tmp_path / name) for name in ("metrics.json", "froc.tsv", "froc.png", "cases.png")}
    evaluate_scans(
        [str(tmp_path / "chunk_0.tsv"), str(tmp_path / "chunk_1.tsv")],
        [str(tmp_path / "regions.tsv")],
        [str(tmp_path / "heatmaps.npz")],
        0.5,
        {"bootstrap": 50, "seed": 1},
        *out.values(),
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())["sets"]["test"]
    assert metrics["scans"] == 3 and metrics["scans_without_breast_windows"] == 1 and metrics["roc_auc"] == 1.0
    assert metrics["women"]["n"] == 1  # both scored films are one woman's: her score is the higher one


def test_mammo_scan_defaults_are_the_workflows_scan_settings():
    """`mammo scan` without options windows and reports as the workflow's whole-scan rules do (config `scans`)."""
    scans = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["scans"]
    defaults = Windowing()
    assert {key: getattr(defaults, key) for key in scans} == scans


def test_cli_scores_each_film_with_the_other_breast_where_the_card_learnt_so(scan_cli_inputs, demo_root, tmp_path):
    """A card whose film score reads the other breast (a logistic aggregate, mammo.film_scores): a film scanned with
    its partner is scored against it and says so; a film scanned alone is scored by the aggregate without the other
    breast and says that too."""
    from mammo.card import card_path
    from mammo.film_scores import FEATURES, OTHER_BREAST_FEATURES

    copy_model(scan_cli_inputs, tmp_path)
    card = write_test_card(tmp_path, collection="mias", tile_scale=1.0)

    def logistic(names, weights):
        return {
            "method": "logistic",
            "features": list(names),
            "mean": [0.0] * len(names),
            "scale": [1.0] * len(names),
            "coefficients": weights,
            "intercept": -1.0,
            "uses_other_breast": len(names) > len(FEATURES),
            "fitted_on": {"films": 2},
        }

    alone = logistic(FEATURES, [1.0, 0.0, 0.0, 0.0])
    # the other breast's features weighted by name: the difference of the two breasts' grey levels alone, 0.05 a level
    weights = [0.05 * (name == "other_breast_level_difference") for name in FEATURES + OTHER_BREAST_FEATURES]
    both = {**logistic(FEATURES + OTHER_BREAST_FEATURES, weights), "without_other_breast": alone}
    card["scanning"] = {**card["scanning"], "aggregate": both, "uses_other_breast": True}
    card_path(tmp_path / "model.keras").write_text(json.dumps(card))
    (tmp_path / "films").mkdir()
    for name in ("mdb001.pgm", "mdb002.pgm", "mdb003.pgm"):
        shutil.copy(demo_root / "mias" / name, tmp_path / "films" / name)
    out = tmp_path / "out"
    result = scan_with(tmp_path / "model.keras", str(tmp_path / "films"), "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    said = {name: json.loads((out / f"{name}.regions.json").read_text()) for name in ("mdb001", "mdb002", "mdb003")}
    assert said["mdb001"]["other_breast"].startswith("used") and said["mdb002"]["other_breast"].startswith("used")
    assert said["mdb003"]["other_breast"].startswith("missing")
    # alone: the aggregate without the other breast, here the logistic of the strongest window's logit less 1
    top = min(max(said["mdb003"]["max_score"], 1e-4), 1 - 1e-4)
    assert said["mdb003"]["film_score"] == pytest.approx(1 / (1 + np.exp(1 - np.log(top / (1 - top)))), abs=1e-5)
    assert said["mdb001"]["breast_level"] != said["mdb002"]["breast_level"]  # so the film scores tell the two apart
    for name, other in (("mdb001", "mdb002"), ("mdb002", "mdb001")):
        assert 0 < said[name]["film_score"] < 1 and said[name]["aggregate"]["uses_other_breast"]
        assert 0 < said[name]["breast_level"] < 255
        difference = said[name]["breast_level"] - said[other]["breast_level"]
        assert said[name]["film_score"] == pytest.approx(1 / (1 + np.exp(1 - 0.05 * difference)), abs=1e-3)
    exam = json.loads((out / "mias_001.exam.json").read_text())
    assert {film["film"]: film["score"] for film in exam["films"]} == {
        name: said[name]["film_score"] for name in ("mdb001", "mdb002")
    }


def test_each_film_says_how_the_other_breast_entered_its_score():
    from mammo.film_scores import RELATIVE_SCORES
    from mammo.stages.scans import other_breast_said

    assert (
        other_breast_said(RELATIVE_SCORES["max_and_asymmetry"], True)
        == "used: the breast's grey level against the other breast's"
    )
    assert other_breast_said({"method": "logistic", "uses_other_breast": True}, True).startswith("used: the film's windows")
    assert other_breast_said(RELATIVE_SCORES["asymmetry"], False).startswith("missing")
    assert other_breast_said({"method": "max"}, False) == "not used by this model's aggregate"
