"""The same film in two collections, recognised by content.

CBIS-DDSM re-released DDSM films under new patient ids (P_00038 is not DDSM's case 0038): a CBIS-DDSM film equals
its DDSM LJPEG after the optical-density conversion, so a breast in both is found by comparing small copies of the two
scans in the shared 16-bit space, between scans of the same view and nearly the same aspect ratio. The copy is
high-passed: on a plain small copy the breast's silhouette dominates, and different women's films of one side
correlate up to 0.996 (measured on the 216 real mini-MIAS films); high-passed, the tissue pattern decides.
"""

from __future__ import annotations

import base64

import cv2
import numpy as np
import pandas as pd

FINGERPRINT_SIZE = 64  # the copy's side in pixels
FINGERPRINT_BLUR = 2.0  # sigma of the blur subtracted from the copy (pixels of the copy)
FINGERPRINT_COLUMNS = ["source", "patient_id", "scan_id", "view", "path", "rows", "cols", "fingerprint"]
# Correlation of the high-passed copies above which two scans are one film. Measured on real mini-MIAS films: two
# different films of one side reach 0.923 (the highest of 216 films' pairs); a film against itself with its grey
# levels bent (gamma 1.15) and noise added keeps 0.996; the same film through the same mapping, about 1.
SAME_FILM_CORRELATION = 0.98
ASPECT_TOLERANCE = 0.02  # films of one breast differ in aspect by at most this share (a re-saved film: not at all)


def fingerprint(scan16: np.ndarray) -> np.ndarray:
    """A scan's high-passed small copy as a centred unit vector, quantised to int8."""
    small = cv2.resize(scan16.astype(np.float32), (FINGERPRINT_SIZE, FINGERPRINT_SIZE), interpolation=cv2.INTER_AREA)
    detail = (small - cv2.GaussianBlur(small, (0, 0), FINGERPRINT_BLUR)).ravel()
    detail -= detail.mean()
    peak = np.abs(detail).max()
    return np.round(detail / peak * 127).astype(np.int8) if peak > 0 else np.zeros(detail.size, np.int8)


def fingerprint_row(scan16: np.ndarray, scan_fields: dict, path: str) -> dict:
    """One row of a fingerprint table: the scan's identity, file, shape and copy (base64 of its int8 values)."""
    return {
        **{key: scan_fields[key] for key in ("source", "patient_id", "scan_id", "view")},
        "path": str(path),
        "rows": scan16.shape[0],
        "cols": scan16.shape[1],
        "fingerprint": base64.b64encode(fingerprint(scan16).tobytes()).decode(),
    }


def _vectors(table: pd.DataFrame) -> np.ndarray:
    """The fingerprints of a table as centred unit vectors (their dot product is their correlation)."""
    if not len(table):
        return np.zeros((0, FINGERPRINT_SIZE**2))
    values = np.stack([np.frombuffer(base64.b64decode(text), np.int8) for text in table["fingerprint"]]).astype(np.float64)
    values -= values.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(values, axis=1, keepdims=True)
    return values / np.where(norms > 0, norms, 1)


def match_films(preferred: pd.DataFrame, others: pd.DataFrame) -> tuple[pd.DataFrame, float | None]:
    """(pairs, closest other film) of two fingerprint tables. Pairs are scans (one of `preferred`, one of `others`)
    that are one film: same view, aspect ratios within ASPECT_TOLERANCE, correlation of their copies at least
    SAME_FILM_CORRELATION; columns scan_id and patient_id of each side and their correlation; each scan of `others`
    paired at most once (with its closest). The closest other film is the highest correlation of two such
    comparable scans that were NOT called one film: how far the threshold stands from the nearest pair of
    different breasts (reported beside the pairs)."""
    columns = ["scan_id", "patient_id", "other_scan_id", "other_patient_id", "correlation"]
    correlation = _vectors(preferred) @ _vectors(others).T
    aspect = (preferred["rows"] / preferred["cols"]).to_numpy()[:, None] / (others["rows"] / others["cols"]).to_numpy()
    comparable = (preferred["view"].to_numpy()[:, None] == others["view"].to_numpy()) & (np.abs(aspect - 1) <= ASPECT_TOLERANCE)
    correlation = np.where(comparable, correlation, -1.0)
    pairs = []
    for other in range(len(others)):
        best = int(np.argmax(correlation[:, other])) if len(preferred) else -1
        if best >= 0 and correlation[best, other] >= SAME_FILM_CORRELATION:
            pairs.append(
                [
                    preferred["scan_id"].iloc[best],
                    preferred["patient_id"].iloc[best],
                    others["scan_id"].iloc[other],
                    others["patient_id"].iloc[other],
                    round(float(correlation[best, other]), 5),
                ]
            )
    below = correlation[comparable & (correlation < SAME_FILM_CORRELATION)]
    closest = round(float(below.max()), 5) if below.size else None
    return pd.DataFrame(pairs, columns=columns), closest
