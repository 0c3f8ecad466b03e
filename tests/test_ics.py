"""DDSM case headers (.ics): the real D-4606-1.ics, variants, round trip and errors."""

from __future__ import annotations

import pytest

from mammo.io import FormatError
from mammo.io.ics import CaseHeader, ViewGeometry, format_ics, parse_ics, read_ics

REAL_GEOMETRY = {
    "LEFT_CC": (6841, 3901),
    "LEFT_MLO": (6316, 3586),
    "RIGHT_CC": (6241, 3736),
    "RIGHT_MLO": (6331, 3796),
}

# The real header's text (as in ../shared/data/ddsm/D-4606-1.ics), so variants run without ../shared.
REAL_TEXT = """
ics_version 1.0
filename D-4606-1
DATE_OF_STUDY 16 11 1993
PATIENT_AGE 52
FILM
FILM_TYPE REGULAR
DENSITY 2
DATE_DIGITIZED 6 4 1999
DIGITIZER HOWTEK 43.5
SEQUENCE
LEFT_CC LINES 6841 PIXELS_PER_LINE 3901 BITS_PER_PIXEL 12 RESOLUTION 43.5 NON_OVERLAY
LEFT_MLO LINES 6316 PIXELS_PER_LINE 3586 BITS_PER_PIXEL 12 RESOLUTION 43.5 NON_OVERLAY
RIGHT_CC LINES 6241 PIXELS_PER_LINE 3736 BITS_PER_PIXEL 12 RESOLUTION 43.5 NON_OVERLAY
RIGHT_MLO LINES 6331 PIXELS_PER_LINE 3796 BITS_PER_PIXEL 12 RESOLUTION 43.5 NON_OVERLAY
"""


def _check_real_header(header: CaseHeader) -> None:
    assert header.name == "D-4606-1"
    assert header.digitizer == "HOWTEK 43.5"
    assert header.digitizer_family == "HOWTEK"
    assert header.case_letter == "D"
    assert header.site == "ISMD"
    assert header.patient_id == "D-4606"
    assert header.density == 2
    assert header.patient_age == 52
    assert list(header.views) == ["LEFT_CC", "LEFT_MLO", "RIGHT_CC", "RIGHT_MLO"]
    for view, (lines, pixels) in REAL_GEOMETRY.items():
        geometry = header.views[view]
        assert (geometry.lines, geometry.pixels_per_line) == (lines, pixels)
        assert geometry.bits_per_pixel == 12
        assert isinstance(geometry.resolution, float) and geometry.resolution == 43.5
        assert geometry.overlay is False


def test_real_ics_file(shared):
    path = shared / "data" / "ddsm" / "D-4606-1.ics"
    text = path.read_text()
    assert text.startswith("\n"), "the real header starts with a blank line"
    _check_real_header(read_ics(path))


def test_real_ics_text_copy_matches_the_file(shared):
    path = shared / "data" / "ddsm" / "D-4606-1.ics"
    assert parse_ics(path.read_text()) == parse_ics(REAL_TEXT)


def test_real_text_without_shared():
    _check_real_header(parse_ics(REAL_TEXT))


def test_crlf_and_tabs_are_tolerated():
    text = REAL_TEXT.replace("\n", "\r\n").replace("LEFT_CC LINES", "LEFT_CC\tLINES")
    _check_real_header(parse_ics(text))


def test_selected_instead_of_sequence():
    header = parse_ics(REAL_TEXT.replace("SEQUENCE", "SELECTED"))
    _check_real_header(header)


def test_lumisys_laser_digitizer():
    text = (
        REAL_TEXT.replace("filename D-4606-1", "filename B-3024-1")
        .replace("DIGITIZER HOWTEK 43.5", "DIGITIZER LUMISYS LASER")
        .replace("RESOLUTION 43.5", "RESOLUTION 50")
    )
    header = parse_ics(text)
    assert header.digitizer == "LUMISYS LASER"
    assert header.digitizer_family == "LUMISYS"
    assert header.site == "WFU"
    assert header.patient_id == "B-3024"
    assert all(g.resolution == 50.0 and isinstance(g.resolution, float) for g in header.views.values())


@pytest.mark.parametrize("digitizer, family", [("DBA 21", "DBA"), ("howtek 43.5", "HOWTEK"), ("HOWTEK", "HOWTEK")])
def test_other_digitizer_spellings(digitizer, family):
    text = REAL_TEXT.replace("filename D-4606-1", "filename A-0002-1").replace("HOWTEK 43.5", digitizer, 1)
    header = parse_ics(text)
    assert header.digitizer_family == family
    assert header.site == "MGH"


def test_missing_patient_age():
    header = parse_ics(REAL_TEXT.replace("PATIENT_AGE 52\n", ""))
    assert header.patient_age is None
    assert header.density == 2
    assert len(header.views) == 4


def test_overlay_view():
    text = REAL_TEXT.replace(
        "RIGHT_MLO LINES 6331 PIXELS_PER_LINE 3796 BITS_PER_PIXEL 12 RESOLUTION 43.5 NON_OVERLAY",
        "RIGHT_MLO LINES 6331 PIXELS_PER_LINE 3796 BITS_PER_PIXEL 12 RESOLUTION 43.5 OVERLAY",
    )
    header = parse_ics(text)
    assert header.views["RIGHT_MLO"].overlay is True
    assert [header.views[v].overlay for v in ("LEFT_CC", "LEFT_MLO", "RIGHT_CC")] == [False] * 3


def test_fewer_views():
    lines = [line for line in REAL_TEXT.splitlines() if not line.startswith("RIGHT")]
    header = parse_ics("\n".join(lines))
    assert list(header.views) == ["LEFT_CC", "LEFT_MLO"]


def _header(**changes) -> CaseHeader:
    fields = dict(
        name="C-0123-1",
        digitizer="LUMISYS LASER",
        density=3,
        patient_age=61,
        views={
            "LEFT_CC": ViewGeometry(4696, 3024, 12, 50.0, False),
            "LEFT_MLO": ViewGeometry(4681, 3001, 12, 50.0, True),
            "RIGHT_CC": ViewGeometry(4601, 3017, 12, 50.0, False),
            "RIGHT_MLO": ViewGeometry(4677, 2991, 12, 50.0, False),
        },
    )
    fields.update(changes)
    return CaseHeader(**fields)


@pytest.mark.parametrize(
    "header",
    [
        _header(),
        _header(patient_age=None),
        _header(name="A-1000-1", digitizer="DBA 21", views={"LEFT_CC": ViewGeometry(5000, 3000, 16, 42.0, False)}),
        _header(
            name="D-4606-1",
            digitizer="HOWTEK 43.5",
            views={v: ViewGeometry(l, p, 12, 43.5, False) for v, (l, p) in REAL_GEOMETRY.items()},
        ),
    ],
)
def test_format_parse_round_trip(header):
    text = format_ics(header, "16 11 1993", "6 4 1999")
    assert text.startswith("\n"), "written like the real files: leading blank line"
    assert f"filename {header.name}\n" in text
    assert "SEQUENCE\n" in text
    assert parse_ics(text) == header


def test_format_ics_matches_the_real_file(shared):
    path = shared / "data" / "ddsm" / "D-4606-1.ics"
    header = read_ics(path)
    assert format_ics(header, "16 11 1993", "6 4 1999") == path.read_text()


# ----------------------------------------------------------------------------- errors
ERROR_CASES = {
    "no filename": REAL_TEXT.replace("filename D-4606-1\n", ""),
    "unknown digitizer": REAL_TEXT.replace("DIGITIZER HOWTEK 43.5", "DIGITIZER NIKON 35"),
    "no digitizer": REAL_TEXT.replace("DIGITIZER HOWTEK 43.5\n", ""),
    "no view lines": "\n".join(line for line in REAL_TEXT.splitlines() if "LINES" not in line),
    "unknown case letter": REAL_TEXT.replace("filename D-4606-1", "filename E-4606-1"),
    "empty file": "",
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_raise_format_error_naming_the_path(case, tmp_path):
    path = tmp_path / "cases" / "X-0001-1.ics"
    path.parent.mkdir()
    path.write_text(ERROR_CASES[case])
    with pytest.raises(FormatError) as info:
        read_ics(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)
    assert isinstance(info.value, ValueError)  # FormatError is a ValueError


def test_error_messages_say_what_is_wrong():
    with pytest.raises(FormatError, match="filename"):
        parse_ics(ERROR_CASES["no filename"], "a.ics")
    with pytest.raises(FormatError, match="NIKON"):
        parse_ics(ERROR_CASES["unknown digitizer"], "a.ics")
    with pytest.raises(FormatError, match="view"):
        parse_ics(ERROR_CASES["no view lines"], "a.ics")
    with pytest.raises(FormatError, match="a.ics"):
        parse_ics(ERROR_CASES["unknown case letter"], "a.ics")
