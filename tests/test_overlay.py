"""DDSM .OVERLAY: fields, several abnormalities, two LESION_TYPE lines, BOUNDARY and CORE chain codes."""

from __future__ import annotations

from pathlib import Path

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


# ----------------------------------------------------------------------------- DDSM abnormal cases (the real layout)
def _square(column: int, row: int, side: int) -> str:
    """A BOUNDARY chain code tracing a square clockwise from its top-left corner."""
    return f"{column} {row} " + " ".join(["2"] * side + ["4"] * side + ["6"] * side + ["0"] * side) + " #"


def _abnormality(number: int, lesion: str, boundary: str, pathology: str = "MALIGNANT", core: str | None = None) -> str:
    outlines = f"BOUNDARY\n{boundary}\n" + (f"\tCORE\n\t{core}\n" if core else "")
    return (
        f"ABNORMALITY {number}\nLESION_TYPE {lesion}\nASSESSMENT 4\nSUBTLETY 3\nPATHOLOGY {pathology}\n"
        f"TOTAL_OUTLINES {1 + bool(core)}\n{outlines}"
    )


@pytest.fixture
def ddsm_cases(tmp_path):
    """cases/cancers/cancer_01/case0001 (two views outlined, one overlay missing) and cases/normals/normal_01/case3001."""
    import numpy as np

    from mammo.io.ics import CaseHeader, ViewGeometry, format_ics
    from mammo.io.ljpeg import encode_ljpeg

    def case(folder, name, outlined):
        folder.mkdir(parents=True)
        views = {}
        for view in ("LEFT_CC", "LEFT_MLO", "RIGHT_CC", "RIGHT_MLO"):
            (folder / f"{name.replace('-', '_')}.{view}.LJPEG").write_bytes(encode_ljpeg(np.full((60, 40), 900, np.uint16), 12))
            views[view] = ViewGeometry(60, 40, 12, 43.5, overlay=view in outlined)
        header = CaseHeader(name=name, digitizer="HOWTEK 43.5", density=2, patient_age=55, views=views)
        (folder / f"{name}.ics").write_text(format_ics(header, "1 1 1995", "6 4 1999"))

    root = tmp_path / "cases"
    cancer = root / "cancers/cancer_01/case0001"
    case(cancer, "A-0001-1", {"LEFT_CC", "LEFT_MLO", "RIGHT_CC"})
    (cancer / "A_0001_1.LEFT_CC.OVERLAY").write_text(
        "TOTAL_ABNORMALITIES 5\n"
        + _abnormality(1, "MASS SHAPE ROUND MARGINS SPICULATED", _square(5, 5, 10), core=_square(8, 8, 3))
        + _abnormality(
            2, "CALCIFICATION TYPE PLEOMORPHIC DISTRIBUTION CLUSTERED", _square(35, 50, 8), "BENIGN"
        )  # partly off the right edge
        + _abnormality(3, "MASS SHAPE OVAL MARGINS CIRCUMSCRIBED", _square(35, 30, 20))  # mostly off the right edge
        + _abnormality(4, "OTHER", _square(1, 1, 4))
        + _abnormality(5, "MASS SHAPE ROUND MARGINS OBSCURED", _square(20, 20, 5), "UNPROVEN")
    )
    (cancer / "A_0001_1.LEFT_MLO.OVERLAY").write_text("TOTAL_ABNORMALITIES 1\nABNORMALITY 1\nBOUNDARY\n1 1 2\n")  # not ended
    (cancer / "A_0001_1.RIGHT_ML.OVERLAY").write_text("TOTAL_ABNORMALITIES 0\n")  # a view name the .ics does not have
    case(root / "normals/normal_01/case3001", "A-3001-1", set())
    return root


def test_abnormal_cases_index_every_outline_or_its_reason(ddsm_cases):
    from mammo.io.ddsm import find_abnormal_rois

    rois, rejected = find_abnormal_rois(ddsm_cases)
    assert list(rois["roi_id"]) == ["A-0001-1.LEFT_CC.1", "A-0001-1.LEFT_CC.2"]
    mass, calcification = rois.iloc[0], rois.iloc[1]
    assert (mass["abnormality_type"], mass["pathology"], mass["cores"], mass["volume"]) == ("mass", "MALIGNANT", 1, "cancer_01")
    assert mass["lesion_type"] == "SHAPE ROUND MARGINS SPICULATED" and mass["patient_id"] == "A-0001"
    assert calcification["abnormality_type"] == "calcification" and 0 < calcification["outside_share"] < 0.5  # clipped
    reasons = dict(zip(rejected["item"], rejected["reason"]))
    assert "of its BOUNDARY lies outside the 60x40 image" in reasons["A-0001-1.LEFT_CC.3"]
    assert "lesion type OTHER is neither MASS nor CALCIFICATION" in reasons["A-0001-1.LEFT_CC.4"]
    assert "pathology UNPROVEN is not a label to learn" in reasons["A-0001-1.LEFT_CC.5"]
    assert (mass["class_code"], calcification["class_code"]) == (4, 1)  # malignant mass, benign calcification
    assert "not ended" in reasons["A-0001-1.LEFT_MLO"]
    assert "its .OVERLAY is not found" in reasons["A-0001-1.RIGHT_CC"]
    assert "does not list as OVERLAY (a mismatched view name?)" in reasons["A_0001_1.RIGHT_ML.OVERLAY"]


def test_an_abnormalitys_core_is_its_own_mask(ddsm_cases):
    """CORE outlines are kept apart from the BOUNDARY: outline_mask draws either, filled and clipped."""
    from mammo.io.ddsm import find_abnormal_rois, outline_mask

    rois, _ = find_abnormal_rois(ddsm_cases)
    mass = rois.iloc[0]
    boundary, core = outline_mask(mass, (60, 40)), outline_mask(mass, (60, 40), kind="CORE")
    assert mass["cores"] == 1 and 0 < core.sum() < boundary.sum() and not (core & ~boundary).any()
    assert not outline_mask(rois.iloc[1], (60, 40), kind="CORE").any()  # no CORE outline: an empty mask


def test_normal_index_rejects_the_views_of_an_abnormal_case(ddsm_cases):
    """A root holding cases/ with cancers/ beside normals/: the cancer case's views are not normal tissue."""
    from mammo.io.ddsm import find_normal_scans

    scans, rejected = find_normal_scans(ddsm_cases)
    assert sorted(scans["case"].unique()) == ["A-3001-1"] and len(scans) == 4
    assert len(rejected) == 4 and rejected["reason"].str.contains("an abnormal case").all()


def test_mammo_check_counts_outlined_abnormalities(ddsm_cases):
    import json
    import subprocess
    import sys
    from pathlib import Path

    mammo = Path(sys.executable).with_name("mammo")
    result = subprocess.run([mammo, "check", "--ddsm", str(ddsm_cases), "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["ddsm"]["scans"] == 4 and len(report["ddsm"]["rejected"]) == 4  # the normal case; the cancer's views
    abnormal = report["ddsm-abnormal"]
    assert (abnormal["rows"], abnormal["patients"], abnormal["scans"]) == (8, 1, 1) and len(abnormal["rejected"]) == 6
    assert abnormal["missing_files"] == [str(ddsm_cases / "cancers/cancer_01/case0001/A_0001_1.RIGHT_CC.OVERLAY")]


def test_chain_code_traces_a_mask_and_round_trips_through_the_file_format():
    import numpy as np

    from mammo.io.overlay import Abnormality, chain_code, format_overlay

    mask = np.zeros((50, 40), bool)
    mask[10:30, 5:25] = mask[15:20, 25:32] = True
    outline = chain_code(mask)
    assert np.array_equal(outline.mask(mask.shape), mask)
    written = format_overlay([Abnormality(1, [{"type": "MASS", "SHAPE": "ROUND"}], 4, 3, "MALIGNANT", 1, [outline])])
    (read,) = parse_overlay(written)
    assert np.array_equal(read.boundary.directions, outline.directions) and read.lesion_types == [
        {"type": "MASS", "SHAPE": "ROUND"}
    ]
    assert (read.assessment, read.subtlety, read.pathology) == (4, 3, "MALIGNANT")


def test_the_demos_abnormal_cases_outline_their_lesions(demo_root, demo_counts):
    """Every outlined view of the demo's DDSM volumes indexed (two generated cases with an outline per view; cases 1
    and 3 copy a CBIS-DDSM breast: an outline per ROI); the outlines lie on bright (dense) tissue of their scans; the
    first case's outline runs off the right edge and is clipped, not rejected."""
    import numpy as np

    from mammo.io.ddsm import find_abnormal_rois, outline_mask, read_ddsm_scan
    from mammo.io.ics import read_ics

    rois, rejected = find_abnormal_rois(demo_root / "ddsm")
    assert len(rois) == demo_counts["ddsm_abnormal_rois"] == 7 and rejected.empty
    assert set(rois["volume"].str.rsplit("_", n=1).str[0]) == {"cancer", "benign", "benign_without_callback"}
    generated = rois[rois["case"].isin(["A-1001-1", "C-1003-1"])]
    assert len(generated) == 4 and set(generated.loc[generated["volume"].str.startswith("cancer"), "pathology"]) == {"MALIGNANT"}
    for _, roi in rois.iterrows():
        scan = read_ddsm_scan(roi)  # an ROI row carries its view's geometry and digitizer
        inside = outline_mask(roi, scan.shape)
        assert (inside == read_overlay(roi["overlay_path"])[0].boundary.mask(scan.shape)).all()
        assert scan[inside].mean() > np.median(scan), roi["roi_id"]
    first = rois[rois["case"] == "A-1001-1"].iloc[0]
    polygon = read_overlay(first["overlay_path"])[0].boundary.polygon()
    assert polygon[:, 1].max() >= read_ics(next(Path(first["path"]).parent.glob("*.ics"))).views[first["view"]].pixels_per_line
    assert first["outside_share"] < 0.05


def test_the_abnormal_index_accounts_for_every_outlined_view_and_stray_overlay(ddsm_cases, tmp_path):
    import json

    from mammo.stages.sources import index_ddsm_abnormal

    outputs = [str(tmp_path / name) for name in ("rois.tsv", "rejected.tsv", "summary.json")]
    index_ddsm_abnormal(str(ddsm_cases), *outputs)
    summary = json.loads(Path(outputs[2]).read_text())
    # LEFT_CC read (2 indexed, 3 rejected one by one), LEFT_MLO and RIGHT_CC rejected whole, one stray overlay
    assert (summary["inputs"], summary["accepted"], summary["rejected"]) == (4, 1, 3)
    assert summary["abnormalities"] == 2 and summary["abnormalities_rejected"] == 3
