"""An experiment on a finished mias_cv run's folds, tiles and windows: the tile model given a second input channel
beside the tile, against the same training without it. What the second channel holds:

* `other_breast`: the matching place of the woman's other breast, mirrored. Both films' breast frames (mammo.film_scores:
  chest wall, nipple, the breast's extent, as the scans stored them) map the tile's centre onto the other film; a
  radiologist compares a finding with the same place of the other breast (Kooi and Karssemeijer 2017 fed a candidate
  and its contralateral region to one network).
* `context`: the same place seen three times wider (the tile's surroundings, downscaled to the tile's size); the
  workflow's `mias_cv.surround` cuts the same (mammo.tiles.surround_view, which rounds a centre half a pixel away
  now and then: this script keeps its own cut so that its recorded figures repeat).
* `none`: the tile alone (the paired baseline).

Every arm recuts its tiles the same way from the films upscaled 2.58x with everything outside the breast black:
normal tiles at the run's boxes, and 5 crops of every located lesion placed as method 2 places them (anywhere in a
context box of max(1.2 tiles, the lesion)), never resized; flips and quarter turns online, the same for both channels.
A fold's model trains on the other four folds (no inner validation) with the model entry's optimiser settings: 12
epochs, each of every abnormal tile and 4 times as many normal tiles drawn afresh, abnormal weight 3, Adam 0.001
decayed 0.8 every 5 epochs, the weights averaged over the second half and their BatchNorm statistics recomputed on 6
batches, bfloat16 where the CPU computes it. The held-out fold's tiles (edge tiles left out) and every window the run scored on its films are
scored again.

`--films standardised` shows the network every film's breast standardised on its own (its grey levels less their
mean, over their standard deviation, as 128 + 40 z in 8 bit; what many whole-image systems feed their networks, e.g.
Wu et al. 2019), the tiles cut and the windows scored on those films, instead of the films as read: whether the tile
model's scores then follow breast density less.

    python bench/second_channel.py RUN OUT --channel other_breast [--films as_read] [--epochs 12] [--folds 0,1,2,3,4]

OUT/results/mias_cv/model_<channel>[_standardised]/ then holds what a run's model folder holds for bench/paired_runs.py and
bench/combined_runs.py (predictions.tsv; scans/fold_<k>.films.tsv, .scans.tsv and .heatmaps.npz with the maximum
window as film score), and OUT/results/sources is RUN's; for example
`python bench/paired_runs.py OUT OUT --model-a other_breast --model-b none`."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mammo.backend import cpu_computes_bfloat16
from mammo.film_scores import BreastFrame, read_film
from mammo.heatmap import segmented
from mammo.intensity import to_uint8
from mammo.io.mias import mias_centre, mias_woman, read_info, read_mias_scan
from mammo.sources import partners
from mammo.tables import read_table
from mammo.tiles import TILE_SIZE, upscale

SCALE = 2.58  # the real-data recipe's tile scale
PAD = 3 * TILE_SIZE + 2  # every film is padded once by this many pixels, so that any cut near its edge stays inside
CROPS = 5  # per lesion, as the recipe's method 2
NORMALS_PER_ABNORMAL = 4  # normal tiles drawn each epoch for each abnormal tile, as the recipe's fresh normals
BATCHNORM_BATCHES = 6  # as the recipe's batchnorm_batches
STANDARD_LEVEL, STANDARD_SPREAD = 128, 40  # a standardised breast's mean and one standard deviation, in 8 bit


def standardised(film: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The breast's grey levels as STANDARD_LEVEL + STANDARD_SPREAD z (1-255), black outside it."""
    values = film[breast].astype(np.float64)
    z = (film.astype(np.float64) - values.mean()) / max(values.std(), 1.0)
    return np.where(breast, np.clip(np.round(STANDARD_LEVEL + STANDARD_SPREAD * z), 1, 255), 0).astype(np.uint8)


def films_in_breast(folder: Path, films_as: str = "as_read") -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every film of the archive upscaled, everything outside the breast black (as whole-film scanning shows it),
    the breast standardised where `films_as` says so, padded by PAD; and each film's partner, the woman's other film
    (mammo.sources.partners)."""
    paths = sorted(folder.glob("mdb*.pgm"))
    films = {}
    for path in paths:
        film, breast = segmented(upscale(to_uint8(read_mias_scan(path)), SCALE))
        films["mias:" + path.stem] = np.pad(standardised(film, breast) if films_as == "standardised" else film, PAD)
    found = partners([str(path) for path in paths])
    partner = {"mias:" + Path(path).stem: "mias:" + Path(other).stem for path, other in found.items() if other}
    return films, partner


def cut(film: np.ndarray, row: float, col: float, side: int) -> np.ndarray:
    """The square of `side` pixels centred at (row, col) of an unpadded film, as a tile; black where it lies far
    outside the film."""
    top, left = int(round(row - side / 2)), int(round(col - side / 2))
    if top < -PAD or left < -PAD or top + side > film.shape[0] - PAD or left + side > film.shape[1] - PAD:
        return np.zeros((TILE_SIZE, TILE_SIZE), np.uint8)
    crop = film[top + PAD : top + PAD + side, left + PAD : left + PAD + side]
    return (crop if side == TILE_SIZE else cv2.resize(crop, (TILE_SIZE, TILE_SIZE), interpolation=cv2.INTER_AREA)).copy()


class Examples:
    """Tiles with their second channel, cut from the films."""

    def __init__(self, films: dict[str, np.ndarray], partner: dict[str, str], frames: dict[str, BreastFrame], channel: str):
        self.films, self.partner, self.frames, self.channel = films, partner, frames, channel

    def second(self, scan_id: str, row: float, col: float) -> np.ndarray:
        if self.channel == "context":
            return cut(self.films[scan_id], row, col, 3 * TILE_SIZE)
        other = self.partner.get(scan_id)
        own, theirs = self.frames.get(scan_id), self.frames.get(other)
        if own is None or theirs is None:
            return np.zeros((TILE_SIZE, TILE_SIZE), np.uint8)
        rows, cols = theirs.from_frame(*own.to_frame(np.array([row / SCALE]), np.array([col / SCALE])))
        return np.fliplr(cut(self.films[other], float(rows[0]) * SCALE, float(cols[0]) * SCALE, TILE_SIZE))

    def __call__(self, scan_id: str, row: float, col: float) -> np.ndarray:
        """The example centred at (row, col) of the upscaled film: (299, 299, channels) uint8."""
        tile = cut(self.films[scan_id], row, col, TILE_SIZE)
        if self.channel == "none":
            return tile[..., None]
        return np.stack([tile, self.second(scan_id, row, col)], axis=-1)


def run_windows(model_folder: Path) -> tuple[dict[str, np.ndarray], dict[str, BreastFrame]]:
    """Every film's scored windows (film pixels) and breast frame, from the run's held-out scans (read_film)."""
    windows, frames = {}, {}
    for table in sorted((model_folder / "scans").glob("fold_*.scans.tsv")):
        with np.load(table.with_name(table.name.replace(".scans.tsv", ".heatmaps.npz"))) as archive:
            for scan_id in read_table(table)["scan_id"]:
                if f"{scan_id}/boxes" in archive:
                    film = read_film(archive, scan_id)
                    windows[scan_id] = film.boxes
                    if film.frame is not None:
                        frames[scan_id] = film.frame
    return windows, frames


def tile_set(tiles: pd.DataFrame, rois: pd.DataFrame, example: Examples, height: int):
    """The examples, their labels, folds, tile ids, women and kinds: the run's normal tiles recut, then CROPS crops of
    every located lesion."""
    fold_of = dict(zip(tiles["patient_id"], tiles["fold"]))
    images, rows = [], []
    for tile in tiles[tiles["label_normal"] == 0].itertuples():
        top, left, bottom, right = map(int, tile.box.split(","))
        images.append(example("mias:" + tile.scan_id, (top + bottom) / 2, (left + right) / 2))
        rows.append((0, tile.fold, tile.tile_id, tile.patient_id, tile.method))
    rng = np.random.default_rng(42)
    for roi in rois.itertuples():
        woman = mias_woman(roi.refnum)
        centre_row, centre_col = mias_centre(pd.Series(roi._asdict()), SCALE, height)
        # method 2: a 299 crop anywhere in a context box of max(1.2 tiles, the lesion)
        lesion_side = 2 * roi.radius * SCALE
        context = int(TILE_SIZE * 1.2) if lesion_side < TILE_SIZE else max(int(TILE_SIZE * 1.05), lesion_side)
        slack = max(context - TILE_SIZE, 0)
        for crop in range(CROPS):
            shift = rng.uniform(-0.5, 0.5, 2) * slack
            images.append(example("mias:" + roi.refnum, centre_row + shift[0], centre_col + shift[1]))
            rows.append((1, fold_of[woman], f"mias_cv/mias:{roi.refnum}:{roi.row}/{crop}", woman, "lesion"))
    table = pd.DataFrame(rows, columns=["label_normal", "fold", "tile_id", "patient_id", "method"])
    return np.stack(images), table


def train_fold(images: np.ndarray, table: pd.DataFrame, fold: int, channels: int, epochs: int):
    import keras

    from mammo.models.augmentation import with_augmentation
    from mammo.models.study import study_convnet
    from mammo.train import recompute_batchnorm_statistics

    keras.utils.set_random_seed(42 + fold)
    labels = table["label_normal"].to_numpy()
    train = np.flatnonzero(table["fold"].to_numpy() != fold)
    abnormal, normal = train[labels[train] == 1], train[labels[train] == 0]
    # 1.0.0.35 with the tile averaged 2 x 2, as the real-data recipe's entry, reading `channels` channels
    model = study_convnet(2, "model_1.0.0.35", scale=1 / 255, offset=0.0, conv_l2=1e-5, input_pool=2, channels=channels)
    fitted = with_augmentation(model, True, True, 42 + fold)
    fitted.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy())
    draw = np.random.default_rng(1000 + fold)
    summed, averaged_epochs = None, 0
    for epoch in range(epochs):
        fitted.optimizer.learning_rate.assign(1e-3 * 0.8 ** (epoch // 5))
        chosen = np.concatenate([abnormal, draw.choice(normal, NORMALS_PER_ABNORMAL * len(abnormal), replace=False)])
        draw.shuffle(chosen)
        weights = np.where(labels[chosen] == 1, 3.0, 1.0)
        fitted.fit(images[chosen], labels[chosen], sample_weight=weights, batch_size=32, epochs=1, verbose=2)
        if epoch >= epochs // 2:
            current = model.get_weights()
            summed = current if summed is None else [total + value for total, value in zip(summed, current)]
            averaged_epochs += 1
    model.set_weights([total / averaged_epochs for total in summed])
    # the averaged weights get BatchNorm statistics of their own, from BATCHNORM_BATCHES batches of the last draw
    batches = [(images[chosen[start : start + 32]], None, None) for start in range(0, 32 * BATCHNORM_BATCHES, 32)]
    recompute_batchnorm_statistics(model, batches)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--channel", choices=("none", "other_breast", "context"), required=True)
    parser.add_argument("--films", choices=("as_read", "standardised"), default="as_read")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--folds", default="0,1,2,3,4")
    parser.add_argument("--model", default="1.0.0.35.mias", help="the run's model whose scans give the windows")
    args = parser.parse_args()
    import keras

    if cpu_computes_bfloat16():
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    source = args.run / "results" / "mias_cv" / f"model_{args.model}"
    target = args.out / "results" / "mias_cv" / f"model_{args.channel}{'_standardised' if args.films == 'standardised' else ''}"
    (target / "scans").mkdir(parents=True, exist_ok=True)
    if not (args.out / "results" / "sources").exists():
        (args.out / "results" / "sources").symlink_to((args.run / "results" / "sources").resolve())
    started = time.time()
    info, _ = read_info(args.run / "resources" / "mias" / "all-mias-dev" / "Info.txt")
    films, partner = films_in_breast(args.run / "resources" / "mias" / "all-mias-dev", args.films)
    windows, frames = run_windows(source)
    example = Examples(films, partner, frames, args.channel)
    tiles = read_table(args.run / "results" / "mias_cv" / "tiles.tsv")
    images, table = tile_set(tiles, info[info["x"].notna()], example, next(iter(films.values())).shape[0] - 2 * PAD)
    print(f"{len(table)} tiles ({table['label_normal'].sum()} abnormal) cut in {time.time() - started:.0f} s", flush=True)
    predictions = []
    for fold in (int(value) for value in args.folds.split(",")):
        started = time.time()
        model = train_fold(images, table, fold, images.shape[-1], args.epochs)
        trained = time.time() - started
        held = table.index[(table["fold"] == fold) & (table["method"] != "edge")]
        scored = table.loc[held].assign(p_abnormal=model.predict(images[held], batch_size=64, verbose=0)[:, 1])
        predictions.append(scored)
        scans = read_table(source / "scans" / f"fold_{fold}.scans.tsv")
        archive, films_table = {}, []
        for index, film in scans.iterrows():
            boxes = windows.get(film["scan_id"], np.zeros((0, 4), np.int32))
            scores = np.zeros(0, np.float32)
            if len(boxes):
                centres = (boxes[:, :2] + boxes[:, 2:]) / 2 * SCALE
                batch = np.stack([example(film["scan_id"], row, col) for row, col in centres])
                scores = model.predict(batch, batch_size=64, verbose=0)[:, 1].astype(np.float32)
            archive[f"{film['scan_id']}/boxes"], archive[f"{film['scan_id']}/scores"] = boxes, scores
            scans.loc[index, "max_score"] = float(scores.max()) if len(scores) else np.nan
            films_table.append(
                {
                    "scan_id": film["scan_id"],
                    "patient_id": film["patient_id"],
                    "label_normal": film["label_normal"],
                    "max": scans.loc[index, "max_score"],
                }
            )
        np.savez(target / "scans" / f"fold_{fold}.heatmaps.npz", **archive)
        scans.to_csv(target / "scans" / f"fold_{fold}.scans.tsv", sep="\t", index=False)
        pd.DataFrame(films_table).to_csv(target / "scans" / f"fold_{fold}.films.tsv", sep="\t", index=False)
        print(f"fold {fold}: training {trained:.0f} s, {len(scans)} films scored", flush=True)
    pd.concat(predictions).to_csv(target / "predictions.tsv", sep="\t", index=False)


if __name__ == "__main__":
    main()
