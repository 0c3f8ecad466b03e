"""Property tests: truncated, shuffled and random inputs raise the project's own error type, never crash or hang."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mammo.io import FormatError
from mammo.io.cbis import read_case_descriptions
from mammo.io.ics import format_ics, parse_ics
from mammo.io.ljpeg import decode_ljpeg, encode_ljpeg, parse_header
from mammo.io.mias import parse_info, read_pgm
from mammo.io.overlay import parse_overlay

FAST = settings(
    max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture]
)  # derandomized: CI sees the same examples every run

ICS = """
ics_version 1.0
filename A-0002-1
DATE_OF_STUDY 16 11 1993
PATIENT_AGE 52
DENSITY 2
DIGITIZER DBA 21
SEQUENCE
LEFT_CC LINES 40 PIXELS_PER_LINE 30 BITS_PER_PIXEL 16 RESOLUTION 42 NON_OVERLAY
RIGHT_MLO LINES 41 PIXELS_PER_LINE 29 BITS_PER_PIXEL 16 RESOLUTION 42 OVERLAY
"""
OVERLAY = """TOTAL_ABNORMALITIES 1
ABNORMALITY 1
LESION_TYPE MASS SHAPE ROUND MARGINS ILL_DEFINED
ASSESSMENT 4
SUBTLETY 3
PATHOLOGY MALIGNANT
TOTAL_OUTLINES 1
BOUNDARY
10 20 2 2 4 4 6 6 0 0 #
"""
STREAM = encode_ljpeg((np.arange(24 * 16).reshape(24, 16) * 7 % 4096).astype(np.uint16), 12)


def _mangled(text: str):
    """Random text, the sample's lines shuffled, or the sample cut short."""
    shuffled = st.permutations(text.splitlines()).map("\n".join)
    return st.one_of(st.text(max_size=400), shuffled, st.integers(0, len(text)).map(lambda n: text[:n]))


@FAST
@given(_mangled(ICS))
def test_ics_parser_only_raises_format_error(text):
    try:
        header = parse_ics(text)
    except FormatError:
        return
    assert header.views and header.digitizer_family in ("DBA", "HOWTEK", "LUMISYS")
    assert parse_ics(format_ics(header, "1 1 1990", "1 1 1999")).views == header.views


@FAST
@given(_mangled(OVERLAY))
def test_overlay_parser_only_raises_format_error(text):
    try:
        abnormalities = parse_overlay(text)
    except FormatError:
        return
    for abnormality in abnormalities:
        for outline in abnormality.outlines:
            assert outline.mask((64, 64)).shape == (64, 64)


@FAST
@given(
    st.one_of(
        st.text(max_size=400),
        st.lists(
            st.sampled_from(["mdb001 G CIRC B 535 425 197", "mdb003 D NORM ", "mdb216 D CALC M *NOTE 3*", "mdb9 X", "prose"]),
            max_size=12,
        ).map("\n".join),
    )
)
def test_mias_info_parser_never_crashes(text):
    table, rejected = parse_info(text)
    assert len(table) + len(rejected) <= text.count("mdb")


@FAST
@given(st.one_of(st.binary(max_size=300), st.integers(0, len(STREAM)).map(lambda n: STREAM[:n])))
def test_ljpeg_reader_only_raises_format_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("ljpeg") / "A_0001_1.LEFT_CC.LJPEG"
    path.write_bytes(data)
    try:
        parse_header(data, path)
        image = decode_ljpeg(path, 24, 16)
    except FormatError as err:
        assert str(path) in str(err)
        return
    assert image.shape == (24, 16)


@FAST
@given(st.binary(max_size=200))
def test_gzip_garbage_only_raises_format_error(tmp_path_factory, payload):
    path = tmp_path_factory.mktemp("gz") / "A_0001_1.LEFT_CC.LJPEG.gz"
    path.write_bytes(b"\x1f\x8b" + payload)
    with pytest.raises(FormatError):
        decode_ljpeg(path, 24, 16)


@FAST
@given(st.one_of(st.binary(max_size=300), st.binary(max_size=300).map(lambda b: b"P5\n1024 1024\n255\n" + b)))
def test_pgm_reader_only_raises_format_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("pgm") / "mdb001.pgm"
    path.write_bytes(data)
    with pytest.raises(FormatError):
        read_pgm(path)  # never a valid 1024x1024 image at this size


HEADER = "patient_id,breast_density,left or right breast,image view,abnormality id,abnormality type,mass shape,mass margins,assessment,pathology,subtlety,image file path,cropped image file path,ROI mask file path"
ROW = "P_00001,3,LEFT,CC,1,mass,OVAL,NA,4,BENIGN,4,Mass-Training_P_00001_LEFT_CC/1/2/000000.dcm,Mass-Training_P_00001_LEFT_CC_1/3/4/000000.dcm,Mass-Training_P_00001_LEFT_CC_1/3/4/000001.dcm"


@FAST
@given(
    st.lists(
        st.sampled_from(ROW.split(",") + ["", "NA", "..", "/abs", '"x\ny"', "BENIGN_WITHOUT_CALLBACK"]), min_size=0, max_size=16
    )
)
def test_cbis_rows_are_read_or_rejected(tmp_path_factory, fields):
    path = tmp_path_factory.mktemp("cbis") / "mass_case_description_train_set.csv"
    text = HEADER + "\n" + ROW + "\n" + ",".join(fields) + "\n"
    path.write_text(text)
    records = [r for r in csv.reader(io.StringIO(text)) if r][1:]  # blank lines are no records
    try:
        rois, rejected = read_case_descriptions([path])
    except FormatError:
        return
    assert len(rois) + len(rejected) == len(records)  # every data record is read or rejected
