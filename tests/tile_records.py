"""Small tile tables for the tests that write TFRecords (training, online crops, hard negatives)."""

from __future__ import annotations

import pandas as pd


def tile_table(class_codes: list[int]) -> pd.DataFrame:
    """A tile table of the given 5-class codes, two tiles a patient, each tile's array at its own index."""
    count = len(class_codes)
    return pd.DataFrame(
        {
            "tile_id": [f"t{i}" for i in range(count)],
            "patient_id": [f"p{i // 2}" for i in range(count)],
            "class_code": class_codes,
            "label_normal": [int(code > 0) for code in class_codes],
            "tile_index": range(count),
        }
    )
