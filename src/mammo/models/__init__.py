"""Model registry: small functions returning `keras.Model`, registered by the study's names."""

from __future__ import annotations

import importlib
import inspect
from typing import Callable

MODELS: dict[str, Callable] = {}

# modules whose builders register themselves on import
BUILDER_MODULES = ("mammo.models.study", "mammo.models.lite", "mammo.models.transfer", "mammo.models.resnet")


def register(name: str):
    def decorator(builder):
        MODELS[name] = builder
        return builder

    return decorator


def probabilities(x, num_classes: int, **dense_options):
    """The output layer of every model: softmax over the classes, kept in float32 under mixed precision so
    that saved models give float32 probabilities with full resolution for thresholds, ROC and calibration."""
    import keras  # TensorFlow loads with the first model built: the registry's names are read without it

    return keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="probabilities", **dense_options)(x)


# floor under a tile's intensity variance at per-tile standardisation (intensities in [0, 1]): a tile of one grey
# level is not blown up into its noise, one whose standard deviation is below about 8 grey levels is damped
TILE_VARIANCE_FLOOR = (8 / 255) ** 2


def standardised(x):
    """Each tile to zero mean and unit standard deviation over its own pixels, computed in float32 (no weights): the
    network sees how a region stands out from the tissue around it, not how dense the breast is (on real films the
    strongest windows of normal films follow breast density). `standardise_tiles` of a model entry."""
    import keras

    return keras.layers.LayerNormalization(
        axis=(1, 2, 3), center=False, scale=False, epsilon=TILE_VARIANCE_FLOOR, dtype="float32", name="tile_standardisation"
    )(x)


def tile_input(x, standardise_tiles: bool, input_pool: int):
    """The scaled tile as the first convolution reads it: averaged over `input_pool` x `input_pool` pixels (1: as it
    is), then standardised per tile where `standardise_tiles`. A mini-MIAS tile at the study's 2.58x is its film
    upscaled, 116 film pixels drawn on 299: averaging 2 x 2 leaves 150, still more than the film holds, for a quarter
    of every convolution's work. `input_pool` and `standardise_tiles` of a model entry."""
    import keras

    if input_pool > 1:
        x = keras.layers.AveragePooling2D(input_pool, padding="same", name="input_pool")(x)
    return standardised(x) if standardise_tiles else x


def load_builders() -> dict[str, Callable]:
    """Import every builder module so that all models are registered; returns the registry."""
    for module in BUILDER_MODULES:
        importlib.import_module(module)
    return MODELS


def model_options(name: str) -> list[str]:
    """The keyword options a registered model's builder accepts besides `num_classes`."""
    parameters = inspect.signature(load_builders()[name]).parameters
    return [
        key
        for key, parameter in parameters.items()
        if key != "num_classes" and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    ]


def build(name: str, num_classes: int, **options):
    """Build a registered model for `num_classes` outputs (softmax probabilities).

    `options` go to the model's builder; a model refuses options it does not take (ValueError),
    e.g. only the transfer models take `weights` (path of a local backbone `.weights.h5` file).
    """
    load_builders()
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    accepted = model_options(name)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"model {name!r} does not take option(s) {unknown}; it takes {accepted if accepted else 'no options'}")
    return MODELS[name](num_classes, **options)
