"""The one tile table schema that every stage reads and writes, and the rejected table."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pandas as pd

# density: BI-RADS 1-4 (CBIS-DDSM, DDSM), F/G/D background tissue (mini-MIAS); subtlety 1-5 (CBIS-DDSM ROIs only)
TILE_COLUMNS = [
    "tile_id",
    "dataset",
    "source",
    "patient_id",
    "scan_id",
    "view",
    "class_code",
    "label_normal",
    "abnormality_type",
    "pathology",
    "density",
    "subtlety",
    "scanner",
    "division",
    "method",
    "box",
    "tiles_file",
    "tile_index",
]
REJECTED_COLUMNS = ["file", "row", "item", "stage", "reason"]  # item: the ROI or scan id, when one exists


def write_table(table: pd.DataFrame, path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(path, sep="\t", index=False)


def read_table(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", dtype={"patient_id": str, "row": str}, keep_default_na=False)


class AccountingError(ValueError):
    pass


def account(inputs: list, accepted: list, rejected: list) -> dict:
    """Prove that every input key is accepted or rejected, exactly once, and nothing else is; return the counts."""
    seen = Counter(accepted) + Counter(rejected)
    lost = sorted(set(inputs) - set(seen), key=str)
    unknown = sorted(set(seen) - set(inputs), key=str)
    twice = sorted((key for key, count in seen.items() if count > 1), key=str)
    if lost or unknown or twice:
        raise AccountingError(f"inputs lost {lost[:5]}, outputs without an input {unknown[:5]}, counted twice {twice[:5]}")
    return {"inputs": len(inputs), "accepted": len(accepted), "rejected": len(rejected)}


def write_json(result: dict, path: str | Path) -> None:
    """Write a stage's JSON result and show it in the stage's log."""
    text = json.dumps(result, indent=2)
    Path(path).write_text(text + "\n")
    print(text)
