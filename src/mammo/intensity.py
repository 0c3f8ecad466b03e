"""One intensity space for every source.

CBIS-DDSM stores optical density (OD) 0.05-3.0 mapped linearly to 16 bit
(brighter = denser). DDSM LJPEG raw grey levels are converted to OD with the
digitizer's published calibration and mapped the same way; MIAS 8-bit is
stretched to 16 bit. 16 -> 8 bit for tiles is :func:`to_uint8` for every
source.
"""

from __future__ import annotations

import numpy as np

OD_MIN = 0.05
OD_MAX = 3.0
UINT16_MAX = 65535


def od_to_uint16(od: np.ndarray) -> np.ndarray:
    """Map optical density to the CBIS-DDSM 16-bit scale (clipped)."""
    scaled = (np.asarray(od, dtype=np.float64) - OD_MIN) / (OD_MAX - OD_MIN)
    return np.round(np.clip(scaled, 0.0, 1.0) * UINT16_MAX).astype(np.uint16)


def uint16_to_od(values: np.ndarray) -> np.ndarray:
    """Inverse of :func:`od_to_uint16`."""
    return OD_MIN + np.asarray(values, dtype=np.float64) / UINT16_MAX * (OD_MAX - OD_MIN)


def to_uint8(image16: np.ndarray) -> np.ndarray:
    """16-bit to 8-bit by dropping the low byte (the study's /256)."""
    return (np.asarray(image16, dtype=np.uint16) >> 8).astype(np.uint8)


def uint8_to_uint16(image8: np.ndarray) -> np.ndarray:
    """Stretch 8-bit images (MIAS) over the full 16-bit range."""
    return np.asarray(image8, dtype=np.uint16) * 257


# Digitizer calibrations (DDSM documentation): grey level GL -> OD and back.
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


def uint16_to_raw(image16: np.ndarray, digitizer: str, site: str, bits: int) -> np.ndarray:
    """Inverse of :func:`raw_to_uint16`, used to write demo LJPEGs in the digitizer's raw range."""
    _, od_to_gl = calibration(digitizer, site)
    raw = np.round(od_to_gl(uint16_to_od(image16)))
    return np.clip(raw, 0, 2**bits - 1).astype(np.uint16)
