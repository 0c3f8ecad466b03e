"""mini-MIAS: `Info.txt` annotations and `mdbNNN.pgm` scans."""

from __future__ import annotations

import re
import shutil
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from mammo.intensity import uint8_to_uint16
from mammo.io import FormatError, check_declared_size
from mammo.labels import class_code
from mammo.tables import REJECTED_COLUMNS, account

MIAS_SIZE = 1024
# film pixels -> model pixels, half the CBIS-DDSM scale (half the mean CBIS height 5295, over 1024): a 299 tile of
# the upscaled film stands for a 598 window of a CBIS-DDSM scan, as in dataset 9
MIAS_SCALE = 2.58
# mini-MIAS films were reduced to a 200 micron pixel edge (its Info.txt, line 8)
MIAS_PIXEL_MM = 0.2
INFO_COLUMNS = ["refnum", "background", "abnormality_class", "severity", "x", "y", "radius"]
_REFNUM = re.compile(r"^mdb[0-9]{3}$", re.IGNORECASE)
BACKGROUNDS = ("F", "G", "D")
ABNORMALITY_CLASSES = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")
SEVERITIES = ("B", "M")


def parse_info(text: str, path: str | Path = "Info.txt") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse Info.txt into (rows, rejected): every line that looks like a row (_row_lines) is in one of them.

    Quirks: prose header and footer; irregular spaces; several rows per image;
    some abnormal rows have no coordinates (widely distributed calcifications,
    kept with missing x/y/radius); `*NOTE 3*` markers stand in for coordinates.
    A repeated row is rejected as a duplicate: it would make one lesion two ROIs.
    """
    rows, rejected, first_lines = [], [], {}
    for number, line in _row_lines(text):
        fields = line.split()
        problem = _codes_problem(fields)
        if problem is None:
            severity = fields[3] if fields[2] != "NORM" else None
            location = fields[4 if severity else 3 :]
            problem = _location_problem(location)
        if problem is None:
            key = (fields[0].lower(), *fields[1:])
            problem = f"duplicate of line {first_lines[key]}" if key in first_lines else None
            first_lines.setdefault(key, number)
        if problem:
            rejected.append({"file": str(path), "row": number, "reason": f"{problem}: {line!r}"})
            continue
        x, y, radius = (int(f) for f in location) if location and not location[0].startswith("*") else (None, None, None)
        rows.append(
            {
                "refnum": fields[0].lower(),  # a harmless encoding: MDB013 is mdb013
                "background": fields[1],
                "abnormality_class": fields[2],
                "severity": severity,
                "x": x,
                "y": y,
                "radius": radius,
                "row": number,
            }
        )
    classes = {}
    for row in rows:
        classes.setdefault(row["refnum"], set()).add(row["abnormality_class"] == "NORM")
    contradicted = {refnum for refnum, normal in classes.items() if normal == {True, False}}
    for row in [row for row in rows if row["refnum"] in contradicted]:
        reason = f"{row['refnum']} is listed both as NORM and with an abnormality: every row of the film rejected"
        rejected.append({"file": str(path), "row": row["row"], "reason": reason})
    table = pd.DataFrame([row for row in rows if row["refnum"] not in contradicted], columns=INFO_COLUMNS + ["row"])
    for column in ("x", "y", "radius"):
        table[column] = table[column].astype("Int64")
    return table, pd.DataFrame(rejected, columns=["file", "row", "reason"])


def _row_lines(text: str) -> list[tuple[int, str]]:
    """(line number, stripped line) of every line that looks like an annotation row: it starts with `mdb` in any
    case, after spaces and byte order marks (a BOM, U+FEFF, is invisible in an editor and begins files saved as
    UTF-8 with signature)."""
    lines = [(number, line.replace("\ufeff", "").strip()) for number, line in enumerate(text.splitlines(), start=1)]
    return [(number, line) for number, line in lines if line[:3].lower() == "mdb"]


def _codes_problem(fields: list[str]) -> str | None:
    """What is wrong with the refnum, background, class and severity of a row split at spaces, if anything."""
    if len(fields) < 3 or not _REFNUM.match(fields[0]):
        return "unparseable annotation"
    background, abnormality_class, rest = fields[1], fields[2], fields[3:]
    if background not in BACKGROUNDS:
        return f"background {background!r} is not F, G or D"
    if abnormality_class not in ABNORMALITY_CLASSES:
        return f"abnormality class {abnormality_class!r} is not one of {', '.join(ABNORMALITY_CLASSES)}"
    if abnormality_class != "NORM" and not rest:
        return "abnormal row without severity"
    if abnormality_class != "NORM" and rest[0] not in SEVERITIES:
        return f"severity {rest[0]!r} is not B or M"
    return None


def _location_problem(fields: list[str]) -> str | None:
    """What is wrong with the x y radius fields of a row, if anything: none, a `*NOTE n*` marker, or three integers
    placing a circle centred on the 1024x1024 film."""
    if not fields or fields[0].startswith("*"):
        return None  # quirk: widely distributed calcifications have no coordinates
    if len(fields) != 3 or not all(f.isdigit() for f in fields):
        return "expected x, y and radius as three integers"
    x, y, radius = map(int, fields)
    if not (0 <= x < MIAS_SIZE and 0 <= y < MIAS_SIZE):
        return f"centre ({x}, {y}) outside the {MIAS_SIZE}x{MIAS_SIZE} film"
    if not 0 < radius <= MIAS_SIZE:
        return f"radius {radius} outside 1..{MIAS_SIZE}"
    return None


def read_info(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    return parse_info(_info_text(path), path)


def _info_text(path: str | Path) -> str:
    """Info.txt as text: UTF-8 (ASCII as distributed); a stray byte spoils its row, not the file."""
    return Path(path).read_text(encoding="utf-8", errors="replace")


# unlocated: abnormality rows of the film without coordinates (its lesion-free area is then unknown)
IMAGE_COLUMNS = ["refnum", "patient_id", "side", "background", "label_normal", "classes", "unlocated", "path"]
MIAS_ROI_COLUMNS = [
    "roi_id",
    "refnum",
    "patient_id",
    "side",
    "abnormality_class",
    "abnormality_type",
    "pathology",
    "class_code",
    "x",
    "y",
    "radius",
    "path",
    "source_file",
    "row",
]


def index_info(info_path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Info.txt -> (images with image-level labels, ROIs with coordinates, rejected rows, accounting).

    Rows without coordinates keep their image's label but are rejected from ROI
    extraction. Every `mdb` line of Info.txt is a normal image row, an ROI, or rejected.
    """
    info_path = Path(info_path)
    text = _info_text(info_path)
    table, unparseable = parse_info(text, info_path)
    rejected = [{**row, "item": "", "stage": "index"} for row in unparseable.to_dict("records")]
    folder = info_path.parent
    table["patient_id"] = [mias_woman(refnum) for refnum in table["refnum"]]
    table["side"] = [mias_side(refnum) for refnum in table["refnum"]]
    table["path"] = [str(folder / f"{refnum}.pgm") for refnum in table["refnum"]]
    abnormal = table[table["abnormality_class"] != "NORM"].copy()
    abnormal["abnormality_type"] = ["calcification" if c == "CALC" else "mass" for c in abnormal["abnormality_class"]]
    abnormal["pathology"] = abnormal["severity"].map({"B": "BENIGN", "M": "MALIGNANT"})
    abnormal["class_code"] = [class_code(t, p) for t, p in zip(abnormal["abnormality_type"], abnormal["pathology"])]
    abnormal["roi_id"] = [f"mias:{refnum}:{row}" for refnum, row in zip(abnormal["refnum"], abnormal["row"])]
    abnormal["source_file"] = str(info_path)
    located = abnormal["x"].notna() & abnormal["y"].notna() & abnormal["radius"].notna()
    for _, row in abnormal[~located].iterrows():
        reason = "no coordinates: excluded from ROI extraction, image-level label kept"
        rejected.append({"file": str(info_path), "row": row["row"], "item": row["roi_id"], "stage": "index", "reason": reason})
    rois = abnormal[located][MIAS_ROI_COLUMNS].reset_index(drop=True)
    codes = abnormal.groupby("refnum")["class_code"].agg(lambda c: ",".join(map(str, sorted(set(c)))))
    images = table.drop_duplicates("refnum").sort_values("refnum").copy()
    images["classes"] = images["refnum"].map(codes).fillna("0")
    images["label_normal"] = (images["classes"] != "0").astype(int)
    images["unlocated"] = images["refnum"].map(abnormal[~located]["refnum"].value_counts()).fillna(0).astype(int)
    lines = [number for number, _ in _row_lines(text)]
    normal_rows = table.loc[table["abnormality_class"] == "NORM", "row"].tolist()
    accounting = account(lines, normal_rows + rois["row"].tolist(), [row["row"] for row in rejected])
    return images[IMAGE_COLUMNS].reset_index(drop=True), rois, pd.DataFrame(rejected, columns=REJECTED_COLUMNS), accounting


def mias_side(refnum: str) -> str:
    """Quirk: mini-MIAS names no side; of a woman's pair the odd number is her right breast, the even her left."""
    return "LEFT" if int(refnum[3:]) % 2 == 0 else "RIGHT"


def mias_woman(refnum: str) -> str:
    """mini-MIAS images come in left/right pairs of one woman: mdb001+mdb002, mdb003+mdb004, ..."""
    return f"mias:{(int(refnum[3:]) + 1) // 2:03d}"


def parse_pgm_header(data: bytes, path: str | Path) -> tuple[str, int, int, int, int]:
    """(magic, width, height, maxval, offset of the pixels) of a binary (P5) or plain (P2) PGM held in `data`;
    comments allowed. Its declared size is checked here, before any pixel is read."""
    magic = data[:2]
    if magic not in (b"P5", b"P2"):
        raise FormatError(path, f"not a PGM (magic {magic!r}, expected P5 or P2)")
    fields, position = [], 2
    while len(fields) < 3:
        match = _PGM_FIELD.match(data, position)
        # the spec's single whitespace byte must follow maxval: the pixels start after it
        if not match or match.end() >= len(data) or not data[match.end() : match.end() + 1].isspace():
            raise FormatError(path, "truncated or malformed PGM header")
        fields.append(int(match.group(1)))
        position = match.end()
    width, height, maxval = fields
    check_declared_size(path, height, width)
    if not 0 < maxval < 65536:
        raise FormatError(path, f"PGM maxval {maxval} out of range")
    return magic.decode(), width, height, maxval, position + 1


# a header field: whitespace and whole `#` comment lines before it, then its digits (a comment ends at its line's end,
# so that a run of `#` cannot be split into comments in exponentially many ways)
_PGM_FIELD = re.compile(rb"(?:\s|#[^\n\r]*[\n\r])*(\d+)")


def read_pgm(path: str | Path) -> np.ndarray:
    """A MIAS PGM (P5 or P2, 8 or 16 bit) as stored; size must be 1024x1024."""
    return _decode_pgm(path)[0]


def read_mias_scan(path: str | Path) -> np.ndarray:
    """A mini-MIAS scan in the shared 16-bit intensity space (stored values stretched by 65535/maxval)."""
    image, maxval = _decode_pgm(path)
    if maxval == 255:
        return uint8_to_uint16(image)
    return np.round(image.astype(np.float64) * (65535 / maxval)).astype(np.uint16)


def _decode_pgm(path: str | Path) -> tuple[np.ndarray, int]:
    """(pixels as stored, uint8 where maxval < 256 else uint16, maxval) of a 1024x1024 PGM, decoded from its bytes
    here (OpenCV's imread crashes on a file name that is not UTF-8, and lets values above maxval through)."""
    data = Path(path).read_bytes()
    magic, width, height, maxval, offset = parse_pgm_header(data, path)
    if (height, width) != (MIAS_SIZE, MIAS_SIZE):
        raise FormatError(path, f"expected the mini-MIAS {MIAS_SIZE}x{MIAS_SIZE}, got {width}x{height}")
    stored = np.dtype(np.uint8 if maxval < 256 else ">u2")  # 16-bit samples are big-endian (the PGM spec)
    if magic == "P5":
        declared, held = width * height * stored.itemsize, len(data) - offset
        if held < declared:
            raise FormatError(path, f"truncated: header declares {declared} bytes of pixels, file holds {held}")
        values = np.frombuffer(data, stored, count=width * height, offset=offset)
    else:
        values = _plain_pgm_values(data[offset:], width * height, path)
    above = np.flatnonzero(values > maxval)
    if above.size:
        row, column = divmod(int(above[0]), width)
        raise FormatError(
            path, f"pixel at row {row}, column {column} holds {values[above[0]]}, above the header's maxval {maxval}"
        )
    return values.astype(stored.newbyteorder("=")).reshape(height, width), maxval


def _plain_pgm_values(raster: bytes, count: int, path: str | Path) -> np.ndarray:
    """The first `count` decimal values of a plain (P2) PGM's raster, comments skipped as OpenCV skips them."""
    text = re.sub(rb"#[^\n\r]*", b" ", raster)
    if re.search(rb"[^\d\s]|\d{6}", text):  # a PGM value has at most 5 digits (65535): none can overflow
        raise FormatError(path, "a plain PGM pixel value is not a decimal number of at most 5 digits")
    values = np.fromstring(text, dtype=np.int64, sep=" ")
    if values.size < count:
        raise FormatError(path, f"truncated: header declares {count} pixel values, file holds {values.size}")
    return values[:count]


def write_pgm(path: str | Path, image: np.ndarray) -> None:
    """Write a P5 PGM the way MIAS distributes it (header, maxval 255, raw bytes)."""
    image = np.ascontiguousarray(image, dtype=np.uint8)
    header = f"P5\n{image.shape[1]} {image.shape[0]}\n255\n".encode()
    Path(path).write_bytes(header + image.tobytes())


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_archive(path: str | Path) -> bool:
    """Whether `data.mias` names the distribution's archive (all-mias.tar.gz) rather than its unpacked folder."""
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def unpack_archive(archive: str | Path, folder: str | Path) -> Path:
    """Unpack the official `all-mias.tar.gz` so that `folder` holds its Info.txt and films; return Info.txt's path.

    Checked before anything is used: the archive reads to its end (a truncated or corrupt download stops here),
    every member is a plain file or folder inside `folder` (no absolute paths, no `..`, no links), it holds one
    Info.txt, and every film that Info.txt names lies beside it.
    """
    info = extract_archive(archive, folder)
    table, _ = read_info(info)
    missing = sorted(refnum for refnum in set(table["refnum"]) if not (info.parent / f"{refnum}.pgm").is_file())
    if missing:
        raise FormatError(archive, f"{len(missing)} films named in Info.txt are not in the archive: {', '.join(missing[:5])}")
    return info


def extract_archive(archive: str | Path, folder: str | Path) -> Path:
    """The checks of :func:`unpack_archive` but the films': `folder` gets what the archive holds; Info.txt's path."""
    archive, folder = Path(archive), Path(folder)
    if not archive.is_file():
        raise FormatError(archive, "archive not found")
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()  # reads the whole stream
            for member in members:
                parts = Path(member.name).parts
                if member.name.startswith("/") or ".." in parts or not (member.isfile() or member.isdir()):
                    raise FormatError(archive, f"member {member.name!r} is not a plain file or folder inside the archive")
            infos = [m.name for m in members if Path(m.name).name == "Info.txt"]
            if len(infos) != 1:
                raise FormatError(archive, f"expected one Info.txt in the archive, found {len(infos)}")
            staging = folder / ".unpacking"
            shutil.rmtree(staging, ignore_errors=True)
            tar.extractall(staging, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise FormatError(archive, f"corrupt or truncated archive ({err})") from None
    for entry in (staging / infos[0]).parent.iterdir():  # the archive's own folder (all-mias/) is dropped
        entry.replace(folder / entry.name)
    shutil.rmtree(staging)
    return folder / "Info.txt"


def mias_centre(roi: pd.Series, scale: float, height: int) -> tuple[float, float]:
    """(row, column) of an Info.txt lesion centre in a film upscaled by `scale` and `height` rows high."""
    return height - roi["y"] * scale, roi["x"] * scale  # quirk: Info.txt's origin is the film's bottom-left corner
