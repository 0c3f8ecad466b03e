"""The study's 1.0.0.x ConvNets (the study's write-up and code): nine 3x3 convs with BatchNorm, three dense layers."""

from __future__ import annotations

import keras
from keras import layers, regularizers

from mammo.models import probabilities, register, tile_input
from mammo.tiles import TILE_SIZE

BN_EPSILON = 1e-8


def _conv(x, filters: int, conv_l2: float, name: str, strides: int = 1):
    # TF1 l2_regularizer(s) is s*sum(w^2)/2, so Keras l2(s/2).
    x = layers.Conv2D(
        filters,
        3,
        strides=strides,
        padding="same",
        use_bias=True,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.05),
        kernel_regularizer=regularizers.l2(conv_l2 / 2),
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=0.99, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def _dense(x, units: int, name: str):
    x = layers.Dense(units, kernel_initializer="he_normal", kernel_regularizer=regularizers.l2(0.0025 / 2), name=f"{name}_dense")(
        x
    )
    x = layers.BatchNormalization(momentum=0.9, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    x = layers.ReLU(name=f"{name}_relu")(x)
    return layers.Dropout(0.5, name=f"{name}_dropout")(x)


def study_convnet(
    num_classes: int,
    name: str,
    scale: float,
    offset: float,
    conv_l2: float,
    standardise_tiles: bool = False,
    input_pool: int = 1,
    channels: int = 1,
) -> keras.Model:
    """Input uint8 299x299x`channels` (the tile; a second channel: its surroundings, mammo.tiles.surround_view, or what
    bench/second_channel.py puts beside it),
    preprocessed as (x - offset) * scale inside the model, then averaged over `input_pool` pixels and standardised per
    tile where `standardise_tiles` (mammo.models.tile_input)."""
    inputs = keras.Input((TILE_SIZE, TILE_SIZE, channels), dtype="uint8", name="image")
    x = layers.Rescaling(scale, offset=-offset * scale, name="preprocess")(layers.Identity(dtype="float32")(inputs))
    x = tile_input(x, standardise_tiles, input_pool)
    # block 1: 299 -> 150 -> 75 (input_pool 2: 150 -> 75 -> 38, and every later map halved)
    x = _conv(x, 32, conv_l2, "block1a", strides=2)
    x = _conv(x, 32, conv_l2, "block1b")
    x = _conv(x, 32, conv_l2, "block1c")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="block1_pool")(x)
    x = layers.Dropout(0.1, name="block1_dropout")(x)
    # blocks 2-5: 75 -> 38 -> 19 -> 10 -> 5
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 1), (512, 1)], start=2):
        for index in range(convs):
            x = _conv(x, filters, conv_l2, f"block{block}{'ab'[index]}")
        x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block}_pool")(x)
        x = layers.Dropout(0.1, name=f"block{block}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.5, name="flatten_dropout")(x)
    x = _dense(x, 2048, "fc1")
    x = _dense(x, 2048, "fc2")
    outputs = probabilities(x, num_classes)
    return keras.Model(inputs, outputs, name=name)


@register("1.0.0.29")
def model_1_0_0_29(num_classes: int) -> keras.Model:
    """Raw 0-255 input."""
    return study_convnet(num_classes, "model_1.0.0.29", scale=1.0, offset=0.0, conv_l2=1e-5)


@register("1.0.0.35")
def model_1_0_0_35(num_classes: int, standardise_tiles: bool = False, input_pool: int = 1, channels: int = 1) -> keras.Model:
    """Input scaled to [0, 1] (x/255, not centred); `input_pool`: then averaged over that many pixels a side;
    `standardise_tiles`: then to zero mean, unit deviation per tile; `channels` 2: the tile with its surround channel
    (mammo.tiles.surround_view). The defaults are the study's network."""
    return study_convnet(
        num_classes,
        "model_1.0.0.35",
        scale=1 / 255,
        offset=0.0,
        conv_l2=1e-5,
        standardise_tiles=standardise_tiles,
        input_pool=input_pool,
        channels=channels,
    )


@register("1.0.0.46")
def model_1_0_0_46(num_classes: int) -> keras.Model:
    """Input (x - 104.1353)/255, conv L2 1e-4."""
    return study_convnet(num_classes, "model_1.0.0.46", scale=1 / 255, offset=104.1353, conv_l2=1e-4)
