"""The study's benchmark graphs (VGG-16 lite, Inception-v4 lite) and transfer baselines, built but not trained."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mammo.models import MODELS, build, load_builders, model_options

NEW_MODELS = ("vgg16_lite", "inception_v4_lite", "vgg19_transfer", "inception_v3_transfer")
TRANSFER = {"vgg19_transfer": ("VGG19", "vgg19", 512), "inception_v3_transfer": ("InceptionV3", "inception_v3", 2048)}

VGG16_LITE_FILTERS = [64, 64, 96, 96, 128, 128, 256, 256, 256, 384, 384, 384]


@pytest.fixture(scope="module")
def models():
    """Every new model for 2 and 5 classes, built once."""
    return {(name, classes): build(name, classes) for name in NEW_MODELS for classes in (2, 5)}


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).integers(0, 256, (2, 299, 299, 1)).astype(np.uint8)


def _layers(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def _conv_params(channels_in: int, filters: int, kernel=(3, 3)) -> int:
    """Kernel + bias, and 4 BatchNorm numbers per filter (gamma, beta, moving mean and variance)."""
    return kernel[0] * kernel[1] * channels_in * filters + filters + 4 * filters


def vgg16_lite_parameters(num_classes: int) -> int:
    """Twelve 3x3 convs (64 s2, 64 | 96, 96 | 128, 128 | 256 x3 | 384 x3), each with bias and BN.

    Each conv has 9*in*out kernel weights, `out` biases and 4*out BatchNorm numbers (gamma, beta,
    moving mean and variance): 5,459,712 for the twelve. Five 2x2/2 SAME pools take the 150x150 map
    of the stride-2 first conv to 75, 38, 19, 10, 5, so the flatten has 5*5*384 = 9,600 units.
    fc1: 9,600*1024 + 1024 + 4*1024 = 9,835,520; fc2: 1024*512 + 512 + 4*512 = 526,848; logits
    512*classes + classes (1,026 for two). Total for two classes: 15,823,106.
    """
    total, channels = 0, 1
    for filters in VGG16_LITE_FILTERS:
        total += _conv_params(channels, filters)
        channels = filters
    units_in = 5 * 5 * 384
    for units in (1024, 512):
        total += units_in * units + units + 4 * units
        units_in = units
    return total + units_in * num_classes + num_classes


def inception_v4_lite_parameters(num_classes: int) -> int:
    """Every conv (channels in, filters, kernel) of the study's Inception-v4 lite, with bias and BN."""
    convs = [  # stem: 299x299x1 -> 35x35x256
        (1, 32, (3, 3)),
        (32, 32, (3, 3)),
        (32, 64, (3, 3)),
        (64, 32, (3, 3)),
        (96, 48, (1, 1)),
        (48, 64, (3, 3)),
        (96, 48, (1, 1)),
        (48, 64, (7, 1)),
        (64, 64, (1, 7)),
        (64, 64, (3, 3)),
        (128, 128, (3, 3)),
    ]
    for c in (256, 240, 240):  # block A -> 240
        convs += [
            (c, 48, (1, 1)),
            (c, 64, (1, 1)),
            (c, 48, (1, 1)),
            (48, 64, (3, 3)),
            (c, 48, (1, 1)),
            (48, 64, (3, 3)),
            (64, 64, (3, 3)),
        ]
    # reduction A (k=96, l=128, m=128, n=192): 240 + 192 + 128 = 560
    convs += [(240, 192, (3, 3)), (240, 96, (1, 1)), (96, 128, (3, 3)), (128, 128, (3, 3))]
    for c in (560, 608, 608, 608):  # block B -> 96 + 128 + 192 + 192 = 608
        convs += [
            (c, 96, (1, 1)),
            (c, 128, (1, 1)),
            (c, 96, (1, 1)),
            (96, 128, (1, 7)),
            (128, 192, (7, 1)),
            (c, 96, (1, 1)),
            (96, 96, (1, 7)),
            (96, 128, (7, 1)),
            (128, 128, (1, 7)),
            (128, 192, (7, 1)),
        ]
    # reduction B: 608 + 96 + 192 = 896
    convs += [(608, 96, (1, 1)), (96, 96, (3, 3)), (608, 128, (1, 1)), (128, 128, (1, 7)), (128, 192, (7, 1)), (192, 192, (3, 3))]
    for c in (896, 768):  # block C -> 6 x 128 = 768
        convs += [
            (c, 128, (1, 1)),
            (c, 128, (1, 1)),
            (c, 192, (1, 1)),
            (192, 128, (1, 3)),
            (192, 128, (3, 1)),
            (c, 192, (1, 1)),
            (192, 256, (1, 3)),
            (256, 256, (3, 1)),
            (256, 128, (1, 3)),
            (256, 128, (3, 1)),
        ]
    assert len(convs) == 11 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 10 == 102
    return sum(_conv_params(*conv) for conv in convs) + 768 * num_classes + num_classes


def _submodel_output(model, layer_name, images, training=False):
    return np.asarray(keras.Model(model.input, model.get_layer(layer_name).output)(images, training=training))


# ---------------------------------------------------------------- all new models


def test_registry_and_options():
    registered = load_builders()
    assert set(NEW_MODELS) | {"1.0.0.29", "1.0.0.35", "1.0.0.46"} <= set(registered) == set(MODELS)
    for name in ("vgg16_lite", "inception_v4_lite", "1.0.0.29", "1.0.0.46"):
        assert model_options(name) == []
    for name in ("1.0.0.35", "resnet_small"):  # the real-data recipe's models
        assert model_options(name) == ["standardise_tiles", "input_pool", "channels"]
    for name in TRANSFER:
        assert model_options(name) == ["weights"]


@pytest.mark.parametrize("name", NEW_MODELS)
@pytest.mark.parametrize("classes", [2, 5])
def test_input_and_output(models, name, classes):
    model = models[name, classes]
    assert model.name == name
    assert tuple(model.input.shape) == (None, 299, 299, 1)
    assert model.input.dtype == "uint8" and model.inputs[0].name == "image"
    assert tuple(model.output.shape) == (None, classes)
    assert model.get_layer("probabilities").activation is keras.activations.softmax
    assert model.get_layer("probabilities").units == classes


@pytest.mark.parametrize("name", NEW_MODELS)
def test_predict_gives_probabilities(models, images, name):
    probabilities = np.asarray(models[name, 5](images, training=False))
    assert probabilities.shape == (2, 5)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert (probabilities >= 0).all()


@pytest.mark.parametrize("name", NEW_MODELS)
def test_save_and_load_round_trip(models, images, tmp_path, name):
    model = models[name, 2]
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.name == name
    assert [layer.name for layer in loaded.layers] == [layer.name for layer in model.layers]
    assert loaded.count_params() == model.count_params()
    assert len(loaded.trainable_weights) == len(model.trainable_weights)
    np.testing.assert_allclose(np.asarray(loaded(images, training=False)), np.asarray(model(images, training=False)), atol=1e-6)
    if name in TRANSFER:
        assert not loaded.get_layer(TRANSFER[name][1]).trainable


@pytest.mark.parametrize("name", ["vgg16_lite", "inception_v4_lite", "1.0.0.35"])
def test_weights_option_refused_by_models_without_a_backbone(name, tmp_path):
    with pytest.raises(ValueError, match="does not take option.*weights"):
        build(name, 2, weights=str(tmp_path / "backbone.weights.h5"))


def test_tile_standardisation_refused_by_models_without_it():
    with pytest.raises(ValueError, match="'vgg16_lite' does not take option.*standardise_tiles"):
        build("vgg16_lite", 2, standardise_tiles=True)


def test_unknown_option_refused_by_transfer_models():
    with pytest.raises(ValueError, match="does not take option.*colour.*weights"):
        build("vgg19_transfer", 2, colour=True)


# ---------------------------------------------------------------- VGG-16 lite


def test_vgg16_lite_conv_layers(models):
    model = models["vgg16_lite", 2]
    convs = _layers(model, keras.layers.Conv2D)
    assert [c.filters for c in convs] == VGG16_LITE_FILTERS
    assert [tuple(c.strides) for c in convs] == [(2, 2)] + [(1, 1)] * 11
    for conv in convs:
        assert tuple(conv.kernel_size) == (3, 3) and conv.padding == "same" and conv.use_bias
        assert conv.kernel_regularizer is None  # no conv L2
        assert isinstance(conv.kernel_initializer, keras.initializers.TruncatedNormal)
        assert conv.kernel_initializer.get_config()["stddev"] == pytest.approx(0.05)
    names = [layer.name for layer in model.layers]
    for conv in convs:  # conv -> BN (0.99) -> ReLU
        position = names.index(conv.name)
        assert isinstance(model.layers[position + 1], keras.layers.BatchNormalization)
        assert model.layers[position + 1].momentum == pytest.approx(0.99)
        assert isinstance(model.layers[position + 2], keras.layers.ReLU)


def test_vgg16_lite_pools_dense_and_dropout(models):
    model = models["vgg16_lite", 2]
    pools = _layers(model, keras.layers.MaxPooling2D)
    assert [p.name for p in pools] == [f"block{b}_pool" for b in range(1, 6)]
    for pool in pools:
        assert tuple(pool.pool_size) == (2, 2) and tuple(pool.strides) == (2, 2) and pool.padding == "same"
    assert [tuple(p.output.shape)[1:] for p in pools] == [(75, 75, 64), (38, 38, 96), (19, 19, 128), (10, 10, 256), (5, 5, 384)]
    assert tuple(model.get_layer("block1a_relu").output.shape)[1:] == (150, 150, 64)
    assert tuple(model.get_layer("flatten").output.shape) == (None, 9600)
    for classes in (2, 5):
        assert [d.units for d in _layers(models["vgg16_lite", classes], keras.layers.Dense)] == [1024, 512, classes]
    for name in ("fc1_dense", "fc2_dense"):
        layer = model.get_layer(name)
        assert layer.kernel_regularizer.get_config()["l2"] == pytest.approx(0.0025 / 2)
        assert isinstance(layer.kernel_initializer, keras.initializers.HeNormal)
        assert model.get_layer(name.replace("dense", "bn")).momentum == pytest.approx(0.9)
    rates = {layer.name: layer.rate for layer in _layers(model, keras.layers.Dropout)}
    assert rates == {"flatten_dropout": 0.5, "fc1_dropout": 0.5, "fc2_dropout": 0.5}
    assert len(_layers(model, keras.layers.BatchNormalization)) == 12 + 2


def test_vgg16_lite_parameter_count(models):
    two, five = models["vgg16_lite", 2], models["vgg16_lite", 5]
    print(f"vgg16_lite: {two.count_params():,} parameters (2 classes); {five.count_params():,} (5 classes)")
    assert two.count_params() == vgg16_lite_parameters(2) == 15_823_106
    assert five.count_params() == vgg16_lite_parameters(5) == 15_823_106 + 3 * 513
    trainable = sum(int(np.prod(w.shape)) for w in two.trainable_weights)
    assert two.count_params() - trainable == 2 * (sum(VGG16_LITE_FILTERS) + 1024 + 512), "BN moving statistics"


# ---------------------------------------------------------------- Inception-v4 lite


def _conv_spec(model, name):
    conv = model.get_layer(f"{name}_conv")
    return conv.filters, tuple(conv.kernel_size), tuple(conv.strides), conv.padding


def test_inception_v4_lite_stem_and_reductions(models):
    model = models["inception_v4_lite", 2]
    expected = {
        "stem_1": (32, (3, 3), (2, 2), "valid"),
        "stem_2": (32, (3, 3), (1, 1), "valid"),
        "stem_3": (64, (3, 3), (1, 1), "same"),
        "stem_4": (32, (3, 3), (2, 2), "valid"),
        "stem_left_1": (48, (1, 1), (1, 1), "same"),
        "stem_left_2": (64, (3, 3), (1, 1), "valid"),
        "stem_right_1": (48, (1, 1), (1, 1), "same"),
        "stem_right_2": (64, (7, 1), (1, 1), "same"),
        "stem_right_3": (64, (1, 7), (1, 1), "same"),
        "stem_right_4": (64, (3, 3), (1, 1), "valid"),
        "stem_5": (128, (3, 3), (2, 2), "valid"),
        # reduction A with k=96, l=128, m=128, n=192
        "reduction_a_b2_1": (192, (3, 3), (2, 2), "valid"),
        "reduction_a_b3_1": (96, (1, 1), (1, 1), "same"),
        "reduction_a_b3_2": (128, (3, 3), (1, 1), "same"),
        "reduction_a_b3_3": (128, (3, 3), (2, 2), "valid"),
        "reduction_b_b2_1": (96, (1, 1), (1, 1), "same"),
        "reduction_b_b2_2": (96, (3, 3), (2, 2), "valid"),
        "reduction_b_b3_1": (128, (1, 1), (1, 1), "same"),
        "reduction_b_b3_2": (128, (1, 7), (1, 1), "same"),
        "reduction_b_b3_3": (192, (7, 1), (1, 1), "same"),
        "reduction_b_b3_4": (192, (3, 3), (2, 2), "valid"),
    }
    assert {name: _conv_spec(model, name) for name in expected} == expected
    for name in ("stem_pool1", "stem_pool2", "reduction_a_b1_pool", "reduction_b_b1_pool"):
        pool = model.get_layer(name)
        assert isinstance(pool, keras.layers.MaxPooling2D)
        assert tuple(pool.pool_size) == (3, 3) and tuple(pool.strides) == (2, 2) and pool.padding == "valid"


def test_inception_v4_lite_blocks(models):
    model = models["inception_v4_lite", 2]
    one, same = (1, 1), "same"
    block_a = {
        "b1_1": (48, one),
        "b2_1": (64, one),
        "b3_1": (48, one),
        "b3_2": (64, (3, 3)),
        "b4_1": (48, one),
        "b4_2": (64, (3, 3)),
        "b4_3": (64, (3, 3)),
    }
    block_b = {
        "b1_1": (96, one),
        "b2_1": (128, one),
        "b3_1": (96, one),
        "b3_2": (128, (1, 7)),
        "b3_3": (192, (7, 1)),
        "b4_1": (96, one),
        "b4_2": (96, (1, 7)),
        "b4_3": (128, (7, 1)),
        "b4_4": (128, (1, 7)),
        "b4_5": (192, (7, 1)),
    }
    block_c = {
        "b1_1": (128, one),
        "b2_1": (128, one),
        "b3_1": (192, one),
        "b3_2a": (128, (1, 3)),
        "b3_2b": (128, (3, 1)),
        "b4_1": (192, one),
        "b4_2": (256, (1, 3)),
        "b4_3": (256, (3, 1)),
        "b4_4a": (128, (1, 3)),
        "b4_4b": (128, (3, 1)),
    }
    for kind, count, convs in (("a", 3, block_a), ("b", 4, block_b), ("c", 2, block_c)):
        for index in range(1, count + 1):
            block = f"block_{kind}{index}"
            for conv, (filters, kernel) in convs.items():
                assert _conv_spec(model, f"{block}_{conv}") == (filters, kernel, (1, 1), same), f"{block}_{conv}"
            pool = model.get_layer(f"{block}_b1_pool")
            assert isinstance(pool, keras.layers.AveragePooling2D)
            assert tuple(pool.pool_size) == (2, 2) and tuple(pool.strides) == (1, 1) and pool.padding == same
    convs = _layers(model, keras.layers.Conv2D)
    assert len(convs) == 11 + 3 * 7 + 4 + 4 * 10 + 6 + 2 * 10
    for conv in convs:
        assert conv.use_bias and conv.kernel_regularizer is None
        assert conv.kernel_initializer.get_config()["stddev"] == pytest.approx(0.05)
    assert len(_layers(model, keras.layers.BatchNormalization)) == len(convs)
    assert len(_layers(model, keras.layers.AveragePooling2D)) == 3 + 4 + 2 + 1


def test_inception_v4_lite_feature_maps_and_head(models):
    model = models["inception_v4_lite", 2]
    shapes = {
        "stem_concat1": (73, 73, 96),
        "stem_concat2": (71, 71, 128),
        "stem_concat3": (35, 35, 256),
        "block_a3_concat": (35, 35, 240),
        "reduction_a_concat": (17, 17, 560),
        "block_b4_concat": (17, 17, 608),
        "reduction_b_concat": (8, 8, 896),
        "block_c2_concat": (8, 8, 768),
        "global_pool": (1, 1, 768),
        "flatten": (768,),
    }
    assert {name: tuple(model.get_layer(name).output.shape)[1:] for name in shapes} == shapes
    pool = model.get_layer("global_pool")
    assert tuple(pool.pool_size) == (8, 8) and tuple(pool.strides) == (8, 8)
    assert {layer.name: layer.rate for layer in _layers(model, keras.layers.Dropout)} == {"global_pool_dropout": 0.2}
    for classes in (2, 5):
        assert [d.units for d in _layers(models["inception_v4_lite", classes], keras.layers.Dense)] == [classes]


def test_inception_v4_lite_parameter_count(models):
    two, five = models["inception_v4_lite", 2], models["inception_v4_lite", 5]
    print(f"inception_v4_lite: {two.count_params():,} parameters (2 classes); {five.count_params():,} (5 classes)")
    assert two.count_params() == inception_v4_lite_parameters(2) == 8_554_738
    assert five.count_params() == inception_v4_lite_parameters(5) == 8_554_738 + 3 * 769


@pytest.mark.parametrize("name", ["vgg16_lite", "inception_v4_lite"])
def test_lite_models_scale_input_to_unit_range(models, name):
    image = np.zeros((1, 299, 299, 1), np.uint8)
    image[0, 0, :5, 0] = [0, 1, 104, 200, 255]
    scaled = _submodel_output(models[name, 2], "preprocess", image)[0, 0, :5, 0]
    assert scaled.dtype == np.float32
    np.testing.assert_allclose(scaled, np.array([0, 1, 104, 200, 255]) / 255, atol=1e-6)


# ---------------------------------------------------------------- transfer baselines


@pytest.mark.parametrize("name", list(TRANSFER))
def test_transfer_backbone_frozen_and_head_trainable(models, name):
    _, backbone_name, features = TRANSFER[name]
    for classes in (2, 5):
        model = models[name, classes]
        backbone = model.get_layer(backbone_name)
        assert isinstance(backbone, keras.Model) and not backbone.trainable
        assert backbone.trainable_weights == [] and len(backbone.non_trainable_weights) > 0
        head = model.get_layer("probabilities")
        assert head.trainable
        assert {id(w) for w in model.trainable_weights} == {id(head.kernel), id(head.bias)}
        assert tuple(head.kernel.shape) == (features, classes)
        assert model.count_params() == backbone.count_params() + features * classes + classes
    assert models[name, 2].get_layer("features_dropout").rate == 0.5
    assert isinstance(models[name, 2].get_layer("features_pool"), keras.layers.GlobalAveragePooling2D)


def test_transfer_parameter_counts(models):
    # VGG-19 without its top: 20,024,384; Inception-v3 without its top: 21,802,784 (keras.applications)
    assert models["vgg19_transfer", 2].count_params() == 20_024_384 + 512 * 2 + 2 == 20_025_410
    assert models["inception_v3_transfer", 2].count_params() == 21_802_784 + 2048 * 2 + 2 == 21_806_882
    assert tuple(models["vgg19_transfer", 2].get_layer("vgg19").output.shape)[1:] == (9, 9, 512)
    assert tuple(models["inception_v3_transfer", 2].get_layer("inception_v3").output.shape)[1:] == (8, 8, 2048)


def test_transfer_preprocessing(models):
    image = np.zeros((1, 299, 299, 1), np.uint8)
    image[0, 0, :5, 0] = [0, 1, 104, 200, 255]
    grey = np.array([0, 1, 104, 200, 255], np.float64)
    vgg = _submodel_output(models["vgg19_transfer", 2], "preprocess", image)[0, 0, :5]
    # caffe mode: BGR minus the ImageNet means (grey repeated, so the channel swap is a no-op)
    np.testing.assert_allclose(vgg, grey[:, None] - np.array([103.939, 116.779, 123.68]), atol=1e-4)
    inception = _submodel_output(models["inception_v3_transfer", 2], "preprocess", image)[0, 0, :5]
    np.testing.assert_allclose(inception, np.repeat(grey[:, None] / 127.5 - 1, 3, axis=1), atol=1e-6)


def test_frozen_backbone_batchnorm_stays_in_inference_mode(images):
    model = build("inception_v3_transfer", 2)
    backbone = model.get_layer("inception_v3")
    inference = _submodel_output(model, "features_pool", images, training=False)
    np.testing.assert_allclose(_submodel_output(model, "features_pool", images, training=True), inference, atol=1e-5)
    before = [np.array(w) for w in backbone.weights]
    head_before = np.array(model.get_layer("probabilities").kernel)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.train_on_batch(images, np.array([0, 1]))
    for old, new in zip(before, backbone.weights):
        np.testing.assert_array_equal(old, np.array(new))  # incl. BN moving statistics
    assert not np.allclose(head_before, np.array(model.get_layer("probabilities").kernel))


@pytest.mark.parametrize("name", list(TRANSFER))
def test_transfer_loads_local_backbone_weights(models, tmp_path, name):
    application, backbone_name, _ = TRANSFER[name]
    source = getattr(keras.applications, application)(include_top=False, weights=None)  # random init
    path = tmp_path / f"{backbone_name}_notop.weights.h5"
    source.save_weights(path)
    model = build(name, 2, weights=str(path))
    loaded = model.get_layer(backbone_name).weights
    assert len(loaded) == len(source.weights)
    for expected, actual in zip(source.weights, loaded):
        np.testing.assert_array_equal(np.array(expected), np.array(actual))
    assert not np.array_equal(np.array(loaded[0]), np.array(models[name, 2].get_layer(backbone_name).weights[0]))
    assert not model.get_layer(backbone_name).trainable
    assert build(name, 2, weights=path).count_params() == model.count_params()  # a Path works too


@pytest.mark.parametrize("name", list(TRANSFER))
def test_transfer_missing_weights_file(tmp_path, name):
    missing = tmp_path / "nowhere" / "imagenet_notop.weights.h5"
    with pytest.raises(FileNotFoundError) as info:
        build(name, 2, weights=str(missing))
    message = str(info.value)
    assert str(missing) in message
    assert f"keras.applications.{TRANSFER[name][0]}(include_top=False, weights='imagenet')" in message
    assert "save_weights" in message


def test_transfer_weights_file_must_be_keras_weights(tmp_path):
    path = tmp_path / "vgg19.h5"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match=r"\.weights\.h5"):
        build("vgg19_transfer", 2, weights=path)
