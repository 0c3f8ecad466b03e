"""Optical-density calibrations and the 16/8-bit intensity scales."""

from __future__ import annotations

import numpy as np
import pytest

from mammo import intensity
from mammo.intensity import (
    CALIBRATIONS,
    calibration,
    od_to_raw,
    od_to_uint16,
    raw_to_uint16,
    to_uint8,
    uint8_to_uint16,
    uint16_to_od,
)

# OD of one uint16 level on the CBIS-DDSM scale.
OD_STEP = (intensity.OD_MAX - intensity.OD_MIN) / intensity.UINT16_MAX


# ----------------------------------------------------------------------------- calibrations
@pytest.mark.parametrize(
    "digitizer, site, gl, od",
    [
        ("HOWTEK", "MGH", 1000.0, 3.789 - 0.94568),
        ("HOWTEK", "MGH", 0.0, 3.789),
        ("HOWTEK", "ISMD", 1000.0, 3.96604096240593 - 0.99055807612),
        ("HOWTEK", "ISMD", 0.0, 3.96604096240593),
        ("LUMISYS", "WFU", 4096.99, 0.0),
        ("LUMISYS", "WFU", 4096.99 - 1009.01, 1.0),
        ("LUMISYS", "WFU", 0.0, 4096.99 / 1009.01),
        ("DBA", "MGH", 10**4.80662, 0.0),
        ("DBA", "MGH", 10 ** (4.80662 - 1.07553), 1.0),
        ("DBA", "MGH", 10 ** (4.80662 - 2 * 1.07553), 2.0),
    ],
)
def test_gl_to_od_at_known_values(digitizer, site, gl, od):
    gl_to_od, od_to_gl = calibration(digitizer, site)
    assert float(gl_to_od(np.float64(gl))) == pytest.approx(od, abs=1e-9)
    # and the inverse formula takes the OD back to the grey level
    assert float(od_to_gl(np.float64(od))) == pytest.approx(gl, rel=1e-9, abs=1e-7)


def test_dba_log_of_zero_is_clamped():
    gl_to_od, _ = calibration("DBA", "MGH")
    assert np.isfinite(gl_to_od(np.array([0.0]))).all()
    assert float(gl_to_od(np.array([0.0]))[0]) == pytest.approx(4.80662 / 1.07553)


def test_higher_grey_level_is_less_dense_for_every_digitizer():
    for (digitizer, site), (gl_to_od, _) in CALIBRATIONS.items():
        od = gl_to_od(np.array([1000.0, 2000.0, 3000.0]))
        assert np.all(np.diff(od) < 0), (digitizer, site)


def test_site_by_case_letter():
    assert intensity.SITE_BY_CASE_LETTER == {"A": "MGH", "B": "WFU", "C": "WFU", "D": "ISMD"}


@pytest.mark.parametrize("digitizer, site", [("LUMISYS", "MGH"), ("DBA", "ISMD"), ("NIKON", "WFU")])
def test_unknown_calibration_raises_value_error_naming_the_digitizer(digitizer, site):
    with pytest.raises(ValueError, match=digitizer) as info:
        calibration(digitizer, site)
    assert site in str(info.value)
    with pytest.raises(ValueError, match=digitizer):
        raw_to_uint16(np.array([1, 2, 3]), digitizer, site)
    with pytest.raises(ValueError, match=digitizer):
        od_to_raw(np.array([1.0, 2.0]), digitizer, site, 12)


# ----------------------------------------------------------------------------- 16-bit scale
def test_od_to_uint16_endpoints_and_clipping():
    values = od_to_uint16(np.array([0.05, 3.0, 0.0, -1.0, 3.5, 100.0, (0.05 + 3.0) / 2]))
    assert values.dtype == np.uint16
    assert values[:6].tolist() == [65535, 0, 65535, 65535, 0, 0]  # decreasing: clear film bright
    assert values[6] in (32767, 32768)  # the midpoint, 32767.5 up to float rounding


def test_od_to_uint16_is_monotonic_and_inverse_of_uint16_to_od():
    od = np.linspace(0.05, 3.0, 10001)
    u = od_to_uint16(od)
    assert np.all(np.diff(u.astype(np.int64)) <= 0)
    assert np.abs(uint16_to_od(u) - od).max() <= OD_STEP / 2 + 1e-12
    every = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(od_to_uint16(uint16_to_od(every)), every)
    assert uint16_to_od(np.array([0, 65535])).tolist() == pytest.approx([3.0, 0.05])


# In-range grey levels (OD 0.05-3.0) of the 12-bit digitizers.
TWELVE_BIT = [("HOWTEK", "MGH", 835, 3953), ("HOWTEK", "ISMD", 976, 3953), ("LUMISYS", "WFU", 1071, 4046)]


@pytest.mark.parametrize("digitizer, site, low, high", TWELVE_BIT)
def test_raw_od_round_trip_within_one_grey_level_12_bit(digitizer, site, low, high):
    raw = np.arange(low, high + 1, dtype=np.uint16)
    gl_to_od, _ = calibration(digitizer, site)
    back = od_to_raw(gl_to_od(raw.astype(np.float64)), digitizer, site, bits=12)
    assert back.dtype == np.uint16
    assert np.abs(back.astype(np.int64) - raw).max() <= 1
    image16 = raw_to_uint16(raw, digitizer, site)
    assert image16.dtype == np.uint16
    # more light through the film (higher GL) is clearer film: brighter on the CBIS scale
    assert np.all(np.diff(image16.astype(np.int64)) >= 0)
    # ends of the range sit near the ends of the 16-bit scale
    assert image16[0] < 600 and image16[-1] > 65000


def test_raw_uint16_round_trip_dba_16_bit():
    # Low grey levels: a grey level is coarser than a uint16 level -> back within one grey level.
    raw = np.arange(38, 8000, dtype=np.uint16)
    back = od_to_raw(uint16_to_od(raw_to_uint16(raw, "DBA", "MGH")), "DBA", "MGH", bits=16)
    assert np.abs(back.astype(np.int64) - raw).max() <= 1
    # High grey levels: a uint16 level is coarser than a grey level -> uint16 back within one level.
    image16 = np.arange(59535, 65536, dtype=np.uint16)  # OD 0.05-0.32: GL about 56,600-29,000
    raw = od_to_raw(uint16_to_od(image16), "DBA", "MGH", bits=16)
    again = raw_to_uint16(raw, "DBA", "MGH")
    assert np.abs(again.astype(np.int64) - image16).max() <= 1


def test_od_to_raw_clips_od_then_the_bit_range():
    # LUMISYS: OD 0.05 -> GL 4046.5, below 2**12; OD outside 0.05-3.0 is clipped first.
    raw = od_to_raw(np.array([0.0, 0.05, 3.0, 4.0]), "LUMISYS", "WFU", bits=12)
    clear, black = round(4096.99 - 1009.01 * 0.05), round(4096.99 - 1009.01 * 3.0)
    assert raw.tolist() == [clear, clear, black, black]
    # DBA written as 12 bit would overflow: clipped to 4095
    assert od_to_raw(np.array([0.05]), "DBA", "MGH", bits=12).tolist() == [4095]


# ----------------------------------------------------------------------------- 8-bit
def test_to_uint8_drops_the_low_byte():
    values = np.array([0, 255, 256, 511, 512, 32768, 65280, 65535], dtype=np.uint16)
    out = to_uint8(values)
    assert out.dtype == np.uint8
    assert out.tolist() == [0, 0, 1, 1, 2, 128, 255, 255]


def test_uint8_to_uint16_stretches_to_full_range_and_back():
    every = np.arange(256, dtype=np.uint8)
    stretched = uint8_to_uint16(every)
    assert stretched.dtype == np.uint16
    assert stretched[0] == 0 and stretched[-1] == 65535
    assert np.array_equal(to_uint8(stretched), every)
