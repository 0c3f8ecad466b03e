"""Online flips and quarter turns as a Keras layer, so that they run on the accelerator with the model."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="mammo")
class RandomSquareSymmetry(keras.layers.Layer):
    """Per image, in training only: random left-right and up-down flips (p = 0.5 each) and/or a rotation by
    k * 90 degrees, k uniform in 0..3. Images are square tiles, batched as (batch, height, width, channels).

    A quarter turn of a square image is a transpose followed by a flip (np.rot90: k=1 flips rows of the
    transpose, k=2 flips both axes, k=3 flips columns of the transpose), so every combination is at most one
    transpose and two flips, chosen per image with `where` on the device.
    """

    def __init__(self, flips: bool = True, rotations: bool = True, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.flips, self.rotations, self.seed = flips, rotations, seed
        self.generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training or not (self.flips or self.rotations):
            return images
        per_image = (ops.shape(images)[0], 1, 1, 1)
        flip_rows = flip_columns = ops.zeros(per_image, "bool")
        if self.rotations:  # the transpose only where quarter turns are drawn: flips alone need no such pass
            quarter_turns = keras.random.randint(per_image, 0, 4, seed=self.generator)
            images = ops.where(ops.equal(quarter_turns % 2, 1), ops.transpose(images, (0, 2, 1, 3)), images)
            flip_rows = ops.logical_or(ops.equal(quarter_turns, 1), ops.equal(quarter_turns, 2))
            flip_columns = ops.greater_equal(quarter_turns, 2)
        if self.flips:
            flip_rows = ops.logical_xor(flip_rows, keras.random.uniform(per_image, seed=self.generator) < 0.5)
            flip_columns = ops.logical_xor(flip_columns, keras.random.uniform(per_image, seed=self.generator) < 0.5)
        images = ops.where(flip_rows, ops.flip(images, axis=1), images)
        return ops.where(flip_columns, ops.flip(images, axis=2), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "flips": self.flips, "rotations": self.rotations, "seed": self.seed}


def with_augmentation(model: keras.Model, flips: bool, rotations: bool, seed: int) -> keras.Model:
    """The model to fit: `model` behind the augmentation layer. It shares `model`'s weights, so training it
    trains `model`, which is the one saved and evaluated (inference never sees the augmentation)."""
    inputs = keras.Input(model.input_shape[1:], dtype=model.inputs[0].dtype, name="image")
    augmented = RandomSquareSymmetry(flips, rotations, seed, name="augmentation")(inputs)
    return keras.Model(inputs, model(augmented), name=f"{model.name}_training")
