"""Synthetic mammograms in optical density: breast, tissue texture, masses, calcifications.

Physics of a film: X-rays that miss the breast blacken it (background: HIGH optical density),
tissue absorbs them and leaves the film clearer (LOW density), dense lesions clearer still.
Everything is drawn from a numpy Generator, so one seed gives one image.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BACKGROUND_OD = 2.93  # direct exposure: black film, about 12 on the 8-bit tile scale
TISSUE_OD = 1.30  # about 145 on the 8-bit tile scale
TEXTURE_OD = 0.27  # standard deviation of the 1/f^beta texture
POWER_LAW_BETA = 3.0
STRAND_OD = 0.02  # fine fibroglandular structure, 1-4 mm (band-passed noise), missing from a 1/f^beta field alone
GRAIN_OD = 0.01  # film grain and scanner noise


@dataclass(frozen=True)
class Lesion:
    """One abnormality drawn into a scan; `mask` is the radiologist-style outline."""

    abnormality_type: str  # "mass" or "calcification"
    malignant: bool
    mask: np.ndarray  # bool, scan shape


def power_law_noise(shape: tuple[int, int], rng: np.random.Generator, beta: float = POWER_LAW_BETA) -> np.ndarray:
    """Zero-mean, unit-variance noise with power spectrum 1/f^beta (fibroglandular texture)."""
    white = rng.standard_normal(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    frequency = np.sqrt(fx**2 + fy**2)
    frequency[0, 0] = 1.0
    spectrum = np.fft.rfft2(white) * frequency ** (-beta / 2.0)
    spectrum[0, 0] = 0.0
    noise = np.fft.irfft2(spectrum, s=shape)
    return noise / noise.std()


def band_noise(shape: tuple[int, int], rng: np.random.Generator, fine: float, coarse: float) -> np.ndarray:
    """Zero-mean, unit-variance noise holding the structures between `fine` and `coarse` pixels (difference of Gaussians)."""
    white = rng.standard_normal(shape).astype(np.float32)
    band = cv2.GaussianBlur(white, (0, 0), fine) - cv2.GaussianBlur(white, (0, 0), coarse)
    return (band / band.std()).astype(np.float64)


def breast_mask(shape: tuple[int, int], rng: np.random.Generator, chest_wall_left: bool) -> np.ndarray:
    """Half-ellipse against the chest wall with a slightly wavy skin line."""
    height, width = shape
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    centre_row = height * rng.uniform(0.45, 0.55)
    depth = width * rng.uniform(0.7, 0.85)
    half_height = height * rng.uniform(0.4, 0.46)
    distance_from_wall = cols if chest_wall_left else (width - 1 - cols)
    angle = np.arctan2(rows - centre_row, distance_from_wall + 1)
    wobble = 1.0 + 0.04 * np.sin(3 * angle + rng.uniform(0, 2 * np.pi))
    radius = np.sqrt((distance_from_wall / depth) ** 2 + ((rows - centre_row) / half_height) ** 2)
    return radius <= wobble


def normal_breast(shape: tuple[int, int], rng: np.random.Generator, chest_wall_left: bool) -> tuple[np.ndarray, np.ndarray]:
    """Return (optical density image, breast mask) of a normal breast."""
    mask = breast_mask(shape, rng, chest_wall_left)
    texture = power_law_noise(shape, rng)
    grain = rng.standard_normal(shape) * GRAIN_OD
    strands = band_noise(shape, rng, 1.5, 6.0)
    # Tissue thins towards the skin line: a smooth fall-off over the outer band.
    distance = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    falloff = np.clip(distance / (0.08 * min(shape)), 0.0, 1.0) ** 0.5
    density = rng.uniform(-0.45, 0.45)
    attenuation = mask * falloff * (BACKGROUND_OD - TISSUE_OD + density + TEXTURE_OD * texture + STRAND_OD * strands)
    return np.clip(BACKGROUND_OD - attenuation - grain, 0.05, 3.0), mask


def add_mass(od: np.ndarray, breast: np.ndarray, rng: np.random.Generator, malignant: bool, size: float) -> Lesion:
    """A dense blob (lower OD than the tissue around it): benign round and smooth, malignant irregular with spicules."""
    centre = _point_inside(breast, rng, margin=size)
    radius = size / 2.0
    rows, cols = np.ogrid[0 : od.shape[0], 0 : od.shape[1]]
    dy, dx = rows - centre[0], cols - centre[1]
    angle = np.arctan2(dy, dx)
    if malignant:
        harmonics = sum(rng.uniform(0.08, 0.2) * np.sin(k * angle + rng.uniform(0, 2 * np.pi)) for k in (3, 5, 7))
        boundary = radius * (1.0 + harmonics)
        edge = 0.06 * radius
    else:
        aspect = rng.uniform(0.75, 1.0)
        boundary = radius / np.sqrt(np.cos(angle) ** 2 + (np.sin(angle) / aspect) ** 2)
        edge = 0.03 * radius
    distance = np.sqrt(dy**2 + dx**2) - boundary
    blob = 1.0 / (1.0 + np.exp(np.clip(distance / edge, -50, 50)))
    contrast = rng.uniform(0.2, 0.55)  # real mini-MIAS masses: 20-46 8-bit levels above their surround (quartiles)
    od -= contrast * blob * (1.0 + 0.1 * rng.standard_normal(od.shape) * (blob > 0.5))
    if malignant:
        _draw_spicules(od, centre, radius, rng, contrast)
    np.clip(od, 0.05, 3.0, out=od)
    return Lesion("mass", malignant, distance <= 0)


def _draw_spicules(od: np.ndarray, centre, radius: float, rng: np.random.Generator, contrast: float) -> None:
    lines = np.zeros(od.shape, dtype=np.float32)
    for _ in range(rng.integers(8, 16)):
        angle = rng.uniform(0, 2 * np.pi)
        length = radius * rng.uniform(1.6, 2.4)
        end = (int(centre[1] + length * np.cos(angle)), int(centre[0] + length * np.sin(angle)))
        cv2.line(lines, (int(centre[1]), int(centre[0])), end, 1.0, thickness=max(2, int(radius / 25)))
    od -= 0.6 * contrast * cv2.GaussianBlur(lines, (0, 0), 1.5)


def add_calcifications(od: np.ndarray, breast: np.ndarray, rng: np.random.Generator, malignant: bool, size: float) -> Lesion:
    """A cluster of small specks of calcium (clear, low OD, bright): benign few and round, malignant many and pleomorphic."""
    centre = _point_inside(breast, rng, margin=size)
    cluster_radius = size / 2.0
    specks = np.zeros(od.shape, dtype=np.float32)
    count = rng.integers(25, 45) if malignant else rng.integers(8, 14)
    for _ in range(count):
        r = cluster_radius * np.sqrt(rng.uniform(0, 1))
        theta = rng.uniform(0, 2 * np.pi)
        point = (int(centre[1] + r * np.cos(theta)), int(centre[0] + r * np.sin(theta)))
        if malignant:
            axes = (int(rng.integers(2, 6)), int(rng.integers(1, 3)))
        else:
            axes = (int(rng.integers(3, 5)),) * 2
        cv2.ellipse(specks, point, axes, rng.uniform(0, 180), 0, 360, 1.0, thickness=-1)
    od -= rng.uniform(0.3, 0.5) * cv2.GaussianBlur(
        specks, (0, 0), 0.8
    )  # real mini-MIAS clusters: 3-17 levels above their surround
    np.clip(od, 0.05, 3.0, out=od)
    rows, cols = np.ogrid[0 : od.shape[0], 0 : od.shape[1]]
    outline = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= (cluster_radius + 6) ** 2
    return Lesion("calcification", malignant, outline)


def _point_inside(breast: np.ndarray, rng: np.random.Generator, margin: float) -> tuple[int, int]:
    """A random point at least `margin` pixels (and a fifth of the scan's width) inside the skin line
    and the image edges.

    Lesions deep in the tissue keep the context tiles around them inside the
    breast, as the normal tiles are, so background is no cue to the class,
    and away from the chest-wall edge, where the context box would be shifted
    until the lesion sits on the tile's border.
    """
    margin = max(margin, 0.2 * min(breast.shape))
    framed = np.pad(breast.astype(np.uint8), 1)  # image edges count as boundary
    distance = cv2.distanceTransform(framed, cv2.DIST_L2, 5)[1:-1, 1:-1]
    candidates = np.argwhere(distance >= margin)
    if len(candidates) == 0:
        candidates = np.argwhere(distance >= distance.max() * 0.8)
    row, col = candidates[rng.integers(len(candidates))]
    return int(row), int(col)
