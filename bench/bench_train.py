"""Training throughput benchmark of model 1.0.0.35, batch 32 (issue targets):

* the real input pipeline (TFRecords, shuffling, flips, rotations, contrast) against a bare `model.fit` of the
  same model on in-memory tensors, in the same process: ratio at least 0.95 (the pipeline is never the bottleneck);
* reading + augmenting alone: at least 20x the training rate;
* mixed_bfloat16 training: at least 1.25x the float32 rate on CPUs with bfloat16 support;
* inference (the evaluation's predict on TFRecords): at least 140 images/s on this 2-core CPU.

Each figure is images per second over `--steps` timed steps after `--warmup` untimed ones. On a GPU machine
the same script records the GPU's rates (its name is printed).

Usage: .venv/bin/python bench/bench_train.py [--steps 20 --warmup 3 --tiles 640]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

BATCH = 32
TARGETS = {"pipeline_ratio": 0.95, "input_multiple": 20.0, "bfloat16_speedup": 1.25, "inference": 140.0}


def write_records(folder: Path, tiles: int) -> list[Path]:
    from mammo.records import write_shard

    rng = np.random.default_rng(0)
    images = rng.integers(40, 200, size=(tiles, 299, 299), dtype=np.uint8)
    codes = rng.choice([0, 0, 0, 0, 0, 1, 2, 3, 4], size=tiles)
    table = pd.DataFrame({"tile_id": [f"t{i}" for i in range(tiles)], "patient_id": [f"p{i // 4}" for i in range(tiles)],
                          "class_code": codes, "label_normal": (codes > 0).astype(int), "tile_index": range(tiles)})  # fmt: skip
    paths = [folder / f"train-{shard}.tfrecord" for shard in range(2)]
    for shard, path in enumerate(paths):
        write_shard(table.iloc[shard::2], lambda row: images[int(row["tile_index"])], path)
    return paths


class StepTimer:
    """Wall time of the training steps after the warm-up ones."""

    def __init__(self, warmup: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_batch_begin(inner, batch, logs=None):
                if batch == warmup:
                    self.started = time.perf_counter()

            def on_train_end(inner, logs=None):
                self.ended = time.perf_counter()

        self.callback = Callback()

    def rate(self, steps: int) -> float:
        return steps * BATCH / (self.ended - self.started)


def fit_rate(data, steps: int, warmup: int, policy: str = "float32") -> float:
    import keras

    from mammo.models import build

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build("1.0.0.35", 2)
        model.compile(optimizer=keras.optimizers.Adam(0.001), loss=keras.losses.SparseCategoricalCrossentropy())
        timer = StepTimer(warmup)
        model.fit(data, steps_per_epoch=steps + warmup, epochs=1, verbose=0, callbacks=[timer.callback])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return timer.rate(steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--tiles", type=int, default=640)
    args = parser.parse_args()

    import tensorflow as tf

    from mammo.train import configure_tensorflow, make_dataset

    configure_tensorflow(1, 2)
    gpus = tf.config.list_physical_devices("GPU")
    device = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU only"
    print(f"device: {device}; TensorFlow {tf.__version__}; batch {BATCH}")
    with tempfile.TemporaryDirectory() as folder:
        paths = write_records(Path(folder), args.tiles)

        def pipeline():
            return make_dataset(paths, "binary", BATCH, contrast=1.1, training=True, flips=True, rotations=True,
                                abnormal_weight=6.0, seed=1).repeat()  # fmt: skip

        started, seen = time.perf_counter(), 0
        for images, _, _ in pipeline().take(args.steps * 3):
            seen += int(images.shape[0])
        input_rate = seen / (time.perf_counter() - started)
        print(f"reading + augmenting alone: {input_rate:.0f} img/s", flush=True)

        images = tf.constant(np.random.default_rng(1).integers(40, 200, (BATCH * 8, 299, 299, 1), dtype=np.uint8))
        labels = tf.constant(np.random.default_rng(2).integers(0, 2, BATCH * 8))
        in_memory = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).cache().repeat()
        bare = fit_rate(in_memory, args.steps, args.warmup)
        print(f"bare fit on in-memory tensors: {bare:.1f} img/s", flush=True)
        real = fit_rate(pipeline(), args.steps, args.warmup)
        print(f"fit through the real pipeline: {real:.1f} img/s", flush=True)
        bfloat16 = fit_rate(in_memory, args.steps, args.warmup, "mixed_bfloat16")
        print(f"bare fit, mixed_bfloat16: {bfloat16:.1f} img/s", flush=True)

        from mammo.models import build

        model = build("1.0.0.35", 2)
        evaluation = make_dataset(paths, "binary", BATCH).map(lambda image, *_: image)
        model.predict(evaluation.take(2), verbose=0)  # compile once
        started = time.perf_counter()
        predicted = model.predict(evaluation, verbose=0)
        inference = len(predicted) / (time.perf_counter() - started)

    figures = {
        "pipeline_ratio": (real / bare, f"real pipeline {real:.1f} img/s vs bare fit {bare:.1f} img/s"),
        "input_multiple": (input_rate / real, f"reading + augmenting alone {input_rate:.0f} img/s"),
        "bfloat16_speedup": (bfloat16 / bare, f"mixed_bfloat16 {bfloat16:.1f} img/s vs float32 {bare:.1f} img/s"),
        "inference": (inference, f"predict on TFRecords {inference:.0f} img/s"),
    }
    for name, (value, detail) in figures.items():
        verdict = "met" if value >= TARGETS[name] else "MISSED"
        print(f"{name}: {value:.2f} (target >= {TARGETS[name]}): {verdict}; {detail}")


if __name__ == "__main__":
    main()
