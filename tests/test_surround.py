"""The surround channel: every tile and every scanned window with its place 3 times wider beside it, from the tiles
through records, training, export and the card to `mammo scan`; the workflow part on REAL mini-MIAS films."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml
from snakemake_run import LIGHT_MODEL, ROOT
from test_mias_cv_workflow import FILM_TARGET, FILMS, MODEL_DIR, six_women_run

from mammo.heatmap import Windowing, batches, segmented
from mammo.records import read_tiles, serialize, write_tfrecords
from mammo.tiles import (
    SURROUND,
    TILE_SIZE,
    Method2,
    NormalThresholds,
    NormalTiling,
    method2_tiles,
    normal_tiles,
    surround_view,
)

MAMMO = Path(sys.executable).with_name("mammo")


def dihedral(image: np.ndarray) -> list[np.ndarray]:
    """The 8 flips and quarter turns of an image (of each channel alike)."""
    turns = [np.rot90(image, k) for k in range(4)]
    return turns + [np.fliplr(turn) for turn in turns]


def test_the_surround_is_the_window_three_times_wider_on_the_same_centre():
    image = np.zeros((2000, 2000), np.uint8)
    image[1000:1003, 1000:1003] = 255  # a bright 3 x 3 spot: one pixel of the surround at its centre
    top, left = 1001 - TILE_SIZE // 2, 1001 - TILE_SIZE // 2  # the window centred on the spot
    view = surround_view(image, top, left, TILE_SIZE)
    assert view.shape == (TILE_SIZE, TILE_SIZE) and view.dtype == np.uint8
    assert np.unravel_index(np.argmax(view), view.shape) == (TILE_SIZE // 2, TILE_SIZE // 2)
    # the window's own square fills the surround's middle third
    image[:] = 0
    image[top : top + TILE_SIZE, left : left + TILE_SIZE] = 200
    view = surround_view(image, top, left, TILE_SIZE)
    inner = slice(TILE_SIZE // SURROUND + 1, 2 * TILE_SIZE // SURROUND - 1)
    assert (view[inner, inner] == 200).all() and view[:90].max() == 0 and view[-90:].max() == 0
    # black beyond the image's edge, not an error
    assert surround_view(image, -500, -500, TILE_SIZE)[:100, :100].max() == 0


def upright(tile: np.ndarray, image8: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The flip or turn of a two-channel tile whose tile channel is a crop of `image8` as it lies, and where."""
    for turned in dihedral(tile):
        found = cv2.matchTemplate(image8, np.ascontiguousarray(turned[..., 0]), cv2.TM_SQDIFF)
        _, _, (left, top), _ = cv2.minMaxLoc(found)
        if np.array_equal(image8[top : top + TILE_SIZE, left : left + TILE_SIZE], turned[..., 0]):
            return turned, top, left
    raise AssertionError("the tile channel is no crop of the image")


def test_tiles_with_the_surround_turn_both_channels_alike_and_keep_the_tile_as_it_was():
    rng = np.random.default_rng(0)
    scan = rng.integers(30, 220, (800, 700)).astype(np.uint16) * 257
    image8 = (scan >> 8).astype(np.uint8)

    def surround(top, left, side):
        return surround_view(image8, top, left, side)

    box = (380, 330, 440, 390)
    params = Method2(crops=4, tile=TILE_SIZE)
    alone = method2_tiles(scan, box, np.random.default_rng(3), params)
    paired = method2_tiles(scan, box, np.random.default_rng(3), params, surround)
    assert len(alone) == len(paired) == 4
    for tile, both in zip(alone, paired):
        assert both.shape == (TILE_SIZE, TILE_SIZE, 2)
        assert np.array_equal(both[..., 0], tile)  # the same draws: the tile channel is the tile without surround
        # the surround channel was turned as the tile was: turned back together, it is the crop's surroundings
        turned, top, left = upright(both, image8)
        assert np.array_equal(turned[..., 1], surround_view(image8, top, left, TILE_SIZE))
    grid = normal_tiles(scan, _accept_all(), np.random.default_rng(1), NormalTiling(tile=TILE_SIZE, stride=200), surround)
    assert grid and all(tile.shape == (TILE_SIZE, TILE_SIZE, 2) for tile, _ in grid)
    for tile, (top, left, _, _) in grid:
        turned, found_top, found_left = upright(tile, image8)
        assert (found_top, found_left) == (top, left)
        assert np.array_equal(turned[..., 1], surround_view(image8, top, left, TILE_SIZE))


def _accept_all():
    return NormalThresholds(mean_min=0, var_min=0, var_max=1e9, bright_max=10**9, dark_max=10**9)


def test_records_keep_the_surround_channel(tmp_path):
    tile = np.random.default_rng(2).integers(0, 256, (TILE_SIZE, TILE_SIZE, 2)).astype(np.uint8)
    write_tfrecords(tmp_path / "a.tfrecord", [serialize(tile, 1, 1, "t/1", "w1"), serialize(tile[..., 0], 0, 0, "t/2", "w1")])
    read = [record["image"] for record in read_tiles([tmp_path / "a.tfrecord"])]
    assert np.array_equal(read[0], tile) and np.array_equal(read[1], tile[..., 0])
    with pytest.raises(ValueError, match="t/3"):
        serialize(np.zeros((TILE_SIZE, TILE_SIZE, 3), np.uint8), 0, 0, "t/3", "w1")


def test_scanned_windows_carry_their_surround_exactly_when_the_windowing_says_so():
    image8 = np.random.default_rng(4).integers(0, 256, (900, 800)).astype(np.uint8)
    corners = np.array([[0, 0], [300, 200], [601, 501]])
    alone = np.concatenate(list(batches(image8, corners, Windowing(batch_size=2))))
    both = np.concatenate(list(batches(image8, corners, Windowing(batch_size=2, surround=True))))
    assert alone.shape == (3, TILE_SIZE, TILE_SIZE) and both.shape == (3, TILE_SIZE, TILE_SIZE, 2)
    assert np.array_equal(both[..., 0], alone)
    for window, (top, left) in zip(both, corners):
        assert np.array_equal(window[..., 1], surround_view(image8, top, left, TILE_SIZE))


def test_a_two_channel_model_exports_and_every_engine_reads_both_channels(tmp_path):
    import keras

    from mammo.inference import export_onnx, installed_engines, open_engine
    from mammo.models import build

    model = build("resnet_small", 2, channels=2)
    assert model.input_shape == (None, TILE_SIZE, TILE_SIZE, 2)
    model.save(tmp_path / "model.keras")
    export_onnx(tmp_path / "model.keras", tmp_path / "model.onnx")
    batch = np.random.default_rng(5).integers(0, 256, (3, TILE_SIZE, TILE_SIZE, 2)).astype(np.uint8)
    swapped = batch[..., ::-1].copy()
    first = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    assert first.kernel.shape[2] == 2  # the first convolution reads both channels
    for engine in installed_engines():
        predict = open_engine(tmp_path / "model.keras", engine).predictor()
        for tiles in (batch, swapped):  # each engine computes what the Keras model does, whichever channel holds what
            probabilities = predict(tiles)
            assert probabilities.shape == (3, 2)
            np.testing.assert_allclose(probabilities, model.predict(tiles, verbose=0), atol=2e-3)


def test_the_schema_refuses_the_surround_with_levers_that_cut_tiles_elsewhere():
    import jsonschema

    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    assert config["mias_cv"]["surround"] is True  # the default
    jsonschema.validate(config, schema)
    levers = {
        "online_crops": {"enabled": True},
        "hard_negatives": {"rounds": 1},
        "other_breast_negatives": {"per_lesion": 2},
        "other_women_negatives": {"films": 1},
        "pretrain": {"films": 10},
    }
    for lever, setting in levers.items():
        changed = {**config, "mias_cv": {**config["mias_cv"], lever: {**config["mias_cv"][lever], **setting}}}
        with pytest.raises(jsonschema.ValidationError, match=lever if lever != "pretrain" else "10"):
            jsonschema.validate(changed, schema)


@pytest.fixture(scope="module")
def surround_run(shared, tmp_path_factory) -> Path:
    overlay = {
        "mias_cv": {"folds": 2},  # the surround channel: the default
        "models": {LIGHT_MODEL: {"steps_per_epoch": 3, "average_last": 1.0, "input_pool": 2}},
    }
    return six_women_run(shared, tmp_path_factory.mktemp("mias_cv_surround"), overlay)


@pytest.mark.workflow
def test_the_surround_channel_runs_from_the_films_to_the_card_and_mammo_scan(surround_run, tmp_path):
    tiles = pd.read_csv(surround_run / "results/mias_cv/tiles.tsv", sep="\t")
    stored = np.load(surround_run / "results/mias_cv/tiles.npy", mmap_mode="r")
    assert stored.shape[1:] == (TILE_SIZE, TILE_SIZE, 2) and len(stored) == len(tiles)
    # an edge tile, cut as the scan sees the film: its surround is the segmented film's around the window, turned
    # as the tile was
    edge = tiles[tiles["method"] == "edge"].iloc[0]
    from mammo.io.mias import read_mias_scan
    from mammo.tiles import upscale

    film = upscale(read_mias_scan(next((surround_run / "resources/mias").glob(f"*/{edge['scan_id']}.pgm"))), 2.58)
    image8 = segmented((film >> 8).astype(np.uint8))[0]
    top, left = (int(value) for value in edge["box"].split(",")[:2])
    upright = np.dstack([image8[top : top + TILE_SIZE, left : left + TILE_SIZE], surround_view(image8, top, left, TILE_SIZE)])
    assert any(np.array_equal(turned, stored[int(edge["tile_index"])]) for turned in dihedral(upright))
    films = pd.concat(pd.read_csv(path, sep="\t") for path in (surround_run / MODEL_DIR / "scans").glob("fold_*.scans.tsv"))
    assert len(films) == len(FILMS) and (films["windows_scored"] > 0).all()
    assert json.loads((surround_run / FILM_TARGET).read_text())["film_scores"]
    for fold in (0, 1):
        card = json.loads((surround_run / MODEL_DIR / f"fold_{fold}/model.json").read_text())
        assert card["input"]["channels"] == 2 and card["scanning"]["surround"] is True
    # mammo scan takes the surround from the card alone
    model = surround_run / MODEL_DIR / "fold_0/model.onnx"
    folder = tmp_path / "films"
    folder.mkdir()
    shutil.copy(next((surround_run / "resources/mias").glob("*/mdb001.pgm")), folder)
    result = subprocess.run(
        [str(MAMMO), "scan", "--model", str(model), "--out", str(tmp_path / "out"), str(folder)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    regions = json.loads((tmp_path / "out/mdb001.regions.json").read_text())
    assert (
        regions["surround"] is True
        and regions["regions"]
        and regions["windows_scored"] == films.set_index("scan_id").loc["mias:mdb001", "windows_scored"]
    )
