"""A small modern network beside the study's: a ResNet-18 layout (He et al. 2016, "Deep residual learning for image
recognition") at half its widths, about 2.8 million parameters, for the real-film comparison on the same folds.

The uint8 299x299x1 tile is scaled to [0, 1] inside the model, as the study's graphs do. Convolutions have no bias
(BatchNorm follows each), He-normal kernels; a block whose stride or width changes has a 1x1 projection on its
shortcut. Global average pooling, not flattening, leads to the softmax: the map is read the same wherever in the
tile the lesion lies.
"""

from __future__ import annotations

import keras
from keras import layers

from mammo.models import probabilities, register, tile_input
from mammo.models.lite import _uint8_input_scaled
from mammo.models.study import BN_EPSILON

RESNET_SMALL_STAGES = ((32, 1), (64, 2), (128, 2), (256, 2))  # (width, stride of its first block), two blocks each
RESNET_SMALL_STEM = 32
RESNET_SMALL_DROPOUT = 0.2


def _conv_bn(x, filters: int, kernel: int, strides: int, name: str, relu: bool = True):
    x = layers.Conv2D(
        filters, kernel, strides=strides, padding="same", use_bias=False, kernel_initializer="he_normal", name=f"{name}_conv"
    )(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x) if relu else x


def _basic_block(x, filters: int, strides: int, name: str):
    """Two 3x3 convolutions and the shortcut (projected where the shape changes), added before the last ReLU."""
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, f"{name}_project", relu=False)
    x = _conv_bn(x, filters, 3, strides, f"{name}_a")
    x = _conv_bn(x, filters, 3, 1, f"{name}_b", relu=False)
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([shortcut, x]))


@register("resnet_small")
def resnet_small(num_classes: int, standardise_tiles: bool = False, input_pool: int = 1, channels: int = 1) -> keras.Model:
    """299 -> 150 (7x7 stem, stride 2) -> 75 (3x3 max pool) -> 75, 38, 19, 10 (four stages of two basic blocks);
    `input_pool`, `standardise_tiles`: the scaled tile averaged, then standardised first (mammo.models.tile_input);
    `channels` 2: the tile with its surround channel (mammo.tiles.surround_view)."""
    inputs, x = _uint8_input_scaled(channels=channels)
    x = tile_input(x, standardise_tiles, input_pool)
    x = _conv_bn(x, RESNET_SMALL_STEM, 7, 2, "stem")
    x = layers.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)
    for stage, (filters, strides) in enumerate(RESNET_SMALL_STAGES, start=1):
        x = _basic_block(x, filters, strides, f"stage{stage}_1")
        x = _basic_block(x, filters, 1, f"stage{stage}_2")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(RESNET_SMALL_DROPOUT, name="pool_dropout")(x)
    return keras.Model(inputs, probabilities(x, num_classes, kernel_initializer="lecun_normal"), name="resnet_small")
