"""The one tile table schema that every stage reads and writes, and the rejected table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TILE_COLUMNS = [
    "tile_id", "dataset", "source", "patient_id", "scan_id", "view", "class_code", "label_normal",
    "abnormality_type", "pathology", "scanner", "division", "method", "box", "tiles_file", "tile_index",
]  # fmt: skip
REJECTED_COLUMNS = ["file", "row", "item", "stage", "reason"]  # item: the ROI or scan id, when one exists


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "row": str}, keep_default_na=False)
