"""Tile geometry: ROI boxes, extraction method 2, normal tiling, thresholds, augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from mammo.tiles import (
    NATIVE_TILE,
    TILE_SIZE,
    Method1,
    Method2,
    NormalThresholds,
    NormalTiling,
    augment,
    downscale,
    item_rng,
    mask_box,
    method2_box,
    method2_tiles,
    mostly_background,
    normal_tiles,
    padded_crop,
    resize_mask,
    roi_method,
    upscale,
)

HOWTEK = NormalThresholds(mean_min=30, var_min=10, var_max=10000)  # SPEC, dataset 9


# ----------------------------------------------------------------------------- mask_box
def test_mask_box_rectangle():
    mask = np.zeros((100, 80), bool)
    mask[10:20, 30:45] = True
    assert mask_box(mask) == (10, 30, 20, 45)


def test_mask_box_irregular_and_uint8():
    mask = np.zeros((50, 60), np.uint8)
    mask[5, 7] = 255
    mask[30, 2] = 255
    mask[12, 59] = 255
    assert mask_box(mask) == (5, 2, 31, 60)


def test_mask_box_single_pixel_and_full():
    mask = np.zeros((9, 9), bool)
    mask[4, 4] = True
    assert mask_box(mask) == (4, 4, 5, 5)
    assert mask_box(np.ones((7, 3), bool)) == (0, 0, 7, 3)


def test_mask_box_empty_is_none():
    assert mask_box(np.zeros((10, 10), np.uint8)) is None


def test_resize_mask_nearest():
    mask = np.zeros((50, 30), bool)
    mask[10:20, 5:15] = True
    out = resize_mask(mask, (100, 60))
    assert out.shape == (100, 60)
    assert set(np.unique(out)) == {0, 1}
    assert mask_box(out) == (20, 10, 40, 30)


# ----------------------------------------------------------------------------- method 2 box
SMALL_SIDE = int(NATIVE_TILE * 1.2)  # 717
SHAPE = (3000, 2000)


def test_method2_box_small_roi_centred():
    box = (1000, 800, 1100, 900)  # 100 x 100, centre (1050, 850)
    assert method2_box(box, SHAPE, Method2()) == (1050 - SMALL_SIDE // 2, 850 - SMALL_SIDE // 2, SMALL_SIDE)
    assert SMALL_SIDE == 717


def test_method2_box_roi_just_below_tile():
    box = (1000, 800, 1000 + NATIVE_TILE - 1, 810)
    assert method2_box(box, SHAPE, Method2())[2] == SMALL_SIDE


def test_method2_box_large_roi():
    # ROI >= 598: box of max(598 * 1.05, roi)
    box = (500, 400, 500 + 600, 400 + 300)
    top, left, side = method2_box(box, SHAPE, Method2())
    assert side == int(NATIVE_TILE * 1.05) == 627
    assert (top, left) == (800 - 627 // 2, 550 - 627 // 2)
    box = (500, 400, 500 + 700, 400 + 900)  # roi 900 > 627
    top, left, side = method2_box(box, SHAPE, Method2())
    assert side == 900
    assert (top, left) == (850 - 450, 850 - 450)


@pytest.mark.parametrize(
    "box, expected",
    [
        ((0, 0, 10, 10), (0, 0)),  # top-left corner
        ((2990, 1990, 3000, 2000), (3000 - SMALL_SIDE, 2000 - SMALL_SIDE)),  # bottom-right corner
        ((0, 1990, 10, 2000), (0, 2000 - SMALL_SIDE)),  # top-right
        ((2990, 0, 3000, 10), (3000 - SMALL_SIDE, 0)),  # bottom-left
    ],
)
def test_method2_box_shifted_inside_at_the_corners(box, expected):
    top, left, side = method2_box(box, SHAPE, Method2())
    assert (top, left) == expected
    assert side == SMALL_SIDE
    assert 0 <= top and top + side <= SHAPE[0] and 0 <= left and left + side <= SHAPE[1]


def test_method2_box_large_roi_at_corner():
    box = (2100, 1300, 3000, 2000)  # 900 x 700 at the bottom-right
    assert method2_box(box, SHAPE, Method2()) == (3000 - 900, 2000 - 900, 900)


def test_method2_box_image_smaller_than_box():
    assert method2_box((100, 100, 120, 120), (500, 400), Method2()) == (0, 0, SMALL_SIDE)


def test_method2_box_custom_padding():
    params = Method2(small_padding=1.5, large_padding=1.2)
    assert method2_box((1000, 1000, 1010, 1010), SHAPE, params)[2] == int(598 * 1.5)
    assert method2_box((1000, 1000, 1600, 1010), SHAPE, params)[2] == int(598 * 1.2)


# ----------------------------------------------------------------------------- method 2 tiles
@pytest.fixture(scope="module")
def scan16():
    rng = np.random.default_rng(0)
    image = rng.integers(20000, 40000, (1500, 1200)).astype(np.uint16)
    image[:, :300] = 0  # background strip
    return image


def test_method2_tiles_shape_and_type(scan16):
    tiles = method2_tiles(scan16, (700, 600, 760, 660), item_rng(1, "roi-a"))
    assert len(tiles) == 3
    for tile in tiles:
        assert tile.dtype == np.uint8 and tile.shape == (TILE_SIZE, TILE_SIZE)
        assert 70 <= tile.mean() <= 160  # 16 -> 8 bit of 20000-40000 is 78-156


def test_method2_tiles_deterministic_per_item(scan16):
    box = (700, 600, 760, 660)
    first = method2_tiles(scan16, box, item_rng(1, "roi-a"))
    again = method2_tiles(scan16, box, item_rng(1, "roi-a"))
    other_id = method2_tiles(scan16, box, item_rng(1, "roi-b"))
    other_seed = method2_tiles(scan16, box, item_rng(2, "roi-a"))
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other_id))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other_seed))


def test_method2_tiles_come_from_the_context_box():
    # a scan whose value encodes position: tiles of a box far from the bright region are dark
    image = np.zeros((2000, 2000), np.uint16)
    image[:1000, :1000] = 30000
    image[1000:, 1000:] = 60000
    low = method2_tiles(image, (400, 400, 450, 450), item_rng(0, "x"))
    high = method2_tiles(image, (1500, 1500, 1550, 1550), item_rng(0, "x"))
    assert len(low) == len(high) == 3
    assert all(t.min() == t.max() == 30000 >> 8 for t in low)
    assert all(t.min() == t.max() == 60000 >> 8 for t in high)


def test_method2_at_tile_size_cuts_without_resizing():
    """MIAS: ROIs are cut at 299 from the upscaled scan, so a tile holds the scan's own pixels."""
    rng = np.random.default_rng(5)
    image = (rng.integers(100, 200, (800, 800)) * 256).astype(np.uint16)
    params = Method2(tile=TILE_SIZE)
    assert method2_box((390, 390, 410, 410), image.shape, params) == (400 - 179, 400 - 179, int(TILE_SIZE * 1.2))
    for tile in method2_tiles(image, (390, 390, 410, 410), item_rng(0, "m"), params):
        values = set(np.unique(tile).tolist())
        assert values <= set(range(100, 200)) and len(values) > 90  # no interpolated values
        window = image[400 - 179 : 400 + 180, 400 - 179 : 400 + 180] >> 8
        assert any(_occurs(np.rot90(tile, k)[:, ::flip], window) for k in range(4) for flip in (1, -1))


def _occurs(tile: np.ndarray, window: np.ndarray) -> bool:
    """Whether the tile is a sub-array of the window (matching its first row first)."""
    rows, cols = np.nonzero(window == tile[0, 0])
    return any(
        r + tile.shape[0] <= window.shape[0]
        and c + tile.shape[1] <= window.shape[1]
        and np.array_equal(window[r : r + tile.shape[0], c : c + tile.shape[1]], tile)
        for r, c in zip(rows, cols)
    )


def test_upscale_by_the_mias_factor():
    image = np.arange(1024 * 1024, dtype=np.uint32).reshape(1024, 1024).astype(np.uint16)
    assert upscale(image, 2.58).shape == (2642, 2642)
    flat = np.full((10, 20), 1234, np.uint16)
    result = upscale(flat, 2.5)
    assert result.shape == (25, 50) and result.dtype == np.uint16 and (result == 1234).all()


def test_method2_tiles_reject_background():
    black = np.zeros((1000, 1000), np.uint16)
    assert method2_tiles(black, (400, 400, 450, 450), item_rng(0, "x")) == []
    assert method2_tiles(black, (400, 400, 450, 450), item_rng(0, "x"), Method2(crops=5, max_tries=2)) == []


def test_method2_tiles_redraw_until_tissue():
    # tissue only in the bottom-right of the context box: some draws are background, redraws find tissue
    image = np.zeros((1000, 1000), np.uint16)
    image[600:, 600:] = 40000
    box = (500, 500, 520, 520)
    tiles = method2_tiles(image, box, item_rng(0, "y"), Method2(crops=3, max_tries=50))
    assert len(tiles) == 3
    assert all(not mostly_background(t) for t in tiles)


def test_mostly_background_boundary():
    tile = np.full((100, 100), 200, np.uint8)
    tile.flat[:9000] = 10  # exactly 90% <= 10: not more than 90%
    assert not mostly_background(tile)
    tile.flat[:9001] = 10
    assert mostly_background(tile)


def test_padded_crop():
    image = np.arange(1, 26, dtype=np.uint16).reshape(5, 5)
    assert np.array_equal(padded_crop(image, 1, 1, 3), image[1:4, 1:4])
    out = padded_crop(image, -1, -2, 4)
    assert out.shape == (4, 4)
    assert np.array_equal(out[1:, 2:], image[:3, :2])
    assert (out[0] == 0).all() and (out[:, :2] == 0).all()
    out = padded_crop(image, 3, 3, 4)
    assert np.array_equal(out[:2, :2], image[3:, 3:]) and out[2:].sum() == 0


def test_downscale_area():
    tile = np.zeros((598, 598), np.uint8)
    tile[:, 299:] = 200
    out = downscale(tile)
    assert out.shape == (299, 299) and out.dtype == np.uint8
    assert out[:, :149].max() == 0 and out[:, 150:].min() == 200


# ----------------------------------------------------------------------------- thresholds
def _tile(value=110, shape=(598, 598)):
    return np.full(shape, value, np.uint8)


def _with_variance(tile, amplitude):
    tile = tile.astype(np.int64)
    tile[::2, :] += amplitude
    tile[1::2, :] -= amplitude
    return tile.astype(np.uint8)


def test_accepts_textured_tile():
    tile = _with_variance(_tile(110), 20)  # var 400
    assert HOWTEK.accepts(tile)


def test_bright_pixel_count_boundary():
    tile = _with_variance(_tile(110), 20)
    tile.flat[:99] = 225  # 99 bright pixels: fewer than 100
    assert HOWTEK.accepts(tile)
    tile.flat[:100] = 225
    assert not HOWTEK.accepts(tile)
    tile = _with_variance(_tile(110), 20)
    tile.flat[:500] = 224  # below the bright level
    assert HOWTEK.accepts(tile)


def test_dark_pixel_count_boundary():
    thresholds = NormalThresholds(mean_min=0, var_min=0, var_max=1e9)
    tile = _tile(110)
    tile.flat[:50_000] = 20  # at most 50,000 dark pixels
    assert thresholds.accepts(tile)
    tile.flat[:50_001] = 20
    assert not thresholds.accepts(tile)
    tile = _tile(110)
    tile.flat[:100_000] = 21  # above the dark level
    assert thresholds.accepts(tile)


def test_mean_boundary():
    thresholds = NormalThresholds(mean_min=30, var_min=0, var_max=1e9)
    assert thresholds.accepts(_tile(30))
    assert not thresholds.accepts(_tile(29))


def test_variance_boundaries():
    thresholds = NormalThresholds(mean_min=0, var_min=100, var_max=400)
    assert thresholds.accepts(_with_variance(_tile(110), 10))  # var exactly 100
    assert thresholds.accepts(_with_variance(_tile(110), 20))  # var exactly 400
    assert not thresholds.accepts(_with_variance(_tile(110), 9))  # 81
    assert not thresholds.accepts(_with_variance(_tile(110), 21))  # 441


# ----------------------------------------------------------------------------- normal tiles
@pytest.fixture(scope="module")
def grey16():
    """Uniform mid grey (8-bit ~110) with texture (8-bit std ~10), 1400 x 1400."""
    rng = np.random.default_rng(3)
    image8 = np.clip(rng.normal(110, 10, (1400, 1400)), 0, 254)
    return (np.round(image8) * 256 + 128).astype(np.uint16)


def test_normal_tiles_keep_textured_grey(grey16):
    tiles = normal_tiles(grey16, HOWTEK, item_rng(0, "scan"))
    # 7% border crop: 98 px each side, usable 1204 -> two starts per axis (stride 350), centred
    boxes = [box for _, box in tiles]
    starts = [226, 576]
    assert boxes == [(t, l, t + 598, l + 598) for t in starts for l in starts]
    for tile, _ in tiles:
        assert tile.shape == (TILE_SIZE, TILE_SIZE) and tile.dtype == np.uint8
        assert 100 <= tile.mean() <= 120


def test_normal_tiles_reject_black(grey16):
    assert normal_tiles(np.zeros_like(grey16), HOWTEK, item_rng(0, "scan")) == []


def test_normal_tiles_saturated_pixels_count_as_background():
    image = np.full((1400, 1400), 65535, np.uint16)  # 8-bit 255 everywhere -> set to 0 -> dark
    assert normal_tiles(image, NormalThresholds(mean_min=0, var_min=0, var_max=1e9), item_rng(0, "s")) == []


def test_normal_tiles_deterministic(grey16):
    a = normal_tiles(grey16, HOWTEK, item_rng(0, "scan"))
    b = normal_tiles(grey16, HOWTEK, item_rng(0, "scan"))
    assert len(a) == len(b) == 4
    assert all(np.array_equal(x, y) and bx == by for (x, bx), (y, by) in zip(a, b))


def test_normal_tiles_too_small_scan():
    image = np.full((600, 600), 110 * 256, np.uint16)  # usable 516 < 598
    assert normal_tiles(image, HOWTEK, item_rng(0, "s")) == []


@pytest.mark.parametrize("shape", [(2000, 1000), (1733, 2411)])
def test_normal_tiling_grid_is_centred(shape):
    image = np.full(shape, 110 * 256, np.uint16)
    image[::2] += 20 * 256
    tiles = normal_tiles(image, HOWTEK, item_rng(0, "g"))
    assert tiles
    for axis, length in enumerate(shape):
        starts = sorted({box[axis] for _, box in tiles})
        crop = int(length * 0.07)
        assert all(b - a == 350 for a, b in zip(starts, starts[1:]))
        before, after = starts[0] - crop, (length - crop) - (starts[-1] + 598)
        assert before >= 0 and after >= 0
        assert abs(before - after) <= 1, "both sides lose the same margin"
        assert after < 350 + 1, "no room left for another tile"


# ----------------------------------------------------------------------------- augmentation
def test_augment_preserves_the_pixel_multiset():
    rng = np.random.default_rng(0)
    tile = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    seen = set()
    for _ in range(64):
        out = augment(tile, rng)
        assert out.shape == tile.shape and out.dtype == tile.dtype
        assert np.array_equal(np.sort(out, axis=None), np.sort(tile, axis=None))
        assert out.flags["C_CONTIGUOUS"]
        seen.add(out.tobytes())
    assert len(seen) == 8, "flips and rotations give the 8 symmetries of the square"


def test_augment_non_square_keeps_pixels():
    tile = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rng = np.random.default_rng(1)
    for _ in range(16):
        out = augment(tile, rng)
        assert sorted(out.ravel().tolist()) == list(range(12))
        assert out.shape in ((3, 4), (4, 3))


def test_item_rng_depends_on_seed_and_item_only():
    assert item_rng(3, "a").integers(0, 2**31) == item_rng(3, "a").integers(0, 2**31)
    assert item_rng(3, "a").integers(0, 2**31) != item_rng(3, "b").integers(0, 2**31)
    assert item_rng(3, "a").integers(0, 2**31) != item_rng(4, "a").integers(0, 2**31)


def test_augment_draws_the_eight_symmetries_uniformly():
    # The study's rotation draw was non-uniform; every flip/rotation outcome must be equally likely.
    tile = np.arange(16, dtype=np.uint8).reshape(4, 4)
    rng = np.random.default_rng(123)
    counts: dict[bytes, int] = {}
    for _ in range(4000):
        key = augment(tile, rng).tobytes()
        counts[key] = counts.get(key, 0) + 1
    assert len(counts) == 8
    assert all(400 <= c <= 600 for c in counts.values()), sorted(counts.values())  # expected 500, sd about 21


# ----------------------------------------------------------------------------- method 1 (datasets 6 and 8)
def _lesion_scan(box, size=(3000, 2400)):
    """Grey tissue with a bright lesion filling `box`, so a tile shows how much of the lesion it holds."""
    rng = np.random.default_rng(4)
    image = (rng.integers(90, 130, size) * 256).astype(np.uint16)
    top, left, bottom, right = box
    image[top:bottom, left:right] = 240 * 256
    return image


def test_method1_small_roi_gives_the_original_size_and_the_zoomed_tile():
    box = (1000, 1000, 1100, 1080)  # 100 x 80: not elongated, smaller than a tile
    tiles = Method1().tiles(_lesion_scan(box), box, item_rng(1, "a"))
    assert len(tiles) == 2 and all(t.shape == (TILE_SIZE, TILE_SIZE) and t.dtype == np.uint8 for t in tiles)
    bright = [float(np.mean(t >= 235)) for t in tiles]
    assert bright[0] == pytest.approx(100 * 80 / NATIVE_TILE**2, abs=0.01)  # (a) native size: the lesion is small
    assert bright[1] > 0.5  # (b) zoomed to the tile with 20% padding: the lesion fills most of it


def test_method1_elongated_roi_adds_two_half_tiles_and_large_rois_tile_over():
    box = (800, 500, 1000, 1400)  # 200 x 900: elongated (over 1.5x) and larger than a tile
    image = _lesion_scan(box)
    assert len(Method1().tiles(image, box, item_rng(1, "b"))) == 4  # (a), (b) and two halves
    with_windows = Method1(large_roi_stride=299).tiles(image, box, item_rng(1, "b"))
    assert len(with_windows) == 4 + 3  # dataset 6: 598 windows over the 900 long side at stride 299 (500, 799, 802)
    first, second = Method1().tiles(image, box, item_rng(7, "c")), Method1().tiles(image, box, item_rng(7, "c"))
    assert all(np.array_equal(x, y) for x, y in zip(first, second))  # seeded per item


def test_method1_original_size_window_holds_the_roi_at_a_random_place():
    box = (1000, 1000, 1100, 1100)
    image = _lesion_scan(box)
    positions = set()
    for item in range(20):
        tile = Method1().tiles(image, box, item_rng(item, "d"))[0]
        assert np.sum(tile >= 235) == pytest.approx((100 / 2) ** 2, rel=0.15)  # the whole lesion, at half scale
        rows, cols = np.nonzero(tile >= 235)
        positions.add((int(rows.min()) // 10, int(cols.min()) // 10))
    assert len(positions) > 10


def test_roi_method_from_a_recipe():
    assert roi_method({"crops": 3, "small_padding": 1.2, "large_padding": 1.05, "max_tries": 10}) == Method2()
    assert roi_method({"method": 1, "context_padding": 1.3, "large_roi_stride": 299}, tile=299) == Method1(1.3, 1.5, 299, 10, 299)
    assert Method1().name == "method1" and Method2().name == "method2"


def test_normal_tiling_with_a_drawn_downscale_and_stride():
    """Datasets 6 and 8: each scan shrunk by a factor in 1.8-3.2 and cut into 299 tiles at a stride in 150-200."""
    tiling = NormalTiling(tile=299, stride=(150, 200), border_crop=0.07, downscale=(1.8, 3.2))
    grids = [tiling.for_scan(item_rng(1, f"s{i}")) for i in range(50)]
    factors = [grid.tile / 299 for grid in grids]
    assert 1.8 <= min(factors) and max(factors) <= 3.21 and max(factors) - min(factors) > 0.8
    assert all(150 * grid.tile / 299 - 2 <= grid.stride <= 200 * grid.tile / 299 + 2 for grid in grids)
    fixed = NormalTiling(598, 350)
    rng = item_rng(1, "x")
    assert fixed.for_scan(rng) == fixed and rng.random() == item_rng(1, "x").random()  # dataset 9 draws nothing
    image = (np.random.default_rng(0).integers(90, 140, (2000, 1600)) * 256).astype(np.uint16)
    found = normal_tiles(image, HOWTEK, item_rng(2, "scan"), tiling)
    assert found and all(t.shape == (TILE_SIZE, TILE_SIZE) for t, _ in found)
    sides = {box[2] - box[0] for _, box in found}
    assert len(sides) == 1 and 1.8 * 299 <= sides.pop() <= 3.2 * 299  # one drawn factor per scan
