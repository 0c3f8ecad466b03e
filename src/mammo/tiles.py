"""Tile geometry: ROI boxes from masks, extraction methods 1 and 2, normal-tissue tiling, augmentation.

All functions take arrays and a numpy Generator and return arrays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable

import cv2
import numpy as np

from mammo.intensity import to_uint8

TILE_SIZE = 299  # model input
NATIVE_TILE = 598  # tiles are cut at 598 native pixels, then downscaled by 2
# a surround channel shows the tile's place this many times wider, shrunk to the tile's size (bench/second_channel.py's
# context arm on the real films: tile ROC-AUC 0.868 -> 0.883, top region on the lesion 32% -> 41%)
SURROUND = 3

# where a tile was cut from its image (top, left, side): the tile's surround channel, (299, 299) uint8
Surround = Callable[[int, int, int], np.ndarray]


def item_rng(seed: int, item_id: str) -> np.random.Generator:
    """A generator per item, so a tile depends on (seed, item) and not on chunking or order."""
    return np.random.default_rng([seed, zlib.crc32(item_id.encode())])


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (top, left, bottom, right; exclusive) of the non-zero mask pixels, or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if len(rows) == 0:
        return None
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a mask to the scan's shape."""
    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def box_sum(integral: np.ndarray, top, left, bottom, right):
    """Sum of the image over rows top..bottom-1 and columns left..right-1, from its summed-area table (cv2.integral);
    the corners may be arrays."""
    return integral[bottom, right] - integral[top, right] - integral[bottom, left] + integral[top, left]


def downscale(tile: np.ndarray, size: int = TILE_SIZE) -> np.ndarray:
    """Area interpolation for downscaling (the study used bilinear), of each channel; a tile already at size is
    returned as is."""
    if tile.shape[:2] == (size, size):
        return tile
    return cv2.resize(tile, (size, size), interpolation=cv2.INTER_AREA)


def upscale(image: np.ndarray, factor: float) -> np.ndarray:
    """Bilinear upscaling by a factor (MIAS x2.58, to the CBIS-DDSM pixel scale)."""
    size = (int(round(image.shape[1] * factor)), int(round(image.shape[0] * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def augment(tile: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random horizontal and vertical flips and a rotation by k*90 degrees, k uniform in 0..3 (every channel alike)."""
    if rng.random() < 0.5:
        tile = tile[:, ::-1]
    if rng.random() < 0.5:
        tile = tile[::-1, :]
    return np.ascontiguousarray(np.rot90(tile, k=int(rng.integers(0, 4))))


def surround_view(image8: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """The square SURROUND times as wide as the window (top, left, side) of `image8`, on the same centre, shrunk to
    TILE_SIZE by area (black beyond the image): the window's surroundings as a second channel beside it."""
    wide = SURROUND * side
    crop = padded_crop(image8, top - (wide - side) // 2, left - (wide - side) // 2, wide)
    return cv2.resize(crop, (TILE_SIZE, TILE_SIZE), interpolation=cv2.INTER_AREA)


def with_surround(crop: np.ndarray, top: int, left: int, surround: Surround | None) -> np.ndarray:
    """A square crop cut at (top, left), at the tile's size, with its surround channel stacked behind it where
    `surround` is given (before any flip or turn, so that both channels turn alike); else the crop as it is."""
    if surround is None:
        return crop
    return np.dstack([downscale(crop), surround(top, left, crop.shape[0])])


def mostly_background(tile8: np.ndarray, dark: int = 10, fraction: float = 0.9) -> bool:
    return float(np.mean(tile8 <= dark)) > fraction


def padded_crop(image: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """A size x size crop; parts outside the image are zero (only for scans smaller than a tile)."""
    out = np.zeros((size, size), dtype=image.dtype)
    src = image[max(top, 0) : top + size, max(left, 0) : left + size]
    out[max(-top, 0) : max(-top, 0) + src.shape[0], max(-left, 0) : max(-left, 0) + src.shape[1]] = src
    return out


@dataclass(frozen=True)
class Method2:
    """ROI extraction method 2 (dataset 9): the ROI at its natural size with context."""

    crops: int = 3
    small_padding: float = 1.2  # ROI < tile: box of tile x 1.2 around the centre
    large_padding: float = 1.05  # ROI >= tile: box of max(tile x 1.05, roi)
    max_tries: int = 10
    tile: int = NATIVE_TILE  # crop side in scan pixels (MIAS: 299 on the upscaled scan, so no resize at all)
    name = "method2"

    def tiles(self, image16: np.ndarray, box, rng: np.random.Generator, surround: Surround | None = None) -> list[np.ndarray]:
        return method2_tiles(image16, box, rng, self, surround)


def method2_box(box: tuple[int, int, int, int], shape: tuple[int, int], params: Method2) -> tuple[int, int, int]:
    """Square context box (top, left, side) around the ROI centre, shifted to stay inside the image."""
    top, left, bottom, right = box
    centre_row, centre_col = (top + bottom) // 2, (left + right) // 2
    roi_size = max(bottom - top, right - left)
    if roi_size < params.tile:
        side = int(params.tile * params.small_padding)
    else:
        side = max(int(params.tile * params.large_padding), roi_size)
    box_top = int(np.clip(centre_row - side // 2, 0, max(shape[0] - side, 0)))
    box_left = int(np.clip(centre_col - side // 2, 0, max(shape[1] - side, 0)))
    return box_top, box_left, side


def method2_tiles(
    image16: np.ndarray, box, rng: np.random.Generator, params: Method2 = Method2(), surround: Surround | None = None
) -> list[np.ndarray]:
    """Random tile-sized crops (598) from the context box, flipped and rotated, downscaled to 299 (uint8), each with
    its surround channel where `surround` is given.

    A crop with more than 90% of pixels <= 10 is drawn again (up to max_tries);
    a crop that never passes is left out.
    """
    box_top, box_left, side = method2_box(box, image16.shape, params)
    slack = max(side - params.tile, 0)
    tiles = []
    for _ in range(params.crops):
        for _ in range(params.max_tries):
            top = box_top + int(rng.integers(0, slack + 1))
            left = box_left + int(rng.integers(0, slack + 1))
            crop = to_uint8(padded_crop(image16, top, left, params.tile))
            if not mostly_background(crop):
                tiles.append(downscale(augment(with_surround(crop, top, left, surround), rng)))
                break
    return tiles


@dataclass(frozen=True)
class Method1:
    """ROI extraction method 1 (datasets 6 and 8), every tile flipped and rotated, 299 uint8:

    (a) the ROI at its original size in a tile-sized window, at a random position inside it;
    (b) the ROI zoomed to the tile with `context_padding` around it;
    (c) ROIs with one side over `elongation` times the other: two zoomed tiles centred on the halves of the long side;
    (d) dataset 6: ROIs larger than a tile also as overlapping tile-sized windows at `large_roi_stride`.
    """

    context_padding: float = 1.2
    elongation: float = 1.5
    large_roi_stride: int = 0  # 0: no overlapping tiles of large ROIs (dataset 8)
    max_tries: int = 10
    tile: int = NATIVE_TILE
    name = "method1"

    def tiles(self, image16: np.ndarray, box, rng: np.random.Generator, surround: Surround | None = None) -> list[np.ndarray]:
        if surround is not None:
            raise ValueError("a surround channel needs method 2's crops: method 1 zooms its ROIs to the tile")
        top, left, bottom, right = box
        height, width = bottom - top, right - left
        tiles = [self._original_size(image16, box, rng)]
        centre_row, centre_col = (top + bottom) / 2, (left + right) / 2
        tiles.append(self._zoomed(image16, centre_row, centre_col, max(height, width), rng))
        if max(height, width) > self.elongation * min(height, width):
            half = max(height, width) / 2
            side = max(half, min(height, width))
            for offset in (-half / 2, half / 2):
                row, col = (centre_row + offset, centre_col) if height > width else (centre_row, centre_col + offset)
                tiles.append(self._zoomed(image16, row, col, side, rng))
        if self.large_roi_stride and max(height, width) > self.tile:
            for window_top in _starts(top, bottom, self.tile, self.large_roi_stride):
                for window_left in _starts(left, right, self.tile, self.large_roi_stride):
                    tiles.append(self._finish(padded_crop(image16, window_top, window_left, self.tile), rng))
        return [tile for tile in tiles if tile is not None]

    def _original_size(self, image16, box, rng) -> np.ndarray | None:
        """A tile-sized window holding the ROI (or its centre, when larger) at a random position."""
        top, left, bottom, right = box
        for _ in range(self.max_tries):
            window_top = _random_start(top, bottom, self.tile, image16.shape[0], rng)
            window_left = _random_start(left, right, self.tile, image16.shape[1], rng)
            tile = self._finish(padded_crop(image16, window_top, window_left, self.tile), rng)
            if tile is not None:
                return tile
        return None

    def _zoomed(self, image16, centre_row: float, centre_col: float, size: float, rng) -> np.ndarray | None:
        side = max(int(round(size * self.context_padding)), 8)
        crop = padded_crop(image16, int(round(centre_row - side / 2)), int(round(centre_col - side / 2)), side)
        return self._finish(crop, rng)

    @staticmethod
    def _finish(crop16: np.ndarray, rng) -> np.ndarray | None:
        crop = to_uint8(crop16)
        return None if mostly_background(crop) else resize_to_tile(augment(crop, rng))


def roi_method(settings: dict, **overrides) -> Method1 | Method2:
    """The extraction method of a recipe's `roi` entry (`method: 1` or 2, default 2) with its parameters."""
    fields = {key: value for key, value in {**settings, **overrides}.items() if key != "method"}
    return (Method1 if settings.get("method", 2) == 1 else Method2)(**fields)


def resize_to_tile(tile: np.ndarray) -> np.ndarray:
    """To 299: area interpolation when shrinking, bilinear when a small ROI is zoomed up."""
    if tile.shape[0] >= TILE_SIZE:
        return downscale(tile)
    return cv2.resize(tile, (TILE_SIZE, TILE_SIZE), interpolation=cv2.INTER_LINEAR)


def _random_start(low: int, high: int, size: int, length: int, rng: np.random.Generator) -> int:
    """Start of a window of `size` that holds [low, high) when it fits (else is centred on it), inside the image."""
    extent = high - low
    start = low - int(rng.integers(0, size - extent + 1)) if extent <= size else (low + high) // 2 - size // 2
    return int(np.clip(start, 0, max(length - size, 0)))


def _starts(low: int, high: int, size: int, stride: int) -> range:
    """Window starts covering [low, high) at a stride, the last one ending at high."""
    last = max(high - size, low)
    return range(low, last + 1, stride) if (last - low) % stride == 0 else [*range(low, last + 1, stride), last]


@dataclass(frozen=True)
class NormalThresholds:
    """Keep a normal tile only if it looks like breast tissue (study, dataset 9)."""

    mean_min: float
    var_min: float
    var_max: float
    bright_level: int = 225
    bright_max: int = 100  # fewer than this many pixels >= bright_level in a 598x598 tile
    dark_level: int = 20
    dark_max: int = 50_000  # at most this many pixels <= dark_level in a 598x598 tile

    def accepts(self, tile8: np.ndarray) -> bool:
        """Pixel-count limits are the study's at 598x598 and scale with the tile's area."""
        area = tile8.size / NATIVE_TILE**2
        if np.count_nonzero(tile8 >= self.bright_level) >= self.bright_max * area:
            return False
        if np.count_nonzero(tile8 <= self.dark_level) > self.dark_max * area:
            return False
        mean, var = float(tile8.mean()), float(tile8.var())
        return mean >= self.mean_min and self.var_min <= var <= self.var_max


@dataclass(frozen=True)
class NormalTiling:
    tile: int = NATIVE_TILE
    stride: int | tuple[int, int] = 350  # a (low, high) range: drawn per scan, uniformly (datasets 6, 8)
    border_crop: float = 0.07  # borders and identifying patches of the film scans
    downscale: tuple[float, float] | None = None  # datasets 6, 8: the scan shrunk by a factor drawn in this range

    def for_scan(self, rng: np.random.Generator) -> "NormalTiling":
        """The fixed grid of one scan: drawn stride and downscale applied, as native tile size and stride."""
        stride = self.stride if isinstance(self.stride, int) else int(rng.integers(self.stride[0], self.stride[1] + 1))
        factor = 1.0 if self.downscale is None else float(rng.uniform(*self.downscale))
        return NormalTiling(int(round(self.tile * factor)), int(round(stride * factor)), self.border_crop)


def normal_tiles(
    image16: np.ndarray,
    thresholds: NormalThresholds,
    rng: np.random.Generator,
    tiling: NormalTiling = NormalTiling(),
    surround: Surround | None = None,
) -> list[tuple[np.ndarray, tuple[int, int, int, int]]]:
    """Tiles of a normal scan that pass the thresholds: (299 uint8 tile, with its surround channel where `surround` is
    given; box in scan pixels)."""
    image8 = to_uint8(image16)
    image8[image8 == 255] = 0  # study: saturated pixels (labels, borders) count as background
    tiling = tiling.for_scan(rng)
    tiles = []
    for top in _grid(image8.shape[0], tiling):
        for left in _grid(image8.shape[1], tiling):
            tile = image8[top : top + tiling.tile, left : left + tiling.tile]
            if thresholds.accepts(tile):
                tile = with_surround(tile, top, left, surround)
                tiles.append((downscale(augment(tile, rng)), (top, left, top + tiling.tile, left + tiling.tile)))
    return tiles


def _grid(length: int, tiling: NormalTiling) -> range:
    """Tile starts along one axis inside the border crop, centred so both sides lose the same margin.

    (The study started at the crop, so a breast against the far side got fewer tiles.)
    """
    crop = int(length * tiling.border_crop)
    usable = length - 2 * crop
    if usable < tiling.tile:
        return range(0)
    steps = (usable - tiling.tile) // tiling.stride
    start = crop + (usable - tiling.tile - steps * tiling.stride) // 2
    return range(start, start + steps * tiling.stride + 1, tiling.stride)
