"""The collections the pipeline reads, one entry each: what the job graph, whole-scan analysis and the command line
ask of a collection (its chunk key, the files a job reads, its scale, its scan files), answered in one place. Each
collection's reader and its quirks live in mammo.io.<collection>.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mammo.io.cbis import resolve
from mammo.io.mias import MIAS_SCALE
from mammo.tiles import NATIVE_TILE, TILE_SIZE


def windowing_scale(tile_scale: float) -> float:
    """`Windowing.scale` (CBIS-scale pixels per scan pixel) of a scan whose tiles are cut at 299 after upscaling it by
    `tile_scale` (mini-MIAS: 2.58, model scale): such a tile stands for a 598 window at the CBIS-DDSM scale."""
    return tile_scale * NATIVE_TILE / TILE_SIZE


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
    "ddsm": Source("ddsm", "ddsm", "case", ("path",), 1.0, (".ljpeg", ".ljpeg.gz", ".ljpeg.1")),
    # mini-MIAS films are 200 microns a pixel: tiles are cut at 299 after upscaling them 2.58x to the CBIS-DDSM scale
    "mias": Source("mias", "mias", None, ("path",), windowing_scale(MIAS_SCALE), (".pgm",)),
}
# whole-scan targets mix the collections: chunked by scan, each row naming its file
TARGETS = Source("targets", "targets", "scan_id", ("path",), 1.0, ())


def window_scale_of(path: str | Path) -> float:
    """Windowing.scale for a scan file of any collection, by its name (1 for a file of none, e.g. a PNG)."""
    name = str(path).lower()
    return next((source.window_scale for source in SOURCES.values() if name.endswith(source.suffixes)), 1.0)
