"""The study's transfer baselines: frozen ImageNet VGG-19 / Inception-v3 features and a new softmax head.

The uint8 299x299x1 tile is repeated to three channels and preprocessed as the backbone expects
(VGG-19: ImageNet channel means subtracted from 0-255 BGR; Inception-v3: scaled to [-1, 1]). The
backbone is frozen (its BatchNorm layers therefore stay in inference mode), followed by global
average pooling, dropout and a trainable dense softmax layer.

ImageNet weights are never downloaded: pass `weights=` the path of a local Keras `.weights.h5`
file of the backbone without its top (see `weights_help`); without it the backbone keeps random
weights.
"""

from __future__ import annotations

import os

import keras
from keras import layers

from mammo.models import probabilities, register
from mammo.tiles import TILE_SIZE

HEAD_DROPOUT = 0.5
# keras.applications' "caffe" preprocessing: RGB -> BGR, minus the ImageNet mean per BGR channel.
# With a grey tile repeated to three channels the channel swap changes nothing.
VGG_BGR_MEAN = (103.939, 116.779, 123.68)

BACKBONES = {
    "vgg19_transfer": ("VGG19", "vgg19"),
    "inception_v3_transfer": ("InceptionV3", "inception_v3"),
}


def weights_help(application: str, path: str) -> str:
    return (
        f"make it once on a machine with network access: "
        f"keras.applications.{application}(include_top=False, weights='imagenet').save_weights({path!r})"
    )


def _check_weights_file(application: str, path: str | os.PathLike) -> str:
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone weights file {path!r} not found; {weights_help(application, path)}")
    if not path.endswith(".weights.h5"):
        raise ValueError(f"backbone weights file {path!r} must be a Keras '.weights.h5' file; {weights_help(application, path)}")
    return path


def _transfer_model(model_name: str, num_classes: int, weights, preprocess: layers.Layer) -> keras.Model:
    application, backbone_name = BACKBONES[model_name]
    if weights is not None:
        weights = _check_weights_file(application, weights)
    inputs = keras.Input((TILE_SIZE, TILE_SIZE, 1), dtype="uint8", name="image")
    x = layers.Identity(dtype="float32", name="to_float")(inputs)
    x = layers.Concatenate(axis=-1, name="to_rgb")([x, x, x])
    x = preprocess(x)
    backbone = getattr(keras.applications, application)(
        include_top=False, weights=None, input_shape=(TILE_SIZE, TILE_SIZE, 3), name=backbone_name
    )
    if weights is not None:
        backbone.load_weights(weights)
    backbone.trainable = False
    x = backbone(x, training=False)
    x = layers.GlobalAveragePooling2D(name="features_pool")(x)
    x = layers.Dropout(HEAD_DROPOUT, name="features_dropout")(x)
    outputs = probabilities(x, num_classes)
    return keras.Model(inputs, outputs, name=model_name)


@register("vgg19_transfer")
def vgg19_transfer(num_classes: int, weights: str | os.PathLike | None = None) -> keras.Model:
    """Frozen VGG-19 convolutional features (299x299 -> 9x9x512) and a new softmax head."""
    preprocess = layers.Rescaling(1.0, offset=[-mean for mean in VGG_BGR_MEAN], name="preprocess")
    return _transfer_model("vgg19_transfer", num_classes, weights, preprocess)


@register("inception_v3_transfer")
def inception_v3_transfer(num_classes: int, weights: str | os.PathLike | None = None) -> keras.Model:
    """Frozen Inception-v3 features (299x299 -> 8x8x2048) and a new softmax head."""
    preprocess = layers.Rescaling(1 / 127.5, offset=-1.0, name="preprocess")
    return _transfer_model("inception_v3_transfer", num_classes, weights, preprocess)
