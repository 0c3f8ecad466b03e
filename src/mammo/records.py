"""The TFRecord schemas: tiles (every split) and lesion context patches (online crops); write them, read them back
as tf.data pipelines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mammo.tiles import TILE_SIZE


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
    tf = _tf()
    if image.shape != (TILE_SIZE, TILE_SIZE) or image.dtype != np.uint8:
        raise ValueError(f"tile {tile_id}: expected uint8 {TILE_SIZE}x{TILE_SIZE}, got {image.dtype} {image.shape}")

    def _bytes(value: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def _int(value: int):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))

    features = {
        "image": _bytes(image.tobytes()),
        "label": _int(label),
        "label_normal": _int(label_normal),
        "tile_id": _bytes(tile_id.encode()),
        "patient_id": _bytes(patient_id.encode()),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


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
    tf = _tf()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _, lesion in lesions.iterrows():
            patch = np.ascontiguousarray(contexts[int(lesion["context_index"])], dtype=np.uint8)
            features = {
                "image": tf.train.Feature(bytes_list=tf.train.BytesList(value=[patch.tobytes()])),
                "side": tf.train.Feature(int64_list=tf.train.Int64List(value=[patch.shape[0]])),
                "radius": tf.train.Feature(float_list=tf.train.FloatList(value=[float(lesion["radius"])])),
                "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(lesion["class_code"])])),
                "label_normal": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(lesion["label_normal"])])),
                "tile_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[lesion["roi_id"].encode()])),
                "patient_id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[lesion["patient_id"].encode()])),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString(deterministic=True))


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
    tf = _tf()
    with tf.io.TFRecordWriter(str(path)) as writer:
        for _, row in tiles.iterrows():
            writer.write(serialize(images(row), row["class_code"], row["label_normal"], row["tile_id"], row["patient_id"]))


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
