"""Online flips and quarter turns on the accelerator: the symmetries drawn, seeding, and the model they wrap."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mammo.models import build  # noqa: E402
from mammo.models.augmentation import RandomSquareSymmetry, with_augmentation  # noqa: E402

TILE = np.random.default_rng(0).integers(0, 256, (6, 6)).astype(np.uint8)
ROTATIONS = [np.rot90(TILE, k) for k in range(4)]
FLIPS = [TILE, TILE[::-1], TILE[:, ::-1], TILE[::-1, ::-1]]


def augmented(layer, copies=96, training=True):
    batch = np.repeat(TILE[None, :, :, None], copies, axis=0)
    out = keras.ops.convert_to_numpy(layer(batch, training=training))
    assert out.shape == batch.shape and out.dtype == np.uint8
    return [image[:, :, 0] for image in out]


def as_set(images):
    return {image.tobytes() for image in images}


@pytest.mark.parametrize(
    "flips, rotations, expected",
    [(False, True, ROTATIONS), (True, False, FLIPS), (True, True, ROTATIONS + [np.rot90(TILE[::-1], k) for k in range(4)])],
)
def test_each_image_gets_one_of_the_expected_symmetries_and_all_occur(flips, rotations, expected):
    out = augmented(RandomSquareSymmetry(flips, rotations, seed=1))
    assert as_set(out) == as_set(expected), "every symmetry of the setting occurs, and no other image"
    counts = np.array([sum(image.tobytes() == target.tobytes() for image in out) for target in expected])
    assert counts.min() >= 96 / len(expected) / 3, f"far from uniform: {counts}"


def test_inference_and_disabled_augmentation_leave_images_unchanged():
    for layer, training in ((RandomSquareSymmetry(seed=1), False), (RandomSquareSymmetry(False, False, seed=1), True)):
        assert all(np.array_equal(image, TILE) for image in augmented(layer, 8, training))


def test_same_seed_same_draws():
    first = augmented(RandomSquareSymmetry(seed=4))
    assert all(np.array_equal(a, b) for a, b in zip(first, augmented(RandomSquareSymmetry(seed=4))))
    assert not all(np.array_equal(a, b) for a, b in zip(first, augmented(RandomSquareSymmetry(seed=5))))


def test_images_stay_uint8_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        out = augmented(RandomSquareSymmetry(seed=2))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert as_set(out) <= as_set(ROTATIONS + [np.rot90(TILE[::-1], k) for k in range(4)])


def test_the_fitted_model_trains_the_saved_model_which_has_no_augmentation(tmp_path):
    model = build("1.0.0.35", 2)
    fitted = with_augmentation(model, flips=True, rotations=True, seed=0)
    assert {id(w) for w in fitted.trainable_weights} == {id(w) for w in model.trainable_weights}
    fitted.compile(optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.SparseCategoricalCrossentropy())
    before = [w.copy() for w in model.get_weights()]
    images = np.random.default_rng(1).integers(0, 256, (4, 299, 299, 1)).astype(np.uint8)
    fitted.fit(images, np.array([0, 1, 0, 1]), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    assert not any(isinstance(layer, RandomSquareSymmetry) for layer in loaded.layers)
    assert np.allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)
