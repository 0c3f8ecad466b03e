"""Online lesion crops: context patches cut around real lesions, windows that always hold the lesion, new draws every
epoch and the same draws for the same seed, training women only."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from tile_records import tile_table

from mammo.extract import LESION_CONTEXT_COLUMNS, mias_lesion_contexts, mias_tiles
from mammo.io.mias import index_info, unpack_archive
from mammo.online_crops import (
    TRANSPLANT_AIR,
    OnlineCrops,
    crop_window,
    recipe_crops,
    resample_like_crops,
    transplant,
    window_geometry,
)
from mammo.tiles import Method2, NormalThresholds, NormalTiling

tf = pytest.importorskip("tensorflow")

REAL_ARCHIVE = Path("data") / "mias-real" / "all-mias-dev.tar.gz"
PARAMS = OnlineCrops(crops=3, zoom=1.15, margin=8)


def disk_context(radius: int, params: OnlineCrops = PARAMS, background: int = 60) -> np.ndarray:
    """A context patch of textured tissue (levels 40-90) with a lesion of level 250 at its middle."""
    half = params.context_half
    patch = np.random.default_rng(radius).integers(background - 20, background + 30, (2 * half + 1,) * 2).astype(np.uint8)
    cv2.circle(patch, (half, half), radius, 250, thickness=-1)
    return patch


@pytest.mark.parametrize("radius", [6, 40, 110, 135])
def test_a_crop_holds_the_whole_lesion_where_predicted_and_is_filled_from_the_film(radius):
    patch = disk_context(radius)
    context, area = tf.constant(patch[..., None]), int((patch > 155).sum())
    for draw in range(60):
        seed = tf.constant([5, draw], tf.int64)
        window = crop_window(context, float(radius), seed, PARAMS).numpy()[..., 0]
        _, centre, window_radius = window_geometry(seed, float(radius), PARAMS)
        assert window.shape == (PARAMS.tile, PARAMS.tile) and window.min() >= 20  # no black corners: every pixel from the film
        rows, cols = np.nonzero(window > 155)
        assert len(rows) == pytest.approx(area * (float(window_radius) / radius) ** 2, rel=0.1, abs=12)  # all of the circle
        assert (rows.mean(), cols.mean()) == pytest.approx(tuple(centre.numpy()), abs=1.0)
        if float(window_radius) + PARAMS.margin <= PARAMS.tile / 2:
            # the circle's edge keeps the margin from the window's edge (a pixel for interpolation)
            assert rows.min() >= PARAMS.margin - 1 and cols.min() >= PARAMS.margin - 1
            assert rows.max() <= PARAMS.tile - PARAMS.margin and cols.max() <= PARAMS.tile - PARAMS.margin
        else:  # a circle too wide at this zoom is centred
            assert tuple(centre.numpy()) == pytest.approx(((PARAMS.tile - 1) / 2,) * 2)


def test_a_lesion_wider_than_the_window_fills_it_centred():
    radius = 260  # wider than a 299 window at any zoom
    context = tf.constant(disk_context(radius)[..., None])
    for draw in range(20):
        seed = tf.constant([1, draw], tf.int64)
        window = crop_window(context, float(radius), seed, PARAMS).numpy()[..., 0]
        _, centre, _ = window_geometry(seed, float(radius), PARAMS)
        assert (window > 200).all()
        assert tuple(centre.numpy()) == pytest.approx(((PARAMS.tile - 1) / 2,) * 2)


def test_crops_vary_position_angle_flip_and_zoom():
    """A draw moves, turns, mirrors and zooms: across draws the lesion's position and the window's content differ."""
    context = disk_context(20)
    context[PARAMS.context_half - 60 : PARAMS.context_half - 40, PARAMS.context_half - 5 : PARAMS.context_half + 5] = 180
    context = tf.constant(context[..., None])
    centres, zooms, windows = [], [], []
    for draw in range(40):
        seed = tf.constant([2, draw], tf.int64)
        _, centre, window_radius = window_geometry(seed, 20.0, PARAMS)
        centres.append(centre.numpy())
        zooms.append(20.0 / float(window_radius))
        windows.append(crop_window(context, 20.0, seed, PARAMS).numpy())
    centres = np.array(centres)
    assert centres.std(axis=0).min() > 40  # positions spread over the window
    assert min(zooms) < 0.95 and max(zooms) > 1.05 and all(1 / 1.15 - 1e-6 <= z <= 1.15 + 1e-6 for z in zooms)
    marks = [np.argwhere((w[..., 0] > 160) & (w[..., 0] < 200)).mean(axis=0) - c for w, c in zip(windows, centres)]
    angles = np.degrees([np.arctan2(m[0], m[1]) for m in marks])  # the mark above the lesion turns with the window
    assert np.ptp(angles) > 270


def test_resampling_like_crops_keeps_the_content_and_smooths_as_a_crop_does():
    tile = np.random.default_rng(0).integers(0, 256, (299, 299, 1)).astype(np.uint8)
    resampled = resample_like_crops(tf.constant(tile), tf.constant([3, 4], tf.int64)).numpy()
    assert resampled.shape == tile.shape and resampled.dtype == np.uint8
    assert abs(float(resampled.mean()) - float(tile.mean())) < 1.0
    tissue = cv2.GaussianBlur(tile, (0, 0), 4)[..., None]  # structure wider than a pixel stays where it was
    moved = resample_like_crops(tf.constant(tissue), tf.constant([3, 4], tf.int64)).numpy()
    assert np.corrcoef(moved.ravel(), tissue.ravel())[0, 1] > 0.95
    # a crop of pure noise: the smoothing its resampling gives, which normal tiles should share
    noise_context = np.random.default_rng(1).integers(0, 256, (2 * PARAMS.context_half + 1,) * 2 + (1,)).astype(np.uint8)
    crops = [crop_window(tf.constant(noise_context), 1.0, tf.constant([3, draw], tf.int64), PARAMS).numpy() for draw in range(8)]
    shifted = [resample_like_crops(tf.constant(tile), tf.constant([4, draw], tf.int64)).numpy() for draw in range(8)]
    roughness = lambda images: float(np.mean([np.diff(image[..., 0].astype(float), axis=1).std() for image in images]))  # noqa: E731
    assert roughness(shifted) < 0.9 * roughness([tile])
    assert roughness(shifted) == pytest.approx(roughness(crops), rel=0.2)


def test_a_transplant_adds_the_lesions_excess_over_its_surround_to_the_host_at_the_crops_place():
    """A lesion 190 levels above its tissue, moved onto a flat host at 120 whose left part is air: inside the circle
    the host gains what the lesion adds over its surround (clipped at 255), beyond the circle's fading border the host
    is untouched, and on air nothing is added. A lesion that adds nothing over its surround gives the plain crop."""
    radius = 30
    context = tf.constant(disk_context(radius)[..., None])
    host = np.full((PARAMS.tile, PARAMS.tile, 1), 120, np.uint8)
    host[:, :40] = 0  # air
    for draw in range(10):
        seed = tf.constant([3, draw], tf.int64)
        moved = transplant(context, float(radius), seed, tf.constant(host), PARAMS).numpy()[..., 0].astype(int)
        _, centre, window_radius = window_geometry(seed, float(radius), PARAMS)
        rows, cols = np.mgrid[: PARAMS.tile, : PARAMS.tile]
        distance = np.hypot(rows - float(centre[0]), cols - float(centre[1]))
        border = 0.25 * float(window_radius) + PARAMS.margin
        breast = host[..., 0] > TRANSPLANT_AIR
        core = (distance < float(window_radius) - 2) & breast
        assert core.any() and (moved[core] == 255).mean() > 0.95  # 120 + about 190, clipped
        far = distance > float(window_radius) + border + 1
        assert np.array_equal(moved[far], host[..., 0][far].astype(int))
        assert (moved[~breast] == 0).all()
    flat = tf.constant(np.full(context.shape, 90, np.uint8))
    seed = tf.constant([3, 0], tf.int64)
    plain = crop_window(flat, float(radius), seed, PARAMS).numpy()
    assert np.array_equal(transplant(flat, float(radius), seed, tf.constant(host), PARAMS).numpy(), plain)


def test_recipe_crops_follow_the_config_switch():
    recipe = {"tile": 299, "online_crops": {"enabled": False, "crops": 4, "zoom": 1.1, "margin": 5}}
    assert recipe_crops(recipe) is None
    recipe["online_crops"]["enabled"] = True
    assert recipe_crops(recipe) == OnlineCrops(crops=4, zoom=1.1, margin=5, tile=299)
    with pytest.raises(ValueError, match="zoom >= 1"):
        OnlineCrops(zoom=0.9)


# ----------------------------------------------------------------------------- training passes
def write_training_records(folder: Path, lesions: int = 4, normals: int = 20, abnormal_tiles: int = 0) -> tuple[Path, Path]:
    from mammo import records

    contexts = np.stack([disk_context(15 + 25 * i) for i in range(lesions)])
    table = pd.DataFrame(
        [
            {
                "roi_id": f"lesion{i}",
                "patient_id": f"woman{i}",
                "scan_id": "film",
                "class_code": 2,
                "label_normal": 1,
                "radius": 15.0 + 25 * i,
                "context_index": i,
            }
            for i in range(lesions)
        ],
        columns=LESION_CONTEXT_COLUMNS,
    )
    records.write_contexts(table, contexts, folder / "lesions.tfrecord")
    codes = [0] * normals + [2] * abnormal_tiles
    tiles = tile_table(codes)
    images = np.random.default_rng(7).integers(0, 256, (len(codes), 299, 299)).astype(np.uint8)
    records.write_shard(tiles, lambda row: images[row["tile_index"]], folder / "tiles.tfrecord")
    return folder / "tiles.tfrecord", folder / "lesions.tfrecord"


def passes(tiles: Path, lesions: Path, seed: int, count: int = 2, params: OnlineCrops = PARAMS):
    from mammo.train import make_dataset

    dataset = make_dataset(
        [tiles], "binary", 8, training=True, seed=seed, abnormal_fraction=0.25, lesion_paths=[lesions], online_crops=params
    )
    batches = iter(dataset.repeat())
    found = []
    for _ in range(count):
        images, labels = zip(*[(x.numpy(), y.numpy()) for x, y, _ in (next(batches) for _ in range(int(dataset.cardinality())))])
        found.append((np.concatenate(images), np.concatenate(labels)))
    return found


def test_each_epoch_cuts_new_crops_of_every_lesion_and_a_seed_repeats_them(tmp_path):
    tiles, lesions = write_training_records(tmp_path)
    first, again, other = passes(tiles, lesions, 1), passes(tiles, lesions, 1), passes(tiles, lesions, 2, count=1)
    for (images, labels), (images_again, labels_again) in zip(first, again):
        assert np.array_equal(images, images_again) and np.array_equal(labels, labels_again)  # same seed, same passes
        assert (labels == 1).sum() == 4 * PARAMS.crops and (labels == 0).sum() == 20
    crops = [images[labels == 1] for images, labels in first]
    assert len({crop.tobytes() for epoch in crops for crop in epoch}) == 2 * 4 * PARAMS.crops  # no draw repeated
    assert not np.array_equal(first[0][0], other[0][0])
    # every crop holds its lesion: a bright circle well inside the window
    for crop in crops[0]:
        bright = np.argwhere(crop[..., 0] > 200)
        assert len(bright) > 300 and bright.min() >= PARAMS.margin - 1 and bright.max() <= PARAMS.tile - PARAMS.margin


def test_transplants_join_the_crops_of_each_pass_over_the_normal_tiles_and_a_seed_repeats_them(tmp_path):
    """With transplants, each pass holds `crops` plain crops and `transplants` moved lesions of every lesion, all
    abnormal; a moved lesion lies over a normal tile's noise (the records' normal tiles are uniform noise here, the
    lesions' tissue 40-90), the plain crops over their own tissue; the same seed gives the same passes."""
    tiles, lesions = write_training_records(tmp_path)
    params = OnlineCrops(crops=3, zoom=1.15, margin=8, transplants=2)
    first, again = passes(tiles, lesions, 1, params=params), passes(tiles, lesions, 1, params=params)
    for (images, labels), (images_again, labels_again) in zip(first, again):
        assert np.array_equal(images, images_again) and np.array_equal(labels, labels_again)
        assert (labels == 1).sum() == 4 * (3 + 2) and (labels == 0).sum() == 20  # every normal tile the records hold
    abnormal = first[0][0][first[0][1] == 1][..., 0]
    # the records' normal tiles are noise over 0-255, resampled; the lesions' own tissue stays within 20-90
    over_noise = [(crop[crop < 250] > 120).mean() > 0.2 for crop in abnormal]
    assert sum(over_noise) == 4 * 2


def test_online_crops_refuse_records_that_hold_fixed_crops(tmp_path):
    tiles, lesions = write_training_records(tmp_path, abnormal_tiles=2)
    with pytest.raises(ValueError, match="2 abnormal tiles"):
        passes(tiles, lesions, 1)


def test_context_records_hold_the_training_women_only(tmp_path):
    from mammo import records
    from mammo.stages.records import write_context_records
    from mammo.tables import write_table

    contexts = np.stack([disk_context(10 + i) for i in range(3)])
    lesions = pd.DataFrame(
        [
            {
                "roi_id": f"l{i}",
                "patient_id": f"w{i}",
                "scan_id": "s",
                "class_code": 2,
                "label_normal": 1,
                "radius": 10.0 + i,
                "context_index": i,
            }
            for i in range(3)
        ],
        columns=LESION_CONTEXT_COLUMNS,
    )
    np.save(tmp_path / "contexts.npy", contexts)
    write_table(lesions, tmp_path / "contexts.tsv")
    split = pd.DataFrame({"patient_id": ["w0", "w1", "w2", "w0"], "split": ["train", "val", "test", "train"]})
    write_table(split, tmp_path / "split.tsv")
    write_context_records(
        str(tmp_path / "split.tsv"),
        str(tmp_path / "contexts.tsv"),
        str(tmp_path / "contexts.npy"),
        "train",
        str(tmp_path / "train.tfrecord"),
    )
    written = list(records.read_contexts([tmp_path / "train.tfrecord"]).as_numpy_iterator())
    assert [example["patient_id"] for example in written] == [b"w0"]
    assert np.array_equal(written[0]["image"][..., 0], contexts[0]) and written[0]["radius"] == pytest.approx(10.0)


def test_the_fold_split_drops_fixed_training_crops_only_with_online_crops(tmp_path):
    from mammo.split import woman_folds
    from mammo.stages.crossval import mias_cv_fold
    from mammo.tables import read_table, write_table

    women = [f"mias:{w:03d}" for w in range(20)]
    patients = pd.Series([w for w in women for _ in (0, 1)])
    abnormal = pd.Series([i % 6 == 0 for i in range(40)])
    fold_of = woman_folds(patients, abnormal, 4, seed=3)
    tiles = pd.DataFrame(
        [
            {
                "tile_id": f"{p}/{k}",
                "patient_id": p,
                "label_normal": int(a and k < 2),
                "class_code": 2 if a and k < 2 else 0,
                "source": "mias",
                "method": "method2" if a and k < 2 else "grid",
            }
            for p, a in zip(patients, abnormal)
            for k in range(4)
        ]
    )
    write_table(tiles.assign(fold=tiles["patient_id"].map(fold_of)), tmp_path / "tiles.tsv")
    images = pd.DataFrame(
        {"refnum": [f"mdb{n + 1:03d}" for n in range(40)], "patient_id": patients, "label_normal": abnormal.astype(int)}
    )
    images["path"] = images["refnum"] + ".pgm"
    write_table(images, tmp_path / "images.tsv")
    settings = {"folds": 4, "seed": 3, "inner_val": 0.25, "abnormal_fraction": 0.25, "fresh_normals": True, "tile": 299}
    kept = {}
    for enabled in (False, True):
        recipe = {**settings, "online_crops": {"enabled": enabled}}
        mias_cv_fold(str(tmp_path / "tiles.tsv"), str(tmp_path / "images.tsv"), 0, recipe, str(tmp_path / f"{enabled}.tsv"))
        split = read_table(tmp_path / f"{enabled}.tsv")
        kept[enabled] = split[split["kept"].astype(str) == "True"].groupby(["split", "label_normal"]).size()
    assert kept[False][("train", 1)] > 0 and ("train", 1) not in kept[True]
    for key in [("val", 1), ("test", 1), ("train", 0), ("val", 0), ("test", 0)]:
        assert kept[True].get(key, 0) == kept[False].get(key, 0)


# ----------------------------------------------------------------------------- real films
def test_context_patches_of_real_lesions_are_centred_on_them(shared, tmp_path):
    """Pinned to the real films: Info.txt's centre (origin bottom-left) at the patch's middle pixel, where every mass
    and asymmetry of these films is brighter than the ring around it (the films' intensity direction)."""
    archive = shared / REAL_ARCHIVE
    if not archive.is_file():
        pytest.skip(f"../shared/{REAL_ARCHIVE} not available")
    images, rois, _, _ = index_info(unpack_archive(archive, tmp_path))
    chosen = images[images["refnum"].isin(["mdb002", "mdb005", "mdb017", "mdb028", "mdb072", "mdb083", "mdb095"])]
    thresholds = NormalThresholds(mean_min=38, var_min=20, var_max=2000)
    tiling = NormalTiling(tile=299, stride=200, border_crop=0.07)
    _, table, rejected = mias_tiles(chosen, rois, "cv", Method2(tile=299), thresholds, tiling, 2.58, 1, "t.npy")
    contexts, lesions = mias_lesion_contexts(chosen, rois, table, 2.58, PARAMS)
    assert (
        rejected.empty
        and len(lesions) == 8
        and set(lesions["roi_id"]) == set(rois[rois["refnum"].isin(chosen["refnum"])]["roi_id"])
    )
    half = PARAMS.context_half
    assert contexts.shape == (8, 2 * half + 1, 2 * half + 1) and contexts.dtype == np.uint8
    distance = np.hypot(*np.mgrid[-half : half + 1, -half : half + 1])
    for context, (_, lesion) in zip(contexts, lesions.iterrows()):
        inside = context[distance <= lesion["radius"]].mean()
        ring = context[(distance > 1.5 * lesion["radius"]) & (distance <= 2.5 * lesion["radius"])].mean()
        assert inside > ring + 10, (lesion["roi_id"], inside, ring)
    assert set(lesions["patient_id"]) == set(chosen.loc[chosen["label_normal"] == 1, "patient_id"])
