"""Hard negatives from whole films: mined from the training women's films only, never on a lesion, placed by where
they lie; training rounds that mine from the model as it is and train on, undone where the inner validation fell."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from tile_records import tile_table

from mammo.hard_negatives import HARD_NEGATIVE_COLUMNS, LOCATIONS, HardNegatives, location_shares, window_location
from mammo.heatmap import ScanWindows
from mammo.io.mias import index_info, mias_centre, unpack_archive
from mammo.tables import write_table
from mammo.tiles import TILE_SIZE

REAL_ARCHIVE = Path("data") / "mias-real" / "all-mias-dev.tar.gz"
ROOT = Path(__file__).resolve().parents[1]
RECIPE = {
    "scale": 2.58,
    "lesion_margin": 60,
    "hard_negatives": {"rounds": 1, "windows_per_film": 3, "weight": 2.0, "epochs": 1, "stride": 598},
}


def brightness(batch: np.ndarray) -> np.ndarray:
    """A stand-in model that calls bright windows abnormal: lesions of these films are bright, so it would pick them."""
    score = batch.reshape(len(batch), -1).mean(axis=1) / 255.0
    return np.stack([1 - score, score], axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def real_index(shared, tmp_path_factory):
    archive = shared / REAL_ARCHIVE
    if not archive.is_file():
        pytest.skip(f"../shared/{REAL_ARCHIVE} not available")
    folder = tmp_path_factory.mktemp("mias")
    images, rois, _, _ = index_info(unpack_archive(archive, folder))
    write_table(images, folder / "images.tsv")
    write_table(rois, folder / "rois.tsv")
    return folder, images, rois


def test_hard_negatives_come_from_training_women_only_and_never_touch_a_lesion(real_index):
    from mammo.stages.crossval import training_films_miner

    folder, images, rois = real_index
    # women with masses, a calcification cluster and a normal pair; two train, one in each of val and test
    roles = {"mias:001": "train", "mias:003": "train", "mias:014": "train", "mias:002": "val", "mias:107": "test"}
    split = pd.DataFrame({"patient_id": list(roles), "split": list(roles.values())})
    write_table(split, folder / "split.tsv")
    scans = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["scans"]
    mine = training_films_miner(str(folder / "split.tsv"), str(folder / "images.tsv"), str(folder / "rois.tsv"), RECIPE, scans)
    tiles, table = mine(brightness)
    train_films = images[images["patient_id"].isin([w for w, role in roles.items() if role == "train"])]
    assert set(table["scan_id"]) == set(train_films["refnum"])  # every training film, and no other woman's
    assert table.groupby("scan_id").size().max() <= 3 and len(tiles) == len(table)
    assert set(table["location"]) <= set(LOCATIONS)
    for (_, row), tile in zip(table.iterrows(), tiles):
        assert row["score"] == pytest.approx(tile.mean() / 255, abs=1e-4)  # the tile is the window that was scored
        top, left, bottom, right = map(int, row["box"].split(","))
        assert bottom - top == right - left == TILE_SIZE
        for _, roi in rois[rois["refnum"] == row["scan_id"]].iterrows():
            centre_row, centre_col = mias_centre(roi, 2.58, 1024 * 2.58)
            nearest = np.clip(centre_row, top, bottom - 1), np.clip(centre_col, left, right - 1)
            distance = np.hypot(nearest[0] - centre_row, nearest[1] - centre_col)
            assert distance > roi["radius"] * 2.58 + RECIPE["lesion_margin"] - 2, (row["scan_id"], row["box"])
    # the stand-in picks the brightest clear windows: scores fall within each film
    for _, film in table.groupby("scan_id", sort=False):
        assert film["score"].is_monotonic_decreasing


def assert_clear_of_partners_lesions(table: pd.DataFrame, tiles: np.ndarray, rois: pd.DataFrame) -> None:
    assert len(tiles) == len(table)
    for (_, row), tile in zip(table.iterrows(), tiles):
        top, left, bottom, right = map(int, row["box"].split(","))
        assert bottom - top == right - left == TILE_SIZE and tile.shape == (TILE_SIZE, TILE_SIZE)
        for _, roi in rois[rois["refnum"] == row["partner"]].iterrows():  # the partner's own lesions stay clear
            centre_row, centre_col = mias_centre(roi, 2.58, 1024 * 2.58)
            nearest = np.clip(centre_row, top, bottom - 1), np.clip(centre_col, left, right - 1)
            distance = np.hypot(nearest[0] - centre_row, nearest[1] - centre_col)
            assert distance > roi["radius"] * 2.58 + RECIPE["lesion_margin"] - 2, (row["partner"], row["box"])


def place_recipe(other_breast: int, other_women: int) -> dict:
    return {
        **RECIPE,
        "seed": 42,
        "other_breast_negatives": {"per_lesion": other_breast, "weight": 1.5},
        "other_women_negatives": {"films": other_women, "per_film": 2, "weight": 0.5},
    }


def test_the_other_breasts_windows_come_from_training_womens_pairs_and_never_touch_a_lesion(real_index):
    from mammo.stages.crossval import training_place_negatives

    folder, images, rois = real_index
    # woman 1: both breasts with a mass; woman 3: two masses on the right, a normal left; woman 14: a normal right and
    # a mass on the left; woman 53 (validation) and 107 (held out) have lesions too
    roles = {"mias:001": "train", "mias:003": "train", "mias:014": "train", "mias:053": "val", "mias:107": "test"}
    write_table(pd.DataFrame({"patient_id": list(roles), "split": list(roles.values())}), folder / "split.tsv")
    scans = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["scans"]
    paths = (str(folder / "split.tsv"), str(folder / "images.tsv"), str(folder / "rois.tsv"))
    streams, table = training_place_negatives(*paths, place_recipe(3, 0), scans)
    # mdb002's mass lies, on mdb001, inside mdb001's own mass (radius 197 pixels): no window there is clear of it
    assert set(zip(table["scan_id"], table["partner"])) == {("mdb001", "mdb002"), ("mdb005", "mdb006"), ("mdb028", "mdb027")}
    assert set(table["patient_id"]) == {"mias:001", "mias:003", "mias:014"} and set(table["source"]) == {"other breast"}
    # every other lesion of a training film gets its windows, at most 3, within one window side of the matched place
    assert table.groupby("scan_id")["roi_index"].nunique().to_dict() == {"mdb001": 1, "mdb005": 2, "mdb028": 1}
    assert table.groupby(["scan_id", "roi_index"]).size().max() <= 3 and (table["distance"] <= TILE_SIZE).all()
    assert len(streams) == 1 and streams[0][1] == 1.5
    assert_clear_of_partners_lesions(table, streams[0][0], rois)
    assert training_place_negatives(*paths, place_recipe(0, 0), scans)[0] == []
    # a pair of films of two women (a damaged index) is refused by name
    tampered = images.copy()
    tampered.loc[tampered["refnum"] == "mdb006", "patient_id"] = "mias:014"
    write_table(tampered, folder / "tampered.tsv")
    with pytest.raises(ValueError, match="mdb005.pgm and .*mdb006.pgm paired, but they are films of two women"):
        training_place_negatives(paths[0], str(folder / "tampered.tsv"), paths[2], place_recipe(3, 0), scans)


def test_other_womens_windows_come_from_training_womens_normal_films_of_the_lesions_density(real_index):
    from mammo.stages.crossval import training_place_negatives

    folder, images, rois = real_index
    # lesions on fatty (woman 3, 14) and glandular (woman 1) films; woman 4 (mdb007/008) has two normal glandular
    # films and trains, woman 23 (mdb045/046) has two and is the inner validation's; woman 107 is held out
    roles = {"mias:001": "train", "mias:003": "train", "mias:014": "train", "mias:004": "train", "mias:023": "val"}
    write_table(
        pd.DataFrame({"patient_id": list({**roles, "mias:107": "test"}), "split": [*roles.values(), "test"]}),
        folder / "split.tsv",
    )
    scans = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["scans"]
    paths = (str(folder / "split.tsv"), str(folder / "images.tsv"), str(folder / "rois.tsv"))
    streams, table = training_place_negatives(*paths, place_recipe(0, 2), scans)
    assert set(table["source"]) == {"other women"} and len(streams) == 1 and streams[0][1] == 0.5
    drawn = table.groupby("scan_id")["partner"].agg(set).to_dict()
    # the normal films of another training woman of the same density only: never her own, never the validation's
    assert drawn == {"mdb001": {"mdb007", "mdb008"}, "mdb002": {"mdb007", "mdb008"}, "mdb005": {"mdb027"}, "mdb028": {"mdb006"}}
    assert table.groupby(["scan_id", "roi_index", "partner"]).size().max() <= 2 and (table["distance"] <= TILE_SIZE).all()
    assert_clear_of_partners_lesions(table, streams[0][0], rois)
    # seeded: the same draw again; both sources together keep each one's windows and weight
    again, both = (
        training_place_negatives(*paths, place_recipe(0, 2), scans),
        training_place_negatives(*paths, place_recipe(3, 2), scans),
    )
    assert again[1].equals(table) and np.array_equal(again[0][0][0], streams[0][0])
    assert [weight for _, weight in both[0]] == [1.5, 0.5]
    assert both[1][both[1]["source"] == "other women"].to_dict("records") == table.to_dict("records")


def test_the_other_breasts_window_lies_at_the_lesions_mirrored_place():
    from mammo.hard_negatives import TrainingFilm, lesion_places, windows_at_places
    from mammo.heatmap import Windowing

    rows, cols = np.indices((1024, 1024))
    right = np.where((rows - 500) ** 2 / 420**2 + cols**2 / 600**2 <= 1, 30000, 1000).astype(np.uint16)
    right = right[:, ::-1].copy()  # a right breast: its chest wall on the film's right
    left = right[:, ::-1].copy()
    lesion = (380.0, 700.0, 20.0)  # 323 pixels from the right breast's chest wall, 120 above its nipple
    film, partner = TrainingFilm("r", "w", right, (lesion,)), TrainingFilm("l", "w", left, ())
    windowing = Windowing(stride=100, scale=2.0)  # model pixels are scan pixels; windows every 50
    tiles, table = windows_at_places(lesion_places(film, windowing), partner, windowing, 1, 0.0)
    top, left_col, bottom, right_col = map(int, table.loc[0, "box"].split(","))
    centre = np.array([(top + bottom) / 2, (left_col + right_col) / 2]) / windowing.factor  # scan pixels
    assert np.allclose(centre, (380.0, 1023 - 700.0), atol=windowing.step / windowing.factor)
    assert len(tiles) == 1 and table.loc[0, "location"] in LOCATIONS


def test_a_window_is_placed_by_what_lies_under_it():
    shape = (3 * TILE_SIZE, 3 * TILE_SIZE)
    working = np.full(shape, 100, np.uint8)
    breast = np.zeros(shape, bool)
    breast[:, : 2 * TILE_SIZE + 100] = True
    muscle = np.zeros(shape, bool)
    muscle[:100, :100] = True  # 11% of a window
    working[TILE_SIZE : 2 * TILE_SIZE, TILE_SIZE : 2 * TILE_SIZE] = 180  # dense tissue in the middle
    working[2 * TILE_SIZE + 20 : 2 * TILE_SIZE + 60, 2 * TILE_SIZE + 150 : 2 * TILE_SIZE + 250] = 255  # a film label
    found = ScanWindows(working, np.where(breast, working, 0), breast, muscle, np.zeros((0, 2), int), 0)
    median = float(np.median(working[breast]))
    assert window_location(found, 0, 0, median) == "pectoral muscle"
    assert window_location(found, 2 * TILE_SIZE, 2 * TILE_SIZE, median) == "label"
    assert window_location(found, TILE_SIZE, 2 * TILE_SIZE - 50, median) == "skin line or film border"
    assert window_location(found, TILE_SIZE, TILE_SIZE, median) == "dense tissue"
    assert window_location(found, TILE_SIZE + 10, 100, median) == "fatty tissue"


def test_location_shares_list_every_location_per_round():
    table = pd.DataFrame({"round": [1, 1, 2], "location": ["dense tissue", "label", "label"]})
    shares = location_shares(table)
    assert shares["1"]["dense tissue"] == 0.5 and shares["2"]["label"] == 1.0
    assert all(set(per_round) == set(LOCATIONS) for per_round in shares.values())


def test_hard_negative_settings_are_checked():
    with pytest.raises(ValueError, match="windows_per_film >= 1"):
        HardNegatives(rounds=1, windows_per_film=0)


# ----------------------------------------------------------------------------- training rounds
@pytest.fixture(scope="module")
def records(tmp_path_factory):
    from mammo.records import write_shard

    root = tmp_path_factory.mktemp("records")
    rng = np.random.default_rng(0)
    images = rng.integers(60, 160, size=(12, 299, 299), dtype=np.uint8)
    images[6:, 120:180, 120:180] = 250
    table = tile_table([0] * 6 + [2, 4, 2, 4, 1, 3])
    path = root / "train.tfrecord"
    write_shard(table, lambda row: images[int(row["tile_index"])], path)
    return path


def test_a_pass_holds_every_hard_negative_with_its_weight_besides_the_normal_sample(records):
    from mammo.train import make_dataset

    hard, other_breast = np.full((5, 299, 299), 7, np.uint8), np.full((3, 299, 299), 9, np.uint8)
    dataset = make_dataset(
        [records], "binary", 4, training=True, seed=1, abnormal_fraction=0.5, extra_normals=[(hard, 2.5), (other_breast, 1.5)]
    )
    images, labels, weights = (np.concatenate(part) for part in zip(*[(x.numpy(), y.numpy(), w.numpy()) for x, y, w in dataset]))
    is_hard, is_other = (images == 7).all(axis=(1, 2, 3)), (images == 9).all(axis=(1, 2, 3))
    assert is_hard.sum() == 5 and (labels[is_hard] == 0).all() and (weights[is_hard] == 2.5).all()
    assert is_other.sum() == 3 and (labels[is_other] == 0).all() and (weights[is_other] == 1.5).all()
    tiles = ~is_hard & ~is_other
    assert (labels == 1).sum() == 6 and ((labels == 0) & tiles).sum() == 6  # every abnormal tile, a normal share of 0.5
    assert (weights[(labels == 0) & tiles] == 1.0).all()


def test_training_rounds_mine_from_the_model_as_it_is_train_on_and_undo_a_worse_round(records, tmp_path, monkeypatch):
    from mammo.train import train
    from mammo.train_config import TrainConfig

    calls = []

    def mine(predict):
        probabilities = predict(np.zeros((3, 299, 299), np.uint8))
        assert probabilities.shape == (3, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)
        calls.append(len(calls) + 1)
        tiles = np.full((2, 299, 299), 30 + len(calls), np.uint8)
        table = pd.DataFrame(
            {
                "scan_id": ["mdb001", "mdb003"],
                "patient_id": ["mias:001", "mias:002"],
                "score": [0.9, 0.8],
                "location": ["dense tissue", "label"],
                "box": ["0,0,299,299", "10,10,309,309"],
            }
        )
        return tiles, table

    # every round kept, whatever the inner validation says (below, a round is undone)
    hard = {"rounds": 2, "windows_per_film": 1, "weight": 2.0, "epochs": 1, "stride": 598, "undo_worse_rounds": False}
    config = TrainConfig(
        model="vgg16_lite", epochs=1, batch_size=6, batchnorm_batches=0, threads=2, seed=3, tensorboard=False, hard_negatives=hard
    )
    train([records], [records], config, tmp_path, mine=mine)
    assert calls == [1, 2]
    assert list(pd.read_csv(tmp_path / "history.csv")["epoch"]) == [0, 1, 2]  # the first epochs, then one per round
    mined = pd.read_csv(tmp_path / "hard_negatives.tsv", sep="\t")
    assert list(mined.columns) == HARD_NEGATIVE_COLUMNS and list(mined["round"]) == [1, 1, 2, 2] and mined["kept"].all()
    assert (tmp_path / "hard_negatives.png").stat().st_size > 0 and not (tmp_path / "progress").exists()
    with pytest.raises(ValueError, match="no training films"):
        train([records], [records], config, tmp_path / "again")
    # a round that lowers the inner validation is undone: the weights before it come back, no later round is mined
    import keras

    import mammo.train

    loaded = []
    load_weights = keras.Model.load_weights
    monkeypatch.setattr(mammo.train, "round_holds", lambda *_: (False, 0.9, 0.4))
    monkeypatch.setattr(
        keras.Model,
        "load_weights",
        lambda model, path, *a, **k: loaded.append(Path(path).name) or load_weights(model, path, *a, **k),
    )
    calls.clear()
    train(
        [records], [records], replace(config, hard_negatives={**hard, "undo_worse_rounds": True}), tmp_path / "undone", mine=mine
    )
    assert calls == [1] and loaded == ["stage0.weights.h5"]
    undone = pd.read_csv(tmp_path / "undone" / "hard_negatives.tsv", sep="\t")
    assert list(undone["round"]) == [1, 1] and not undone["kept"].any()
    assert list(pd.read_csv(tmp_path / "undone" / "history.csv")["epoch"]) == [0, 1]  # the undone round's epoch is told


def test_a_round_holds_unless_the_inner_validation_pr_auc_fell():
    from mammo.train import round_holds

    # epochs 0-2 before the round, 3-4 the round's; epoch 3 ran twice (a resumed run): its last row counts
    history = pd.DataFrame({"epoch": [0, 1, 2, 3, 3, 4], "val_abnormal_pr_auc": [0.3, 0.5, 0.6, 0.1, 0.55, 0.6]})
    assert round_holds(history, 2, 4) == (True, 0.6, 0.6)  # equal: kept
    assert round_holds(history, 2, 3) == (False, 0.6, 0.55)
    assert round_holds(history.assign(val_abnormal_pr_auc=np.nan), 2, 4)[0]  # undefined: kept
