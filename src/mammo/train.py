"""Training: tf.data from TFRecords, weighted softmax cross-entropy, Adam with staircase decay."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import tensorflow as tf

from mammo import records
from mammo.models import build

LABEL_SETS = {"binary": ("label_normal", 2), "five_class": ("label", 5)}


@dataclass(frozen=True)
class TrainConfig:
    model: str = "1.0.0.35"
    labels: str = "binary"
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.001
    decay_rate: float = 0.8
    decay_epochs: int = 5
    abnormal_weight: float = 6.0  # loss weight of every abnormal example (label > 0); normal = 1
    contrast: float = 1.0  # adjust_contrast factor on training images
    flips: bool = True  # online random horizontal and vertical flips (training only)
    batchnorm_batches: int = 10  # batches over which BatchNorm statistics are recomputed after each epoch; 0: keep the moving averages
    seed: int = 42
    threads: int = 2

    @classmethod
    def from_settings(cls, settings: dict) -> "TrainConfig":
        """A model's config entry (which also holds evaluation keys) as training settings."""
        return cls(**{key: value for key, value in settings.items() if key in cls.__dataclass_fields__})

    @property
    def label_key(self) -> str:
        return LABEL_SETS[self.labels][0]

    @property
    def num_classes(self) -> int:
        return LABEL_SETS[self.labels][1]


def configure_tensorflow(seed: int, threads: int) -> None:
    """Seeded, deterministic ops, bounded threads: same seed -> same weights on CPU."""
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already started in this process: its thread pools are fixed
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def apply_contrast(image, factor: float):
    """The study's `adjust_contrast` on the uint8 image, clipped back to uint8."""
    if factor == 1.0:
        return image
    adjusted = tf.image.adjust_contrast(tf.cast(image, tf.float32), factor)
    return tf.cast(tf.clip_by_value(adjusted, 0.0, 255.0), tf.uint8)


def make_dataset(paths, label_key: str, batch_size: int, contrast: float = 1.0, training: bool = False,
                 flips: bool = False, abnormal_weight: float = 1.0, seed: int = 0):  # fmt: skip
    """(image uint8, label, weight) batches. Augmentation only when training (the study also augmented test)."""
    count = count_records(paths)  # a known length lets Keras size its epochs and progress bars
    dataset = records.read_dataset(paths).apply(tf.data.experimental.assert_cardinality(count)).cache()
    if training:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)

    def to_example(example):
        image = apply_contrast(example["image"], contrast)
        if training and flips:
            image = tf.image.random_flip_left_right(image, seed=seed)
            image = tf.image.random_flip_up_down(image, seed=seed + 1)
        label = example[label_key]
        weight = tf.where(example["label"] > 0, tf.constant(abnormal_weight), tf.constant(1.0))
        return image, label, weight

    return dataset.map(to_example, num_parallel_calls=1, deterministic=True).batch(batch_size).prefetch(2)


def count_records(paths) -> int:
    return sum(1 for _ in records.read_dataset(paths).map(lambda example: example["label"]))


def recompute_batchnorm_statistics(model, batches) -> None:
    """Replace BatchNorm moving averages by the average over `batches` ("precise BN").

    With momentum 0.99 the moving averages need several hundred steps to
    forget their initial values; a short run (the demo, a fine-tuning stage)
    would otherwise be validated and evaluated with half-initialised statistics.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    for step, (images, _, _) in enumerate(batches):
        for layer in norms:
            layer.momentum = step / (step + 1)  # cumulative mean: the first batch replaces the old value
        model(images, training=True)
    for layer, momentum in zip(norms, momenta):
        layer.momentum = momentum


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recompute BatchNorm statistics after the last training batch of every epoch, before validation."""

    def __init__(self, batches, steps_per_epoch: int):
        super().__init__()
        self.batches, self.steps_per_epoch = batches, steps_per_epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps_per_epoch - 1:
            recompute_batchnorm_statistics(self.model, self.batches)


def train(train_paths, val_paths, config: TrainConfig, out_dir: str | Path) -> Path:
    """Train and save `model.keras` and `history.csv` in out_dir; resumes from its last epoch if interrupted."""
    configure_tensorflow(config.seed, config.threads)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    train_data = make_dataset(
        train_paths, config.label_key, config.batch_size, config.contrast, training=True,
        flips=config.flips, abnormal_weight=config.abnormal_weight, seed=config.seed,
    )  # fmt: skip
    steps_per_epoch = int(train_data.cardinality())  # one pass over the training tiles
    val_data = make_dataset(val_paths, config.label_key, config.batch_size, abnormal_weight=config.abnormal_weight)
    model = build(config.model, config.num_classes)
    schedule = keras.optimizers.schedules.ExponentialDecay(
        config.learning_rate, decay_steps=config.decay_epochs * steps_per_epoch, decay_rate=config.decay_rate, staircase=True
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(str(out_dir / "backup")),
        keras.callbacks.CSVLogger(str(out_dir / "history.csv"), append=True),
    ]
    if config.batchnorm_batches:
        batches = train_data.take(min(config.batchnorm_batches, steps_per_epoch))
        callbacks.insert(0, PreciseBatchNorm(batches, steps_per_epoch))
    model.fit(
        train_data.repeat(),
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
        validation_data=val_data,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=2,
    )
    model_path = out_dir / "model.keras"
    model.save(model_path)
    return model_path
