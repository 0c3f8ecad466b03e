"""The study's benchmark graphs: VGG-16 lite and Inception-v4 lite (the study's write-up and code).

Both take the uint8 299x299x1 tile and scale it to [0, 1] (x/255, not centred) inside the model, as
the study's final versions of these graphs do. Every conv has a bias and is followed by BatchNorm
(momentum 0.99, epsilon 1e-8) and ReLU, kernels drawn from a truncated normal (stddev 0.05), with no
conv L2 penalty. The logits use a fan-in variance-scaling (LeCun normal) init.
"""

from __future__ import annotations

import keras
from keras import layers

from mammo.models import probabilities, register
from mammo.models.study import BN_EPSILON, _dense
from mammo.tiles import TILE_SIZE

# VGG-16 lite: (filters of each conv) per block; the first conv of block 1 has stride 2.
# Write-up: VGG-16 filters (64-128-256-512-512); code, followed here: 64-96-128-256-384.
VGG16_LITE_BLOCKS = ((64, 64), (96, 96), (128, 128), (256, 256, 256), (384, 384, 384))
VGG16_LITE_DENSE = (1024, 512)

# Inception-v4 lite reduction A filters (k, l, m, n) as the study's code passes them.
REDUCTION_A = {"k": 96, "l": 128, "m": 128, "n": 192}
INCEPTION_BLOCKS = {"a": 3, "b": 4, "c": 2}  # write-up: only "filters halved"; code also drops blocks (v4: 4/7/3)
INCEPTION_DROPOUT = 0.2


def _uint8_input_scaled(scale: float = 1 / 255, channels: int = 1):
    inputs = keras.Input((TILE_SIZE, TILE_SIZE, channels), dtype="uint8", name="image")
    x = layers.Identity(dtype="float32", name="to_float")(inputs)
    return inputs, layers.Rescaling(scale, name="preprocess")(x)


def _conv(x, filters: int, kernel, name: str, strides: int = 1, padding: str = "same"):
    x = layers.Conv2D(
        filters,
        kernel,
        strides=strides,
        padding=padding,
        use_bias=True,
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.05),
        name=f"{name}_conv",
    )(x)
    x = layers.BatchNormalization(momentum=0.99, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@register("vgg16_lite")
def vgg16_lite(num_classes: int) -> keras.Model:
    """VGG-16 lite: 13 convs in five blocks (299 -> 150 by the first conv, then 75, 38, 19, 10, 5)."""
    inputs, x = _uint8_input_scaled()
    for block, filters in enumerate(VGG16_LITE_BLOCKS, start=1):
        for index, width in enumerate(filters):
            strides = 2 if (block, index) == (1, 0) else 1
            x = _conv(x, width, 3, f"block{block}{'abc'[index]}", strides=strides)
        x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dropout(0.5, name="flatten_dropout")(x)
    # dense (He init, L2 0.0025), BN (momentum 0.9), ReLU, dropout 0.5: the code does this for both
    for index, units in enumerate(VGG16_LITE_DENSE, start=1):
        x = _dense(x, units, f"fc{index}")
    return keras.Model(inputs, probabilities(x, num_classes, kernel_initializer="lecun_normal"), name="vgg16_lite")


def _stem(x):
    """299x299x1 -> 35x35x256."""
    x = _conv(x, 32, 3, "stem_1", strides=2, padding="valid")  # 149
    x = _conv(x, 32, 3, "stem_2", padding="valid")  # 147
    x = _conv(x, 64, 3, "stem_3")  # 147
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_pool1")(x)  # 73
    conv = _conv(x, 32, 3, "stem_4", strides=2, padding="valid")
    x = layers.Concatenate(name="stem_concat1")([pool, conv])  # 73x73x96
    left = _conv(x, 48, 1, "stem_left_1")
    left = _conv(left, 64, 3, "stem_left_2", padding="valid")  # 71
    right = _conv(x, 48, 1, "stem_right_1")
    right = _conv(right, 64, (7, 1), "stem_right_2")
    right = _conv(right, 64, (1, 7), "stem_right_3")
    right = _conv(right, 64, 3, "stem_right_4", padding="valid")  # 71
    x = layers.Concatenate(name="stem_concat2")([left, right])  # 71x71x128
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name="stem_pool2")(x)  # 35
    conv = _conv(x, 128, 3, "stem_5", strides=2, padding="valid")
    return layers.Concatenate(name="stem_concat3")([pool, conv])  # 35x35x256


def _pool_branch(x, filters: int, name: str):
    x = layers.AveragePooling2D(2, strides=1, padding="same", name=f"{name}_pool")(x)
    return _conv(x, filters, 1, f"{name}_1")


def _chain(x, convs, name: str):
    for index, (filters, kernel) in enumerate(convs, start=1):
        x = _conv(x, filters, kernel, f"{name}_{index}")
    return x


def _block_a(x, name: str):
    """35x35 -> 35x35x240."""
    branches = [
        _pool_branch(x, 48, f"{name}_b1"),
        _chain(x, [(64, 1)], f"{name}_b2"),
        _chain(x, [(48, 1), (64, 3)], f"{name}_b3"),
        _chain(x, [(48, 1), (64, 3), (64, 3)], f"{name}_b4"),
    ]
    return layers.Concatenate(name=f"{name}_concat")(branches)


def _reduction_a(x, k: int, l: int, m: int, n: int, name: str = "reduction_a"):  # noqa: E741
    """35x35xC -> 17x17x(C + n + m)."""
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_b1_pool")(x)
    conv = _conv(x, n, 3, f"{name}_b2_1", strides=2, padding="valid")
    chain = _chain(x, [(k, 1), (l, 3)], f"{name}_b3")
    chain = _conv(chain, m, 3, f"{name}_b3_3", strides=2, padding="valid")
    return layers.Concatenate(name=f"{name}_concat")([pool, conv, chain])


def _block_b(x, name: str):
    """17x17 -> 17x17x608."""
    branches = [
        _pool_branch(x, 96, f"{name}_b1"),
        _chain(x, [(128, 1)], f"{name}_b2"),
        _chain(x, [(96, 1), (128, (1, 7)), (192, (7, 1))], f"{name}_b3"),
        _chain(x, [(96, 1), (96, (1, 7)), (128, (7, 1)), (128, (1, 7)), (192, (7, 1))], f"{name}_b4"),
    ]
    return layers.Concatenate(name=f"{name}_concat")(branches)


def _reduction_b(x, name: str = "reduction_b"):
    """17x17xC -> 8x8x(C + 96 + 192)."""
    pool = layers.MaxPooling2D(3, strides=2, padding="valid", name=f"{name}_b1_pool")(x)
    conv = _conv(_conv(x, 96, 1, f"{name}_b2_1"), 96, 3, f"{name}_b2_2", strides=2, padding="valid")
    chain = _chain(x, [(128, 1), (128, (1, 7)), (192, (7, 1))], f"{name}_b3")
    chain = _conv(chain, 192, 3, f"{name}_b3_4", strides=2, padding="valid")
    return layers.Concatenate(name=f"{name}_concat")([pool, conv, chain])


def _block_c(x, name: str):
    """8x8 -> 8x8x768 (six 128-filter outputs)."""
    b3 = _conv(x, 192, 1, f"{name}_b3_1")
    b4 = _chain(x, [(192, 1), (256, (1, 3)), (256, (3, 1))], f"{name}_b4")
    branches = [
        _pool_branch(x, 128, f"{name}_b1"),
        _chain(x, [(128, 1)], f"{name}_b2"),
        _conv(b3, 128, (1, 3), f"{name}_b3_2a"),
        _conv(b3, 128, (3, 1), f"{name}_b3_2b"),
        _conv(b4, 128, (1, 3), f"{name}_b4_4a"),
        _conv(b4, 128, (3, 1), f"{name}_b4_4b"),
    ]
    return layers.Concatenate(name=f"{name}_concat")(branches)


@register("inception_v4_lite")
def inception_v4_lite(num_classes: int) -> keras.Model:
    """Inception-v4 with about half the filters and fewer blocks (3 A, 4 B, 2 C), as the study's code."""
    inputs, x = _uint8_input_scaled()
    x = _stem(x)
    for index in range(1, INCEPTION_BLOCKS["a"] + 1):
        x = _block_a(x, f"block_a{index}")
    x = _reduction_a(x, **REDUCTION_A)
    for index in range(1, INCEPTION_BLOCKS["b"] + 1):
        x = _block_b(x, f"block_b{index}")
    x = _reduction_b(x)
    for index in range(1, INCEPTION_BLOCKS["c"] + 1):
        x = _block_c(x, f"block_c{index}")
    # the write-up says flatten + dense layers; the code pools 8x8 and goes straight to the logits
    x = layers.AveragePooling2D(8, strides=8, padding="same", name="global_pool")(x)
    x = layers.Dropout(INCEPTION_DROPOUT, name="global_pool_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, probabilities(x, num_classes, kernel_initializer="lecun_normal"), name="inception_v4_lite")
