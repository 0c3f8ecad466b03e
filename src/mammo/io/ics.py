"""DDSM case headers (`.ics`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mammo.intensity import SITE_BY_CASE_LETTER
from mammo.io import FormatError

VIEWS = ("LEFT_CC", "LEFT_MLO", "RIGHT_CC", "RIGHT_MLO")
DIGITIZER_FAMILIES = ("DBA", "HOWTEK", "LUMISYS")


@dataclass(frozen=True)
class ViewGeometry:
    lines: int
    pixels_per_line: int
    bits_per_pixel: int
    resolution: float
    overlay: bool


@dataclass(frozen=True)
class CaseHeader:
    name: str  # e.g. "A-0002-1"
    digitizer: str  # full string, e.g. "HOWTEK 43.5"
    density: int | None
    patient_age: int | None
    views: dict[str, ViewGeometry] = field(default_factory=dict)

    @property
    def case_letter(self) -> str:
        return self.name[0].upper()

    @property
    def site(self) -> str:
        return SITE_BY_CASE_LETTER[self.case_letter]

    @property
    def digitizer_family(self) -> str:
        return self.digitizer.split()[0].upper()

    @property
    def patient_id(self) -> str:
        """DDSM has one case per patient: the case name without its volume suffix."""
        return self.name.rsplit("-", 1)[0]


_VIEW_LINE = re.compile(
    r"^(?P<view>(LEFT|RIGHT)_(CC|MLO))\s+LINES\s+(?P<lines>\d+)\s+PIXELS_PER_LINE\s+(?P<ppl>\d+)"
    r"\s+BITS_PER_PIXEL\s+(?P<bits>\d+)\s+RESOLUTION\s+(?P<res>[\d.]+)\s+(?P<overlay>NON_OVERLAY|OVERLAY)\s*$"
)


def parse_ics(text: str, path: str | Path = "<ics>") -> CaseHeader:
    """Parse an `.ics` header; leading blank lines and unknown keys are tolerated."""
    values: dict[str, str] = {}
    views: dict[str, ViewGeometry] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        match = _VIEW_LINE.match(line)
        if match:
            views[match["view"]] = ViewGeometry(
                lines=int(match["lines"]),
                pixels_per_line=int(match["ppl"]),
                bits_per_pixel=int(match["bits"]),
                resolution=float(match["res"]),
                overlay=match["overlay"] == "OVERLAY",
            )
            continue
        key, _, rest = line.partition(" ")
        if key in VIEWS:
            raise FormatError(path, f"malformed view line {line!r}")
        values[key.lower()] = rest.strip()
    name = values.get("filename")
    if not name:
        raise FormatError(path, "no 'filename' line")
    if name[0].upper() not in SITE_BY_CASE_LETTER:
        raise FormatError(path, f"case letter {name[0]!r} of {name!r} names no known DDSM site")
    digitizer = values.get("digitizer", "")
    if (digitizer.split() or [""])[0].upper() not in DIGITIZER_FAMILIES:
        raise FormatError(path, f"unknown DIGITIZER {digitizer!r}")
    if not views:
        raise FormatError(path, "no view lines (LEFT_CC LINES ... )")
    return CaseHeader(
        name=name,
        digitizer=digitizer,
        density=_optional_int(values.get("density")),
        patient_age=_optional_int(values.get("patient_age")),
        views=views,
    )


def read_ics(path: str | Path) -> CaseHeader:
    return parse_ics(Path(path).read_text(errors="replace"), path)


def _optional_int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None


def format_ics(header: CaseHeader, date_of_study: str, date_digitized: str) -> str:
    """Write an `.ics` in the field order and spelling of the real files (leading blank line included)."""
    lines = [
        "",
        "ics_version 1.0",
        f"filename {header.name}",
        f"DATE_OF_STUDY {date_of_study}",
    ]
    if header.patient_age is not None:
        lines.append(f"PATIENT_AGE {header.patient_age}")
    lines += [
        "FILM",
        "FILM_TYPE REGULAR",
        f"DENSITY {header.density}",
        f"DATE_DIGITIZED {date_digitized}",
        f"DIGITIZER {header.digitizer}",
        "SEQUENCE",
    ]
    for view, geo in header.views.items():
        res = f"{geo.resolution:g}" if geo.resolution != int(geo.resolution) else f"{int(geo.resolution)}"
        lines.append(
            f"{view} LINES {geo.lines} PIXELS_PER_LINE {geo.pixels_per_line} BITS_PER_PIXEL "
            f"{geo.bits_per_pixel} RESOLUTION {res} {'OVERLAY' if geo.overlay else 'NON_OVERLAY'}"
        )
    return "\n".join(lines) + "\n"
