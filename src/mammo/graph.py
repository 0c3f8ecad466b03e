"""What the workflow needs while it builds the job graph (common.smk): which trained models a configuration builds,
which chunk a scan belongs to and which files each chunk job reads. Light on purpose: neither TensorFlow nor any
stage is imported.
"""

from __future__ import annotations

import functools
import zlib
from pathlib import Path

import pandas as pd

from mammo.sources import SOURCES, TARGETS
from mammo.tables import read_table


def chunk_of(key: str, chunks: int) -> int:
    """Stable chunk number of a scan or case, independent of table order."""
    return zlib.crc32(key.encode()) % chunks


def chunk_numbers(table: pd.DataFrame, key: str | None, chunks: int) -> pd.Series:
    """Each row's chunk by its `key` column (a scan or case id); without a key, every row is chunk 0."""
    return pd.Series([chunk_of(value, chunks) for value in table[key]] if key else 0, index=table.index, dtype=int)


def in_chunk(table: pd.DataFrame, key: str, chunk: int, chunks: int) -> pd.DataFrame:
    """The rows of one chunk job."""
    return table[chunk_numbers(table, key, chunks) == chunk]


def chunk_scan_files(table_path: str, kind: str, chunk: int, chunks: int, root: str = "") -> list[str]:
    """The image files one chunk job reads (its declared inputs: replacing a scan reruns only its jobs).

    kind: "cbis" (rois.tsv: scan, crop and mask DICOMs), "ddsm" (scans.tsv), "mias" (images.tsv, one job),
    "targets" (targets.tsv of whole-scan analysis). Missing files are left out: the job rejects their rows.
    """
    listed = _listed_files_by_chunk(table_path, Path(table_path).stat().st_mtime_ns, kind, chunks, root)[chunk]
    return sorted(str(path) for path in listed if path.exists())


@functools.lru_cache(maxsize=64)
def _listed_files_by_chunk(table_path: str, modified_ns: int, kind: str, chunks: int, root: str) -> dict[int, list[Path]]:
    """Every chunk's listed files from one read of the index (the DAG asks once per chunk job); the modification
    time in the cache key makes a rewritten index read again."""
    table = read_table(table_path)
    source = TARGETS if kind == "targets" else SOURCES[kind]
    numbers = chunk_numbers(table, source.chunk_key, chunks)
    return {chunk: source.files(table[numbers == chunk], root) for chunk in range(chunks)}


def selected_runs(config: dict) -> list[dict]:
    """The pairs under `runs:` ("dataset/model" entries), else every dataset with every model.

    A list, so that an overlay config replaces the default's choice instead of adding to it. Each pair is
    {"dataset", "model", "settings"}; any other pair of the config's datasets and models is still a target of its own
    (results/<ds>/model_<model>/metrics.json). A name not in the config is an error naming the entry.
    """
    if not config.get("runs"):
        return [
            {"dataset": dataset, "model": model, "settings": settings}
            for dataset in config["datasets"]
            for model, settings in config["models"].items()
        ]
    pairs = []
    for entry in config["runs"]:
        dataset, _, model = entry.partition("/")
        if dataset not in config["datasets"]:
            raise ValueError(f"runs: {entry}: no dataset {dataset} under datasets: ({', '.join(config['datasets'])})")
        if model not in config["models"]:
            raise ValueError(f"runs: {entry}: no model {model} under models: ({', '.join(config['models'])})")
        pairs.append({"dataset": dataset, "model": model, "settings": config["models"][model]})
    return pairs
