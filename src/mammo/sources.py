"""The collections the pipeline reads, one entry each: what the job graph, whole-scan analysis and the command line
ask of a collection (its chunk key, the files a job reads, its scale, its scan files), answered in one place. Each
collection's reader and its quirks live in mammo.io.<collection>.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from itertools import zip_longest
from pathlib import Path

import pandas as pd
import pydicom

from mammo.io.cbis import resolve
from mammo.io.dicom import dicom_geometry
from mammo.io.ics import VIEWS
from mammo.io.listed import CBIS_PIXEL_MM
from mammo.io.mias import MIAS_SCALE, mias_side, mias_woman
from mammo.io.own import read_own
from mammo.io.scan import has_dicom_preamble
from mammo.io.vindr import VINDR_CSVS, read_vindr
from mammo.tiles import NATIVE_TILE, TILE_SIZE


def windowing_scale(tile_scale: float) -> float:
    """`Windowing.scale` (CBIS-scale pixels per scan pixel) of a scan whose tiles are cut at 299 after upscaling it by
    `tile_scale` (mini-MIAS: 2.58, model scale): such a tile stands for a 598 window at the CBIS-DDSM scale."""
    return tile_scale * NATIVE_TILE / TILE_SIZE


DDSM_SUFFIXES = (".ljpeg", ".ljpeg.gz", ".ljpeg.1")


@dataclass(frozen=True)
class Source:
    name: str  # the `source` value of tile and target tables
    index: str  # its index under results/sources/<index>/, and the kind of its chunk jobs
    chunk_key: str | None  # index column whose value picks a scan's chunk; None: one job reads the collection
    file_columns: tuple[str, ...]  # index columns naming the files a job reads (relative to the root for CBIS-DDSM)
    window_scale: float  # Windowing.scale of its scans: CBIS-DDSM pixels per scan pixel (1: the DDSM collections)
    suffixes: tuple[str, ...]  # its scan files, by the end of their names (lower case)
    under_root: bool = False  # paths in the index are relative to the collection's root (mammo.io.cbis.resolve)

    def files(self, rows: pd.DataFrame, root: str | Path = "") -> list[Path]:
        """The image files that these index rows name."""
        paths = {path for column in self.file_columns for path in rows[column]}
        return sorted({resolve(root, path) if self.under_root else Path(path) for path in paths})


SOURCES = {
    # CBIS-DDSM's CSVs name files relative to the download, sometimes under a CBIS-DDSM/ folder of it
    "cbis": Source(
        "cbis-ddsm",
        "cbis",
        "scan_id",
        ("image_file_path", "cropped_image_file_path", "roi_mask_file_path"),
        1.0,
        (".dcm",),
        under_root=True,
    ),
    "ddsm": Source("ddsm", "ddsm", "case", ("path",), 1.0, DDSM_SUFFIXES),
    # DDSM's abnormal cases: a view's LJPEG and the .OVERLAY that outlines its abnormalities
    "ddsm_abnormal": Source("ddsm", "ddsm_abnormal", "case", ("path", "overlay_path"), 1.0, DDSM_SUFFIXES),
    # VinDr-Mammo: a study is the patient; each image's scale comes from its pixel spacing (read_vindr_scan)
    "vindr": Source("vindr", "vindr", "patient_id", ("path",), 1.0, (".dicom",)),
    # a user's own images (mammo.io.own): DICOM or PNG, listed in one CSV
    "own": Source("own", "own", "patient_id", ("path",), 1.0, ()),
    # mini-MIAS films are 200 microns a pixel: tiles are cut at 299 after upscaling them 2.58x to the CBIS-DDSM scale
    "mias": Source("mias", "mias", None, ("path",), windowing_scale(MIAS_SCALE), (".pgm",)),
}


@dataclass(frozen=True)
class Listed:
    """A collection listed in tables of images and findings (mammo.io.listed): how its download is indexed."""

    read: Callable[[str | Path], tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]]  # root -> images, findings, rejected
    files: Callable[[str | Path], list[str]]  # root -> the files its index reads (the index rule's inputs)


# Adding a listed collection: its reader module, an entry here and in SOURCES, its data.<name> root in the schema.
LISTED = {
    "vindr": Listed(read_vindr, lambda root: [f"{root}/{name}" for name in VINDR_CSVS]),
    "own": Listed(read_own, lambda csv: [str(csv)]),  # data.own names the CSV itself
}

# whole-scan targets mix the collections: chunked by scan, each row naming its file
TARGETS = Source("targets", "targets", "scan_id", ("path",), 1.0, ())


def window_scale_of(path: str | Path) -> float:
    """Windowing.scale for a scan file of any collection: by its name (mini-MIAS PGM), by its pixel spacing for a
    DICOM that states one (full-field digital: spacing / CBIS_PIXEL_MM; CBIS-DDSM's films state none), else 1."""
    name = str(path).lower()
    if _is_dicom(Path(path)):
        spacing, _ = dicom_geometry(path)
        if spacing is not None:
            return spacing / CBIS_PIXEL_MM
    return next((source.window_scale for source in SOURCES.values() if name.endswith(source.suffixes)), 1.0)


# Quirk: every CBIS-DDSM film is called 000000.dcm; its PatientID names the breast and view (Mass-Test_P_00173_LEFT_CC),
# and that of its ROI crops and masks adds the abnormality's number (Mass-Test_P_00173_LEFT_CC_1)
_CBIS_PATIENT_ID = re.compile(r"^(?:Mass|Calc)-(?:Training|Test)_(P_\d+_(?:LEFT|RIGHT)_(?:CC|MLO))(_\d+)?$")
SCAN_SUFFIXES = tuple(sorted({suffix for source in SOURCES.values() for suffix in source.suffixes} | {".png"}))


def scan_identity(path: str | Path) -> str:
    """The name of a scan's whole-scan outputs: <patient>_<side>_<view> for CBIS-DDSM (from the DICOM's PatientID)
    and DDSM (A_0002_1.LEFT_CC.LJPEG -> A_0002_1_LEFT_CC), the file name without its format suffixes otherwise."""
    name = Path(path).name.removesuffix(".gz")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    if name.lower().endswith(".dcm"):
        found = _CBIS_PATIENT_ID.match(_patient_id(path))
        return found.group(1) + (found.group(2) or "") if found else stem
    case, _, view = stem.rpartition(".")
    return f"{case}_{view}" if case and view in VIEWS else stem


# What `mammo scan` writes for a scan (mammo.stages.scans.analyse_scans): never a scan, though an overlay is a PNG
SCAN_OUTPUT_SUFFIXES = (".heatmap.npy", ".overlay.png", ".regions.json")
# and for a woman whose films it paired: her exam record and the picture of her breasts side by side
EXAM_OUTPUT_SUFFIXES = (".exam.json", ".exam.png")


@dataclass(frozen=True)
class Breast:
    """Whose breast a film shows, and how it was taken."""

    woman: str
    side: str  # "R" or "L"
    view: str  # "CC", "MLO", ...; "" where the film does not say


# mini-MIAS: films mdb(2k-1) (right) and mdb(2k) (left) are one woman's MLO views
_MIAS_FILM = re.compile(r"^(mdb\d{3})\.pgm$", re.IGNORECASE)
# a scan identity <patient>_<side>_<view>: CBIS-DDSM (from its PatientID), DDSM (from its file name), files named so
_BREAST_IDENTITY = re.compile(r"^(.+)_(LEFT|RIGHT)_(CC|MLO)$")
VIEW_ORDER = ("CC", "MLO")  # the rows of a woman's exam picture; other views after them, a film of no view last


def film_breast(path: str | Path) -> Breast | None:
    """The woman, side and view of a film, where its file tells them: a mini-MIAS film by its number, a scan whose
    identity is <patient>_<side>_<view> (CBIS-DDSM, DDSM), a DICOM by its PatientID and ImageLaterality (else
    Laterality), with ViewPosition where it has one; None otherwise (a PNG, a DICOM without patient or side)."""
    name = Path(path).name
    if found := _MIAS_FILM.match(name):
        refnum = found.group(1).lower()
        return Breast(mias_woman(refnum), mias_side(refnum)[0], "MLO")
    if found := _BREAST_IDENTITY.match(scan_identity(path)):
        return Breast(found.group(1), found.group(2)[0], found.group(3))
    header = _dicom_header(path) if _is_dicom(Path(path)) else None
    if header is None:
        return None
    woman = str(header.get("PatientID", "")).strip()
    side = str(header.get("ImageLaterality", "") or header.get("Laterality", "")).strip().upper()
    view = str(header.get("ViewPosition", "")).strip().upper()
    return Breast(woman, side, view) if woman and side in ("R", "L") else None


def hanging(paths: list[str]) -> tuple[dict[str, list[tuple[str, str | None, str | None]]], list[str]]:
    """The films by woman (film_breast), as radiologists hang them: per woman, rows of (view, right film, left film)
    in VIEW_ORDER, None where that breast's film of the view is missing (two films of one breast and view: a row
    each, in the order given); and the films whose woman or side their file does not tell, in the order given."""
    women: dict[str, dict[str, dict[str, list[str]]]] = {}
    unknown = []
    for path in paths:
        breast = film_breast(path)
        if breast is None:
            unknown.append(path)
            continue
        sides = women.setdefault(breast.woman, {}).setdefault(breast.view, {"R": [], "L": []})
        sides[breast.side].append(path)

    def view_rank(view: str) -> tuple[int, str]:
        return (VIEW_ORDER.index(view) if view in VIEW_ORDER else len(VIEW_ORDER) + (view == ""), view)

    rows = {
        woman: [
            (view, *pair) for view in sorted(views, key=view_rank) for pair in zip_longest(views[view]["R"], views[view]["L"])
        ]
        for woman, views in sorted(women.items())
    }
    return rows, unknown


def partners(paths: list[str]) -> dict[str, str | None]:
    """Each film's partner: the film of the same woman's other breast in the same view (hanging's pairs); None where
    there is none or its file tells no woman and side."""
    rows, alone = hanging(paths)
    found: dict[str, str | None] = dict.fromkeys(alone)
    for pairs in rows.values():
        for _, right, left in pairs:
            found.update({path: partner for path, partner in ((right, left), (left, right)) if path})
    return found


def exam_name(woman: str) -> str:
    """The name of a woman's exam outputs: her id with every character but letters, digits, '-', '_' and '.' made
    '_', and a leading '.' too (a PatientID is free text: it must neither hide the file nor leave the folder)."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", woman)
    return "_" + name[1:] if name.startswith(".") else name


def scan_files(folder: str | Path) -> list[Path]:
    """Every scan file under a folder, sorted: files named as the collections' scans and PNGs, and DICOMs by their
    preamble whatever their name (PACS exports call them IM0001). Not scans: what `mammo scan` writes, and links to
    files outside the folder (skipped with a warning: a folder scan reads that folder only); a file linked twice is
    one scan. CBIS-DDSM's ROI crops and masks lie beside its films and are not scans; it ships a breast's film once
    per abnormality type (under Mass- and Calc-): that film is scanned once."""
    root = Path(folder).resolve()
    films, seen_files, seen_breasts = [], set(), set()
    for path in sorted(Path(folder).rglob("*")):
        name = path.name.lower()
        if not path.is_file() or name.endswith(SCAN_OUTPUT_SUFFIXES + EXAM_OUTPUT_SUFFIXES):
            continue
        target = path.resolve()
        if not target.is_relative_to(root):
            warnings.warn(f"{path}: a link to {target}, outside the folder scanned: skipped", stacklevel=2)
            continue
        dicom = _is_dicom(path)
        if target in seen_files or not (dicom or name.endswith(SCAN_SUFFIXES)):
            continue
        seen_files.add(target)
        cbis = _CBIS_PATIENT_ID.match(_patient_id(path)) if dicom else None
        if cbis and (cbis.group(2) or cbis.group(1) in seen_breasts):
            continue
        seen_breasts.add(cbis.group(1) if cbis else None)
        films.append(path)
    return films


def _is_dicom(path: Path) -> bool:
    """A DICOM by its name (.dcm, .dicom) or, named as no scan format is, by its preamble (PACS exports: IM0001)."""
    name = path.name.lower()
    if name.endswith((".dcm", ".dicom")):
        return True
    try:
        return not name.endswith(SCAN_SUFFIXES) and has_dicom_preamble(path)
    except OSError:
        return False  # unreadable: not taken for a scan


def _patient_id(path: str | Path) -> str:
    """A DICOM's PatientID; empty where the header cannot be read (reading the scan itself names the problem)."""
    header = _dicom_header(path)
    return str(header.get("PatientID", "")) if header is not None else ""


def _dicom_header(path: str | Path) -> pydicom.Dataset | None:
    """A DICOM's header without its pixels; None where it cannot be read (reading the scan itself names the problem)."""
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception:  # pydicom's parse errors of a damaged header: struct.error, BytesLengthException, ...
        return None
