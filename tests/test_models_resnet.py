"""The small modern network beside the study's (mammo.models.resnet): its layout, size, output and one training step."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammo.models import build, model_options
from mammo.models.resnet import RESNET_SMALL_STAGES, RESNET_SMALL_STEM


def resnet_small_parameters(num_classes: int) -> int:
    """Convolutions without bias, 4 BatchNorm numbers per filter: the 7x7 stem (1 -> 32), then per stage two basic
    blocks of two 3x3 convolutions, the first block's shortcut projected by a 1x1 convolution where the width or
    stride changes (stages 2-4); the softmax reads the pooled 256 channels."""
    total = 7 * 7 * 1 * RESNET_SMALL_STEM + 4 * RESNET_SMALL_STEM
    channels = RESNET_SMALL_STEM
    for filters, strides in RESNET_SMALL_STAGES:
        if strides != 1 or channels != filters:
            total += channels * filters + 4 * filters
        total += 9 * channels * filters + 4 * filters + 9 * filters * filters + 4 * filters  # block 1
        total += 2 * (9 * filters * filters + 4 * filters)  # block 2
        channels = filters
    return total + channels * num_classes + num_classes


@pytest.mark.parametrize("classes", [2, 5])
def test_resnet_small_has_the_layout_and_size_it_says(classes):
    model = build("resnet_small", classes)
    assert model.count_params() == resnet_small_parameters(classes)
    assert 2_500_000 < model.count_params() < 3_000_000  # a few million, against 1.0.0.35's 32 million
    assert model.input.dtype == "uint8" and model.output_shape == (None, classes)
    adds = [layer for layer in model.layers if isinstance(layer, keras.layers.Add)]
    projections = [layer for layer in model.layers if layer.name.endswith("_project_conv")]
    assert len(adds) == 8 and len(projections) == 3
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert not any(layer.use_bias for layer in convs)
    assert model.get_layer("stage4_2_out").output.shape[1:] == (10, 10, 256)
    assert model_options("resnet_small") == ["standardise_tiles", "input_pool", "channels"]
    standardised = build("resnet_small", classes, standardise_tiles=True)  # no weight added
    assert standardised.get_layer("tile_standardisation") and standardised.count_params() == model.count_params()


def test_resnet_small_gives_probabilities_and_learns():
    keras.utils.set_random_seed(0)
    model = build("resnet_small", 2)
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, (8, 299, 299, 1)).astype(np.uint8)
    labels = np.array([0, 1] * 4)
    tiles[labels == 1, 100:200, 100:200] = 255  # a bright square: something to learn
    probabilities = model.predict(tiles, verbose=0)
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1, atol=1e-6)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    losses = model.fit(tiles, labels, epochs=6, batch_size=8, verbose=0).history["loss"]
    assert losses[-1] < losses[0]
