"""Training throughput benchmark of model 1.0.0.35, batch 32 (issue targets):

* the real training path (TFRecords, shuffling, contrast, loss weights in tf.data; flips and rotations in the
  fitted model, on the device) against a bare `model.fit` of the same model on in-memory tensors, in the same
  process: ratio at least 0.95 (the pipeline is never the bottleneck);
* reading + augmenting alone: at least 20x the training rate;
* mixed_bfloat16 training: at least 1.25x the float32 rate on CPUs with bfloat16 arithmetic (the CPU flags
  avx512_bf16 or amx_bf16; without them it is reported as not applicable and skipped unless --bfloat16);
* inference (the evaluation's predict on TFRecords): at least 140 images/s on a 2-core CPU.

It then times the real training path on each Keras backend (TensorFlow, JAX) and dtype policy (float32,
mixed_bfloat16) side by side: each in a process of its own (Keras takes its backend once per process), the
combinations in turn, `--repeats` times, medians; also the seconds of the warm-up steps, which hold JAX's compilation.

Each rate is images per second over `--steps` timed steps after `--warmup` untimed ones; bare and real fits
alternate `--repeats` times and the medians are compared, because a shared virtual machine's speed drifts.
To judge the targets, the script also prints the model's arithmetic per image and this machine's measured
float32 matrix-multiply rate: their quotient bounds what any software can reach here. On a GPU machine the
same script records the GPU's rates (its name is printed).

Usage: .venv/bin/python bench/bench_train.py [--steps 6 --warmup 2 --repeats 3 --tiles 320 --bfloat16]
       [--parts pipeline backends] [--backends tensorflow jax] [--policies float32 mixed_bfloat16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from bench_model_rate import device_name  # a sibling script: bench/ is on sys.path when run

BATCH = 32
TARGETS = {"pipeline_ratio": 0.95, "input_multiple": 20.0, "bfloat16_speedup": 1.25, "inference": 140.0}


def write_records(folder: Path, tiles: int) -> list[Path]:
    from mammo.records import write_shard

    rng = np.random.default_rng(0)
    images = rng.integers(40, 200, size=(tiles, 299, 299), dtype=np.uint8)
    codes = rng.choice([0, 0, 0, 0, 0, 1, 2, 3, 4], size=tiles)
    table = pd.DataFrame(
        {
            "tile_id": [f"t{i}" for i in range(tiles)],
            "patient_id": [f"p{i // 4}" for i in range(tiles)],
            "class_code": codes,
            "label_normal": (codes > 0).astype(int),
            "tile_index": range(tiles),
        }
    )
    paths = [folder / f"train-{shard}.tfrecord" for shard in range(2)]
    for shard, path in enumerate(paths):
        write_shard(table.iloc[shard::2], lambda row: images[int(row["tile_index"])], path)
    return paths


class StepTimer:
    """Wall time of the training steps after the warm-up ones, and of the warm-up ones (JAX compiles then). Keras
    reads every step's logs for a callback with `on_train_batch_end`, so each step has ended before the next is
    timed, as in training (whose callbacks read them too); JAX would otherwise run the warm-up on into the timing."""

    def __init__(self, warmup: int):
        import keras

        class Callback(keras.callbacks.Callback):
            def on_train_begin(inner, logs=None):
                self.began = time.perf_counter()

            def on_train_batch_end(inner, batch, logs=None):
                if batch == warmup - 1:
                    self.started = time.perf_counter()

            def on_train_end(inner, logs=None):
                self.ended = time.perf_counter()

        self.callback = Callback()

    def rate(self, steps: int) -> float:
        return steps * BATCH / (self.ended - self.started)

    @property
    def warmup_seconds(self) -> float:
        return self.started - self.began


def fit_timer(data, steps: int, warmup: int, policy: str = "float32", augmentation: bool = False) -> StepTimer:
    import keras

    from mammo.models import build
    from mammo.models.augmentation import with_augmentation

    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build("1.0.0.35", 2)
        if augmentation:
            model = with_augmentation(model, flips=True, rotations=True, seed=1)
        model.compile(optimizer=keras.optimizers.Adam(0.001), loss=keras.losses.SparseCategoricalCrossentropy())
        timer = StepTimer(warmup)
        model.fit(data, steps_per_epoch=steps + warmup, epochs=1, verbose=0, callbacks=[timer.callback])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return timer


def forward_flops(model) -> float:
    """Floating-point operations of one image's forward pass: 2 per multiply-add of convolutions and dense
    layers (the rest, BatchNorm, ReLU, pooling, is memory traffic rather than arithmetic)."""
    import keras

    multiply_adds = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            multiply_adds += int(np.prod(layer.output.shape[1:])) * int(np.prod(layer.kernel.shape[:3]))
        elif isinstance(layer, keras.layers.Dense):
            multiply_adds += int(np.prod(layer.kernel.shape))
    return 2.0 * multiply_adds


def matmul_flops_per_second(size: int = 2048, repeats: int = 5) -> float:
    """The best float32 matrix-multiply rate reached here, by TensorFlow or by NumPy's BLAS."""
    import tensorflow as tf

    tensor = tf.random.stateless_uniform((size, size), seed=(1, 2))
    array = tensor.numpy()
    best = float("inf")
    for multiply in (lambda: tf.matmul(tensor, tensor).numpy(), lambda: array @ array):
        multiply()
        for _ in range(repeats):
            started = time.perf_counter()
            multiply()
            best = min(best, time.perf_counter() - started)
    return 2.0 * size**3 / best


def real_path(paths: list[Path]):
    """The batches training reads: TFRecords, shuffle, contrast 1.1 and loss weights in tf.data, repeated."""
    from mammo.train import make_dataset

    return make_dataset(paths, "binary", BATCH, contrast=1.1, training=True, abnormal_weight=6.0, seed=1).repeat()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiles", type=int, default=320)
    parser.add_argument("--bfloat16", action="store_true", help="time mixed_bfloat16 even without CPU support")
    parser.add_argument("--parts", nargs="+", choices=("pipeline", "backends"), default=["pipeline", "backends"])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--worker", nargs=2, metavar=("BACKEND", "POLICY"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.warmup < 1:
        parser.error("--warmup: at least 1 (the timing starts when the last warm-up step has ended)")
    if args.worker:
        worker(*args.worker, args)
        return
    if "pipeline" in args.parts:
        pipeline_figures(args)
    if "backends" in args.parts:
        backend_figures(args)


def pipeline_figures(args) -> None:
    """The issue's targets on TensorFlow, in this process."""
    import tensorflow as tf

    from mammo.inference import configure_tensorflow
    from mammo.models import build
    from mammo.models.augmentation import RandomSquareSymmetry
    from mammo.train import bfloat16_arithmetic, make_dataset

    configure_tensorflow(1, 2)
    print(f"device: {device_name()}; batch {BATCH}")
    flops = forward_flops(build("1.0.0.35", 2))
    peak = matmul_flops_per_second()
    print(
        f"1.0.0.35: {flops / 1e9:.2f} GFLOP per image forward, about 3x that per training image; "
        f"float32 matmul here {peak / 1e9:.0f} GFLOP/s, so at most {peak / flops:.0f} img/s inference and "
        f"{peak / (3 * flops):.0f} img/s training",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as folder:
        paths = write_records(Path(folder), args.tiles)

        augment = RandomSquareSymmetry(seed=1)
        augment_on_device = tf.function(lambda images: augment(images, training=True))
        started, seen = time.perf_counter(), 0
        for images, _, _ in real_path(paths).take(args.steps * 3):
            seen += int(augment_on_device(images).shape[0])
        input_rate = seen / (time.perf_counter() - started)
        print(f"reading + augmenting alone: {input_rate:.0f} img/s", flush=True)

        images = tf.constant(np.random.default_rng(1).integers(40, 200, (BATCH * 8, 299, 299, 1), dtype=np.uint8))
        labels = tf.constant(np.random.default_rng(2).integers(0, 2, BATCH * 8))
        in_memory = tf.data.Dataset.from_tensor_slices((images, labels)).batch(BATCH).cache().repeat()
        bare, real = [], []
        for repeat in range(args.repeats):
            bare.append(fit_timer(in_memory, args.steps, args.warmup).rate(args.steps))
            real.append(fit_timer(real_path(paths), args.steps, args.warmup, augmentation=True).rate(args.steps))
            print(
                f"repeat {repeat + 1}: bare fit on in-memory tensors {bare[-1]:.1f} img/s, "
                f"fit through the real pipeline {real[-1]:.1f} img/s",
                flush=True,
            )
        bare, real = float(np.median(bare)), float(np.median(real))

        bfloat16 = None
        if bfloat16_arithmetic() or args.bfloat16:
            bfloat16 = fit_timer(in_memory, args.steps, args.warmup, "mixed_bfloat16").rate(args.steps)
            print(f"bare fit, mixed_bfloat16: {bfloat16:.1f} img/s", flush=True)

        model = build("1.0.0.35", 2)
        evaluation = make_dataset(paths, "binary", BATCH).map(lambda image, *_: image)
        model.predict(evaluation, verbose=0)  # the first pass also sets up kernels and memory: not timed
        passes = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            passes.append(len(model.predict(evaluation, verbose=0)) / (time.perf_counter() - started))
        print("inference passes: " + ", ".join(f"{rate:.1f}" for rate in passes) + " img/s", flush=True)
        inference = float(np.median(passes))

    figures = {
        "pipeline_ratio": (real / bare, f"real pipeline {real:.1f} img/s vs bare fit {bare:.1f} img/s (medians)"),
        "input_multiple": (input_rate / real, f"reading + augmenting alone {input_rate:.0f} img/s"),
        "inference": (inference, f"predict on TFRecords {inference:.0f} img/s (median), bound {peak / flops:.0f}"),
    }
    if bfloat16 is not None:
        figures["bfloat16_speedup"] = (bfloat16 / bare, f"mixed_bfloat16 {bfloat16:.1f} img/s vs float32 {bare:.1f} img/s")
    else:
        print("bfloat16_speedup: not applicable, this CPU has no bfloat16 arithmetic (no avx512_bf16 or amx_bf16 flag)")
    for name, (value, detail) in figures.items():
        verdict = "met" if value >= TARGETS[name] else "MISSED"
        print(f"{name}: {value:.2f} (target >= {TARGETS[name]}): {verdict}; {detail}")


def worker(backend: str, policy: str, args) -> None:
    """Print, as one line of JSON, the real path's training rate on one backend and policy (for backend_figures)."""
    from mammo.backend import use_keras_backend

    use_keras_backend(backend)  # before anything imports keras or tensorflow
    from mammo.inference import configure_tensorflow

    configure_tensorflow(1, 2, backend)
    with tempfile.TemporaryDirectory() as folder:
        timer = fit_timer(real_path(write_records(Path(folder), args.tiles)), args.steps, args.warmup, policy, augmentation=True)
    print(json.dumps({"device": device_name(), "rate": timer.rate(args.steps), "warmup_seconds": timer.warmup_seconds}))


def cpu_description() -> str:
    """The CPU's model name and the flags that decide its float32 and bfloat16 kernels, from /proc/cpuinfo."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    names = [line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")]
    flags = set(info.split())
    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")
    return f"{names[0] if names else 'unknown CPU'} x {len(names)}; flags {', '.join(f for f in wanted if f in flags) or 'none of ' + ', '.join(wanted)}"


def backend_figures(args) -> None:
    """The real path's training rate per Keras backend and policy, each in its own process, in turn `--repeats` times;
    medians, and each rate against TensorFlow float32 of the same round (the pairing keeps the ratio on a busy
    machine)."""
    combinations = [(backend, policy) for backend in args.backends for policy in args.policies]
    print(f"CPU: {cpu_description()}; load average {os.getloadavg()[0]:.2f} at the start", flush=True)
    rates, warmups, failed = {c: [] for c in combinations}, {c: [] for c in combinations}, {}
    for repeat in range(args.repeats):
        for backend, policy in combinations:
            if (backend, policy) in failed:
                continue
            command = [sys.executable, str(Path(__file__).resolve()), "--worker", backend, policy]
            command += ["--steps", str(args.steps), "--warmup", str(args.warmup), "--tiles", str(args.tiles)]
            run = subprocess.run(command, capture_output=True, text=True)
            if run.returncode != 0:
                failed[(backend, policy)] = (run.stderr.strip().splitlines() or ["no message"])[-1]
                print(f"{backend} {policy}: does not run here: {failed[(backend, policy)]}", flush=True)
                continue
            result = json.loads(run.stdout.strip().splitlines()[-1])
            rates[(backend, policy)].append(result["rate"])
            warmups[(backend, policy)].append(result["warmup_seconds"])
            print(
                f"repeat {repeat + 1}: {backend} {policy} ({result['device']}): {result['rate']:.2f} img/s, "
                f"warm-up {result['warmup_seconds']:.0f} s",
                flush=True,
            )
    reference = rates.get(("tensorflow", "float32"), [])
    print(f"training rate, the real path, batch {BATCH}, medians of {args.repeats} (load average {os.getloadavg()[0]:.2f} now):")
    for combination in combinations:
        if combination in failed:
            continue
        measured = rates[combination]
        paired = [rate / base for rate, base in zip(measured, reference)]
        against = f", {np.median(paired):.2f}x TensorFlow float32 (paired)" if paired else ""
        print(
            f"  {combination[0]} {combination[1]}: {np.median(measured):.2f} img/s "
            f"({', '.join(f'{rate:.2f}' for rate in measured)}){against}; warm-up {np.median(warmups[combination]):.0f} s"
        )


if __name__ == "__main__":
    main()
