"""The study's 1.0.0.x ConvNets (the study's write-up), built but not trained."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammo.models import MODELS, build
from mammo.models.study import study_convnet

CONV_FILTERS = [32, 32, 32, 64, 64, 128, 128, 256, 512]
POOLS = {"block1_pool": 75, "block2_pool": 38, "block3_pool": 19, "block4_pool": 10, "block5_pool": 5}


@pytest.fixture(scope="module")
def binary():
    return build("1.0.0.35", 2)


@pytest.fixture(scope="module")
def five_class():
    return build("1.0.0.35", 5)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def expected_parameters(num_classes: int, last_map: int = 5) -> int:
    """Weights + biases of convs and dense layers, 4 per channel for BatchNorm (incl. moving stats); the last
    convolution's map `last_map` pixels a side."""
    total, channels = 0, 1
    for filters in CONV_FILTERS:
        total += 3 * 3 * channels * filters + filters + 4 * filters
        channels = filters
    flat = last_map * last_map * 512
    total += flat * 2048 + 2048 + 4 * 2048
    total += 2048 * 2048 + 2048 + 4 * 2048
    total += 2048 * num_classes + num_classes
    return total


@pytest.mark.parametrize("fixture, classes", [("binary", 2), ("five_class", 5)])
def test_input_and_output(request, fixture, classes):
    model = request.getfixturevalue(fixture)
    assert tuple(model.input.shape) == (None, 299, 299, 1)
    assert model.input.dtype == "uint8"
    assert tuple(model.output.shape) == (None, classes)
    assert model.name == "model_1.0.0.35"
    assert model.get_layer("probabilities").activation is keras.activations.softmax


def test_predict_gives_probabilities(binary):
    images = np.random.default_rng(0).integers(0, 256, (2, 299, 299, 1)).astype(np.uint8)
    probabilities = np.asarray(binary(images, training=False))
    assert probabilities.shape == (2, 2)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


def test_conv_layers(binary):
    convs = _layers(binary, keras.layers.Conv2D)
    assert len(convs) == 9
    assert [c.filters for c in convs] == CONV_FILTERS
    assert [tuple(c.strides) for c in convs] == [(2, 2)] + [(1, 1)] * 8
    for conv in convs:
        assert tuple(conv.kernel_size) == (3, 3)
        assert conv.padding == "same"
        assert conv.use_bias
        assert conv.kernel_regularizer.get_config()["l2"] == pytest.approx(1e-5 / 2)
        initializer = conv.kernel_initializer
        assert isinstance(initializer, keras.initializers.TruncatedNormal)
        assert initializer.get_config()["stddev"] == pytest.approx(0.05)


def test_dense_layers(binary, five_class):
    for model, classes in ((binary, 2), (five_class, 5)):
        dense = _layers(model, keras.layers.Dense)
        assert [d.units for d in dense] == [2048, 2048, classes]
    for name in ("fc1_dense", "fc2_dense"):
        layer = binary.get_layer(name)
        assert layer.kernel_regularizer.get_config()["l2"] == pytest.approx(0.0025 / 2)
        assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)


def test_batch_normalization_per_spec(binary):
    norms = _layers(binary, keras.layers.BatchNormalization)
    assert len(norms) == 9 + 2
    for layer in norms:
        assert layer.epsilon == pytest.approx(1e-8)
        expected = 0.9 if layer.name.startswith("fc") else 0.99
        assert layer.momentum == pytest.approx(expected), layer.name
    # every conv is followed by BN and then ReLU
    names = [layer.name for layer in binary.layers]
    for conv in _layers(binary, keras.layers.Conv2D):
        position = names.index(conv.name)
        assert isinstance(binary.layers[position + 1], keras.layers.BatchNormalization)
        assert isinstance(binary.layers[position + 2], keras.layers.ReLU)


def test_dropout_rates(binary):
    rates = {layer.name: layer.rate for layer in _layers(binary, keras.layers.Dropout)}
    assert rates == {
        **{f"block{b}_dropout": 0.1 for b in range(1, 6)},
        "flatten_dropout": 0.5,
        "fc1_dropout": 0.5,
        "fc2_dropout": 0.5,
    }


def test_feature_map_sizes(binary):
    for name, size in POOLS.items():
        shape = tuple(binary.get_layer(name).output.shape)
        assert shape[1:3] == (size, size), name
    assert tuple(binary.get_layer("block1c_relu").output.shape)[1:] == (150, 150, 32)
    assert tuple(binary.get_layer("block5_pool").output.shape)[1:] == (5, 5, 512)
    pool1 = binary.get_layer("block1_pool")
    assert tuple(pool1.pool_size) == (3, 3) and tuple(pool1.strides) == (2, 2) and pool1.padding == "same"
    for block in range(2, 6):
        pool = binary.get_layer(f"block{block}_pool")
        assert tuple(pool.pool_size) == (2, 2) and tuple(pool.strides) == (2, 2) and pool.padding == "same"
    assert tuple(binary.get_layer("flatten").output.shape) == (None, 12800)


def test_parameter_count(binary, five_class):
    count = binary.count_params()
    print(f"model 1.0.0.35 (2 classes): {count:,} parameters; 5 classes: {five_class.count_params():,}")
    assert count == expected_parameters(2) == 32_209_282
    assert five_class.count_params() == expected_parameters(5) == 32_209_282 + 3 * 2049
    trainable = sum(int(np.prod(w.shape)) for w in binary.trainable_weights)
    assert count - trainable == 2 * (32 * 3 + 64 * 2 + 128 * 2 + 256 + 512 + 2048 * 2), "BN moving statistics"


def _preprocess(name):
    model = build(name, 2)
    layer = keras.Model(model.input, model.get_layer("preprocess").output)
    image = np.zeros((1, 299, 299, 1), np.uint8)
    image[0, 0, :5, 0] = [0, 1, 104, 200, 255]
    return np.asarray(layer(image))[0, 0, :5, 0], model


def test_preprocessing_differs_between_models():
    raw, model_29 = _preprocess("1.0.0.29")
    scaled, _ = _preprocess("1.0.0.35")
    centred, model_46 = _preprocess("1.0.0.46")
    values = np.array([0, 1, 104, 200, 255], np.float64)
    assert raw.dtype == np.float32
    np.testing.assert_allclose(raw, values, atol=1e-5)  # raw 0-255
    np.testing.assert_allclose(scaled, values / 255, atol=1e-6)  # [0, 1], not centred
    np.testing.assert_allclose(centred, (values - 104.1353) / 255, atol=1e-6)
    assert model_29.name == "model_1.0.0.29" and model_46.name == "model_1.0.0.46"
    # 1.0.0.46: conv L2 1e-4; the others 1e-5
    assert _layers(model_46, keras.layers.Conv2D)[0].kernel_regularizer.get_config()["l2"] == pytest.approx(5e-5)
    assert _layers(model_29, keras.layers.Conv2D)[0].kernel_regularizer.get_config()["l2"] == pytest.approx(5e-6)
    assert model_29.count_params() == model_46.count_params() == expected_parameters(2)


def test_registry():
    import mammo.models.study  # noqa: F401  (registers the study's models)

    assert {"1.0.0.29", "1.0.0.35", "1.0.0.46"} <= set(MODELS)


def test_unknown_model_raises_key_error_listing_names():
    with pytest.raises(KeyError) as info:
        build("2.0.0.1", 2)
    message = str(info.value)
    assert "2.0.0.1" in message
    for name in ("1.0.0.29", "1.0.0.35", "1.0.0.46"):
        assert name in message


def test_standardised_tiles_are_read_by_their_contrast_not_their_brightness():
    """With standardise_tiles the network sees each tile at zero mean and unit deviation: the same tile brighter by 60
    grey levels (denser tissue) gets the same probabilities, which the plain model does not give; a flat tile stays
    flat instead of being blown up into noise; no weight is added."""
    rng = np.random.default_rng(5)
    tile = rng.normal(100, 20, (1, 299, 299, 1)).clip(0, 180).astype(np.uint8)
    brighter = tile + np.uint8(60)
    keras.utils.set_random_seed(7)
    standardised = build("1.0.0.35", 2, standardise_tiles=True)
    keras.utils.set_random_seed(7)
    plain = build("1.0.0.35", 2)
    np.testing.assert_allclose(standardised.predict(brighter, verbose=0), standardised.predict(tile, verbose=0), atol=1e-5)
    assert np.abs(plain.predict(brighter, verbose=0) - plain.predict(tile, verbose=0)).max() > 1e-3
    assert standardised.count_params() == plain.count_params() == expected_parameters(2)
    preprocess = keras.Model(standardised.input, standardised.get_layer("tile_standardisation").output)
    seen = np.asarray(preprocess(tile))
    assert abs(seen.mean()) < 1e-4 and seen.std() == pytest.approx(20 / np.sqrt(20**2 + 8**2), abs=0.02)
    flat = np.asarray(preprocess(np.full((1, 299, 299, 1), 90, np.uint8)))
    assert np.abs(flat).max() < 1e-4


def test_the_tile_averaged_inside_the_model_keeps_its_pixels_means_and_quarters_every_map():
    """input_pool 2: the scaled tile averaged over 2 x 2 pixels (the odd last row and column over the tile's own
    pixels only, as the film's edge has nothing beyond it), so 150 pixels a side reach block 1 and every map is half
    as wide; the network is the study's otherwise, with a smaller first dense layer (3 x 3 x 512 inputs)."""
    tile = np.random.default_rng(2).integers(0, 256, (1, 299, 299, 1), dtype=np.uint8)
    pooled = build("1.0.0.35", 2, input_pool=2)
    seen = np.asarray(keras.Model(pooled.input, pooled.get_layer("input_pool").output)(tile))[0, ..., 0]
    edge_padded = np.pad(tile[0, ..., 0] / 255, ((0, 1), (0, 1)), mode="edge")  # same mean as the tile's own pixels
    expected = edge_padded.reshape(150, 2, 150, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(seen, expected, atol=1e-6)
    assert tuple(pooled.get_layer("block1c_relu").output.shape)[1:] == (75, 75, 32)
    for name, size in POOLS.items():
        assert tuple(pooled.get_layer(name).output.shape)[1:3] == ((size + 1) // 2,) * 2, name
    assert pooled.count_params() == expected_parameters(2, last_map=3) == 15_432_066
    assert "input_pool" not in [layer.name for layer in build("1.0.0.35", 2).layers]  # 1: the study's network


def test_a_second_input_channel_reaches_the_first_convolution_and_changes_the_output():
    """channels 2 (bench/second_channel.py: the tile and the other breast's matching place, or its wider context): the
    input is 299 x 299 x 2 and the first convolution reads both channels, so the second one changes what comes out; only
    that convolution gains weights (3 x 3 x 32 more)."""
    keras.utils.set_random_seed(5)
    two = study_convnet(2, "model_1.0.0.35", scale=1 / 255, offset=0.0, conv_l2=1e-5, input_pool=2, channels=2)
    assert tuple(two.input.shape)[1:] == (299, 299, 2)
    assert tuple(two.get_layer("block1a_conv").kernel.shape) == (3, 3, 2, 32)
    assert two.count_params() == build("1.0.0.35", 2, input_pool=2).count_params() + 3 * 3 * 32
    tile = np.random.default_rng(3).integers(0, 256, (1, 299, 299, 1), dtype=np.uint8)
    beside = [np.concatenate([tile, np.full_like(tile, level)], axis=-1) for level in (0, 200)]
    first, second = (np.asarray(two(images, training=False)) for images in beside)
    assert not np.allclose(first, second)
