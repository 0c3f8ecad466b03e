"""Whether a region finds a lesion: the centre criterion (the region's centre within 10 mm of the lesion), which
does not loosen as windows grow, and the box criterion beside it."""

import numpy as np
import pandas as pd
import pytest

from mammo.scan_eval import LESION_MARGIN_MM, circle_mask, lesions_centred, lesions_hit, margin_pixels, scan_metrics


def test_margin_is_ten_millimetres_in_each_collection_pixels():
    assert LESION_MARGIN_MM == 10
    assert margin_pixels("mias", 5.16) == pytest.approx(50)  # 200 micron film pixels, whatever the window scale
    assert margin_pixels("cbis-ddsm", 1.0) == pytest.approx(10 / 0.045)
    assert margin_pixels("vindr", 0.085 / 0.045) == pytest.approx(10 / 0.085)  # scale from the DICOM's spacing


def test_centre_criterion_does_not_grow_with_the_window():
    lesion = {"mass": circle_mask((2000, 2000), 1000, 1000, 20)}
    # a window whose box overlaps the lesion at its corner, but whose centre lies 200 pixels away
    wide = (1010, 1010, 1410, 1410)
    assert lesions_hit(wide, lesion) == ["mass"]
    assert lesions_centred(wide, lesion, margin=50) == []
    # centred 60 pixels from the lesion's centre: 40 from its edge, inside the 50-pixel margin
    near = (1060 - 100, 1000 - 100, 1060 + 100, 1000 + 100)
    assert lesions_centred(near, lesion, margin=50) == ["mass"]
    assert lesions_centred(near, lesion, margin=39) == []


def test_centre_criterion_near_the_scan_edge_and_with_several_lesions():
    shape = (300, 300)
    lesions = {"a": circle_mask(shape, 5, 5, 3), "b": circle_mask(shape, 250, 250, 10)}
    assert lesions_centred((0, 0, 20, 20), lesions, margin=12) == ["a"]
    assert lesions_centred((200, 200, 300, 300), lesions, margin=5) == ["b"]
    assert lesions_centred((100, 100, 140, 140), lesions, margin=30) == []


def test_scan_metrics_report_both_criteria():
    scans = pd.DataFrame(
        {
            "scan_id": ["a", "b", "c"],
            "label_normal": [1, 1, 0],
            "max_score": [0.9, 0.8, 0.3],
            "windows_scored": 4,
            "lesions": ["a1", "b1", ""],
        }
    )
    regions = pd.DataFrame(
        {
            "scan_id": ["a", "b", "c", "a"],
            "rank": [1, 1, 1, 2],
            "score": [0.9, 0.8, 0.3, 0.2],
            "lesions_hit": ["a1", "b1", "", "a1"],
            "lesions_centred": ["a1", "", "", ""],  # b's top box only touches its lesion
        }
    )
    result, curve = scan_metrics(scans, regions, 0.5)
    localisation = result["localisation"]
    assert localisation["criterion"] == "the region's centre within 10 mm of the lesion"
    assert localisation["top_region_on_lesion"] == 0.5
    assert localisation["box_criterion"]["top_region_on_lesion"] == 1.0
    assert localisation["sensitivity_at_fp_per_scan"]["1"] == 0.5
    assert localisation["box_criterion"]["sensitivity_at_fp_per_scan"]["1"] == 1.0
    assert np.isclose(curve["sensitivity"].max(), 0.5)  # the FROC curve written is the centre criterion's
