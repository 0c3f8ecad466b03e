"""DDSM .OVERLAY: fields, several abnormalities, two LESION_TYPE lines, BOUNDARY and CORE chain codes."""

from __future__ import annotations

import pytest

from mammo.io import FormatError
from mammo.io.overlay import parse_overlay, read_overlay

TWO_ABNORMALITIES = """TOTAL_ABNORMALITIES 2
ABNORMALITY 1
LESION_TYPE MASS SHAPE ROUND MARGINS ILL_DEFINED
LESION_TYPE CALCIFICATION TYPE PLEOMORPHIC DISTRIBUTION CLUSTERED
ASSESSMENT 4
SUBTLETY 3
PATHOLOGY MALIGNANT
TOTAL_OUTLINES 2
BOUNDARY
10 20 2 2 2 2 4 4 4
4 6 6 6 6 0 0 0 0 #
\tCORE
\t12 22 2 4 6 0 #
ABNORMALITY 2
LESION_TYPE CALCIFICATION TYPE PUNCTATE DISTRIBUTION CLUSTERED
ASSESSMENT 2
SUBTLETY 5
PATHOLOGY UNPROVEN
TOTAL_OUTLINES 1
BOUNDARY
0 0 3 3 3 #
"""


def test_fields_lesion_types_and_outlines():
    first, second = parse_overlay(TWO_ABNORMALITIES)
    assert first.number == 1 and second.number == 2
    assert first.lesion_types == [
        {"type": "MASS", "SHAPE": "ROUND", "MARGINS": "ILL_DEFINED"},
        {"type": "CALCIFICATION", "TYPE": "PLEOMORPHIC", "DISTRIBUTION": "CLUSTERED"},
    ]
    assert (first.assessment, first.subtlety, first.pathology) == (4, 3, "MALIGNANT")
    assert second.pathology == "UNPROVEN"
    assert [o.kind for o in first.outlines] == ["BOUNDARY", "CORE"]
    assert first.boundary.start_col == 10 and first.boundary.start_row == 20
    assert len(first.boundary.directions) == 16  # the chain code spans two lines


def test_chain_code_polygon_and_filled_mask():
    boundary = parse_overlay(TWO_ABNORMALITIES)[0].boundary
    polygon = boundary.polygon()
    assert tuple(polygon[0]) == (20, 10) and tuple(polygon[4]) == (20, 14)  # four steps east
    assert tuple(polygon[-1]) == (20, 10)  # closed square of side 4
    mask = boundary.mask((40, 40))
    assert mask.sum() == 25 and mask[20:25, 10:15].all()


def test_outline_leaving_the_image_is_clipped():
    text = "TOTAL_ABNORMALITIES 1\nABNORMALITY 1\nTOTAL_OUTLINES 1\nBOUNDARY\n8 8 2 2 2 2 4 4 4 4 6 6 6 6 0 0 0 0 #\n"
    mask = parse_overlay(text)[0].boundary.mask((10, 10))
    assert mask.shape == (10, 10)
    assert mask[8:, 8:].all() and mask.sum() == 4


@pytest.mark.parametrize(
    "text, message",
    [
        ("TOTAL_ABNORMALITIES 2\nABNORMALITY 1\n", "TOTAL_ABNORMALITIES 2"),
        ("TOTAL_ABNORMALITIES 1\nABNORMALITY 1\nTOTAL_OUTLINES 2\nBOUNDARY\n1 1 2 #\n", "TOTAL_OUTLINES 2"),
        ("TOTAL_ABNORMALITIES 1\nABNORMALITY 1\nBOUNDARY\n1 1 2 2\n", "not ended"),
        ("TOTAL_ABNORMALITIES 1\nABNORMALITY 1\nBOUNDARY\n1 1 2 9 #\n", "above 7"),
        ("TOTAL_ABNORMALITIES 1\nASSESSMENT 3\n", "before any ABNORMALITY"),
        ("TOTAL_ABNORMALITIES x\n", "integer"),
    ],
)
def test_bad_overlays_raise_naming_the_file(tmp_path, text, message):
    path = tmp_path / "A_1234_1.LEFT_CC.OVERLAY"
    path.write_text(text)
    with pytest.raises(FormatError, match=message) as info:
        read_overlay(path)
    assert str(path) in str(info.value)
