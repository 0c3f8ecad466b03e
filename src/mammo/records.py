"""The TFRecord schemas: tiles (every split) and lesion context patches (online crops); write them, read them back
as tf.data pipelines (training) or as NumPy batches (evaluation).

Writing, and reading for evaluation, need no TensorFlow, so that such a job does not spend seconds importing it: a
record is a tf.train.Example in the protobuf wire format, framed as a TFRecord file frames it (length and data, each
followed by its masked CRC-32C). tests/test_records.py checks both against TensorFlow's own classes, reader and writer.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import google_crc32c
import numpy as np
import pandas as pd

from mammo.tiles import TILE_SIZE

# a tile as records hold it: one channel, or two with its surround channel (mammo.tiles.surround_view)
TILE_SHAPES = ((TILE_SIZE, TILE_SIZE), (TILE_SIZE, TILE_SIZE, 2))
CRC_MASK_DELTA = 0xA282EAD8  # TFRecord's CRC mask (tensorflow/core/lib/hash/crc32c.h)


def _tf():
    import tensorflow as tf  # imported lazily: the readers and tilers do not need TensorFlow

    return tf


def feature_spec():
    tf = _tf()
    return {
        "image": tf.io.FixedLenFeature([], tf.string),  # raw uint8 299x299x1, or 299x299x2 with the surround channel
        "label": tf.io.FixedLenFeature([], tf.int64),  # 5-class code
        "label_normal": tf.io.FixedLenFeature([], tf.int64),  # 0 normal, 1 abnormal
        "tile_id": tf.io.FixedLenFeature([], tf.string),
        "patient_id": tf.io.FixedLenFeature([], tf.string),
    }


def serialize(image: np.ndarray, label: int, label_normal: int, tile_id: str, patient_id: str) -> bytes:
    if image.shape not in TILE_SHAPES or image.dtype != np.uint8:
        raise ValueError(
            f"tile {tile_id}: expected uint8 {TILE_SIZE}x{TILE_SIZE} (or x2, with its surround channel), got {image.dtype} {image.shape}"
        )
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


def read_tfrecords(path: str | Path) -> Iterator[bytes]:
    """The serialised records of a TFRecord file, in order, each frame's CRCs checked (as TensorFlow's reader does)."""
    with open(path, "rb") as stream:
        for number in itertools.count():
            header = stream.read(12)
            if not header:
                return
            if len(header) != 12 or header[8:] != _masked_crc(header[:8]):
                raise ValueError(f"{path}: record {number}: damaged frame header (truncated file or wrong CRC)")
            length = struct.unpack("<Q", header[:8])[0]
            data, crc = stream.read(length), stream.read(4)
            if len(data) != length or crc != _masked_crc(data):
                raise ValueError(f"{path}: record {number}: damaged data ({len(data)} of {length} bytes, or a wrong CRC)")
            yield data


def parse_example(data: bytes) -> dict[str, bytes | int | float]:
    """The features of a tf.train.Example of one value per feature (as `example_bytes` or TensorFlow writes it), the
    value lists read packed or not, as protobuf parsers must."""
    features = {}
    for field, features_message in _fields(memoryview(data)):  # views: a tile's bytes are copied once, at the end
        for entry_field, entry in _fields(features_message) if field == 1 else ():
            fields = dict(_fields(entry)) if entry_field == 1 else {}
            kind, values = next(_fields(fields.get(2, memoryview(b""))), (None, b""))
            value = next(_fields(values), (None, None))[1]  # the list's first value (field 1)
            if kind == 1:  # BytesList
                value = bytes(value)
            elif kind == 2:  # FloatList: packed (length-delimited) or one fixed32
                value = struct.unpack("<f", value[:4])[0]
            elif kind == 3:  # Int64List: packed or one varint
                value = _read_varint(value, 0)[0] if isinstance(value, memoryview) else value
                value = value - (1 << 64) if value >= 1 << 63 else value
            if kind in (1, 2, 3):
                features[bytes(fields[1]).decode()] = value
    return features


def _fields(message: memoryview) -> Iterator[tuple[int, memoryview | int]]:
    """(field number, value) of each field of a protobuf message: a view of the payload (length-delimited, fixed32,
    fixed64) or the integer (varint)."""
    position = 0
    while position < len(message):
        tag, position = _read_varint(message, position)
        wire_type = tag & 7
        if wire_type == 0:
            value, position = _read_varint(message, position)
        else:
            length, position = _read_varint(message, position) if wire_type == 2 else ({1: 8, 5: 4}[wire_type], position)
            value, position = message[position : position + length], position + length
        yield tag >> 3, value


def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        value |= (byte & 0x7F) << shift
        position += 1
        if byte < 0x80:
            return value, position
        shift += 7


def read_tiles(paths: list[str | Path]) -> Iterator[dict]:
    """The tile records of the shard files in file order, `image` as uint8 [299, 299] (with a surround channel
    [299, 299, 2]), ids as str: a NumPy reading of what `read_dataset` gives, for jobs that need no TensorFlow."""
    for path in paths:
        for number, data in enumerate(read_tfrecords(path)):
            try:
                example = parse_example(data)
                image = np.frombuffer(example["image"], np.uint8).reshape(TILE_SIZE, TILE_SIZE, -1)
                image = image[..., 0] if image.shape[-1] == 1 else image
                ids = {name: example[name].decode() for name in ("tile_id", "patient_id")}
            except (KeyError, IndexError, TypeError, ValueError, struct.error, UnicodeDecodeError) as error:
                raise ValueError(f"{path}: record {number}: not a tile record ({type(error).__name__}: {error})") from None
            yield {**example, "image": image, **ids}


def tile_batches(paths: list[str | Path], batch_size: int) -> Iterator[np.ndarray]:
    """The tiles of the shard files, in file order, as uint8 [batch, 299, 299] (or [batch, 299, 299, 2]) batches (the
    last one shorter)."""
    records = read_tiles(paths)
    while batch := [record["image"] for record in itertools.islice(records, batch_size)]:
        yield np.stack(batch)


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
    """Parse one record into a dict with `image` as uint8 [299, 299, channels] (1, or 2 with the surround channel)."""
    tf = _tf()
    example = tf.io.parse_single_example(serialized, feature_spec())
    image = tf.reshape(tf.io.decode_raw(example["image"], tf.uint8), [TILE_SIZE, TILE_SIZE, -1])
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
