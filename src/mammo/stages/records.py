"""Stage of workflow/rules/records.smk: one TFRecord shard of a split."""

from __future__ import annotations

from mammo import split as splitting
from mammo.records import tile_loader, write_shard
from mammo.tables import read_table


def write_records(tiles_path: str, split: str, shard: int, shards: int, shard_out: str) -> None:
    """Write the kept tiles of one split whose position modulo `shards` is `shard`."""
    tiles = read_table(tiles_path)
    chosen = splitting.kept(tiles)
    chosen = chosen[chosen["split"] == split].iloc[shard::shards]
    write_shard(chosen, tile_loader(), shard_out)
    print(f"{split} shard {shard + 1}/{shards}: {len(chosen)} tiles")
