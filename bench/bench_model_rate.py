"""Training and inference rate of the registered models on in-memory tensors, with whichever Keras backend
is configured (KERAS_BACKEND: tensorflow here; jax or torch where a GPU machine has no TensorFlow).

This is the model's own rate on a device (no input pipeline): images per second over `--steps` timed batches
after `--warmup` untimed ones, float32 and mixed_bfloat16, batch 32 (the study's). Training is timed twice:
the bare model, and the model as training fits it, behind the flips-and-rotations layer on the same device.

`--input-pools 1 2` times each model also with its tile averaged 2 x 2 inside it (the `input_pool` of a model entry;
models without the option are timed at 1 only).

Usage: .venv/bin/python bench/bench_model_rate.py [--models 1.0.0.35 vgg16_lite --input-pools 1 2 --steps 30 --warmup 5]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

BATCH = 32


def device_name() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}: {jax.devices()[0].device_kind}"
    if backend == "torch":
        import torch

        return f"torch {torch.__version__}: " + (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU")
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return f"tensorflow {tf.__version__}: " + (
        tf.config.experimental.get_device_details(gpus[0])["device_name"] if gpus else "CPU"
    )


def rates(name: str, policy: str, steps: int, warmup: int, input_pool: int = 1) -> tuple[float, float, float]:
    """(bare training, training with on-device augmentation, inference) in images per second."""
    import keras

    from mammo.models import build
    from mammo.models.augmentation import with_augmentation

    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(1)
        model = build(name, 2, **({"input_pool": input_pool} if input_pool > 1 else {}))
        rng = np.random.default_rng(0)
        images = rng.integers(40, 200, (BATCH, 299, 299, 1), dtype=np.uint8)
        labels = rng.integers(0, 2, BATCH)
        training = []
        for fitted in (model, with_augmentation(model, flips=True, rotations=True, seed=1)):
            fitted.compile(optimizer=keras.optimizers.Adam(0.001), loss=keras.losses.SparseCategoricalCrossentropy())
            for _ in range(warmup):
                fitted.train_on_batch(images, labels)
            started = time.perf_counter()
            for _ in range(steps):
                loss = fitted.train_on_batch(images, labels)
            float(np.asarray(loss))  # wait for the device
            training.append(steps * BATCH / (time.perf_counter() - started))
        for _ in range(warmup):
            model.predict_on_batch(images)
        started = time.perf_counter()
        for _ in range(steps):
            predicted = model.predict_on_batch(images)
        np.asarray(predicted)
        inference = steps * BATCH / (time.perf_counter() - started)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return training[0], training[1], inference


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["1.0.0.35"])
    parser.add_argument("--policies", nargs="+", default=["float32", "mixed_bfloat16"])
    parser.add_argument("--input-pools", nargs="+", type=int, default=[1])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    print(f"Keras backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}; device {device_name()}; batch {BATCH}")
    from mammo.models import model_options

    for name in args.models:
        pools = args.input_pools if "input_pool" in model_options(name) else [1]
        for policy in args.policies:
            for input_pool in pools:
                training, augmented, inference = rates(name, policy, args.steps, args.warmup, input_pool)
                print(
                    f"{name}{f' input_pool {input_pool}' if input_pool > 1 else ''} {policy}: training {training:.0f} "
                    f"img/s, with on-device flips and rotations {augmented:.0f} img/s, inference {inference:.0f} img/s",
                    flush=True,
                )


if __name__ == "__main__":
    main()
