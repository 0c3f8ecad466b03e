"""Write the demo collections exactly as the real downloads lay them out.

* DDSM normals: normals/normal_NN/caseNNNN/X-NNNN-1.ics + X_NNNN_1.<VIEW>.LJPEG
* DDSM abnormal cases: cancers/cancer_NN/caseNNNN/ etc., with an .OVERLAY per outlined view; every second case is a
  woman of the demo's CBIS-DDSM (her film copied into the LJPEG, her masks traced as outlines), as CBIS-DDSM films are
  DDSM films
* CBIS-DDSM: <Type>-<Division>_P_NNNNN_<SIDE>_<VIEW>/<uid>/<uid>/000000.dcm, ROI folders
  with crop and mask (in either order), and the four case description CSVs
* mini-MIAS: mdbNNN.pgm (P5, 1024x1024) and Info.txt
"""

from __future__ import annotations

import csv
import io
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from tqdm import tqdm

from mammo.demo import anatomy
from mammo.intensity import od_to_raw, od_to_uint16, to_uint8, uint16_to_od
from mammo.io.cbis import CSV_NAMES, is_mask, read_case_descriptions, resolve
from mammo.io.ddsm import view_file
from mammo.io.dicom import read_dicom, write_dicom
from mammo.io.ics import CaseHeader, ViewGeometry, format_ics
from mammo.io.listed import CBIS_PIXEL_MM
from mammo.io.ljpeg import encode_ljpeg
from mammo.io.mias import MIAS_SIZE, write_pgm
from mammo.io.overlay import Abnormality, Outline, chain_code, format_overlay
from mammo.io.own import OWN_CSV
from mammo.io.scan import write_png
from mammo.io.vindr import BREAST_CSV, FINDING_CSV
from mammo.tiles import mask_box

CBIS_SIZE = (5300, 3100)  # mean CBIS-DDSM scan, rows x columns
DDSM_SIZE = (6000, 3500)
MEAN_ROI = 450  # mean CBIS-DDSM ROI size in pixels at full scale
UID_ROOT = "1.3.6.1.4.1.9590.100.1.2."  # the prefix of CBIS-DDSM's UIDs

MASS_HEADER = [
    "patient_id",
    "breast_density",
    "left or right breast",
    "image view",
    "abnormality id",
    "abnormality type",
    "mass shape",
    "mass margins",
    "assessment",
    "pathology",
    "subtlety",
    "image file path",
    "cropped image file path",
    "ROI mask file path",
]
CALC_HEADER = [
    c.replace("breast_density", "breast density").replace("mass shape", "calc type").replace("mass margins", "calc distribution")
    for c in MASS_HEADER
]

# (digitizer string, family, site, bits, resolution) per DDSM case letter.
DIGITIZERS = {
    "A": [("DBA 21", "DBA", "MGH", 16, 42.0), ("HOWTEK 43.5", "HOWTEK", "MGH", 12, 43.5)],
    "B": [("LUMISYS LASER", "LUMISYS", "WFU", 12, 50.0)],
    "C": [("LUMISYS LASER", "LUMISYS", "WFU", 12, 50.0)],
    "D": [("HOWTEK 43.5", "HOWTEK", "ISMD", 12, 43.5)],
}
VIEWS = ("LEFT_CC", "LEFT_MLO", "RIGHT_CC", "RIGHT_MLO")


@dataclass(frozen=True)
class DemoSpec:
    seed: int = 7
    scale: float = 0.35
    cbis_train_patients: int = 16
    cbis_test_patients: int = 8
    ddsm_normal_cases: int = 56
    mias_images: int = 16
    vindr_studies: int = 10
    ddsm_abnormal_cases: int = 12
    own_patients: int = 12


# The values the generator takes (the command line refuses others): sizes up to the real collections' (scale 1), at
# most 999 of anything (files are numbered to three digits: mdb001), and one woman at least in the own-images CSV (the
# rows a user might get wrong are copies of its last rows)
SPEC_RANGES = {
    "seed": (0, 2**32 - 1),
    "scale": (0.01, 1.0),
    **dict.fromkeys(
        ("cbis_train_patients", "cbis_test_patients", "ddsm_normal_cases", "mias_images", "vindr_studies", "ddsm_abnormal_cases"),
        (0, 999),
    ),
    "own_patients": (1, 999),
}


def generate(
    cbis_root: str | Path,
    ddsm_root: str | Path,
    mias_root: str | Path,
    spec: DemoSpec,
    workers: int = 1,
    vindr_root: str | Path | None = None,
    own_root: str | Path | None = None,
) -> dict:
    """Write the collections (VinDr-Mammo where `vindr_root` is given); return counts per collection. Same spec ->
    same files, whatever `workers`."""
    counts = {
        "cbis_rois": write_cbis(Path(cbis_root), spec, workers),
        "ddsm_normal_scans": write_ddsm_normals(Path(ddsm_root), spec, workers),
        "ddsm_abnormal_rois": write_ddsm_abnormal(Path(ddsm_root), spec, workers, cbis_root=Path(cbis_root)),
        "mias_images": generate_mias(mias_root, spec),
    }
    if vindr_root is not None:
        counts["vindr_images"], counts["vindr_boxes"] = write_vindr(Path(vindr_root), spec)
    if own_root is not None:
        counts["own_rows"] = write_own(Path(own_root), spec)
    return counts


def _rng(seed: int, *keys) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(str(k).encode()) for k in keys)])


def _scaled_shape(base: tuple[int, int], scale: float, rng: np.random.Generator) -> tuple[int, int]:
    jitter = rng.uniform(0.9, 1.1)
    return int(base[0] * scale * jitter), int(base[1] * scale * jitter * rng.uniform(0.95, 1.05))


def _uid(rng: np.random.Generator) -> str:
    return UID_ROOT + "".join(str(d) for d in rng.integers(0, 10, 39)).lstrip("0")


# --------------------------------------------------------------------------- CBIS-DDSM
def write_cbis(root: Path, spec: DemoSpec, workers: int = 1) -> int:
    rng = _rng(spec.seed, "cbis")
    total = spec.cbis_train_patients + spec.cbis_test_patients
    patient_numbers = np.sort(rng.choice(np.arange(1, 2000), size=total, replace=False))
    divisions = ["train"] * spec.cbis_train_patients + ["test"] * spec.cbis_test_patients
    rng.shuffle(divisions)
    jobs = [(root, spec, int(number), division) for number, division in zip(patient_numbers, divisions)]
    rows: dict[tuple[str, str], list[list]] = {(t, d): [] for t in ("mass", "calc") for d in ("train", "test")}
    for key, patient_rows in _map(_write_cbis_patient, jobs, workers, "CBIS-DDSM patients"):
        rows[key] += patient_rows
    for (kind, division), kind_rows in rows.items():
        _write_cbis_csv(root / f"{kind}_case_description_{division}_set.csv", kind, division, kind_rows)
    return sum(len(r) for r in rows.values())


def _write_cbis_patient(job) -> tuple[tuple[str, str], list[list]]:
    root, spec, number, division = job
    rng = _rng(spec.seed, "cbis", number)
    patient = f"P_{number:05d}"
    kind = "mass" if rng.random() < 0.5 else "calc"
    sides = ["LEFT", "RIGHT"] if rng.random() < 0.2 else [rng.choice(["LEFT", "RIGHT"])]
    rows = []
    for side in sides:
        for view in ["CC", "MLO"] if rng.random() < 0.5 else [rng.choice(["CC", "MLO"])]:
            rows += _write_cbis_scan(root, spec, rng, patient, kind, division, side, view)
    return (kind, division), rows


def _map(function, jobs: list, workers: int, description: str) -> list:
    """Map over jobs in `workers` processes (in order), with a progress bar."""
    if workers <= 1:
        return [function(job) for job in tqdm(jobs, desc=description)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(tqdm(pool.map(function, jobs), total=len(jobs), desc=description))


def _write_cbis_scan(root, spec, rng, patient, kind, division, side, view) -> list[list]:
    prefix = f"{'Mass' if kind == 'mass' else 'Calc'}-{'Training' if division == 'train' else 'Test'}"
    scan_folder = f"{prefix}_{patient}_{side}_{view}"
    shape = _scaled_shape(CBIS_SIZE, spec.scale, rng)
    od, breast = anatomy.normal_breast(shape, rng, chest_wall_left=side == "LEFT")
    lesions = []
    for _ in range(1 if rng.random() < 0.8 else 2):
        malignant = bool(rng.random() < 0.5)
        size = spec.scale * MEAN_ROI * rng.uniform(0.6, 1.5)
        add = anatomy.add_mass if kind == "mass" else anatomy.add_calcifications
        lesions.append(add(od, breast, rng, malignant, size))
    image = od_to_uint16(od)
    image_path = f"{scan_folder}/{_uid(rng)}/{_uid(rng)}/000000.dcm"
    write_dicom(root / image_path, image, scan_folder, *image_path.split("/")[1:3], _uid(rng))
    density = int(rng.integers(1, 5))
    rows = []
    for abnormality_id, lesion in enumerate(lesions, start=1):
        roi_folder = f"{scan_folder}_{abnormality_id}/{_uid(rng)}/{_uid(rng)}"
        # Quirk: crop and mask share one folder and their file numbers do not say which is which.
        crop_name, mask_name = ("000000.dcm", "000001.dcm") if rng.random() < 0.5 else ("000001.dcm", "000000.dcm")
        ys, xs = np.nonzero(lesion.mask)
        crop = image[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        study_uid, series_uid = roi_folder.split("/")[1:3]
        write_dicom(root / roi_folder / crop_name, crop, f"{scan_folder}_{abnormality_id}", study_uid, series_uid, _uid(rng))
        mask = lesion.mask.astype(np.uint8) * 255
        write_dicom(root / roi_folder / mask_name, mask, f"{scan_folder}_{abnormality_id}", study_uid, series_uid, _uid(rng))
        pathology = "MALIGNANT" if lesion.malignant else ("BENIGN_WITHOUT_CALLBACK" if rng.random() < 0.2 else "BENIGN")
        if kind == "mass":
            shape_text = "IRREGULAR" if lesion.malignant else rng.choice(["OVAL", "ROUND"])
            detail = "SPICULATED" if lesion.malignant else rng.choice(["CIRCUMSCRIBED", "NA"])
        else:
            shape_text = "PLEOMORPHIC" if lesion.malignant else rng.choice(["PUNCTATE", "ROUND_AND_REGULAR"])
            detail = "CLUSTERED" if lesion.malignant else rng.choice(["CLUSTERED", "NA"])
        rows.append(
            [
                patient,
                density,
                side,
                view,
                abnormality_id,
                "mass" if kind == "mass" else "calcification",
                shape_text,
                detail,
                4 if lesion.malignant else 3,
                pathology,
                int(rng.integers(1, 6)),
                image_path,
                f"{roi_folder}/{crop_name}",
                f"{roi_folder}/{mask_name}",
            ]
        )
    return rows


def _write_cbis_csv(path: Path, kind: str, division: str, rows: list[list]) -> None:
    """Quirks of the originals: mass tables end lines with CRLF, a path column has a newline inside quotes."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n" if kind == "mass" else "\n")
    writer.writerow(MASS_HEADER if kind == "mass" else CALC_HEADER)
    newline_column = 13 if kind == "mass" else 12
    for row in rows:
        row = list(row)
        row[newline_column] = row[newline_column] + "\n"
        writer.writerow(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue().encode())


# --------------------------------------------------------------------------- DDSM normals
def ddsm_case(index: int) -> tuple[str, str]:
    """(case folder, case name) of the index-th demo normal case, e.g. (normals/normal_01/case0002, B-0002-1)."""
    letter, number = "ABCD"[index % 4], index + 1
    return f"normals/normal_{index // 8 + 1:02d}/case{number:04d}", f"{letter}-{number:04d}-1"


def ddsm_ics_paths(spec: DemoSpec) -> list[str]:
    """Relative paths of the demo's `.ics` files (known before they are written)."""
    return [f"{folder}/{name}.ics" for folder, name in map(ddsm_case, range(spec.ddsm_normal_cases))]


def write_ddsm_normals(root: Path, spec: DemoSpec, workers: int = 1) -> int:
    jobs = [(root, spec, index, False, None) for index in range(spec.ddsm_normal_cases)]
    return sum(_map(_write_ddsm_case, jobs, workers, "DDSM normal cases"))


DDSM_VOLUMES = ("cancer", "benign", "benign_without_callback")  # cases/<volume>s/<volume>_NN/caseNNNN/
DDSM_PATHOLOGY = {"cancer": "MALIGNANT", "benign": "BENIGN", "benign_without_callback": "BENIGN_WITHOUT_CALLBACK"}


def ddsm_abnormal_case(index: int) -> tuple[str, str]:
    """(case folder, case name) of the index-th demo abnormal case, e.g. (cancers/cancer_01/case1001, A-1001-1)."""
    volume, letter, number = DDSM_VOLUMES[index % 3], "ABCD"[index % 4], 1001 + index
    return f"{volume}s/{volume}_{index // 8 + 1:02d}/case{number:04d}", f"{letter}-{number:04d}-1"


def write_ddsm_abnormal(root: Path, spec: DemoSpec, workers: int = 1, cbis_root: Path | None = None) -> int:
    """Abnormal cases in DDSM's volumes: one breast's two views outlined in `.OVERLAY` files whose BOUNDARY chain
    codes trace the generated lesions; the first case's outline runs off the image's right edge and back (a quirk
    of real overlays). With `cbis_root` (written first), every second case is a CBIS-DDSM woman: the films of one of
    her breasts become its LJPEGs (through the digitizer's optical density) and her ROI masks its outlines, as
    CBIS-DDSM re-released DDSM films. Returns the abnormalities written."""
    breasts = _cbis_breasts(cbis_root) if cbis_root is not None else []
    jobs = []
    for index in range(spec.ddsm_abnormal_cases):
        breast = _fitting_breast(breasts, DDSM_PATHOLOGY[DDSM_VOLUMES[index % 3]]) if index % 2 else None
        jobs.append((root, spec, index, True, breast))
    return sum(_map(_write_ddsm_case, jobs, workers, "DDSM abnormal cases"))


def _fitting_breast(breasts: list[list[dict]], pathology: str) -> list[dict] | None:
    """Take the first of the CBIS-DDSM breasts left whose ROIs fit a volume (cancers: any malignant; the benign volumes:
    that pathology only), else the first left; None when none is left."""
    fits = [
        number
        for number, films in enumerate(breasts)
        if (pathologies := {roi["pathology_original"] for film in films for roi in film["rois"]})
        and ("MALIGNANT" in pathologies if pathology == "MALIGNANT" else pathologies == {pathology})
    ]
    return breasts.pop(fits[0] if fits else 0) if breasts else None


def _cbis_breasts(cbis_root: Path) -> list[list[dict]]:
    """The demo's CBIS-DDSM breasts (one woman's side), each a list of its films with their ROI rows, in a seeded
    order (not every second case the same kind of woman)."""
    rois, _ = read_case_descriptions([cbis_root / name for name in CSV_NAMES])  # read back as a user would
    breasts = []
    for _, breast in rois.groupby(["patient_id", "side"], sort=True):
        films = [{"root": cbis_root, "rois": film.to_dict("records")} for _, film in breast.groupby("view", sort=True)]
        breasts.append(films)
    order = np.random.default_rng(len(breasts)).permutation(len(breasts))
    return [breasts[i] for i in order]


def _write_ddsm_case(job) -> int:
    """A normal case (returns its views) or an abnormal one (returns its outlined abnormalities); an abnormal case
    given a CBIS-DDSM breast takes its films and masks for that side's views."""
    root, spec, index, abnormal, breast = job
    rng = _rng(spec.seed, "ddsm-abnormal" if abnormal else "ddsm", index)
    folder, name = (ddsm_abnormal_case if abnormal else ddsm_case)(index)
    letter = name[0]
    digitizer, family, site, bits, resolution = DIGITIZERS[letter][int(rng.integers(len(DIGITIZERS[letter])))]
    case_dir = root / folder
    case_dir.mkdir(parents=True, exist_ok=True)
    copied = {f"{film['rois'][0]['side']}_{film['rois'][0]['view']}": film for film in breast or []}
    outlined_side = next(iter(copied)).split("_")[0] if copied else (rng.choice(["LEFT", "RIGHT"]) if abnormal else None)
    geometry, outlines = {}, 0
    for view in VIEWS:
        ics, count = case_dir / f"{name}.ics", 0
        if view in copied:
            od, count = _copied_film(copied[view], view_file(ics, name, view, "OVERLAY"))
        else:
            shape = _scaled_shape(DDSM_SIZE, spec.scale, rng)
            od, breast_mask = anatomy.normal_breast(shape, rng, chest_wall_left=view.startswith("LEFT"))
            _add_film_artefacts(od, rng)
            if view.startswith(str(outlined_side)) and not copied:
                volume = folder.split("/")[1].rsplit("_", 1)[0]
                overlay = view_file(ics, name, view, "OVERLAY")
                _write_outlined_view(overlay, od, breast_mask, rng, spec, volume, index == 0 and outlines == 0)
                count = 1
        outlines += count
        raw = od_to_raw(od, family, site, bits)  # the digitizer's grey levels: low on black film
        view_file(ics, name, view, "LJPEG").write_bytes(encode_ljpeg(raw, bits))
        geometry[view] = ViewGeometry(od.shape[0], od.shape[1], bits, resolution, overlay=count > 0)
    header = CaseHeader(
        name=name,
        digitizer=digitizer,
        density=int(rng.integers(1, 5)),
        patient_age=int(rng.integers(40, 80)) if rng.random() < 0.9 else None,
        views=geometry,
    )
    dates = f"{rng.integers(1, 29)} {rng.integers(1, 13)} 199{rng.integers(0, 8)}", "6 4 1999"
    (case_dir / f"{name}.ics").write_text(format_ics(header, *dates))
    return outlines if abnormal else len(VIEWS)


def _copied_film(film: dict, overlay_path: Path) -> tuple[np.ndarray, int]:
    """A CBIS-DDSM film as optical density, and its ROI masks written as the view's `.OVERLAY` (one abnormality
    each, with its CBIS-DDSM pathology, assessment, subtlety and descriptors); returns (od, abnormalities)."""
    first = film["rois"][0]
    image = read_dicom(resolve(film["root"], first["image_file_path"]))
    abnormalities = []
    for number, roi in enumerate(film["rois"], start=1):
        files = (read_dicom(resolve(film["root"], roi[column])) for column in ("roi_mask_file_path", "cropped_image_file_path"))
        mask = next(pixels for pixels in files if is_mask(pixels, image.shape)) > 0  # the mask told by content
        if roi["abnormality_type"] == "mass":
            lesion_type = {"type": "MASS", "SHAPE": roi["shape_or_type"], "MARGINS": roi["margins_or_distribution"]}
        else:
            lesion_type = {"type": "CALCIFICATION", "TYPE": roi["shape_or_type"], "DISTRIBUTION": roi["margins_or_distribution"]}
        abnormalities.append(
            Abnormality(
                number,
                [lesion_type],
                int(roi["assessment"]),
                int(roi["subtlety"]),
                roi["pathology_original"],
                1,
                [chain_code(mask)],
            )
        )
    overlay_path.write_text(format_overlay(abnormalities))
    return uint16_to_od(image), len(abnormalities)


def _write_outlined_view(path: Path, od, breast, rng, spec: DemoSpec, volume: str, off_the_edge: bool) -> None:
    """Draw a lesion into the view and write its `.OVERLAY`: the BOUNDARY chain code traces its outline."""
    kind = "mass" if rng.random() < 0.5 else "calcification"
    malignant = volume == "cancer"
    add = anatomy.add_mass if kind == "mass" else anatomy.add_calcifications
    lesion = add(od, breast, rng, malignant, spec.scale * MEAN_ROI * rng.uniform(0.6, 1.5))
    boundary = chain_code(lesion.mask)
    if off_the_edge:  # east past the right edge, then back to the start: the outline's area is unchanged
        steps = od.shape[1] - boundary.start_col + 5
        directions = np.concatenate([[2] * steps, [6] * steps, boundary.directions])
        boundary = Outline("BOUNDARY", boundary.start_col, boundary.start_row, directions)
    if kind == "mass":
        lesion_type = {
            "type": "MASS",
            "SHAPE": "IRREGULAR" if malignant else "OVAL",
            "MARGINS": "SPICULATED" if malignant else "CIRCUMSCRIBED",
        }
    else:
        lesion_type = {"type": "CALCIFICATION", "TYPE": "PLEOMORPHIC" if malignant else "PUNCTATE", "DISTRIBUTION": "CLUSTERED"}
    assessment = int(rng.integers(4, 6)) if malignant else int(rng.integers(2, 4))
    abnormality = Abnormality(1, [lesion_type], assessment, int(rng.integers(1, 6)), DDSM_PATHOLOGY[volume], 1, [boundary])
    path.write_text(format_overlay([abnormality]))


def _add_film_artefacts(od: np.ndarray, rng: np.random.Generator) -> None:
    """Unprocessed film scans: a clear (bright) unexposed border and a white patch over the identifying label."""
    height, width = od.shape
    border = max(3, int(0.01 * width))
    od[:border, :] = od[-border:, :] = 0.15
    row, col = int(rng.uniform(0.02, 0.04) * height), int(rng.uniform(0.6, 0.8) * width)
    od[row : row + height // 20, col : col + width // 6] = 0.10


# --------------------------------------------------------------------------- mini-MIAS
MIAS_MASS_CLASSES = {True: ["SPIC", "MISC"], False: ["CIRC", "MISC"]}


def generate_mias(root: str | Path, spec: DemoSpec) -> int:
    """Only the mini-MIAS films of the demo (`spec.mias_images`, seeded by `spec.seed`), as `generate` writes them."""
    return write_mias(Path(root), spec, _rng(spec.seed, "mias"))


def write_mias(root: Path, spec: DemoSpec, rng: np.random.Generator) -> int:
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for number in tqdm(range(1, spec.mias_images + 1), desc="mini-MIAS images"):
        refnum = f"mdb{number:03d}"
        # Info.txt: even numbers are left breasts, odd numbers right.
        shape = (int(MIAS_SIZE * rng.uniform(0.85, 0.95)), int(MIAS_SIZE * rng.uniform(0.55, 0.7)))
        od, breast = anatomy.normal_breast(shape, rng, chest_wall_left=number % 2 == 0)
        background = "FGD"[int(rng.integers(3))]
        kind = rng.choice(["NORM", "NORM", "CALC", "MASS"])
        canvas = np.full((MIAS_SIZE, MIAS_SIZE), anatomy.BACKGROUND_OD)
        top = (MIAS_SIZE - shape[0]) // 2
        left = 0 if number % 2 == 0 else MIAS_SIZE - shape[1]
        if kind == "NORM":
            lines.append(f"{refnum} {background} NORM ")
        else:
            malignant = bool(rng.random() < 0.5)
            size = rng.uniform(60, 140) if kind == "MASS" else rng.uniform(30, 70)  # real films: radius about 48 and 25
            add = anatomy.add_calcifications if kind == "CALC" else anatomy.add_mass
            lesion = add(od, breast, rng, malignant, size)
            ys, xs = np.nonzero(lesion.mask)
            x = int(round(xs.mean())) + left
            y = MIAS_SIZE - 1 - (int(round(ys.mean())) + top)  # Info.txt: origin bottom-left
            radius = int(round(max(np.ptp(ys), np.ptp(xs)) / 2)) + 1
            abnormality = "CALC" if kind == "CALC" else rng.choice(MIAS_MASS_CLASSES[malignant])
            if kind == "CALC" and number % 7 == 0:
                # Quirk: widely distributed calcifications have no coordinates.
                lines.append(f"{refnum} {background} CALC {'M' if malignant else 'B'} *NOTE 3*")
            else:
                lines.append(f"{refnum} {background} {abnormality} {'M' if malignant else 'B'} {x} {y} {radius}")
        canvas[top : top + shape[0], left : left + shape[1]] = od
        write_pgm(root / f"{refnum}.pgm", to_uint8(od_to_uint16(canvas)))
    (root / "Info.txt").write_text(_MIAS_PREAMBLE + "\n".join(lines) + "\n\n" + "=" * 65 + "\n")
    return spec.mias_images


_MIAS_PREAMBLE = """              MAMMOGRAPHIC IMAGE ANALYSIS SOCIETY
                  MiniMammographic Database

Synthetic demo images written in the layout of the mini-MIAS distribution.

=================================================================

INFORMATION:

1st column: MIAS database reference number.
2nd column: Character of background tissue: F, G, D
3rd column: Class of abnormality present: CALC CIRC SPIC MISC ARCH ASYM NORM
4th column: Severity of abnormality; B - Benign, M - Malignant
5th,6th columns: x,y image-coordinates of centre of abnormality.
7th column: Approximate radius (in pixels) of a circle enclosing
\t    the abnormality.

NOTES
=====
3) Coordinate system origin is the bottom-left corner.

=================================================================

"""


# --------------------------------------------------------------------------- VinDr-Mammo
VINDR_SIZE = (3500, 2800)  # rows x columns, of the order of VinDr-Mammo's full-field digital images
VINDR_PIXEL_MM = 0.085  # about VinDr-Mammo's detector pixels: coarser than the CBIS-DDSM scale (CBIS_PIXEL_MM)
# IHE Mammography's PatientOrientation per laterality and view: the chest wall at the left edge for a left breast
VINDR_ORIENTATION = {("L", "CC"): ["A", "R"], ("L", "MLO"): ["A", "FR"], ("R", "CC"): ["P", "L"], ("R", "MLO"): ["P", "FL"]}
_MIRRORED = {"A": "P", "P": "A"}
VINDR_BREAST_HEADER = [
    "study_id",
    "series_id",
    "image_id",
    "laterality",
    "view_position",
    "height",
    "width",
    "breast_birads",
    "breast_density",
    "split",
]
VINDR_FINDING_HEADER = VINDR_BREAST_HEADER[:-1] + [
    "finding_categories",
    "finding_birads",
    "xmin",
    "ymin",
    "xmax",
    "ymax",
    "split",
]


def write_vindr(root: Path, spec: DemoSpec) -> tuple[int, int]:
    """A VinDr-Mammo-style collection: studies of four views as 12-bit FOR PRESENTATION DICOMs (a window, a window
    on MONOCHROME1 pixels, or a VOI LUT table: the variants of the real vendors) with their pixel spacing (coarser
    than the CBIS-DDSM scale by CBIS_PIXEL_MM / VINDR_PIXEL_MM: the images are drawn that much smaller, so that read
    at the CBIS-DDSM scale they match the demo's other collections) and PatientOrientation (the second study's
    right CC stored mirrored, as its orientation says), breast-level and finding CSVs with boxes around the
    generated lesions in stored pixels, one box drawn past the image's edge. Returns (images, boxes)."""
    rng = _rng(spec.seed, "vindr")
    breasts, findings = [], []
    for number in range(spec.vindr_studies):
        study, series = _hex_id(rng), _hex_id(rng)
        split = "test" if number % 5 == 4 else "training"  # the official split is by study, about 4:1
        density = f"DENSITY {rng.choice(list('ABCD'))}"
        for side in ("L", "R"):
            kind = rng.choice(["normal", "normal", "mass", "calcification"])
            if split == "test":  # a finding on the left, none on the right: both classes in validation and test
                kind = ("mass", "calcification")[number // 5 % 2] if side == "L" else "normal"
            malignant = bool(rng.random() < 0.5)
            for view in ("CC", "MLO"):
                image_id = _hex_id(rng)
                shrink = CBIS_PIXEL_MM / VINDR_PIXEL_MM
                shape = _scaled_shape(VINDR_SIZE, spec.scale * shrink, rng)
                od, breast = anatomy.normal_breast(shape, rng, chest_wall_left=side == "L")
                orientation = list(VINDR_ORIENTATION[side, view])
                if number == 1 and (side, view) == ("R", "CC"):  # stored mirrored: its orientation says so
                    od, breast = od[:, ::-1].copy(), breast[:, ::-1].copy()
                    orientation[0] = _MIRRORED[orientation[0]]
                boxes = []
                if kind != "normal":
                    add = anatomy.add_mass if kind == "mass" else anatomy.add_calcifications
                    size = spec.scale * shrink * MEAN_ROI * rng.uniform(0.6, 1.5)
                    boxes.append(_corner_box(add(od, breast, rng, malignant, size).mask))
                birads = 1 if kind == "normal" else (5 if malignant else 3)
                pixels, header = _presented_ffdm(od, breast, ("window", "monochrome1", "voi_lut")[number % 3])
                header.update(
                    ImageLaterality=side,
                    ViewPosition=view,
                    PresentationIntentType="FOR PRESENTATION",
                    PixelSpacing=[VINDR_PIXEL_MM, VINDR_PIXEL_MM],
                    PatientOrientation=orientation,
                )
                write_dicom(root / "images" / study / f"{image_id}.dicom", pixels, study, _uid(rng), _uid(rng), _uid(rng), header)
                image = [study, series, image_id, side, view, shape[0], shape[1], f"BI-RADS {birads}", density]
                breasts.append(image + [split])
                category = {"mass": "['Mass']", "calcification": "['Suspicious Calcification']"}.get(kind, "['No Finding']")
                for box in boxes or [["", "", "", ""]]:
                    findings.append(image + [category, f"BI-RADS {birads}" if boxes else "", *box, split])
    boxed = [row for row in findings if row[-2] != ""]
    if boxed:  # Quirk of real annotations: a box drawn past the image's right edge (the reader rejects it)
        boxed[-1][-3] = boxed[-1][6] + 40
    _write_csv(root / BREAST_CSV, VINDR_BREAST_HEADER, breasts)
    _write_csv(root / FINDING_CSV, VINDR_FINDING_HEADER, findings)
    return len(breasts), len(boxed)


def _presented_ffdm(od: np.ndarray, breast: np.ndarray, variant: str) -> tuple[np.ndarray, dict]:
    """12-bit detector values (bright = dense) and the header that presents them: a window over the breast's
    range; the same window on inverted (MONOCHROME1) values; or a VOI LUT table doing what the window does."""
    values = (od_to_uint16(od) >> 4).astype(np.uint16)
    low, high = float(np.percentile(values[breast], 1)), float(values[breast].max())
    header = {"BitsStored": 12, "HighBit": 11}
    if variant == "monochrome1":
        values = 4095 - values
        low, high = 4095 - high, 4095 - low
        header["PhotometricInterpretation"] = "MONOCHROME1"
    if variant == "voi_lut":
        table = np.round(np.clip((np.arange(4096) - low) / (high - low), 0, 1) * 4095).astype(np.uint16)
        lut = pydicom.Dataset()
        lut.LUTDescriptor = [4096, 0, 12]
        lut.LUTData = table.astype("<u2").tobytes()
        header["VOILUTSequence"] = pydicom.Sequence([lut])
    else:
        header.update(WindowCenter=round((low + high) / 2, 1), WindowWidth=round(high - low, 1))
    return values, header


def _corner_box(mask: np.ndarray) -> list[int]:
    """A lesion's box as annotation CSVs write it: xmin, ymin, xmax, ymax (the maxima exclusive)."""
    top, left, bottom, right = mask_box(mask)
    return [left, top, right, bottom]


def _hex_id(rng: np.random.Generator) -> str:
    """A 32-hex-digit id, as VinDr-Mammo's study and image ids."""
    return "".join("0123456789abcdef"[d] for d in rng.integers(0, 16, 32))


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(buffer.getvalue())


# --------------------------------------------------------------------------- your own images
OWN_PIXEL_MM = 0.056  # the demo's own images: a little coarser than the CBIS-DDSM scale (read 1.24x larger)
OWN_HEADER = ["patient", "image", "laterality", "view", "label", "lesion_type"]
OWN_HEADER += ["xmin", "ymin", "xmax", "ymax", "x", "y", "radius", "mask", "pixel_mm", "split"]


def write_own(root: Path, spec: DemoSpec) -> int:
    """A user's own images as README's "Your own images" describes them: women with a CC view of each breast, one
    breast abnormal for two women in three; 16-bit and 8-bit PNGs with a pixel_mm column and DICOMs with their
    PixelSpacing; each lesion given as a box, a centre and radius, or a mask file, in turn; no official split. Two
    rows a user might get wrong are kept (the reader rejects them): a lesion without its type, an image not there.
    Returns the CSV's rows."""
    rng = _rng(spec.seed, "own")
    shrink = CBIS_PIXEL_MM / OWN_PIXEL_MM
    rows = []
    for number in range(spec.own_patients):
        patient = f"woman{number + 1:02d}"
        abnormal_side = ("L", "R", None)[number % 3]
        for side in ("L", "R"):
            shape = _scaled_shape(CBIS_SIZE, spec.scale * shrink, rng)
            od, breast = anatomy.normal_breast(shape, rng, chest_wall_left=side == "L")
            kind = ("mass", "calcification")[number % 2] if side == abnormal_side else None
            malignant = bool(rng.random() < 0.5)
            lesion = None
            if kind:
                add = anatomy.add_mass if kind == "mass" else anatomy.add_calcifications
                lesion = add(od, breast, rng, malignant, spec.scale * shrink * MEAN_ROI * rng.uniform(0.6, 1.5))
            image16 = od_to_uint16(od)
            form = ("png16", "png8", "dicom")[(2 * number + (side == "R")) % 3]
            name = f"images/{patient}_{side}CC." + ("dcm" if form == "dicom" else "png")
            if form == "dicom":
                header = {"PixelSpacing": [OWN_PIXEL_MM, OWN_PIXEL_MM], "ImageLaterality": side}
                write_dicom(root / name, image16, patient, _uid(rng), _uid(rng), _uid(rng), header)
            else:
                (root / "images").mkdir(parents=True, exist_ok=True)
                write_png(root / name, image16 if form == "png16" else to_uint8(image16))
            row = [patient, name, side, "CC", "normal", *[""] * 9, "" if form == "dicom" else OWN_PIXEL_MM, ""]
            if lesion is not None:
                row[4], row[5] = ("malignant" if malignant else "benign"), kind
                ys, xs = np.nonzero(lesion.mask)
                if (number // 3) % 3 == 1:  # a centre and radius
                    row[10:13] = [int(xs.mean()), int(ys.mean()), int(max(np.ptp(xs), np.ptp(ys)) / 2) + 1]
                elif (number // 3) % 3 == 2:  # a mask file beside the image
                    row[13] = f"images/{patient}_{side}CC_mask.png"
                    write_png(root / row[13], lesion.mask.astype(np.uint8) * 255)
                else:  # a box
                    row[6:10] = _corner_box(lesion.mask)
            rows.append(row)
    broken = list(rows[-1])
    rows.append([*broken[:1], "images/not_scanned.png", *broken[2:]])  # an image not there
    unlabelled = next(row for row in rows if row[4] != "normal")
    rows.append([*unlabelled[:5], "", *unlabelled[6:]])  # a second lesion row of that image, without its type
    _write_csv(root / OWN_CSV, OWN_HEADER, rows)
    return len(rows)
