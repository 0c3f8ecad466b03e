"""Load a trained tile model and turn it into a batch predictor (used by evaluation and whole-scan analysis).

TensorFlow is imported inside the functions that run a model: the command line imports this module for every
command, and `mammo check` should not pay for TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mammo.tiles import TILE_SIZE


def load_tile_model(path: str | Path):
    """A Keras model of this pipeline: uint8 299x299x1 tiles in, class probabilities out; else a clear error."""
    import keras  # lazily: see the module's docstring

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        model = keras.models.load_model(path)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable Keras model ({err})") from None
    expected = (None, TILE_SIZE, TILE_SIZE, 1)
    if tuple(model.input_shape) != expected or len(model.output_shape) != 2 or model.output_shape[-1] < 2:
        raise ValueError(
            f"{path}: a tile model takes {expected} and gives class probabilities; "
            f"this one takes {model.input_shape} and gives {model.output_shape}"
        )
    return model


def check_probabilities(probabilities: np.ndarray, source) -> np.ndarray:
    """The model's output, if it is class probabilities (each row in 0..1, summing to 1); else a clear error."""
    rows = np.asarray(probabilities, dtype=np.float64)
    if rows.size and (rows.min() < -1e-6 or rows.max() > 1 + 1e-6 or np.abs(rows.sum(axis=1) - 1).max() > 1e-3):
        raise ValueError(
            f"{source}: the model's outputs are not class probabilities (values {rows.min():.3g}..{rows.max():.3g}, "
            f"row sums up to {rows.sum(axis=1).max():.3g}); a tile model ends in a softmax"
        )
    return probabilities


def configure_tensorflow(seed: int, threads: int) -> None:
    """Seeded, deterministic ops, bounded threads: same seed -> same weights on CPU (training) and same scores."""
    import keras  # lazily: see the module's docstring
    import tensorflow as tf  # lazily: see the module's docstring

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already started in this process: its thread pools are fixed
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def apply_contrast(image, factor: float):
    """The study's `adjust_contrast` on the uint8 image, clipped back to uint8."""
    import tensorflow as tf  # lazily: see the module's docstring

    if factor == 1.0:
        return image
    adjusted = tf.image.adjust_contrast(tf.cast(image, tf.float32), factor)
    return tf.cast(tf.clip_by_value(adjusted, 0.0, 255.0), tf.uint8)


def predictor(model, contrast: float = 1.0):
    """uint8 (n, 299, 299) -> class probabilities (n, classes), with the test-time contrast, compiled once."""
    import tensorflow as tf  # lazily: see the module's docstring

    @tf.function(reduce_retracing=True)
    def run(batch):
        return model(apply_contrast(batch[..., None], contrast), training=False)

    name = getattr(model, "name", "model")
    return lambda batch: check_probabilities(run(tf.convert_to_tensor(np.ascontiguousarray(batch))).numpy(), name)
