"""The TFRecord schemas: tiles (every split) and lesion context patches (online crops); write them, read them back
as tf.data pipelines.

Writing needs no TensorFlow, so that a job that only writes records does not spend seconds importing it: a record is
a tf.train.Example in the protobuf wire format, framed as a TFRecord file frames it (length and data, each followed by
its masked CRC-32C). tests/test_records.py checks both against TensorFlow's own classes and writer.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from pathlib import Path

import google_crc32c
import numpy as np
import pandas as pd

from mammo.tiles import TILE_SIZE

CRC_MASK_DELTA = 0xA282EAD8  # TFRecord's CRC mask (tensorflow/core/lib/hash/crc32c.h)


def _tf():
    import tensorflow as tf  # imported lazily: the readers and tilers do not need TensorFlow

    return tf


def feature_spec():
    tf = _tf()
    return {
        "image": tf.io.FixedLenFeature([], tf.string),  # raw uint8 299x299x1
        "label": tf.io.FixedLenFeature([], tf.int64),  # 5-class code
        "label_normal": tf.io.FixedLenFeature([], tf.int64),  # 0 normal, 1 abnormal
        "tile_id": tf.io.FixedLenFeature([], tf.string),
        "patient_id": tf.io.FixedLenFeature([], tf.string),
    }


def serialize(image: np.ndarray, label: int, label_normal: int, tile_id: str, patient_id: str) -> bytes:
    if image.shape != (TILE_SIZE, TILE_SIZE) or image.dtype != np.uint8:
        raise ValueError(f"tile {tile_id}: expected uint8 {TILE_SIZE}x{TILE_SIZE}, got {image.dtype} {image.shape}")
    return example_bytes(
        {
            "image": image.tobytes(),
            "label": label,
            "label_normal": label_normal,
            "tile_id": tile_id.encode(),
            "patient_id": patient_id.encode(),
        }
    )


def example_bytes(features: dict[str, bytes | int | float]) -> bytes:
    """A tf.train.Example of one value per feature (bytes: BytesList, float: FloatList, integer: Int64List); keys
    in sorted order, so that the same features give the same bytes."""
    entries = b""
    for key in sorted(features):
        value = features[key]
        if isinstance(value, bytes):
            kind, values = 1, _length_delimited(1, value)
        elif isinstance(value, float | np.floating):
            kind, values = 2, _length_delimited(1, struct.pack("<f", value))  # packed repeated float
        else:
            kind, values = 3, _length_delimited(1, _varint(int(value)))  # packed repeated int64
        feature = _length_delimited(kind, values)
        entries += _length_delimited(1, _length_delimited(1, key.encode()) + _length_delimited(2, feature))  # map entry
    return _length_delimited(1, entries)  # Example.features


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # a negative int64 is written as its 64-bit two's complement
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def _masked_crc(data: bytes) -> bytes:
    crc = google_crc32c.value(data)
    return struct.pack("<I", ((crc >> 15 | crc << 17) + CRC_MASK_DELTA) & 0xFFFFFFFF)


def write_tfrecords(path: str | Path, records: Iterable[bytes]) -> None:
    """Write serialised records to a TFRecord file, in order."""
    with open(path, "wb") as out:
        for data in records:
            length = struct.pack("<Q", len(data))
            out.write(length + _masked_crc(length) + data + _masked_crc(data))


def context_feature_spec():
    tf = _tf()
    return {
        "image": tf.io.FixedLenFeature([], tf.string),  # raw uint8 side x side x 1, the lesion's centre in the middle
        "side": tf.io.FixedLenFeature([], tf.int64),
        "radius": tf.io.FixedLenFeature([], tf.float32),  # the lesion's radius in patch pixels
        "label": tf.io.FixedLenFeature([], tf.int64),
        "label_normal": tf.io.FixedLenFeature([], tf.int64),
        "tile_id": tf.io.FixedLenFeature([], tf.string),  # the lesion's ROI id
        "patient_id": tf.io.FixedLenFeature([], tf.string),
    }


def write_contexts(lesions: pd.DataFrame, contexts: np.ndarray, path: str | Path) -> None:
    """Write the context patches of the lesions of a table (rows: mammo.extract.LESION_CONTEXT_COLUMNS), in order."""

    def record(lesion) -> bytes:
        patch = np.ascontiguousarray(contexts[int(lesion["context_index"])], dtype=np.uint8)
        return example_bytes(
            {
                "image": patch.tobytes(),
                "side": patch.shape[0],
                "radius": float(lesion["radius"]),
                "label": lesion["class_code"],
                "label_normal": lesion["label_normal"],
                "tile_id": lesion["roi_id"].encode(),
                "patient_id": lesion["patient_id"].encode(),
            }
        )

    write_tfrecords(path, (record(lesion) for _, lesion in lesions.iterrows()))


def read_contexts(paths: list[str | Path]):
    """A tf.data.Dataset of the lesion context patches in the files, `image` as uint8 [side, side, 1], in file order."""
    tf = _tf()

    def parse_context(serialized):
        example = tf.io.parse_single_example(serialized, context_feature_spec())
        side = example["side"]
        return {**example, "image": tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), tf.stack([side, side, 1]))}

    return tf.data.TFRecordDataset([str(p) for p in paths]).map(parse_context, num_parallel_calls=1, deterministic=True)


def write_shard(tiles: pd.DataFrame, images, path: str | Path) -> None:
    """Write the tiles of a table, in table order, to one TFRecord file; `images(row)` returns a row's uint8 tile."""
    write_tfrecords(
        path,
        (
            serialize(images(row), row["class_code"], row["label_normal"], row["tile_id"], row["patient_id"])
            for _, row in tiles.iterrows()
        ),
    )


def parse(serialized):
    """Parse one record into a dict with `image` as uint8 [299, 299, 1]."""
    tf = _tf()
    example = tf.io.parse_single_example(serialized, feature_spec())
    image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), [TILE_SIZE, TILE_SIZE, 1])
    return {**example, "image": image}


def read_dataset(paths: list[str | Path]):
    """A tf.data.Dataset of parsed records from the shard files, in file order (deterministic)."""
    tf = _tf()
    return tf.data.TFRecordDataset([str(p) for p in paths]).map(parse, num_parallel_calls=1, deterministic=True)


def tile_loader(base: str | Path = "."):
    """Return `images(row)` that reads tiles from their chunk `.npy` files (memory-mapped, cached per file)."""
    cache: dict[str, np.ndarray] = {}

    def images(row) -> np.ndarray:
        path = str(Path(base) / row["tiles_file"])
        if path not in cache:
            cache[path] = np.load(path, mmap_mode="r")
        return np.asarray(cache[path][int(row["tile_index"])])

    return images
