"""DDSM `.OVERLAY` annotations: abnormalities, lesion types, and chain-coded outlines."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mammo.io import FormatError

# Chain-code directions: 0=N 1=NE 2=E 3=SE 4=S 5=SW 6=W 7=NW, as (d_row, d_col).
STEPS = np.array([(-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1)])
_DIRECTION = {tuple(step): direction for direction, step in enumerate(STEPS.tolist())}
_FIELDS = ("ASSESSMENT", "SUBTLETY", "PATHOLOGY", "TOTAL_OUTLINES")


@dataclass(frozen=True)
class Outline:
    kind: str  # BOUNDARY or CORE
    start_col: int
    start_row: int
    directions: np.ndarray

    def polygon(self) -> np.ndarray:
        """Vertices as (row, col), starting at the start point."""
        path = np.vstack([[0, 0], np.cumsum(STEPS[self.directions], axis=0)])
        return path + [self.start_row, self.start_col]

    def mask(self, shape: tuple[int, int]) -> np.ndarray:
        """Filled outline as a bool mask of the scan's shape; parts outside the image are clipped."""
        canvas = np.zeros(shape, dtype=np.uint8)
        points = self.polygon()[:, ::-1].astype(np.int32)  # OpenCV wants (x, y)
        cv2.fillPoly(canvas, [points], 1)
        return canvas.astype(bool)


@dataclass
class Abnormality:
    number: int
    lesion_types: list[dict] = field(default_factory=list)  # e.g. {"type": "MASS", "SHAPE": "ROUND", ...}
    assessment: int | None = None
    subtlety: int | None = None
    pathology: str | None = None  # MALIGNANT, BENIGN, BENIGN_WITHOUT_CALLBACK, UNPROVEN
    total_outlines: int | None = None
    outlines: list[Outline] = field(default_factory=list)

    @property
    def boundary(self) -> Outline | None:
        return next((o for o in self.outlines if o.kind == "BOUNDARY"), None)


def parse_overlay(text: str, path: str | Path = "<overlay>") -> list[Abnormality]:
    """Parse an `.OVERLAY` file; counts that disagree with TOTAL_* lines raise FormatError naming the file."""
    lines = [line.strip() for line in text.splitlines()]
    abnormalities: list[Abnormality] = []
    total = None
    index = 0
    while index < len(lines):
        words = lines[index].split()
        index += 1
        if not words:
            continue
        key, values = words[0], words[1:]
        if key == "TOTAL_ABNORMALITIES":
            total = _int(values, key, path)
        elif key == "ABNORMALITY":
            abnormalities.append(Abnormality(number=_int(values, key, path)))
        elif not abnormalities:
            raise FormatError(path, f"line {index}: {key} before any ABNORMALITY")
        elif key == "LESION_TYPE":
            abnormalities[-1].lesion_types.append(_lesion_type(values))
        elif key in _FIELDS:
            value = values[0] if key == "PATHOLOGY" and values else _int(values, key, path)
            setattr(abnormalities[-1], key.lower(), value)
        elif key in ("BOUNDARY", "CORE"):
            outline, index = _read_chain(lines, index, key, path)
            abnormalities[-1].outlines.append(outline)
    if total is not None and total != len(abnormalities):
        raise FormatError(path, f"TOTAL_ABNORMALITIES {total} but {len(abnormalities)} ABNORMALITY sections")
    for abnormality in abnormalities:
        if abnormality.total_outlines is not None and abnormality.total_outlines != len(abnormality.outlines):
            raise FormatError(
                path,
                f"abnormality {abnormality.number}: TOTAL_OUTLINES {abnormality.total_outlines} "
                f"but {len(abnormality.outlines)} outlines",
            )
    return abnormalities


def read_overlay(path: str | Path) -> list[Abnormality]:
    return parse_overlay(Path(path).read_text(errors="replace"), path)


def chain_code(mask: np.ndarray, kind: str = "BOUNDARY") -> Outline:
    """The outline tracing the border of a mask's largest region, as a chain code from its first border pixel."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    points = max(contours, key=len)[:, 0, ::-1]  # OpenCV's (x, y) -> (row, column)
    steps = np.diff(np.vstack([points, points[:1]]), axis=0)
    directions = np.array([_DIRECTION[tuple(step)] for step in steps.tolist() if step != [0, 0]], dtype=np.int64)
    return Outline(kind, int(points[0, 1]), int(points[0, 0]), directions)


def format_overlay(abnormalities: list[Abnormality]) -> str:
    """An `.OVERLAY` in the layout of the real files (the counterpart of parse_overlay)."""
    lines = [f"TOTAL_ABNORMALITIES {len(abnormalities)}"]
    for abnormality in abnormalities:
        lines.append(f"ABNORMALITY {abnormality.number}")
        for lesion in abnormality.lesion_types:
            lines.append(f"LESION_TYPE {lesion['type']} {lesion_descriptors(lesion)}".rstrip())
        lines += [
            f"ASSESSMENT {abnormality.assessment}",
            f"SUBTLETY {abnormality.subtlety}",
            f"PATHOLOGY {abnormality.pathology}",
            f"TOTAL_OUTLINES {len(abnormality.outlines)}",
        ]
        for outline in abnormality.outlines:
            indent = "\t" if outline.kind == "CORE" else ""
            chain = " ".join(map(str, [outline.start_col, outline.start_row, *outline.directions.tolist()]))
            lines += [f"{indent}{outline.kind}", f"{indent}{chain} #"]
    return "\n".join(lines) + "\n"


def lesion_descriptors(lesion: dict) -> str:
    """A LESION_TYPE's descriptors as written after its type, in file order: `SHAPE ROUND MARGINS SPICULATED`."""
    return " ".join(f"{key} {value}" for key, value in lesion.items() if key != "type")


def _int(values: list[str], key: str, path) -> int:
    try:
        return int(values[0])
    except (IndexError, ValueError):
        raise FormatError(path, f"{key} needs an integer, got {' '.join(values)!r}") from None


def _lesion_type(values: list[str]) -> dict:
    """`MASS SHAPE ROUND MARGINS ILL_DEFINED` -> {"type": "MASS", "SHAPE": "ROUND", "MARGINS": "ILL_DEFINED"}."""
    result = {"type": values[0] if values else None}
    rest = values[1:]
    for key, value in zip(rest[::2], rest[1::2]):
        result[key] = value
    return result


def _read_chain(lines: list[str], index: int, kind: str, path) -> tuple[Outline, int]:
    """Read `start_col start_row d d d ... #`, possibly over several lines."""
    tokens: list[str] = []
    while index < len(lines):
        tokens += lines[index].split()
        index += 1
        if "#" in tokens:
            tokens = tokens[: tokens.index("#")]
            break
    else:
        raise FormatError(path, f"{kind} chain code not ended by '#'")
    if len(tokens) < 2 or not all(t.isdigit() for t in tokens):
        raise FormatError(path, f"{kind} chain code is not 'column row directions...': {' '.join(tokens[:8])!r}")
    directions = np.array([int(t) for t in tokens[2:]], dtype=np.int64)
    if (directions > 7).any():
        raise FormatError(path, f"{kind} chain code has a direction above 7")
    return Outline(kind, int(tokens[0]), int(tokens[1]), directions), index
