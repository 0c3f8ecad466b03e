"""Lighter models for the tests of what surrounds a model, so that they cost what the code around it does, not the
study's 32 million weights (tests/test_models_*.py, the tiny run and the architecture test cover those):

* `save_stand_in_model`: a random-weight Keras tile model of the pipeline's form for the tests of `mammo scan` and
  its engines: tiles (n, 299, 299, 1) in, class probabilities out, one strided convolution between;
* `LIGHT_MODEL`: the registered network that the tests of training, of the cross-validation on real films and of
  the other collections' recipes train: a tenth of the study model's weights, 1.8x its training rate in bfloat16
  on a CPU (BENCHMARKS.md).
"""

from __future__ import annotations

from pathlib import Path

from mammo.tiles import TILE_SIZE

LIGHT_MODEL = "resnet_small"


def save_stand_in_model(path: Path) -> Path:
    """Such a model (binary) saved as `path` (a .keras file; its folder is made)."""
    import keras

    tiles = keras.Input((TILE_SIZE, TILE_SIZE, 1))
    features = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(tiles)
    probabilities = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(tiles, probabilities).save(path)
    return path
