"""A film's score from its windows and the other breast's: the breast frame (synthetic, and real mini-MIAS films drawn
and looked at), the matching windows of the other breast, the learnt aggregate and its cross-validation stage."""

from __future__ import annotations

import json
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo.film_scores import (
    FEATURES,
    LEVEL_SCALE,
    OTHER_BREAST_FEATURES,
    RELATIVE_SCORES,
    BreastFrame,
    FilmWindows,
    above_median,
    breast_frame,
    film_arrays,
    film_features,
    film_score,
    fit_aggregate,
    other_breast_scores,
    read_film,
)
from mammo.heatmap import LEVEL_PERCENTILE, Windowing, breast_level, segmented, working_image
from mammo.io.scan import read_scan
from mammo.sources import windowing_scale
from mammo.tables import read_table, write_table

SIDE = 40  # window side of the synthetic films, in scan pixels


def synthetic_breast(chest_wall_left: bool = True) -> np.ndarray:
    """A breast mask of a 400 x 300 film: a half disc on the chest wall, its nipple at row 200, 240 pixels deep."""
    rows, cols = np.indices((400, 300))
    mask = (rows - 200) ** 2 / 190**2 + cols**2 / 240**2 <= 1
    return mask if chest_wall_left else mask[:, ::-1].copy()


def synthetic_film(scores_at: dict[tuple[int, int], float], chest_wall_left: bool = True, base: float = 0.1):
    """Windows of SIDE pixels every SIDE / 2 inside the synthetic breast, scoring `base` but where a window's top-left
    corner (measured from the chest wall) is in `scores_at`."""
    breast = synthetic_breast(True)
    boxes, scores = [], []
    for top in range(0, 400 - SIDE + 1, SIDE // 2):
        for depth in range(0, 300 - SIDE + 1, SIDE // 2):
            if breast[top : top + SIDE, depth : depth + SIDE].mean() < 0.75:
                continue
            left = depth if chest_wall_left else 300 - SIDE - depth
            boxes.append((top, left, top + SIDE, left + SIDE))
            scores.append(scores_at.get((top, depth), base))
    mask = synthetic_breast(chest_wall_left)
    return FilmWindows(np.array(boxes), np.array(scores), np.ones(len(boxes)), breast_frame(mask, 1.0))


def test_a_frame_maps_points_there_and_back():
    frame = BreastFrame(False, 800.0, 400.0, 600.0, 10.0, 900.0)
    rows, cols = np.array([10.0, 300.0, 600.0, 899.0]), np.array([790.0, 600.0, 400.0, 700.0])
    depth, height = frame.to_frame(rows, cols)
    assert depth == pytest.approx([0.025, 0.5, 1.0, 0.25]) and height[0] == pytest.approx(-1) and height[2] == 0
    assert np.allclose(frame.from_frame(depth, height), (rows, cols))
    assert BreastFrame.from_array(frame.as_array()) == frame


@pytest.mark.parametrize("chest_wall_left", [True, False])
def test_the_frame_finds_the_chest_wall_and_the_nipple(chest_wall_left):
    frame = breast_frame(synthetic_breast(chest_wall_left), 0.5)  # the mask drawn at half the scan's size
    assert frame.chest_left == chest_wall_left
    assert frame.wall == pytest.approx(0 if chest_wall_left else 598, abs=4)
    assert frame.depth == pytest.approx(480, abs=8) and frame.nipple_row == pytest.approx(400, abs=6)
    assert (frame.top, frame.bottom) == (pytest.approx(20, abs=6), pytest.approx(780, abs=6))
    assert breast_frame(np.zeros((50, 50), bool), 1.0) is None


def test_a_thin_strip_along_the_film_edge_is_not_the_nipple():
    """mdb002's breast mask keeps a scanner strip along the top edge that reaches past the nipple."""
    mask = synthetic_breast()
    mask[:6, :] = True
    frame = breast_frame(mask, 1.0)
    assert frame.depth == pytest.approx(240, abs=5) and frame.nipple_row == pytest.approx(200, abs=5)


def test_the_other_breast_is_matched_mirrored_at_the_same_place():
    """A right breast (chest wall on the film's right) against a left one: a window is compared with the place of the
    other breast at the same depth and height, whatever side of the film either chest wall lies on."""
    hot = (120, 60)
    left = synthetic_film({hot: 0.9}, chest_wall_left=True)
    right_same = synthetic_film({hot: 0.8}, chest_wall_left=False)
    right_clear = synthetic_film({}, chest_wall_left=False)
    at = next(i for i, box in enumerate(left.boxes) if tuple(box[:2]) == hot)
    assert other_breast_scores(left, right_same)[at] == pytest.approx(0.8)
    assert other_breast_scores(left, right_clear)[at] == pytest.approx(0.1)
    # far from the hot place the other breast's hot window is out of reach
    far = next(i for i, box in enumerate(left.boxes) if box[0] >= 300)
    assert other_breast_scores(left, right_same)[far] == pytest.approx(0.1)
    features = film_features(left, right_clear)
    assert features["other_breast_max_difference"] == pytest.approx(np.log(9) - np.log(1 / 9), abs=1e-3)
    assert film_features(left, right_same)["other_breast_max_difference"] < features["other_breast_max_difference"]
    assert set(film_features(left)) == set(FEATURES)
    assert set(features) == set(FEATURES + OTHER_BREAST_FEATURES)


def with_level(film: FilmWindows, level: float) -> FilmWindows:
    return replace(film, level=level)


def test_the_two_breasts_grey_levels_enter_as_their_difference_and_only_where_both_are_known():
    film, other = synthetic_film({(120, 60): 0.9}), synthetic_film({}, chest_wall_left=False)
    assert film_features(with_level(film, 180.0), with_level(other, 150.5))["other_breast_level_difference"] == 29.5
    assert film_features(with_level(film, 150.5), with_level(other, 180.0))["other_breast_level_difference"] == -29.5
    # a film scored before levels were kept (or without breast) has none: the feature says nothing rather than guess
    assert film_features(film, with_level(other, 150.0))["other_breast_level_difference"] == 0.0
    assert film_features(with_level(film, 150.0), other)["other_breast_level_difference"] == 0.0
    assert "other_breast_level_difference" not in film_features(with_level(film, 150.0))


def test_the_asymmetry_score_ranks_the_denser_breast_of_a_woman_first_and_reads_no_window():
    asymmetry = RELATIVE_SCORES["asymmetry"]
    quiet, loud = synthetic_film({}), synthetic_film({(120, 60): 0.95})
    other = with_level(synthetic_film({}, chest_wall_left=False), 160.0)
    denser, score_used = film_score(asymmetry, with_level(quiet, 175.0), other)
    assert score_used and denser == pytest.approx(1 / (1 + np.exp(-15.0 / LEVEL_SCALE)))
    assert film_score(asymmetry, with_level(loud, 175.0), other)[0] == denser  # the windows' scores are not read
    lighter, _ = film_score(asymmetry, with_level(quiet, 145.0), other)
    assert lighter == pytest.approx(1 - denser) and lighter < 0.5 < denser
    # without her other film, or a level, there is nothing to compare: 0.5, and it says the other breast was not used
    assert film_score(asymmetry, with_level(quiet, 175.0)) == (0.5, False)
    assert film_score(asymmetry, quiet, other) == (0.5, False)


def test_the_strongest_window_and_the_asymmetry_add_as_two_readings():
    both = RELATIVE_SCORES["max_and_asymmetry"]
    film, other = with_level(synthetic_film({(120, 60): 0.8}), 170.0), with_level(synthetic_film({}, False), 160.0)
    score, used = film_score(both, film, other)
    assert used and score == pytest.approx(1 / (1 + np.exp(-(np.log(0.8 / 0.2) + 10.0 / LEVEL_SCALE))))
    # each reading moves it: a stronger window, or a denser breast than her other one
    assert film_score(both, with_level(synthetic_film({(120, 60): 0.9}), 170.0), other)[0] > score
    assert film_score(both, with_level(film, 190.0), other)[0] > score
    # without the other breast the strongest window alone, and it says so
    assert film_score(both, film) == (pytest.approx(0.8), False)


def test_the_breast_level_reads_the_breast_alone():
    """A bright label beside the breast, or a black border, leaves the level alone; bright tissue inside raises it."""
    image = np.zeros((100, 100), np.uint8)
    breast = np.zeros((100, 100), bool)
    breast[20:80, :50] = True
    image[breast] = np.tile(np.arange(60, dtype=np.uint8)[:, None] + 100, (1, 50)).ravel()  # rows of 100..159
    level = breast_level(image, breast)
    assert level == pytest.approx(np.percentile(np.arange(100, 160), LEVEL_PERCENTILE), abs=0.5)
    labelled = image.copy()
    labelled[5:15, 70:95] = 255
    assert breast_level(labelled, breast) == level
    denser = image.copy()
    denser[30:50, 10:40] = 220  # a dense place inside the breast
    assert breast_level(denser, breast) > level + 20
    assert np.isnan(breast_level(image, np.zeros_like(breast)))


def test_a_film_without_a_frame_or_windows_has_no_match():
    film = synthetic_film({})
    empty = FilmWindows(np.zeros((0, 4), int), np.zeros(0), np.zeros(0), film.frame)
    assert np.isnan(other_breast_scores(film, empty)).all()
    assert film_features(film, empty)["other_breast_max_difference"] == 0.0


def learnt_films(seed: int, films: int = 40):
    """Pairs of films: an abnormal one has a window only it holds (the lesion), its partner none; a normal pair share
    their strongest window (symmetric dense tissue), as strong as a lesion."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(films):
        abnormal = index % 3 == 0
        place = (int(rng.integers(2, 12)) * 20, int(rng.integers(0, 6)) * 20)
        strength = float(rng.uniform(0.6, 0.95))
        film = synthetic_film({place: strength}, chest_wall_left=True, base=float(rng.uniform(0.05, 0.2)))
        other = synthetic_film({} if abnormal else {place: strength}, chest_wall_left=False)
        rows.append((film, other, int(abnormal)))
    return rows


def test_the_learnt_aggregate_reads_the_other_breast_where_the_maximum_cannot():
    from sklearn.metrics import roc_auc_score

    fitted, held = learnt_films(0), learnt_films(1)
    labels = [label for _, _, label in fitted]
    alone = fit_aggregate([film_features(film) for film, _, _ in fitted], labels, {"films": 40})
    both = fit_aggregate(
        [film_features(film, other) for film, other, _ in fitted], labels, {"films": 40}, without_other_breast=alone
    )
    truth = [label for _, _, label in held]
    by_max = [film_score({"method": "max"}, film)[0] for film, _, _ in held]
    by_both = [film_score(both, film, other) for film, other, _ in held]
    assert roc_auc_score(truth, by_max) < 0.75 and roc_auc_score(truth, [s for s, _ in by_both]) > 0.95
    assert all(used for _, used in by_both)
    # without its partner a film is scored by the aggregate without the other breast, and says so
    film = held[0][0]
    assert film_score(both, film) == (film_score(alone, film)[0], False)
    assert film_score({"method": "max"}, film) == (film.scores.max(), False)
    assert both["uses_other_breast"] and not alone["uses_other_breast"] and both["fitted_on"] == {"films": 40}
    assert json.loads(json.dumps(both)) == both  # as it is stored in a card
    with pytest.raises(ValueError, match="normal and abnormal films"):
        fit_aggregate([film_features(film)], [1], {})


def shifted(film: FilmWindows, logits: float) -> FilmWindows:
    """The film with every window's logit raised by `logits` (a denser breast, by the tile model's reading)."""
    return replace(film, scores=1 / (1 + np.exp(-(np.log(film.scores / (1 - film.scores)) + logits))))


def test_a_film_scored_above_its_own_median_ignores_a_level_common_to_its_windows():
    lesion = synthetic_film({(120, 60): 0.6}, base=0.1)
    dense_normal = synthetic_film({(120, 60): 0.7}, base=0.5)  # every window high: the max alone ranks it first
    assert film_score({"method": "max"}, dense_normal)[0] > film_score({"method": "max"}, lesion)[0]
    above_film = RELATIVE_SCORES["above_film"]
    assert film_score(above_film, lesion)[0] > film_score(above_film, dense_normal)[0]
    # the logit of the score is the max's logit less the median's: a shift common to all windows leaves it alone
    expected = np.log(0.6 / 0.4) - np.log(0.1 / 0.9)
    assert np.isclose(np.log(above_median(lesion) / (1 - above_median(lesion))), expected)
    assert np.isclose(above_median(shifted(lesion, 2.0)), above_median(lesion))
    assert film_score(above_film, lesion, dense_normal) == (above_median(lesion), False)


def test_a_film_scored_above_the_womans_median_reads_both_her_films():
    film = synthetic_film({(120, 60): 0.6}, base=0.1)
    dense_other = synthetic_film({}, chest_wall_left=False, base=0.5)
    above_woman = RELATIVE_SCORES["above_woman"]
    score, used = film_score(above_woman, film, dense_other)
    assert used and score == above_median(film, dense_other) and score < above_median(film)
    # her windows all shifted together leave it alone
    assert np.isclose(above_median(shifted(film, -1.5), shifted(dense_other, -1.5)), score)
    # without her other film, or with one that has no window, the film's own windows set the level, and it says so
    empty = FilmWindows(np.zeros((0, 4), int), np.zeros(0), np.zeros(0), dense_other.frame)
    assert film_score(above_woman, film) == film_score(above_woman, film, empty) == (above_median(film), False)


def test_a_films_windows_go_through_the_scans_archive_unchanged(tmp_path):
    film = synthetic_film({(120, 60): 0.9})
    np.savez_compressed(tmp_path / "heatmaps.npz", **film_arrays("mias:mdb001", film))
    with np.load(tmp_path / "heatmaps.npz") as archive:
        back = read_film(archive, "mias:mdb001")
    assert np.array_equal(back.boxes, film.boxes) and np.allclose(back.scores, film.scores) and back.frame == film.frame
    assert np.isnan(back.level)  # none was given: none is stored, and an archive without one reads as unknown
    np.savez_compressed(tmp_path / "levels.npz", **film_arrays("mias:mdb001", with_level(film, 171.25)))
    with np.load(tmp_path / "levels.npz") as archive:
        assert read_film(archive, "mias:mdb001").level == 171.25


def fold_inputs(folder: Path, validation_women: list[str], held_out_women: list[str]) -> dict:
    """A fold's scored films as the workflow leaves them: scans tables and archives of the inner-validation and the
    held-out women's films (mini-MIAS numbering: woman k has mdb(2k-1) right and mdb(2k) left), and its split."""
    paths = {}
    rng = np.random.default_rng(3)
    for kind, women in (("validation", validation_women), ("out_of_fold", held_out_women)):
        rows, arrays = [], {}
        for woman in women:
            number = int(woman.removeprefix("mias:"))
            abnormal_side = rng.integers(0, 3)  # 0: the right breast, 1: the left, 2: neither
            place = (int(rng.integers(2, 12)) * 20, int(rng.integers(0, 6)) * 20)
            for side, refnum in enumerate((f"mdb{2 * number - 1:03d}", f"mdb{2 * number:03d}")):
                strength = 0.9 if side == abnormal_side or abnormal_side == 2 else 0.1
                film = synthetic_film({place: strength}, chest_wall_left=side == 1)
                scan_id = f"mias:{refnum}"
                arrays.update(film_arrays(scan_id, film))
                rows.append(
                    {
                        "scan_id": scan_id,
                        "set": kind,
                        "patient_id": woman,
                        "path": f"all-mias/{refnum}.pgm",
                        "label_normal": int(side == abnormal_side),
                        "windows_scored": len(film.scores),
                    }
                )
        write_table(pd.DataFrame(rows), folder / f"{kind}.scans.tsv")
        np.savez_compressed(folder / f"{kind}.npz", **arrays)
        paths[kind] = (str(folder / f"{kind}.scans.tsv"), str(folder / f"{kind}.npz"))
    split = pd.DataFrame(
        {
            "patient_id": validation_women + held_out_women + ["mias:099"],
            "split": ["val"] * len(validation_women) + ["test"] * len(held_out_women) + ["train"],
        }
    )
    write_table(split, folder / "split.tsv")
    paths["split"] = str(folder / "split.tsv")
    return paths


def test_a_fold_learns_its_film_score_from_its_inner_validation_women_only(tmp_path):
    from mammo.stages.crossval import fold_film_scores

    validation = [f"mias:{n:03d}" for n in range(1, 31)]
    held_out = [f"mias:{n:03d}" for n in range(31, 51)]
    paths = fold_inputs(tmp_path, validation, held_out)
    fold_film_scores(*paths["validation"], *paths["out_of_fold"], paths["split"], tmp_path / "agg.json", tmp_path / "f.tsv")
    aggregates = json.loads((tmp_path / "agg.json").read_text())
    assert aggregates["learned"]["fitted_on"]["women"] == 30 and aggregates["learned"]["fitted_on"]["set"] == "inner validation"
    assert aggregates["learned_other_breast"]["uses_other_breast"] and aggregates["max"] == {"method": "max"}
    assert {name: aggregates[name] for name in RELATIVE_SCORES} == RELATIVE_SCORES  # nothing learnt
    films = read_table(tmp_path / "f.tsv")
    with np.load(paths["out_of_fold"][1]) as archive:
        film, other = read_film(archive, "mias:mdb061"), read_film(archive, "mias:mdb062")
    row = films.set_index("scan_id").loc["mias:mdb061"]
    assert np.isclose(row["above_film"], above_median(film)) and np.isclose(row["above_woman"], above_median(film, other))
    assert len(films) == 40 and set(films["other_breast"]) == {"used"}
    assert (films.set_index("scan_id").loc["mias:mdb061", "partner"]) == "mias:mdb062"
    assert films["patient_id"].isin(held_out).all()

    # a film of a woman outside the fold's inner validation (here a held-out one) is refused
    strangers = fold_inputs(tmp_path, validation, held_out)
    scans = read_table(strangers["validation"][0])
    scans.loc[0, "patient_id"] = "mias:031"
    write_table(scans, strangers["validation"][0])
    with pytest.raises(ValueError, match="outside .*split.tsv's inner validation \\(mias:031\\)"):
        fold_film_scores(*strangers["validation"], *strangers["out_of_fold"], strangers["split"], tmp_path / "a", tmp_path / "b")


# looked at on a drawing of each film with its chest-wall line, nipple and top and bottom rows (scan pixels; right
# breasts have their chest wall on the film's right)
REAL_FRAMES = {
    "mdb001": (False, 764, 388, 610),
    "mdb002": (True, 188, 424, 679),
    "mdb005": (False, 836, 544, 659),
    "mdb006": (True, 188, 552, 675),
    "mdb057": (False, 836, 508, 608),
    "mdb058": (True, 188, 476, 619),
}


@pytest.fixture(scope="module")
def real_films(real_mias_archive, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("real_frames")
    with tarfile.open(real_mias_archive) as tar:
        wanted = [m for m in tar.getmembers() if Path(m.name).stem in REAL_FRAMES]
        tar.extractall(folder, members=wanted, filter="data")
    return folder / "all-mias"


def test_real_films_frames_lie_where_they_were_drawn(real_films):
    windowing = Windowing(scale=windowing_scale(2.58))
    for name, (chest_left, wall, depth, nipple_row) in REAL_FRAMES.items():
        _, breast = segmented(working_image(read_scan(real_films / f"{name}.pgm"), windowing))
        frame = breast_frame(breast, windowing.factor)
        assert frame.chest_left == chest_left, name
        assert (frame.wall, frame.depth, frame.nipple_row) == (
            pytest.approx(wall, abs=8),
            pytest.approx(depth, abs=12),
            pytest.approx(nipple_row, abs=12),
        ), name
        assert frame.top < frame.nipple_row < frame.bottom


def test_real_films_levels_read_the_breast_and_not_the_label_beside_it(real_films):
    """mini-MIAS films carry bright labels and tape beside the breast: the level reads the breast's grey levels only, so
    the same breast on a film with or without its label has the same level."""
    windowing = Windowing(scale=windowing_scale(2.58))
    labelled = 0
    for name in REAL_FRAMES:
        working = working_image(read_scan(real_films / f"{name}.pgm"), windowing)
        _, breast = segmented(working)
        labelled += int(((working >= 200) & ~breast).sum() > 10_000)
        level = breast_level(working, breast)
        assert 150 < level < 230, name
        assert level == np.percentile(working[breast], LEVEL_PERCENTILE), name
        cleaned = np.where(breast, working, 0).astype(np.uint8)  # the label and the film around the breast blacked out
        assert breast_level(cleaned, segmented(cleaned)[1]) == pytest.approx(level, abs=1), name
    assert labelled >= 4


def test_the_final_models_card_carries_the_film_score_learnt_on_its_inner_validation(tmp_path):
    from dataclasses import asdict

    from mammo.card import model_card, read_card, scanning_section, write_card
    from mammo.stages.crossval import final_card

    paths = fold_inputs(tmp_path, [f"mias:{n:03d}" for n in range(1, 31)], [])
    (tmp_path / "tiles.tsv").write_text("tile_id\n")
    (tmp_path / "model.keras").write_bytes(b"weights")
    evaluation_card = model_card(
        {"model": "1.0.0.35.mias", "labels": "binary", "epochs": 1, "test_contrast": 1.0},
        "float32",
        1.2,
        {"fixed": 0.5, "best_f1": 0.3},
        [str(tmp_path / "tiles.tsv")],
        [tmp_path / "model.keras"],
        {"engine": "tensorflow", "version": "3", "precision": "float32"},
        scanning_section("mias", 2.58, asdict(Windowing())),
    )
    (tmp_path / "inner_validation").mkdir()
    write_card(evaluation_card, tmp_path / "inner_validation" / "model.json")
    for choice in ("learned_other_breast", "above_woman", "asymmetry", "max_and_asymmetry", "max"):
        final_card(
            str(tmp_path / "inner_validation" / "model.json"),
            *paths["validation"],
            paths["split"],
            choice,
            str(tmp_path / "model.json"),
            str(tmp_path / "film_scores.json"),
        )
        card = read_card(tmp_path / "model.keras")
        scanning = card["scanning"]
        assert scanning["aggregate"] == json.loads((tmp_path / "film_scores.json").read_text())[choice]
        assert scanning["uses_other_breast"] == (choice != "max")
        assert card["temperature"] == 1.2 and scanning["window_scale"] == evaluation_card["scanning"]["window_scale"]
    assert scanning["aggregate"] == {"method": "max"}
