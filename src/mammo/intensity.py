"""One intensity space for every source.

CBIS-DDSM stores optical density (OD) 0.05-3.0 mapped linearly and DECREASING
to 16 bit: clear film (low OD, dense tissue) is bright, black film (high OD,
direct exposure outside the breast) is dark. DDSM LJPEG raw grey levels are
converted to OD with the digitizer's published calibration and mapped the
same way; MIAS 8-bit is stretched to 16 bit. 16 -> 8 bit for tiles is :func:`to_uint8` for every
source.
"""

from __future__ import annotations

import numpy as np

OD_MIN = 0.05
OD_MAX = 3.0
UINT16_MAX = 65535


def od_to_uint16(od: np.ndarray) -> np.ndarray:
    """Optical density -> CBIS-DDSM 16 bit, clipped to 0.05-3.0 and DECREASING: OD 0.05 -> 65535, OD 3.0 -> 0.

    Evidence for the direction: the CBIS-DDSM authors' converter maps OD with np.interp(od, (0, 4), (255, 0)).
    """
    scaled = (OD_MAX - np.clip(np.asarray(od, dtype=np.float64), OD_MIN, OD_MAX)) / (OD_MAX - OD_MIN)
    return np.round(scaled * UINT16_MAX).astype(np.uint16)


def uint16_to_od(values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`od_to_uint16`: 0 (dark, background) -> OD 3.0, 65535 (bright, dense) -> OD 0.05.

    Evidence for the direction: a real CBIS-DDSM film has background near 0-4,000 and dense tissue near 60,000.
    """
    return OD_MAX - np.asarray(values, dtype=np.float64) / UINT16_MAX * (OD_MAX - OD_MIN)


def to_uint8(image16: np.ndarray) -> np.ndarray:
    """16-bit to 8-bit by dropping the low byte (the study's /256)."""
    return (np.asarray(image16, dtype=np.uint16) >> 8).astype(np.uint8)


def uint8_to_uint16(image8: np.ndarray) -> np.ndarray:
    """Stretch 8-bit images (MIAS) over the full 16-bit range."""
    return np.asarray(image8, dtype=np.uint16) * 257


# Digitizer calibrations (DDSM documentation): grey level GL -> OD and back. A scanner's grey level
# grows with the light through the film, so every calibration lowers OD as GL grows: raw DDSM values
# are low in the background (black film) and high in dense tissue (clear film).
# Keyed by (digitizer, site); the site comes from the DDSM case letter.
def _dba_od(gl):
    return (np.log10(np.maximum(gl, 1.0)) - 4.80662) / -1.07553


def _dba_gl(od):
    return 10.0 ** (4.80662 - 1.07553 * od)


def _linear(intercept: float, slope: float):
    def to_od(gl):
        return intercept + slope * gl

    def to_gl(od):
        return (od - intercept) / slope

    return to_od, to_gl


CALIBRATIONS = {
    ("DBA", "MGH"): (_dba_od, _dba_gl),
    ("HOWTEK", "MGH"): _linear(3.789, -0.00094568),
    ("HOWTEK", "ISMD"): _linear(3.96604096240593, -0.00099055807612),
    ("LUMISYS", "WFU"): _linear(-4096.99 / -1009.01, 1.0 / -1009.01),
}

# DDSM case letter -> digitising site.
SITE_BY_CASE_LETTER = {"A": "MGH", "B": "WFU", "C": "WFU", "D": "ISMD"}


def calibration(digitizer: str, site: str):
    """Return (gl_to_od, od_to_gl) for a digitizer family at a site."""
    try:
        return CALIBRATIONS[(digitizer, site)]
    except KeyError:
        known = ", ".join(f"{d}@{s}" for d, s in CALIBRATIONS)
        raise ValueError(
            f"no optical-density calibration for digitizer {digitizer!r} at site {site!r} (known: {known})"
        ) from None


def raw_to_uint16(raw: np.ndarray, digitizer: str, site: str) -> np.ndarray:
    """DDSM raw grey levels -> OD -> CBIS-DDSM 16-bit scale."""
    gl_to_od, _ = calibration(digitizer, site)
    return od_to_uint16(gl_to_od(np.asarray(raw, dtype=np.float64)))


def od_to_raw(od: np.ndarray, digitizer: str, site: str, bits: int) -> np.ndarray:
    """Optical density (clipped to 0.05-3.0) -> the digitizer's raw grey levels, as a DDSM LJPEG stores them.

    The inverse calibration, used to write demo LJPEGs: black film (high OD) gets LOW grey levels.
    """
    _, od_to_gl = calibration(digitizer, site)
    raw = np.round(od_to_gl(np.clip(np.asarray(od, dtype=np.float64), OD_MIN, OD_MAX)))
    return np.clip(raw, 0, 2**bits - 1).astype(np.uint16)


INVERTED_INTENSITY = "inverted intensity (negative film?)"


def inverted_intensity(image16: np.ndarray, inset: float = 0.07, end: int = 32, sample: int = 256) -> bool:
    """True when a scan looks like a negative: more of it at the bright end of the 8-bit scale than at the dark end.

    Direct exposure around the breast is black film (the dark end); on 216 real mini-MIAS films and a real
    CBIS-DDSM film the darkest `end` levels hold more pixels than the brightest `end`, even on dense breasts
    that fill the film, and always fewer once inverted. `inset` of each side is left out (scanner borders,
    film labels); about `sample` pixels a side are looked at.
    """
    height, width = image16.shape
    step = max(1, max(height, width) // sample)
    top, left = int(inset * height), int(inset * width)
    image8 = to_uint8(image16[top : height - top : step, left : width - left : step])
    return int(np.count_nonzero(image8 >= 256 - end)) > int(np.count_nonzero(image8 < end))
