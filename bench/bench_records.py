"""One records job as a whole process (the `records` rule's stage, imports included), to time as a whole command
(for instance with hyperfine):

    .venv/bin/python bench/bench_records.py --prepare build/bench/records   # once: a tile table and its tiles
    hyperfine -r 7 '.venv/bin/python bench/bench_records.py build/bench/records'

A job that writes a shard of a few hundred tiles spends most of its time starting up, so the figure that matters is
the whole process; with the source tree of an earlier version first on PYTHONPATH the same command times that
version (the two commands timed in turn). It prints the tiles written and the seconds the write took after the imports.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

TILES = 300  # about a tiny-run shard; a real-film fold's train shard holds some 6,000


def prepare(folder: Path, count: int) -> None:
    import numpy as np
    import pandas as pd

    from mammo.tables import TILE_COLUMNS, write_table
    from mammo.tiles import TILE_SIZE

    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "tiles.npy", np.random.default_rng(0).integers(0, 256, (count, TILE_SIZE, TILE_SIZE), dtype=np.uint8))
    rows = [
        {column: "" for column in TILE_COLUMNS}
        | {
            "tile_id": f"bench/roi_{index}/0",
            "patient_id": f"bench:{index // 10:04d}",
            "class_code": index % 5,
            "label_normal": int(index % 5 > 0),
            "split": "train",
            "kept": True,
            "tiles_file": str(folder / "tiles.npy"),
            "tile_index": index,
        }
        for index in range(count)
    ]
    write_table(pd.DataFrame(rows), folder / "tiles.tsv")  # a split tile table: the tile columns, split and kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--prepare", action="store_true", help="write the tile table and tiles into FOLDER")
    parser.add_argument("--tiles", type=int, default=TILES)
    args = parser.parse_args()
    if args.prepare:
        prepare(args.folder, args.tiles)
        return
    from mammo.stages.records import write_records

    start = time.perf_counter()
    write_records(str(args.folder / "tiles.tsv"), "train", 0, 1, str(args.folder / "train-0-of-1.tfrecord"))
    print(f"write {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()
