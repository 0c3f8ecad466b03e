"""Stages of workflow/rules/crossval.smk: mini-MIAS cross-validation tiles, folds by woman, pooled out-of-fold metrics."""

from __future__ import annotations

import json
import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from mammo import evaluate as ev
from mammo import split as splitting
from mammo.card import write_card
from mammo.extract import LESION_CONTEXT_COLUMNS, BackgroundTiles, EdgeTiles, mias_lesion_contexts, mias_tiles
from mammo.film_scores import FILM_SCORES, RELATIVE_SCORES, film_score, fit_aggregate, scored_films
from mammo.hard_negatives import (
    PLACE_COLUMNS,
    HardNegatives,
    OtherBreastNegatives,
    OtherWomenNegatives,
    TrainingFilm,
    lesion_places,
    mine_films,
    windows_at_places,
)
from mammo.heatmap import Windowing
from mammo.io import FormatError
from mammo.io.mias import mias_centre, read_mias_scan
from mammo.online_crops import recipe_crops
from mammo.scan_eval import TARGET_COLUMNS
from mammo.sources import partners, windowing_scale
from mammo.stages.tiles import mias_summary, tiling, write_chunk
from mammo.tables import read_table, write_json, write_table
from mammo.tiles import NormalThresholds, roi_method


def tiles_mias_cv(
    images_path: str,
    rois_path: str,
    settings: dict,
    scans: dict,
    tiles_out: str,
    table_out: str,
    rejected_out: str,
    summary_out: str,
    contexts_out: str,
    contexts_table_out: str,
) -> None:
    """Tiles of every mini-MIAS film for cross-validation, each tagged with its woman's fold.

    Abnormal tiles from every ROI with coordinates (the recipe's extraction method); normal tiles from normal films
    and from abnormal films away from every lesion circle grown by `lesion_margin`, and up to `edges_per_film` of
    the windows that whole-film scanning (`scans`: stride, min_tissue) scores but the tissue thresholds reject.
    With online crops (`online_crops.enabled`), also the context patch of every tiled lesion, which training cuts
    new crops from each epoch (none otherwise: the outputs stay, empty). With `surround`, every tile has its
    surroundings as a second channel (mammo.extract.mias_tiles).
    """
    images, rois = read_table(images_path), read_table(rois_path)
    method = roi_method(settings["roi"], tile=settings["tile"])
    normals = {**settings["normals"], "tile": settings["tile"]}
    thresholds = NormalThresholds(**normals["thresholds"])
    lesion_free = BackgroundTiles(10**9, 0.0, settings["lesion_margin"], tiling(normals), thresholds)
    windowing = Windowing(stride=scans["stride"], min_tissue=scans["min_tissue"])
    edges = EdgeTiles(settings["edges_per_film"], windowing, normals["border_crop"]) if settings["edges_per_film"] else None
    tiles, table, rejected = mias_tiles(
        images,
        rois,
        "mias_cv",
        method,
        thresholds,
        tiling(normals),
        settings["scale"],
        settings["seed"],
        tiles_out,
        lesion_free,
        edges,
        settings["surround"],
    )
    fold_of = splitting.woman_folds(images["patient_id"], images["label_normal"], settings["folds"], settings["seed"])
    table["fold"] = table["patient_id"].map(fold_of)
    summary = mias_summary(images, rois, table, rejected)
    summary["folds"] = {
        str(fold): {
            "women": sum(f == fold for f in fold_of.values()),
            "abnormal_women": int(
                images[images["patient_id"].map(fold_of) == fold].groupby("patient_id")["label_normal"].max().sum()
            ),
            "tiles": int((table["fold"] == fold).sum()),
            "abnormal_tiles": int(table.loc[table["fold"] == fold, "label_normal"].sum()),
        }
        for fold in range(settings["folds"])
    }
    write_chunk((tiles, table, rejected), {"tiles": tiles_out, "table": table_out, "rejected": rejected_out})
    write_json(summary, summary_out)
    online = recipe_crops(settings)
    if online is None:  # fixed crops only: the outputs stay, empty
        contexts, contexts_table = np.zeros((0, 1, 1), np.uint8), pd.DataFrame(columns=LESION_CONTEXT_COLUMNS)
    else:
        contexts, contexts_table = mias_lesion_contexts(images, rois, table, settings["scale"], online)
    contexts_table["fold"] = contexts_table["patient_id"].map(fold_of)
    np.save(contexts_out, contexts)
    write_table(contexts_table, contexts_table_out)


def mias_cv_fold(
    tiles_path: str,
    images_path: str,
    fold: int | None,
    settings: dict,
    split_out: str,
    films_out: str | None = None,
    validation_films_out: str | None = None,
) -> None:
    """One fold's tile table (its held-out women are `test`, an inner validation of the others `val`, the rest `train`),
    where `films_out` is given its held-out films, every one of them, for whole-film detection, and where
    `validation_films_out` is given the inner-validation women's films, which the film score's aggregate learns from.
    Fold None: the final model's table, no woman held out."""
    tiles, images = read_table(tiles_path), read_table(images_path)
    fold_of = splitting.woman_folds(images["patient_id"], images["label_normal"], settings["folds"], settings["seed"])
    if (tiles["patient_id"].map(fold_of) != tiles["fold"].astype(int)).any():
        raise ValueError(f"{tiles_path}: folds differ from those of {images_path}; rerun the tile stage")
    split = splitting.fold_splits(tiles, fold_of, fold, settings["inner_val"], settings["seed"])
    validation_women = set(split.loc[split["split"] == "val", "patient_id"])
    for out, chosen, kind in (
        (films_out, images["patient_id"].map(fold_of) == fold, "out_of_fold"),
        (validation_films_out, images["patient_id"].isin(validation_women), "validation"),
    ):
        if out is not None:
            write_table(film_targets(images[chosen], kind, settings["scale"]), out)
    split = splitting.balance(split, settings["abnormal_fraction"], settings["seed"] + (0 if fold is None else fold))
    if settings["fresh_normals"]:
        # every training normal tile goes to the records: training draws a new sample of them each epoch
        split.loc[split["split"] == "train", "kept"] = True
    if recipe_crops(settings) is not None:
        # training cuts new crops of its lesions each epoch from their context patches instead of these fixed ones
        split.loc[(split["split"] == "train") & (split["label_normal"] == 1), "kept"] = False
    # the held-out women are scored whole, every tile but the edge windows (those are judged on whole films), so that
    # tile figures stay comparable with and without edge training tiles
    split.loc[split["split"] == "test", "kept"] = split["method"] != "edge"
    write_table(split, split_out)
    write_json({"fold": fold, **splitting.summary(split)}, Path(split_out).with_suffix(".json"))


def film_targets(images: pd.DataFrame, kind: str, scale: float) -> pd.DataFrame:
    """mini-MIAS films (rows of the image index) as whole films to score (mammo.scan_eval.TARGET_COLUMNS), in set
    `kind`, windowed at the recipe's tile `scale`."""
    return pd.DataFrame(
        {
            "scan_id": "mias:" + images["refnum"],
            "set": kind,
            "source": "mias",
            "patient_id": images["patient_id"],
            "path": images["path"],
            "scale": windowing_scale(scale),
            "label_normal": images["label_normal"],
        }
    )[TARGET_COLUMNS]


FILM_SCORE_COLUMNS = ["scan_id", "patient_id", "label_normal", "partner", "other_breast", *FILM_SCORES]


def learned_film_scores(validation_scans_path: str, validation_heatmaps_path: str, split_path: str) -> dict:
    """The film scores (FILM_SCORES) learnt from the inner-validation women's scored films of a split
    (mammo.film_scores: a logistic aggregate of the windows without, and one with, the other breast), the max and the
    scores relative to the film's or the woman's own windows (RELATIVE_SCORES, nothing to learn)."""
    split = read_table(split_path)
    validation_women = set(split.loc[split["split"] == "val", "patient_id"].astype(str))
    validation = read_table(validation_scans_path)
    strangers = sorted(set(validation["patient_id"].astype(str)) - validation_women)
    if strangers:
        raise ValueError(
            f"{validation_scans_path}: films of women outside {split_path}'s inner validation ({', '.join(strangers[:5])}):"
            " the film score is learnt from inner-validation women only"
        )
    fitted = scored_films(validation, validation_heatmaps_path)
    fitted_on = {
        "set": "inner validation",
        "films": len(fitted),
        "abnormal": int(sum(film.label for film in fitted)),
        "women": len({film.woman for film in fitted}),
    }
    if len({film.label for film in fitted}) < 2:
        # a handful of women (a tiny run) may give an inner validation of one kind of film: nothing to learn from
        print(f"film scores not learnt: the inner validation's films ({fitted_on}) are not of both kinds; max kept")
        return {**dict.fromkeys(FILM_SCORES, {"method": "max"}), **RELATIVE_SCORES}
    learned = fit_aggregate([film.features() for film in fitted], [film.label for film in fitted], fitted_on)
    partnered = [film for film in fitted if film.other is not None]
    with_other = fit_aggregate(
        [film.features(other_breast=True) for film in partnered],
        [film.label for film in partnered],
        {**fitted_on, "films_with_partner": len(partnered)},
        without_other_breast=learned,
    )
    print(f"film scores learnt from {fitted_on}")
    return {"max": {"method": "max"}, **RELATIVE_SCORES, "learned": learned, "learned_other_breast": with_other}


def fold_film_scores(
    validation_scans_path: str,
    validation_heatmaps_path: str,
    scans_path: str,
    heatmaps_path: str,
    split_path: str,
    aggregates_out: str,
    films_out: str,
) -> None:
    """A fold's film scores learnt from its inner-validation women (learned_film_scores), and its held-out films scored
    by each: one row per film with a scored window, its partner (her other breast's film of the same view) named, and
    whether the other breast was used."""
    aggregates = learned_film_scores(validation_scans_path, validation_heatmaps_path, split_path)
    rows = []
    for film in scored_films(read_table(scans_path), heatmaps_path):
        scores = {name: film_score(aggregate, film.windows, film.other) for name, aggregate in aggregates.items()}
        rows.append(
            {
                "scan_id": film.scan_id,
                "patient_id": film.woman,
                "label_normal": film.label,
                "partner": film.partner or "",
                "other_breast": "used" if scores["learned_other_breast"][1] else "not used",
                **{name: round(score, 6) for name, (score, _) in scores.items()},
            }
        )
    write_json(aggregates, aggregates_out)
    write_table(pd.DataFrame(rows, columns=FILM_SCORE_COLUMNS), films_out)
    print(f"{len(rows)} held-out films scored")


def final_card(
    card_path: str,
    validation_scans_path: str,
    validation_heatmaps_path: str,
    split_path: str,
    film_score_name: str,
    card_out: str,
    aggregates_out: str,
) -> None:
    """The take-away model's card: its evaluation's card (`card_path`) with the film score `film_score_name` (one of
    FILM_SCORES) learnt from its inner-validation women as scanning.aggregate; every learnt score beside it."""
    aggregates = learned_film_scores(validation_scans_path, validation_heatmaps_path, split_path)
    card = json.loads(Path(card_path).read_text())
    chosen = aggregates[film_score_name]
    card["scanning"] = {**card["scanning"], "aggregate": chosen, "uses_other_breast": chosen.get("uses_other_breast", False)}
    write_json(aggregates, aggregates_out)
    write_card(card, card_out)


def mias_cv_metrics(
    fold_metrics: list[str], fold_predictions: list[str], settings: dict, evaluation: dict, metrics_out: str, predictions_out: str
) -> None:
    """Pool the out-of-fold predictions of every fold: one metrics.json with intervals from a bootstrap over women.

    Each fold's operating points were chosen on its inner validation and are applied to its held-out tiles only;
    the threshold-free rates rank all out-of-fold scores together. Per-fold figures and their spread beside them.
    """
    replicates, seed, bins = evaluation["bootstrap"], evaluation["seed"], evaluation["calibration_bins"]
    results = [json.loads(Path(path).read_text()) for path in fold_metrics]
    predictions = [read_table(path) for path in fold_predictions]
    pooled = pd.concat(
        [table[table["set"] == "test"].assign(fold=fold) for fold, table in enumerate(predictions)], ignore_index=True
    )
    if pooled["tile_id"].duplicated().any():
        raise ValueError(
            f"tiles predicted by two folds: {pooled.loc[pooled['tile_id'].duplicated(), 'tile_id'].head(5).tolist()}"
        )
    splitting.check_patient_disjoint(pooled.assign(split=pooled["fold"].astype(str)))
    y, score, women = pooled["label_normal"].to_numpy(), pooled["p_abnormal"].to_numpy(float), pooled["patient_id"].to_numpy()
    entry = ev.assess_set(pooled, {}, replicates, seed, bins)
    entry["women"] = entry.pop("patients")
    operating_points = {}
    for name in results[0]["operating_points"]:
        per_fold = [result["operating_points"][name]["threshold"] for result in results]
        operating_points[name] = {
            "threshold": dict(enumerate(per_fold)),
            "chosen_on": results[0]["operating_points"][name]["chosen_on"].replace(
                "val", "each fold's inner validation (its training women only)"
            ),
        }
        if None not in per_fold:
            metrics = ev.binary_metrics(
                y, score, pooled["fold"].map(dict(enumerate(per_fold))).to_numpy(float), women, replicates, seed, bins
            )
            metrics["threshold"] = "per fold, see operating_points"
            entry["operating_points"][name] = ev.pick_rates(metrics, ("threshold", *ev.THRESHOLD_RATES, "confusion_matrix"))
    entry["subgroups"] = {"threshold": "fixed", "rows": ev.subgroup_metrics(pooled, settings["threshold"], replicates, seed)}
    folds = {}
    for fold, result in enumerate(results):
        held_out = result["sets"]["test"]
        folds[str(fold)] = {
            "n": held_out["n"],
            "women": held_out["patients"],
            "roc_auc": held_out["raw"]["roc_auc"],
            "pr_auc": held_out["raw"]["pr_auc"],
            "inner_val_roc_auc": result["sets"]["val"]["raw"]["roc_auc"],
            **{f"{rate}_fixed": held_out["operating_points"]["fixed"][rate] for rate in ("accuracy", "recall", "specificity")},
        }
    spread = {}
    for rate in ("roc_auc", "pr_auc", "accuracy_fixed", "recall_fixed", "specificity_fixed"):
        values = np.array([f[rate] for f in folds.values() if f[rate] is not None], float)
        spread[rate] = (
            {
                "mean": float(values.mean()),
                "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                "min": float(values.min()),
                "max": float(values.max()),
            }
            if len(values)
            else None
        )
    result = {
        "model": results[0]["model"],
        "labels": results[0]["labels"],
        "test_contrast": results[0]["test_contrast"],
        "score": results[0]["score"],
        "protocol": {
            "recipe": "mias_cv",
            "folds": len(results),
            "grouped_by": "woman (mdb(2k-1), mdb(2k))",
            "stratified_by": "abnormal woman",
            "seed": settings["seed"],
            "inner_val": settings["inner_val"],
            "scale": settings["scale"],
        },
        "bootstrap": {"replicates": replicates, "unit": "woman", "seed": seed, "interval": "95% percentile"},
        "operating_points": operating_points,
        "sets": {"out_of_fold": entry},
        "folds": folds,
        "fold_spread": spread,
    }
    write_table(pooled, predictions_out)
    write_json(result, metrics_out)


def train_fold(
    train_paths: list[str],
    val_paths: list[str],
    lesion_paths: list[str],
    settings: dict,
    out_dir: str,
    split_path: str,
    images_path: str,
    rois_path: str,
    mining: dict,
) -> None:
    """One mias_cv (or mias_final) model: the model entry's training on the fold's records, with the recipe's online
    crops, the normal windows at each training lesion's place (her other breast's, other women's) and hard-negative
    rounds mined from the fold's training women's films (`mining`: the recipe and `scans`)."""
    from mammo.stages.train import train_model

    recipe, scans = mining["recipe"], mining["scans"]
    mine = training_films_miner(split_path, images_path, rois_path, recipe, scans)
    streams, _ = training_place_negatives(split_path, images_path, rois_path, recipe, scans)
    train_model(train_paths, val_paths, settings, out_dir, lesion_paths, mine, streams)


def _training_images(split_path: str, images_path: str) -> pd.DataFrame:
    """The films of the TRAINING women of a fold's split only, never the inner validation's or the held-out women's,
    and never a film with a lesion without coordinates (its lesion-free area is unknown)."""
    split, images = read_table(split_path), read_table(images_path)
    train_women = set(split.loc[split["split"] == "train", "patient_id"])
    return images[images["patient_id"].isin(train_women) & (images["unlocated"] == 0)]


def _training_film(image: pd.Series, rois: pd.DataFrame, purpose: str) -> TrainingFilm | None:
    """A training film read, with its lesion circles in scan pixels; None (said, for `purpose`) where it is damaged."""
    try:
        scan = read_mias_scan(Path(image["path"]))
    except FormatError as err:
        print(f"{purpose}: {err} (the film is in the rejected table of the tiles)")
        return None
    film_rois = rois[rois["refnum"] == image["refnum"]]
    circles = tuple((*mias_centre(roi, 1.0, scan.shape[0]), float(roi["radius"])) for _, roi in film_rois.iterrows())
    return TrainingFilm(image["refnum"], image["patient_id"], scan, circles)


def training_films_miner(split_path: str, images_path: str, rois_path: str, recipe: dict, scans: dict):
    """`mine(predict)` for mammo.train.train: the hard negatives (mammo.hard_negatives.mine_films) of the films of the
    training women of a fold's split (_training_images); lesion circles grown by the recipe's `lesion_margin`,
    windows as whole-film scanning makes them at the recipe's scale (`scans`), at the mining stride."""
    films, rois = _training_images(split_path, images_path), read_table(rois_path)
    hard = HardNegatives(**recipe["hard_negatives"])
    windowing = Windowing(**{**scans, "stride": hard.stride, "scale": windowing_scale(recipe["scale"])})

    def training_films():
        for _, image in films.iterrows():
            film = _training_film(image, rois, "hard negatives")
            if film is not None:
                yield film

    def mine(predict):
        # the working image is at the tiles' scale, so the margin is in the same pixels as the tiles' lesion margin
        return mine_films(training_films(), predict, windowing, hard.windows_per_film, recipe["lesion_margin"])

    return mine


def training_place_negatives(
    split_path: str, images_path: str, rois_path: str, recipe: dict, scans: dict
) -> tuple[list[tuple[np.ndarray, float]], pd.DataFrame]:
    """Normal windows at the place of each lesion of the fold's training women (mammo.hard_negatives.windows_at_places):
    her other breast's (`other_breast_negatives`; both films of a pair are training films, _training_images) and
    those of normal films of other training women of her film's density (`other_women_negatives`; mini-MIAS
    background tissue, films drawn per lesion film, seeded by the recipe's seed and the film's name). Returns the
    streams for training, (tiles, loss weight) per source that gave any, and their table (column `source`)."""
    own = OtherBreastNegatives(**recipe["other_breast_negatives"])
    others = OtherWomenNegatives(**recipe["other_women_negatives"])
    sources = {"other breast": (own.per_lesion, own.weight), "other women": (others.per_film, others.weight)}
    if not own.per_lesion and not others.films:
        return [], pd.DataFrame(columns=[*PLACE_COLUMNS, "source"])
    films, rois = _training_images(split_path, images_path), read_table(rois_path)
    row_of = {row["path"]: row for _, row in films.iterrows()}
    windowing = Windowing(**{**scans, "scale": windowing_scale(recipe["scale"])})
    places = {}
    for path, image in tqdm(row_of.items(), desc="the training lesions' places"):
        film = _training_film(image, rois, "lesion places") if image["label_normal"] else None
        if film is not None:
            places[path] = lesion_places(film, windowing)
    shown_on = {source: defaultdict(list) for source in sources}  # film -> the lesion places to find on it
    partner_of = partners(list(row_of)) if own.per_lesion else {}
    normal = films[films["label_normal"] == 0].sort_values("refnum")
    for path, found in places.items():
        image, partner = row_of[path], row_of.get(partner_of.get(path))
        if partner is not None:  # else her other film is not a training film with every lesion located
            if partner["patient_id"] != image["patient_id"]:
                raise ValueError(f"{path} and {partner['path']} paired, but they are films of two women")
            shown_on["other breast"][partner["path"]] += found
        if others.films:
            alike = normal[(normal["patient_id"] != image["patient_id"]) & (normal["background"] == image["background"])]
            draw = np.random.default_rng([recipe["seed"], zlib.crc32(str(image["refnum"]).encode())])
            for chosen in draw.choice(len(alike), min(others.films, len(alike)), replace=False):
                shown_on["other women"][alike["path"].iloc[chosen]] += found
    streams, tables = [], []
    for source, (per_place, weight) in sources.items():
        tiles = []
        for path, found in tqdm(shown_on[source].items(), desc=f"{source}: windows at the lesions' places"):
            film = _training_film(row_of[path], rois, source)
            if film is not None:
                cut, table = windows_at_places(found, film, windowing, per_place, recipe["lesion_margin"])
                tiles.append(cut)
                tables.append(table.assign(source=source))
        if sum(map(len, tiles)):
            streams.append((np.concatenate(tiles), weight))
    table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=[*PLACE_COLUMNS, "source"])
    for source, part in table.groupby("source", sort=False):
        shares = part["location"].value_counts(normalize=True).round(3).to_dict()
        print(
            f"{source}: {len(part)} windows of {part['partner'].nunique()} films at the place of "
            f"{part.groupby(['scan_id', 'roi_index']).ngroups} lesions of {part['scan_id'].nunique()} training films, "
            f"by location {shares}"
        )
    return streams, table
