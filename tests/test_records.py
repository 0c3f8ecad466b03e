"""The TFRecord schema: serialize / parse, shards written and read back."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf  # noqa: E402  (a pinned dependency: fail, do not skip, when missing)

from mammo.records import (
    example_bytes,
    parse,
    parse_example,
    read_contexts,
    read_dataset,
    read_tiles,
    serialize,
    tile_batches,
    tile_loader,
    write_contexts,
    write_shard,
    write_tfrecords,
)
from mammo.tables import TILE_COLUMNS


def _images(count, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 299, 299)).astype(np.uint8)


def _table(count, prefix="ds9"):
    rows = []
    for index in range(count):
        code = index % 5
        rows.append(
            {column: "" for column in TILE_COLUMNS}
            | {
                "tile_id": f"{prefix}/roi_{index}/0",
                "patient_id": f"cbis:P_{index:05d}" if code else f"ddsm:A-{index:04d}",
                "class_code": code,
                "label_normal": int(code > 0),
                "tiles_file": "chunk.npy",
                "tile_index": index,
            }
        )
    return pd.DataFrame(rows, columns=TILE_COLUMNS)


def test_serialize_parse_round_trip():
    image = _images(1)[0]
    record = serialize(image, 3, 1, "ds9/roi/2", "cbis:P_00001")
    assert isinstance(record, bytes)
    parsed = parse(tf.constant(record))
    assert parsed["image"].dtype == tf.uint8
    assert tuple(parsed["image"].shape) == (299, 299, 1)
    assert np.array_equal(parsed["image"].numpy()[..., 0], image)
    assert int(parsed["label"]) == 3 and int(parsed["label_normal"]) == 1
    assert parsed["tile_id"].numpy() == b"ds9/roi/2"
    assert parsed["patient_id"].numpy() == b"cbis:P_00001"


def test_write_shard_read_dataset_round_trip(tmp_path):
    images = _images(7)
    table = _table(7)
    path = tmp_path / "train-00000-of-00002.tfrecord"
    write_shard(table, lambda row: images[int(row["tile_index"])], path)
    second = tmp_path / "train-00001-of-00002.tfrecord"
    extra_images = _images(2, seed=1)
    write_shard(_table(2, prefix="other"), lambda row: extra_images[int(row["tile_index"])], second)

    records = list(read_dataset([path, second]))
    assert len(records) == 9
    for index, record in enumerate(records[:7]):  # file order, table order
        assert np.array_equal(record["image"].numpy()[..., 0], images[index])
        assert int(record["label"]) == table.loc[index, "class_code"]
        assert int(record["label_normal"]) == table.loc[index, "label_normal"]
        assert record["tile_id"].numpy().decode() == table.loc[index, "tile_id"]
        assert record["patient_id"].numpy().decode() == table.loc[index, "patient_id"]
    assert [r["tile_id"].numpy().decode() for r in records[7:]] == ["other/roi_0/0", "other/roi_1/0"]
    assert np.array_equal(records[8]["image"].numpy()[..., 0], extra_images[1])
    # reading twice gives the same order
    assert [r["tile_id"].numpy() for r in read_dataset([path, second])] == [r["tile_id"].numpy() for r in records]


def _tensorflow_example(features: dict) -> tf.train.Example:
    def feature(value):
        if isinstance(value, bytes):
            return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))
        if isinstance(value, float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={key: feature(value) for key, value in features.items()}))


def _assert_tensorflow_reads(path, examples: list[dict]) -> None:
    """The file holds exactly these examples, as TensorFlow's classes decode them, framed byte for byte as
    TensorFlow's TFRecordWriter frames the same records."""
    records = [record.numpy() for record in tf.data.TFRecordDataset(str(path))]
    assert [tf.train.Example.FromString(record) for record in records] == [_tensorflow_example(e) for e in examples]
    framed = path.with_suffix(".tensorflow")
    with tf.io.TFRecordWriter(str(framed)) as writer:
        for record in records:
            writer.write(record)
    assert path.read_bytes() == framed.read_bytes()


def test_records_are_what_tensorflow_writes_and_reads(tmp_path):
    """Records are written without TensorFlow: TensorFlow decodes every example of both schemas to the expected
    features, its writer frames them to the same bytes, and integers up to int64's limits, floats and empty bytes
    encode as its own Example class encodes them."""
    images, table = _images(3, seed=4), _table(3)
    write_shard(table, lambda row: images[int(row["tile_index"])], tmp_path / "tiles.tfrecord")
    tile_examples = [
        {
            "image": images[index].tobytes(),
            "label": int(row["class_code"]),
            "label_normal": int(row["label_normal"]),
            "tile_id": row["tile_id"].encode(),
            "patient_id": row["patient_id"].encode(),
        }
        for index, row in table.iterrows()
    ]
    _assert_tensorflow_reads(tmp_path / "tiles.tfrecord", tile_examples)

    contexts = np.random.default_rng(5).integers(0, 256, (2, 40, 40)).astype(np.uint8)
    lesions = pd.DataFrame(
        {
            "context_index": [1, 0],
            "radius": [12.75, 3.1],
            "class_code": [4, 1],
            "label_normal": [1, 1],
            "roi_id": ["mias:mdb001:104", "mias:mdb002:105"],
            "patient_id": ["mias:001", "mias:001"],
        }
    )
    write_contexts(lesions, contexts, tmp_path / "contexts.tfrecord")
    context_examples = [
        {
            "image": contexts[index].tobytes(),
            "side": 40,
            "radius": radius,
            "label": label,
            "label_normal": 1,
            "tile_id": roi_id.encode(),
            "patient_id": b"mias:001",
        }
        for index, radius, label, roi_id in ((1, 12.75, 4, "mias:mdb001:104"), (0, 3.1, 1, "mias:mdb002:105"))
    ]
    _assert_tensorflow_reads(tmp_path / "contexts.tfrecord", context_examples)
    read_back = list(read_contexts([tmp_path / "contexts.tfrecord"]))
    assert np.array_equal(read_back[0]["image"].numpy()[..., 0], contexts[1]) and read_back[1]["radius"] == np.float32(3.1)

    extremes = {"big": 2**63 - 1, "small": -(2**63), "minus_one": -1, "zero": 0, "empty": b"", "tiny": 1e-30, "huge": 3e38}
    assert tf.train.Example.FromString(example_bytes(extremes)) == _tensorflow_example(extremes)
    assert example_bytes(extremes) == example_bytes(dict(reversed(extremes.items())))  # the same bytes in any order


def test_tiles_read_without_tensorflow_are_what_tensorflow_reads(tmp_path):
    """Evaluation reads tiles with NumPy: the same records, images and ids in the same order as tf.data, from our
    shards and from a file TensorFlow's own writer wrote; batches in that order, the last one shorter."""
    images = _images(5, seed=6)
    write_shard(_table(5), lambda row: images[int(row["tile_index"])], tmp_path / "ours.tfrecord")
    with tf.io.TFRecordWriter(str(tmp_path / "theirs.tfrecord")) as writer:
        example = {"image": images[0].tobytes(), "label": 2, "label_normal": 1, "tile_id": b"t/0", "patient_id": b"p"}
        writer.write(_tensorflow_example(example).SerializeToString())
    paths = [tmp_path / "ours.tfrecord", tmp_path / "theirs.tfrecord"]
    expected = list(read_dataset(paths).as_numpy_iterator())
    read = list(read_tiles(paths))
    assert [record["tile_id"] for record in read] == [record["tile_id"].decode() for record in expected]
    for ours, theirs in zip(read, expected):
        assert np.array_equal(ours["image"], theirs["image"][..., 0]) and ours["image"].dtype == np.uint8
        assert (ours["label"], ours["label_normal"], ours["patient_id"]) == (
            theirs["label"],
            theirs["label_normal"],
            theirs["patient_id"].decode(),
        )
    batches = list(tile_batches(paths, 4))
    assert [len(batch) for batch in batches] == [4, 2]
    assert np.array_equal(np.concatenate(batches), np.stack([record["image"][..., 0] for record in expected]))


def test_evaluation_reads_tiles_without_importing_tensorflow(tmp_path):
    """Reading tiles for evaluation imports neither Keras nor TensorFlow (seconds a job; that the stage modules do not
    either, tests/test_hygiene.py checks)."""
    import subprocess
    import sys

    images = _images(2, seed=8)
    write_shard(_table(2), lambda row: images[int(row["tile_index"])], tmp_path / "shard.tfrecord")
    code = (
        "import sys; from mammo.records import tile_batches; "
        f"assert len(next(tile_batches([{str(tmp_path / 'shard.tfrecord')!r}], 8))) == 2; "
        "print(sorted({'keras', 'tensorflow'} & set(sys.modules)))"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "[]"


def test_examples_parse_packed_or_not_and_damaged_records_are_named(tmp_path):
    """Value lists are read packed (as TensorFlow writes them) or one value per field (as protobuf also allows); a
    damaged or foreign record is refused naming its file and its number, never read as other numbers."""
    extremes = {"big": 2**63 - 1, "small": -(2**63), "zero": 0, "empty": b"", "half": 0.5}
    assert parse_example(example_bytes(extremes)) == extremes
    unpacked = bytes([0x0A, 0x0B, 0x0A, 0x09, 0x0A, 0x01, 0x6E, 0x12, 0x04, 0x1A, 0x02, 0x08, 0x07])  # n: Int64List [7]
    assert parse_example(unpacked) == {"n": 7} and tf.train.Example.FromString(unpacked) == _tensorflow_example({"n": 7})

    images = _images(3, seed=7)
    path = tmp_path / "shard.tfrecord"
    write_shard(_table(3), lambda row: images[int(row["tile_index"])], path)
    data = path.read_bytes()
    record = len(data) // 3
    damaged = {
        "truncated.tfrecord": (data[: record + 100], "record 1: damaged data"),
        "flipped.tfrecord": (
            data[: record + 5000] + bytes([data[record + 5000] ^ 1]) + data[record + 5001 :],
            "record 1: damaged data",
        ),
        "header.tfrecord": (data[: record + 3] + b"\xff" + data[record + 4 :], "record 1: damaged frame header"),
    }
    for name, (content, message) in damaged.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=f"{name}: {message}"):
            list(read_tiles([tmp_path / name]))
    write_tfrecords(tmp_path / "foreign.tfrecord", [example_bytes({"image": b"\x00" * 10, "label": 1})])
    with pytest.raises(ValueError, match="foreign.tfrecord: record 0: not a tile record"):
        list(read_tiles([tmp_path / "foreign.tfrecord"]))


def test_empty_shard(tmp_path):
    path = tmp_path / "empty.tfrecord"
    write_shard(_table(0), lambda row: None, path)
    assert path.exists()
    assert list(read_dataset([path])) == [] and list(read_tiles([path])) == [] and list(tile_batches([path], 4)) == []


def test_tile_loader_reads_chunk_files(tmp_path):
    images = _images(4, seed=2)
    np.save(tmp_path / "chunk.npy", images)
    table = _table(4)
    load = tile_loader(tmp_path)
    for index, row in table.iterrows():
        assert np.array_equal(load(row), images[index])
    path = tmp_path / "shard.tfrecord"
    write_shard(table, load, path)
    assert [np.array_equal(r["image"].numpy()[..., 0], images[i]) for i, r in enumerate(read_dataset([path]))] == [True] * 4


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((299, 298), np.uint8),
        np.zeros((598, 598), np.uint8),
        np.zeros((299, 299, 1), np.uint8),
        np.zeros((299, 299), np.uint16),
        np.zeros((299, 299), np.float32),
    ],
    ids=["298-wide", "598", "with-channel", "uint16", "float32"],
)
def test_wrong_image_raises_value_error_naming_the_tile(image):
    with pytest.raises(ValueError, match="ds9/Mass-Test_P_00001_LEFT_CC_1/2"):
        serialize(image, 1, 1, "ds9/Mass-Test_P_00001_LEFT_CC_1/2", "cbis:P_00001")


def test_write_shard_propagates_the_tile_error(tmp_path):
    table = _table(2)
    with pytest.raises(ValueError, match="ds9/roi_1/0"):
        write_shard(
            table,
            lambda row: _images(1)[0] if row["tile_index"] == 0 else np.zeros((10, 10), np.uint8),
            tmp_path / "bad.tfrecord",
        )
