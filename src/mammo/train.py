"""Training: tf.data from TFRecords, flips and rotations on the accelerator, weighted softmax cross-entropy,
Adam with staircase decay, in stages; transfer from another trained model; resumable; TensorBoard logs.

The model, its augmentation, loss, metrics and callbacks are Keras, so they train on the TensorFlow or the JAX
backend (TrainConfig.backend, chosen before this module is imported: mammo.backend); the input pipeline (tf.data)
and the TensorBoard writer stay TensorFlow on either."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary

from mammo import records
from mammo.backend import DEFAULT_BACKEND
from mammo.inference import apply_contrast, configure_tensorflow
from mammo.labels import LABEL_SETS
from mammo.models import build
from mammo.models.augmentation import with_augmentation
from mammo.online_crops import OnlineCrops, crop_window, resample_like_crops
from mammo.split import normals_for_share


@dataclass(frozen=True)
class TrainConfig:
    model: str = "1.0.0.35"
    labels: str = "binary"  # a label set of mammo.labels.LABEL_SETS
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.001
    decay_rate: float = 0.8
    decay_epochs: int = 5  # staircase: the rate falls by decay_rate every decay_epochs epochs, counted over all stages
    abnormal_weight: float = 6.0  # loss weight of every abnormal example (label > 0); normal = 1
    contrast: float = 1.0  # adjust_contrast factor on training images
    flips: bool = True  # online random horizontal and vertical flips (training only, on the accelerator)
    rotations: bool = True  # online rotations by k * 90 degrees, k uniform in 0..3 (as flips)
    batchnorm_batches: int = (
        10  # batches over which BatchNorm statistics are recomputed after each epoch; 0: keep the moving averages
    )
    stages: tuple = ()  # further stages after the first: dicts overriding epochs, abnormal_weight, contrast, flips, rotations
    init: str | None = None  # a trained model whose layers (by name and shape, not the output layer) start this one
    freeze: str = "none"  # "convolutions": the layers before the first flatten/pooling to vector stay as initialised
    weights: str | None = None  # local ImageNet weights file of a transfer baseline's backbone
    mixed_precision: str | None = None  # Keras dtype policy ("mixed_bfloat16", "mixed_float16"), or "auto" (dtype_policy)
    tensorboard: bool = True  # scalars every 50 steps and the validation PR curve every epoch, in <out>/tensorboard
    steps_per_epoch: int | None = None  # at most this many batches per epoch (a quick trial); None: one pass
    # each epoch: every abnormal training tile and a fresh seeded draw of normal tiles, abnormal about this share
    # (the records hold every normal tile); None: one pass over the records, as balanced when they were written
    abnormal_fraction: float | None = None
    # training lesions as context patches (mammo.online_crops), new crops of each every epoch: OnlineCrops' fields;
    # None: the records' fixed crops
    online_crops: dict | None = None
    seed: int = 42
    threads: int = 2
    backend: str = DEFAULT_BACKEND  # the Keras backend (mammo.backend.BACKENDS) that trains; the saved model runs on any

    @classmethod
    def from_settings(cls, settings: dict) -> "TrainConfig":
        """A model's config entry (which also holds evaluation keys) as training settings."""
        values = {key: value for key, value in settings.items() if key in cls.__dataclass_fields__}
        return cls(**{**values, "stages": tuple(values.get("stages", ()))})

    @property
    def num_classes(self) -> int:
        return len(LABEL_SETS[self.labels][0])

    def stage_settings(self) -> list["TrainConfig"]:
        """The first stage (this config) and each further stage with its overrides."""
        return [self] + [replace(self, **stage, stages=()) for stage in self.stages]


def bfloat16_arithmetic() -> bool:
    """Whether this machine computes in bfloat16 natively: a CPU with avx512_bf16 or AMX, or a GPU from Ampere
    (compute capability 8.0) on. Elsewhere bfloat16 is emulated and slower than float32."""
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    return "avx512_bf16" in flags or "amx_bf16" in flags or any(c >= (8, 0) for c in _gpu_compute_capabilities())


def _gpu_compute_capabilities() -> list[tuple[int, ...]]:
    """The compute capability of each GPU that the running Keras backend computes on."""
    if keras.backend.backend() == "jax":
        import jax

        gpus = [device for device in jax.devices() if device.platform == "gpu"]
        return [tuple(int(part) for part in getattr(gpu, "compute_capability", "0.0").split(".")) for gpu in gpus]
    gpus = tf.config.list_physical_devices("GPU")
    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))) for gpu in gpus]


def dtype_policy(mixed_precision: str | None) -> str:
    """The Keras dtype policy a training runs under: "auto" is mixed_bfloat16 where bfloat16 is native, else float32."""
    if mixed_precision == "auto":
        return "mixed_bfloat16" if bfloat16_arithmetic() else "float32"
    return mixed_precision or "float32"


def make_dataset(
    paths,
    label_set: str,
    batch_size: int,
    contrast: float = 1.0,
    training: bool = False,
    abnormal_weight: float = 1.0,
    seed: int = 0,
    abnormal_fraction: float | None = None,
    lesion_paths=(),
    online_crops: OnlineCrops | None = None,
):
    """(image uint8, label, weight) batches, shuffled when training. Flips and rotations are not done here but
    on the accelerator, by the model being fitted (`with_augmentation`); the study also augmented test.

    `abnormal_fraction` (training only): each pass draws every abnormal tile once and as many normal tiles as make
    abnormal tiles about that share, a new seeded sample of them each pass. `online_crops` (training only): the
    abnormal examples of a pass are new crops of the lesions of `lesion_paths` (context patches), `crops` of each,
    and the records must hold normal tiles only."""
    labels = record_labels(paths)  # a known length lets Keras size its epochs and progress bars
    dataset = records.read_dataset(paths).apply(tf.data.experimental.assert_cardinality(len(labels))).cache()
    if training and online_crops is not None:
        dataset = _online_pass(dataset, labels, lesion_paths, online_crops, abnormal_fraction, seed)
    elif training and abnormal_fraction:
        abnormal_count, normal_count = int((labels > 0).sum()), int((labels == 0).sum())
        abnormal = dataset.filter(lambda example: example["label"] > 0)
        normal = dataset.filter(lambda example: example["label"] == 0)
        dataset = _mixed_pass(abnormal, abnormal_count, normal, normal_count, abnormal_fraction, seed)
    elif training:
        dataset = dataset.shuffle(4096, seed=seed, reshuffle_each_iteration=True)
    classes = tf.constant(LABEL_SETS[label_set][1], tf.int64)

    def to_example(example):
        image = apply_contrast(example["image"], contrast)
        label = tf.gather(classes, example["label"])
        weight = tf.where(example["label"] > 0, tf.constant(abnormal_weight), tf.constant(1.0))
        return image, label, weight

    return dataset.map(to_example, num_parallel_calls=1, deterministic=True).batch(batch_size).prefetch(2)


def record_labels(paths) -> np.ndarray:
    """The 5-class code of every record, in the records' order."""
    return np.fromiter(records.read_dataset(paths).map(lambda example: example["label"]).as_numpy_iterator(), np.int64)


def _mixed_pass(abnormal, abnormal_count: int, normal, normal_count: int, abnormal_fraction: float | None, seed: int):
    """One pass of training examples: every example of `abnormal` once and a uniform sample (without replacement) of
    `normal` that makes abnormal examples about `abnormal_fraction` of the pass (None: every normal one), in random
    order. Each new pass (epoch) reshuffles all three, so the normal examples seen change from epoch to epoch,
    seeded."""
    wanted_normals = (
        normal_count if abnormal_fraction is None else min(normal_count, normals_for_share(abnormal_count, abnormal_fraction))
    )
    abnormal = abnormal.shuffle(max(abnormal_count, 1), seed=seed)
    normal = normal.shuffle(max(normal_count, 1), seed=seed + 1)
    order = np.repeat(np.array([0, 1], np.int64), [abnormal_count, wanted_normals])  # 0: the next abnormal, 1: normal
    choices = tf.data.Dataset.from_tensor_slices(order).shuffle(max(len(order), 1), seed=seed + 2)
    passes = tf.data.Dataset.choose_from_datasets([abnormal, normal], choices)
    return passes.apply(tf.data.experimental.assert_cardinality(len(order)))


def _online_pass(dataset, labels: np.ndarray, lesion_paths, params: OnlineCrops, abnormal_fraction: float | None, seed: int):
    """One pass with online lesion crops: `crops` new windows of every lesion, each from its own seeded draw (a new
    draw every pass: the random stream is re-seeded per iteration, deterministically), and the normal tiles, resampled
    as the crops are (mammo.online_crops.resample_like_crops), mixed as `_mixed_pass` does."""
    if (labels > 0).any():
        raise ValueError(
            f"online crops: the training records hold {int((labels > 0).sum())} abnormal tiles; their lesions' crops are "
            "cut during training, so the records must hold normal tiles only"
        )
    lesions = records.read_contexts(lesion_paths).cache()
    lesion_count = sum(1 for _ in lesions)
    if not lesion_count:
        raise ValueError(f"online crops: no lesion context patch in {[str(path) for path in lesion_paths]}")

    def draws(stream_seed: int):
        return tf.data.Dataset.random(seed=stream_seed, rerandomize_each_iteration=True).batch(2)

    def window(lesion, draw):
        image = tf.ensure_shape(crop_window(lesion["image"], lesion["radius"], draw, params), [params.tile, params.tile, 1])
        return {**{key: lesion[key] for key in ("label", "label_normal", "tile_id", "patient_id")}, "image": image}

    def resampled_normal(example, draw):
        image = tf.cond(example["label"] == 0, lambda: resample_like_crops(example["image"], draw), lambda: example["image"])
        return {**example, "image": tf.ensure_shape(image, example["image"].shape)}

    abnormal = tf.data.Dataset.zip(lesions.repeat(params.crops), draws(seed + 3)).map(window)
    mixed = _mixed_pass(abnormal, lesion_count * params.crops, dataset, len(labels), abnormal_fraction, seed)
    passes = tf.data.Dataset.zip(mixed, draws(seed + 4)).map(resampled_normal)
    return passes.apply(tf.data.experimental.assert_cardinality(int(mixed.cardinality())))


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
    """Recompute the BatchNorm statistics of the network named `network` (the model inside the one being fitted)
    after the last training batch of every epoch, before validation."""

    def __init__(self, network: str, batches, steps_per_epoch: int):
        super().__init__()
        self.network, self.batches, self.steps_per_epoch = network, batches, steps_per_epoch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps_per_epoch - 1:
            # through `self.model`: under JAX the fitted weights live outside the model's variables until an epoch
            # ends, and reading `model` puts them back first (then the next step takes the new statistics)
            recompute_batchnorm_statistics(self.model.get_layer(self.network), self.batches)


class AbnormalPRAUC(keras.metrics.AUC):
    """Area under the precision-recall curve of P(abnormal) = 1 - P(normal) against label > 0, for every label
    set, counted at 101 thresholds. After Keras' validation pass its counts are the validation PR curve."""

    def __init__(self, name: str = "abnormal_pr_auc", **kwargs):
        super().__init__(num_thresholds=101, curve="PR", name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        abnormal = keras.ops.cast(keras.ops.greater(y_true, 0), "float32")
        return super().update_state(abnormal, 1.0 - keras.ops.cast(y_pred[:, 0], "float32"), sample_weight)


class ValidationPRCurve(keras.callbacks.Callback):
    """After each epoch, the validation precision-recall curve for TensorBoard, from the counts `metric` kept
    during Keras' own validation pass (no second pass over the validation set)."""

    def __init__(self, metric: AbnormalPRAUC, log_dir: Path):
        super().__init__()
        self.metric, self.writer = metric, tf.summary.create_file_writer(str(log_dir / "validation"))

    def on_epoch_end(self, epoch, logs=None):

        counts = [
            keras.ops.convert_to_numpy(variable).astype("float64")
            for variable in (
                self.metric.true_positives,
                self.metric.false_positives,
                self.metric.true_negatives,
                self.metric.false_negatives,
            )
        ]
        true_positives, false_positives, true_negatives, false_negatives = counts
        curve = summary.raw_data_pb(
            "abnormal_pr_curve",
            true_positive_counts=true_positives,
            false_positive_counts=false_positives,
            true_negative_counts=true_negatives,
            false_negative_counts=false_negatives,
            precision=true_positives / np.maximum(true_positives + false_positives, 1),
            recall=true_positives / np.maximum(true_positives + false_negatives, 1),
            num_thresholds=self.metric.num_thresholds,
        )
        # Keras' TensorBoard callback records only every update_freq steps while training; this is per epoch
        with self.writer.as_default(), tf.summary.record_if(True):
            tf.summary.experimental.write_raw_pb(curve.SerializeToString(), step=epoch)
        self.writer.flush()


def initialise_from(model, source_path: str, freeze: str) -> list[str]:
    """Copy the layers of a trained model that match by name and weight shapes, never the output layer (a new
    head for the new label set); with freeze="convolutions" the layers before the first flatten or pooling to a
    vector stay fixed while the dense layers and the new output layer train (the study froze its new output layer
    by mistake). Returns the names of the copied layers."""
    source = keras.models.load_model(source_path)
    source_layers = {layer.name: layer for layer in source.layers}
    copied = []
    for layer in model.layers:
        match = source_layers.get(layer.name)
        if layer.name == "probabilities" or match is None or not layer.weights:
            continue
        if [w.shape for w in layer.get_weights()] == [w.shape for w in match.get_weights()]:
            layer.set_weights(match.get_weights())
            copied.append(layer.name)
    if not copied:
        raise ValueError(f"{source_path}: no layer matches {model.name} by name and shape; nothing to start from")
    if freeze == "convolutions":
        for layer in model.layers:
            if isinstance(layer, (keras.layers.Flatten, keras.layers.GlobalAveragePooling2D)):
                break
            layer.trainable = False
    return copied


def _distribution():
    """MirroredStrategy over every GPU when TensorFlow trains and there are several, else the default (one device;
    under JAX its scope changes nothing, and JAX trains on its first device)."""
    if keras.backend.backend() != "tensorflow":
        return tf.distribute.get_strategy()
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def train(train_paths, val_paths, config: TrainConfig, out_dir: str | Path, lesion_paths=()) -> Path:
    """Train stage by stage and save `model.keras` and `history.csv` in out_dir (`lesion_paths`: the training
    lesions' context patches, with `online_crops`).

    A killed run resumes when called again: finished stages are kept as weights in <out>/progress, the
    running stage resumes from its last finished epoch (BackupAndRestore), and the history so far is kept there
    too (Snakemake deletes the declared outputs of a failed job, not this folder).
    """
    configure_tensorflow(config.seed, config.threads, config.backend)  # refused where Keras runs another backend
    if config.backend != "tensorflow":
        try:  # TensorFlow only reads the records then: kept off the GPUs, which JAX holds (each reserves most of one)
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass  # TensorFlow already started in this process: its devices are fixed
    out_dir = Path(out_dir)
    progress = out_dir / "progress"
    progress.mkdir(parents=True, exist_ok=True)
    policy = dtype_policy(config.mixed_precision)
    print(f"Keras backend: {keras.backend.backend()}, dtype policy: {policy}")
    keras.mixed_precision.set_global_policy(policy)
    strategy = _distribution()
    try:
        with strategy.scope():
            options = {"weights": config.weights} if config.weights else {}
            model = build(config.model, config.num_classes, **options)
            if config.init:
                print(f"initialised from {config.init}: {initialise_from(model, config.init, config.freeze)}")
        epochs_done = 0
        for number, stage in enumerate(config.stage_settings()):
            finished = progress / f"stage{number}.weights.h5"
            if finished.exists():
                model.load_weights(finished)
                print(f"stage {number} already trained: weights from {finished}")
            else:
                _train_stage(model, strategy, train_paths, val_paths, stage, epochs_done, progress, out_dir, number, lesion_paths)
                model.save_weights(finished)
            epochs_done += stage.epochs
    finally:
        keras.mixed_precision.set_global_policy("float32")
    history = pd.read_csv(progress / "history.csv").drop_duplicates("epoch", keep="last")
    history.to_csv(out_dir / "history.csv", index=False)
    model_path = out_dir / "model.keras"
    model.save(model_path)
    shutil.rmtree(progress)
    return model_path


def _train_stage(
    model,
    strategy,
    train_paths,
    val_paths,
    stage: TrainConfig,
    epochs_done: int,
    progress: Path,
    out_dir: Path,
    number: int,
    lesion_paths=(),
) -> None:
    """One stage: its own data settings (loss weight, contrast, augmentation), a fresh Adam at the scheduled rate.
    `lesion_paths`: the training lesions' context patches (online crops)."""
    train_data = make_dataset(
        train_paths,
        stage.labels,
        stage.batch_size,
        stage.contrast,
        training=True,
        abnormal_weight=stage.abnormal_weight,
        seed=stage.seed + number,
        abnormal_fraction=stage.abnormal_fraction,
        lesion_paths=lesion_paths,
        online_crops=None if stage.online_crops is None else OnlineCrops(**stage.online_crops),
    )
    steps_per_epoch = min(int(train_data.cardinality()), stage.steps_per_epoch or int(train_data.cardinality()))
    val_data = make_dataset(val_paths, stage.labels, stage.batch_size, abnormal_weight=stage.abnormal_weight)
    with strategy.scope():
        fitted = with_augmentation(model, stage.flips, stage.rotations, seed=stage.seed + number)
        pr_auc = AbnormalPRAUC()  # unweighted: counts tiles, as the evaluation does
        fitted.compile(
            optimizer=keras.optimizers.Adam(stage.learning_rate),
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=[pr_auc],
            weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
    rate = lambda epoch, _: stage.learning_rate * stage.decay_rate ** (epoch // stage.decay_epochs)  # noqa: E731
    callbacks = [
        keras.callbacks.BackupAndRestore(str(progress / f"stage{number}")),
        keras.callbacks.LearningRateScheduler(rate),
        keras.callbacks.CSVLogger(str(progress / "history.csv"), append=True),
    ]
    if stage.batchnorm_batches:
        batches = train_data.take(min(stage.batchnorm_batches, steps_per_epoch))
        callbacks.insert(0, PreciseBatchNorm(model.name, batches, steps_per_epoch))
    if stage.tensorboard:
        callbacks += [
            keras.callbacks.TensorBoard(str(out_dir / "tensorboard"), update_freq=50),
            ValidationPRCurve(pr_auc, out_dir / "tensorboard"),
        ]
    print(
        f"stage {number}: epochs {epochs_done + 1}-{epochs_done + stage.epochs}, abnormal weight {stage.abnormal_weight}, "
        f"contrast {stage.contrast}"
    )
    fitted.fit(
        train_data.repeat(),
        steps_per_epoch=steps_per_epoch,
        shuffle=False,  # the tf.data pipeline shuffles, seeded
        validation_data=val_data,
        initial_epoch=epochs_done,
        epochs=epochs_done + stage.epochs,
        callbacks=callbacks,
        verbose=2,
    )
