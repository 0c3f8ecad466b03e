"""Stages of workflow/rules/records.smk and crossval.smk: one TFRecord shard of a split; the lesion context patches
of a split's women."""

from __future__ import annotations

import numpy as np

from mammo import split as splitting
from mammo.records import tile_loader, write_contexts, write_shard
from mammo.tables import read_table


def write_records(tiles_path: str, split: str, shard: int, shards: int, shard_out: str) -> None:
    """Write the kept tiles of one split whose position modulo `shards` is `shard`."""
    tiles = read_table(tiles_path)
    chosen = splitting.kept(tiles)
    chosen = chosen[chosen["split"] == split].iloc[shard::shards]
    write_shard(chosen, tile_loader(), shard_out)
    print(f"{split} shard {shard + 1}/{shards}: {len(chosen)} tiles")


def write_context_records(tiles_path: str, contexts_table_path: str, contexts_path: str, split: str, records_out: str) -> None:
    """Write the context patches of the lesions whose women are in `split` of a fold's tile table (online crops)."""
    tiles, lesions = read_table(tiles_path), read_table(contexts_table_path)
    women = set(tiles.loc[tiles["split"] == split, "patient_id"])
    chosen = lesions[lesions["patient_id"].isin(women)]
    write_contexts(chosen, np.load(contexts_path, mmap_mode="r"), records_out)
    print(f"{split}: context patches of {len(chosen)} lesions of {chosen['patient_id'].nunique()} women")
