"""A random-weight Keras tile model of the pipeline's form for the tests of `mammo scan` and its engines: tiles
(n, 299, 299, 1) in, class probabilities out, one strided convolution between, so that a scan costs what the
command does around the model, not the study's 32 million weights (tests/test_models_*.py cover those)."""

from __future__ import annotations

from pathlib import Path

from mammo.tiles import TILE_SIZE


def save_stand_in_model(path: Path) -> Path:
    """Such a model (binary) saved as `path` (a .keras file; its folder is made)."""
    import keras

    tiles = keras.Input((TILE_SIZE, TILE_SIZE, 1))
    features = keras.layers.Conv2D(4, 3, strides=4, activation="relu")(tiles)
    probabilities = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    path.parent.mkdir(parents=True, exist_ok=True)
    keras.Model(tiles, probabilities).save(path)
    return path
