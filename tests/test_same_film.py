"""The same film in two collections (mammo.same_film): found by content, never confused with another woman's film,
pinned to real films."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mammo.intensity import od_to_raw, raw_to_uint16, uint16_to_od
from mammo.io.dicom import read_dicom
from mammo.io.mias import read_mias_scan, unpack_archive
from mammo.same_film import FINGERPRINT_COLUMNS, SAME_FILM_CORRELATION, fingerprint_row, match_films

REAL_CBIS_FILM = Path("data") / "cbis-ddsm-real" / "Mass-Test_P_00173_LEFT_CC"


def _table(scans: dict[str, np.ndarray], source: str, view: str = "LEFT_MLO") -> pd.DataFrame:
    return pd.DataFrame(
        [
            fingerprint_row(
                scan, {"source": source, "patient_id": f"{source}:{name}", "scan_id": name, "view": view}, f"{name}.dcm"
            )
            for name, scan in scans.items()
        ],
        columns=FINGERPRINT_COLUMNS,
    )


@pytest.fixture(scope="module")
def real_mias(shared, tmp_path_factory) -> dict[str, np.ndarray]:
    """The real mini-MIAS films in the shared 16-bit space, by reference number."""
    archive = shared / "data" / "mias-real" / "all-mias-dev.tar.gz"
    if not archive.exists():
        pytest.skip(f"{archive} not available")
    info = unpack_archive(archive, tmp_path_factory.mktemp("mias-real"))
    return {path.stem: read_mias_scan(path) for path in sorted(info.parent.glob("*.pgm"))}


def test_different_real_films_are_never_one_film(real_mias):
    """216 real films of 108 women, every pair of one side (mini-MIAS: even numbers are left breasts): each film is
    paired with itself only, and the closest pair of different films stays clear of the threshold."""
    for side in (0, 1):
        table = _table({name: scan for name, scan in real_mias.items() if int(name[3:]) % 2 == side}, "mias")
        pairs, closest = match_films(table, table)
        assert len(pairs) == len(table) and (pairs["scan_id"] == pairs["other_scan_id"]).all()
        print(f"side {side}: closest pair of different films {closest}")
        assert closest is not None and closest < SAME_FILM_CORRELATION - 0.03, (side, closest)


def test_a_real_film_is_found_again_through_a_digitizer_and_bent_grey_levels(real_mias):
    """Each real film, passed through a DDSM digitizer's optical density and 12-bit grey levels (as a CBIS-DDSM film
    is its DDSM LJPEG), or with its grey levels bent (gamma 1.15) and noise added, is paired with itself only."""
    names = sorted(real_mias)[:40]
    films = {name: real_mias[name] for name in names}
    through_ddsm = {
        n: raw_to_uint16(od_to_raw(uint16_to_od(s), "HOWTEK", "ISMD", 12), "HOWTEK", "ISMD") for n, s in films.items()
    }
    rng = np.random.default_rng(0)
    bent = {
        n: np.clip(65535 * (s / 65535.0) ** 1.15 + rng.normal(0, 1000, s.shape), 0, 65535).astype(np.uint16)
        for n, s in films.items()
    }
    for copies in (through_ddsm, bent):
        pairs = match_films(_table(films, "cbis-ddsm"), _table(copies, "ddsm"))[0]
        assert len(pairs) == len(names) and (pairs["scan_id"] == pairs["other_scan_id"]).all()


def test_the_real_cbis_film_matches_its_ddsm_ljpeg_only(shared):
    """The real CBIS-DDSM film against its DDSM form (optical density -> a LUMISYS digitizer's 12 bits -> back),
    against itself flipped (the other breast's side is another film) and against another view's label."""
    path = next((shared / REAL_CBIS_FILM).rglob("*.dcm"), None)
    if path is None:
        pytest.skip(f"{REAL_CBIS_FILM} not available")
    film = read_dicom(path)[::4, ::4]  # a quarter of each side: the copy is 64x64 either way
    ddsm = raw_to_uint16(od_to_raw(uint16_to_od(film), "LUMISYS", "WFU", 12), "LUMISYS", "WFU")
    cbis = _table({"P_00173_LEFT_CC": film}, "cbis-ddsm", "LEFT_CC")
    pairs = match_films(cbis, _table({"A-1001-1.LEFT_CC": ddsm, "flipped": film[:, ::-1].copy()}, "ddsm", "LEFT_CC"))[0]
    assert pairs[["scan_id", "other_scan_id"]].values.tolist() == [["P_00173_LEFT_CC", "A-1001-1.LEFT_CC"]]
    assert pairs["correlation"].iloc[0] > 0.999
    assert match_films(cbis, _table({"x": ddsm}, "ddsm", "LEFT_MLO"))[0].empty  # another view is never compared


def test_an_aspect_ratio_apart_is_never_one_film():
    rng = np.random.default_rng(1)
    scan = (rng.random((400, 240)) * 65535).astype(np.uint16)
    assert len(match_films(_table({"a": scan}, "cbis-ddsm"), _table({"b": scan}, "ddsm"))[0]) == 1
    assert match_films(_table({"a": scan}, "cbis-ddsm"), _table({"b": scan[:, :225]}, "ddsm"))[0].empty
    assert match_films(_table({}, "cbis-ddsm"), _table({"b": scan}, "ddsm"))[0].empty
