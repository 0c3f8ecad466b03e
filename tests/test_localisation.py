"""Whether a region finds a lesion: the centre criterion (the region's centre within 10 mm of the lesion), which
does not loosen as windows grow, and the box criterion beside it."""

import numpy as np
import pandas as pd
import pytest

from mammo.scan_eval import (
    LESION_MARGIN_MM,
    circle_mask,
    lesion_window_ranks,
    lesions_centred,
    lesions_hit,
    margin_pixels,
    scan_metrics,
)


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
    assert localisation["lesion_window_rank"] is None  # scans scored before the ranks were recorded
    assert localisation["criterion"] == "the region's centre within 10 mm of the lesion"
    assert localisation["top_region_on_lesion"] == 0.5
    assert localisation["box_criterion"]["top_region_on_lesion"] == 1.0
    assert localisation["sensitivity_at_fp_per_scan"]["1"] == 0.5
    assert localisation["box_criterion"]["sensitivity_at_fp_per_scan"]["1"] == 1.0
    assert np.isclose(curve["sensitivity"].max(), 0.5)  # the FROC curve written is the centre criterion's


def test_each_lesion_is_ranked_among_its_films_windows():
    """The rank of a lesion's strongest centred window among all the film's windows: 1 where it is the strongest; a
    lesion seen (its window above most) but outranked by windows elsewhere ranks below; one without a centred window
    has no rank. The metrics read the ranks of the located lesions."""
    shape = (400, 400)
    lesions = {"mias:mdb001:1": circle_mask(shape, 100, 100, 10), "mias:mdb001:2": circle_mask(shape, 300, 300, 10)}
    windows = np.array([(50, 50, 150, 150), (0, 200, 100, 300), (250, 250, 350, 350), (60, 60, 160, 160), (200, 0, 300, 100)])
    scores = np.array([0.7, 0.9, 0.95, 0.4, 0.6])
    assert lesion_window_ranks(windows, scores, lesions, margin=20) == "mias:mdb001:1:3;mias:mdb001:2:1"
    assert lesion_window_ranks(windows[[1, 4]], scores[[1, 4]], lesions, margin=20) == "mias:mdb001:1:;mias:mdb001:2:"
    scans = pd.DataFrame(
        {
            "scan_id": ["a", "b", "c"],
            "label_normal": [1, 1, 0],
            "max_score": [0.95, 0.8, 0.3],
            "windows_scored": [5, 10, 4],
            "lesions": ["mias:mdb001:1;mias:mdb001:2", "mias:mdb003:1", ""],
            "lesion_ranks": ["mias:mdb001:1:3;mias:mdb001:2:1", "mias:mdb003:1:", ""],
        }
    )
    regions = pd.DataFrame({"scan_id": ["a"], "rank": [1], "score": [0.95], "lesions_hit": [""], "lesions_centred": [""]})
    ranked = scan_metrics(scans, regions, 0.5)[0]["localisation"]["lesion_window_rank"]
    assert ranked == {
        "lesions": 2,
        "without_a_window": 1,
        "median_rank": 2.0,
        "median_share_of_windows_above": 0.2,  # 2 of 5 windows above the first lesion, none above the second
        "within_1": 0.5,
        "within_3": 1.0,
        "within_10": 1.0,
    }


def test_regions_ranked_above_their_films_median_find_a_faint_lesion_before_dense_tissue():
    from mammo.scan_eval import froc_above_film

    scans = pd.DataFrame(
        {
            "scan_id": ["fatty", "dense"],
            "label_normal": [1, 0],
            "max_score": [0.5, 0.8],
            "windows_scored": 4,
            "lesions": ["fatty1", ""],
        }
    )
    # a faint lesion on a fatty film, and three regions of dense tissue on a normal film scoring higher
    regions = pd.DataFrame(
        {
            "scan_id": ["fatty", "dense", "dense", "dense"],
            "rank": [1, 1, 2, 3],
            "score": [0.5, 0.8, 0.79, 0.78],
            "lesions_hit": ["fatty1", "", "", ""],
            "lesions_centred": ["fatty1", "", "", ""],
        }
    )
    window_scores = {"fatty": np.array([0.05, 0.05, 0.05, 0.5]), "dense": np.array([0.7, 0.7, 0.79, 0.8])}
    raw = scan_metrics(scans, regions, 0.5)[0]["localisation"]["sensitivity_at_fp_per_scan"]
    relative = froc_above_film(regions, scans, window_scores)["sensitivity_at_fp_per_scan"]
    assert raw == {"1": 0.0, "2": 1.0, "4": 1.0}  # by raw scores 1.5 false positives a film come before the lesion
    assert relative == {"1": 1.0, "2": 1.0, "4": 1.0}
