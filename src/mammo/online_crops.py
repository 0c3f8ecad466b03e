"""Online lesion crops: each training epoch every lesion gives new windows, cut around it from its film (lesion
patches sampled afresh, as patch-to-image systems trained on small sets do: Shen et al. 2019).

The tile stage cuts one context patch per lesion, centred on it, wide enough for any window below
(`lesion_context`, numpy). Training cuts the windows from it (`crop_windows`, TensorFlow, a seeded draw per window):
the lesion anywhere in the window as long as its whole circle stays inside (a lesion wider than the window is
centred in it), a random flip, a rotation by any angle and a small zoom, every pixel filled from the film.

Resampling smooths a window a little; a normal tile is cut on the pixel grid. So that smoothness does not tell the
two apart, normal tiles of the same pass get the same bilinear resampling at a random sub-pixel shift
(`resample_like_crops`).

Lesion transplants (`transplants` per lesion and pass): a crop's lesion, as the density it adds to the tissue around
it, is added onto a normal training tile of another place or woman at the same position (`transplant`): the same
lesion over fatty, glandular and dense tissue, so that what marks a tile abnormal is the lesion and not the
tissue it happened to lie in. mini-MIAS films are bright where dense (pixel values rise with optical density, whose
contributions along a ray add), so the lesion's excess over its surround is added in grey levels."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mammo.intensity import to_uint8
from mammo.tiles import TILE_SIZE, padded_crop


@dataclass(frozen=True)
class OnlineCrops:
    crops: int = 5  # windows per lesion per epoch (the fixed recipe's crops per lesion)
    zoom: float = 1.15  # a window covers between tile / zoom and tile * zoom film pixels (log-uniform)
    margin: int = 8  # pixels kept between the lesion's circle and the window's edge where the circle fits
    transplants: int = 0  # windows per lesion per epoch whose lesion is moved onto a normal training tile (transplant)
    tile: int = TILE_SIZE  # window side after resampling

    def __post_init__(self):
        if self.crops < 1 or self.zoom < 1 or self.margin < 0 or self.transplants < 0:
            raise ValueError(f"online crops: crops >= 1, zoom >= 1, margin >= 0 and transplants >= 0 are needed, got {self}")

    @property
    def context_half(self) -> int:
        """Half the side of a lesion's context patch: a window's farthest pixel lies within the window's half
        diagonal of its centre, and its centre within the half diagonal (times the zoom) of the lesion's centre;
        two pixels more for the bilinear neighbours."""
        return math.ceil(self.tile * math.sqrt(2) * self.zoom) + 2


def recipe_crops(recipe: dict) -> OnlineCrops | None:
    """A recipe's online crops (its `online_crops` entry, when `enabled`, and its tile side), or None: fixed crops
    written once."""
    entry = dict(recipe.get("online_crops") or {})
    if not entry.pop("enabled", False):
        return None
    return OnlineCrops(**entry, tile=recipe["tile"])


def lesion_context(scan: np.ndarray, centre: tuple[float, float], params: OnlineCrops) -> np.ndarray:
    """The uint8 context patch of a lesion (side 2 * context_half + 1, the lesion's centre at its middle pixel) from
    a 16-bit scan at the recipe's scale; outside the film it is 0, as air (the film's own edge lies in it)."""
    half = params.context_half
    row, col = (int(round(value)) for value in centre)
    return to_uint8(padded_crop(scan, row - half, col - half, 2 * half + 1))


def window_geometry(seed, radius, params: OnlineCrops):
    """One draw (seed: int64 [2]; radius: the lesion's in context pixels): the 8 projective-transform parameters
    that map the window's pixels to its context patch, and the lesion's centre (row, column) and radius in the window."""
    import tensorflow as tf

    draw = tf.random.stateless_uniform([5], seed=tf.cast(seed, tf.int64), dtype=tf.float32)
    angle = draw[0] * (2 * math.pi)
    zoom = tf.exp((2 * draw[1] - 1) * math.log(params.zoom))  # film pixels per window pixel
    flip = tf.where(draw[2] < 0.5, -1.0, 1.0)
    radius = tf.cast(radius, tf.float32) / zoom
    reach = tf.maximum(params.tile / 2 - radius - params.margin, 0.0)  # how far the lesion may lie from the middle
    row_offset, col_offset = (2 * draw[3] - 1) * reach, (2 * draw[4] - 1) * reach
    middle, context_middle = (params.tile - 1) / 2, float(params.context_half)
    cos, sin = tf.cos(angle) * zoom, tf.sin(angle) * zoom
    # window pixel (x, y) -> offset from the lesion (u, v) = (flip * (x - middle - col_offset), y - middle - row_offset)
    # -> context pixel = context_middle + zoom * rotation(angle) (u, v)
    u0, v0 = -flip * (middle + col_offset), -(middle + row_offset)
    transform = tf.stack(
        [cos * flip, -sin, context_middle + cos * u0 - sin * v0, sin * flip, cos, context_middle + sin * u0 + cos * v0, 0.0, 0.0]
    )
    return transform, tf.stack([middle + row_offset, middle + col_offset]), radius


def crop_window(context, radius, seed, params: OnlineCrops):
    """A window (uint8 [tile, tile, 1]) cut from a lesion's context patch (uint8 [side, side, 1]), drawn by `seed`."""

    transform, _, _ = window_geometry(seed, radius, params)
    return _resampled(context, transform, [params.tile, params.tile], "CONSTANT")


# grey levels: a host pixel at or below it is air, where no lesion is added; a lesion whose mean excess over its
# surround is below TRANSPLANT_MIN_EXCESS adds too little to be seen (an architectural distortion, an asymmetry
# drawn wide), and its window stays the plain crop
TRANSPLANT_AIR = 8
TRANSPLANT_MIN_EXCESS = 3.0


def transplant(context, radius, seed, host, params: OnlineCrops):
    """A window (uint8 [tile, tile, 1]) drawn by `seed` as `crop_window` draws it, its lesion moved onto `host` (a
    normal tile, uint8 [tile, tile, 1]): the lesion's excess over its surround (the window minus the mean of a ring
    around the circle, kept where positive), fading out over a border beyond the circle, added to the host where it
    is breast. A lesion that adds too little (TRANSPLANT_MIN_EXCESS) gives the plain crop."""
    import tensorflow as tf

    transform, centre, window_radius = window_geometry(seed, radius, params)
    window = tf.cast(_resampled(context, transform, [params.tile, params.tile], "CONSTANT"), tf.float32)[..., 0]
    axis = tf.range(params.tile, dtype=tf.float32)
    distance = tf.sqrt((axis[:, tf.newaxis] - centre[0]) ** 2 + (axis[tf.newaxis, :] - centre[1]) ** 2)
    border = 0.25 * window_radius + params.margin
    ring = (distance > window_radius + border) & (distance <= window_radius + 2 * border) & (window > TRANSPLANT_AIR)
    outside = (distance > window_radius) & (window > TRANSPLANT_AIR)  # where a wide lesion leaves no ring in the window
    surround = tf.cond(tf.reduce_any(ring), lambda: tf.boolean_mask(window, ring), lambda: tf.boolean_mask(window, outside))
    background = tf.cond(tf.size(surround) > 0, lambda: tf.reduce_mean(surround), lambda: tf.reduce_min(window))
    fade = tf.clip_by_value((window_radius + border - distance) / border, 0.0, 1.0)
    excess = tf.maximum(window - background, 0.0) * fade
    host_level = tf.cast(host[..., 0], tf.float32)
    excess = excess * tf.cast(host_level > TRANSPLANT_AIR, tf.float32)
    inside = distance <= window_radius
    seen = tf.reduce_mean(tf.boolean_mask(excess, inside)) >= TRANSPLANT_MIN_EXCESS
    moved = tf.where(seen, host_level + excess, window)
    return tf.cast(tf.clip_by_value(tf.round(moved), 0, 255), tf.uint8)[..., tf.newaxis]


def resample_like_crops(tile, seed):
    """A tile (uint8 [s, s, 1]) resampled bilinearly at a random sub-pixel shift in [0, 1) each way (beyond its last
    row and column the nearest pixel): the smoothing a crop's resampling gives, the content not moved."""
    import tensorflow as tf

    shift = tf.random.stateless_uniform([2], seed=tf.cast(seed, tf.int64), dtype=tf.float32)
    transform = tf.stack([1.0, 0.0, shift[1], 0.0, 1.0, shift[0], 0.0, 0.0])
    return _resampled(tile, transform, tf.shape(tile)[:2], "NEAREST")


def _resampled(image, transform, size, fill_mode: str):
    import tensorflow as tf

    resampled = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.cast(image, tf.float32)[tf.newaxis],
        transforms=transform[tf.newaxis],
        output_shape=size,
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )
    return tf.cast(tf.clip_by_value(tf.round(resampled[0]), 0, 255), tf.uint8)
