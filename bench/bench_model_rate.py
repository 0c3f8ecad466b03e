"""Training and inference rate of the registered models on in-memory tensors, with whichever Keras backend
is configured (KERAS_BACKEND: tensorflow here; jax or torch where a GPU machine has no TensorFlow).

This is the model's own rate on a device (no input pipeline): images per second over `--steps` timed batches
after `--warmup` untimed ones, float32 and mixed_bfloat16, batch 32 (the study's). Training is timed twice:
the bare model, and the model as training fits it, behind the flips-and-rotations layer on the same device.

Usage: .venv/bin/python bench/bench_model_rate.py [--models 1.0.0.35 vgg16_lite --steps 30 --warmup 5]
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


def rates(name: str, policy: str, steps: int, warmup: int) -> tuple[float, float, float]:
    """(bare training, training with on-device augmentation, inference) in images per second."""
    import keras

    from mammo.models import build
    from mammo.models.augmentation import with_augmentation

    keras.mixed_precision.set_global_policy(policy)
    try:
        keras.utils.set_random_seed(1)
        model = build(name, 2)
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
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    print(f"Keras backend {os.environ.get('KERAS_BACKEND', 'tensorflow')}; device {device_name()}; batch {BATCH}")
    for name in args.models:
        for policy in args.policies:
            training, augmented, inference = rates(name, policy, args.steps, args.warmup)
            print(
                f"{name} {policy}: training {training:.0f} img/s, with on-device flips and rotations "
                f"{augmented:.0f} img/s, inference {inference:.0f} img/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
