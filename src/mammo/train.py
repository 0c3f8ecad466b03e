"""Training: tf.data from TFRecords, flips and rotations on the accelerator, weighted softmax cross-entropy,
Adam with staircase decay, in stages; transfer from another trained model; resumable; TensorBoard logs.

The model, its augmentation, loss, metrics and callbacks are Keras, so they train on the TensorFlow or the JAX
backend (TrainConfig.backend, chosen before this module is imported: mammo.backend); the input pipeline (tf.data)
and the TensorBoard writer stay TensorFlow on either."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from tensorboard.plugins.pr_curve import summary

from mammo import records
from mammo.backend import cpu_computes_bfloat16
from mammo.hard_negatives import HARD_NEGATIVE_COLUMNS, HardNegatives, location_shares
from mammo.inference import apply_contrast, configure_tensorflow
from mammo.labels import LABEL_SETS
from mammo.models import build
from mammo.models.augmentation import with_augmentation
from mammo.online_crops import OnlineCrops, crop_window, resample_like_crops, transplant
from mammo.plots import hard_negative_picture
from mammo.split import normals_for_share
from mammo.tiles import TILE_SIZE
from mammo.train_config import TrainConfig


def bfloat16_arithmetic() -> bool:
    """Whether this machine computes in bfloat16 natively: a CPU with avx512_bf16 or AMX, or a GPU from Ampere
    (compute capability 8.0) on. Elsewhere bfloat16 is emulated and slower than float32."""
    return cpu_computes_bfloat16() or any(c >= (8, 0) for c in _gpu_compute_capabilities())


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


# normal tiles a transplant's host is drawn among, at a time (the shuffle's buffer over the cached normal records)
TRANSPLANT_HOST_BUFFER = 1024


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
    extra_normals: Sequence[tuple[np.ndarray, float]] = (),
):
    """(image uint8, label, weight) batches, shuffled when training. Flips and rotations are not done here but
    on the accelerator, by the model being fitted (`with_augmentation`); the study also augmented test.

    Training only: `abnormal_fraction`: each pass draws every abnormal tile once and as many normal tiles as make
    abnormal tiles about that share, a new seeded sample of them each pass. `online_crops`: the abnormal examples of
    a pass are new crops of the lesions of `lesion_paths` (context patches), `crops` of each, and the records must
    hold normal tiles only. `extra_normals`: (tiles, loss weight) of normal windows cut from whole films (mined hard
    negatives, the other breast at each lesion's place), every one in every pass besides the normal tiles."""
    examples = records.read_dataset(paths).map(_weighted(1.0))
    if not training:
        labels = record_labels(paths)  # a known length lets Keras size its epochs and progress bars
        dataset = examples.apply(tf.data.experimental.assert_cardinality(len(labels))).cache()
    elif online_crops is None and not abnormal_fraction and not extra_normals:
        dataset = ExampleTable.read(examples).shuffled(4096, seed)
    else:
        table = ExampleTable.read(examples)
        labels = table.labels()
        if online_crops is not None:
            abnormal, abnormal_count = _lesion_crops(labels, lesion_paths, online_crops, seed, table)
            normal, normal_count = table, len(labels)
        else:
            abnormal, normal = table.where(labels > 0), table.where(labels == 0)
            abnormal_count, normal_count = len(abnormal.rows), len(normal.rows)
        wanted = (
            normal_count if not abnormal_fraction else min(normal_count, normals_for_share(abnormal_count, abnormal_fraction))
        )
        streams = [(abnormal, abnormal_count, abnormal_count), (normal, normal_count, wanted)]
        streams += [(_tile_examples(tiles, weight), len(tiles), len(tiles)) for tiles, weight in extra_normals]
        dataset = _mixed_pass(streams, seed)
        if online_crops is not None:
            dataset = _resampled_normals(dataset, seed)
    classes = tf.constant(LABEL_SETS[label_set][1], tf.int64)

    def to_example(example):
        image = apply_contrast(example["image"], contrast)
        label = tf.gather(classes, example["label"])
        weight = tf.where(example["label"] > 0, tf.constant(abnormal_weight), example["weight"])
        return image, label, weight

    return dataset.map(to_example, num_parallel_calls=1, deterministic=True).batch(batch_size).prefetch(2)


def record_labels(paths) -> np.ndarray:
    """The 5-class code of every record, in the records' order."""
    return np.fromiter(records.read_dataset(paths).map(lambda example: example["label"]).as_numpy_iterator(), np.int64)


def _weighted(weight: float):
    """A record with its loss weight as a normal example (abnormal ones get the abnormal weight in `to_example`)."""
    return lambda example: {**example, "weight": tf.constant(weight, tf.float32)}


def _tile_examples(tiles: np.ndarray, weight: float) -> ExampleTable:
    """Normal tiles (uint8, n x 299 x 299) as training examples of that loss weight."""
    count = len(tiles)
    return ExampleTable(
        {
            "image": tf.constant(tiles[..., np.newaxis]),
            "label": tf.zeros(count, tf.int64),
            "label_normal": tf.zeros(count, tf.int64),
            "tile_id": tf.fill([count], "hard_negative"),
            "patient_id": tf.fill([count], ""),
            "weight": tf.fill([count], tf.constant(weight, tf.float32)),
        },
        np.arange(count, dtype=np.int64),
    )


@dataclass(frozen=True)
class ExampleTable:
    """Training examples held in memory as columns (one row an example), and the rows of one stream of them. A stream
    is shuffled by its row numbers, so a pass never copies tiles through a shuffle buffer (one of a mini-MIAS fold's
    6,000 normal tiles took 0.35 s and 0.5 GB at every pass), and gives the order a shuffle of the examples
    themselves with the same seed gives."""

    columns: dict  # name -> tensor with one row per example
    rows: np.ndarray  # int64 row numbers of this stream, in record order

    @classmethod
    def read(cls, examples) -> ExampleTable:
        """Every example of a finite dataset (the parsed records)."""
        chunks = list(examples.batch(1024))
        if not chunks:
            return cls({}, np.zeros(0, np.int64))
        columns = {name: tf.concat([chunk[name] for chunk in chunks], axis=0) for name in chunks[0]}
        return cls(columns, np.arange(len(columns["label"]), dtype=np.int64))

    def labels(self) -> np.ndarray:
        """The 5-class code of every row of the stream."""
        return self.columns["label"].numpy()[self.rows] if len(self.rows) else np.zeros(0, np.int64)

    def where(self, chosen: np.ndarray) -> ExampleTable:
        """The stream of the rows chosen by a boolean mask over this one's."""
        return ExampleTable(self.columns, self.rows[chosen])

    def shuffled(self, buffer: int, seed: int):
        """The stream's examples, reshuffled at every pass (seeded; a shuffle buffer of `buffer` row numbers)."""
        rows = tf.data.Dataset.from_tensor_slices(self.rows).shuffle(max(buffer, 1), seed=seed)

        def example(row):
            return {name: tf.gather(column, row) for name, column in self.columns.items()}

        return rows.map(example)


def _mixed_pass(streams, seed: int):
    """One pass of training examples from `streams` of (dataset, its size, examples wanted per pass): a uniform sample
    (without replacement) of each, in random order. Each new pass (epoch) reshuffles every stream and the order, so
    a stream sampled in part (the normal tiles) gives other examples from epoch to epoch, seeded."""
    shuffled = [
        stream.shuffled(size, seed + number)
        if isinstance(stream, ExampleTable)
        else stream.shuffle(max(size, 1), seed=seed + number)
        for number, (stream, size, _) in enumerate(streams)
    ]
    order = np.repeat(np.arange(len(streams), dtype=np.int64), [wanted for _, _, wanted in streams])  # whose turn it is
    choices = tf.data.Dataset.from_tensor_slices(order).shuffle(max(len(order), 1), seed=seed + len(streams))
    passes = tf.data.Dataset.choose_from_datasets(shuffled, choices)
    return passes.apply(tf.data.experimental.assert_cardinality(len(order)))


def _draws(seed: int):
    """A seeded stream of [2] draw seeds, new at every iteration (pass) and the same for the same seed."""
    return tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)


def _lesion_crops(labels: np.ndarray, lesion_paths, params: OnlineCrops, seed: int, normals):
    """Online lesion crops: `crops` new windows of every lesion each pass, each from its own seeded draw, and
    `transplants` more whose lesion is moved onto a normal tile drawn from `normals` (resampled as crops are); and
    their number per pass."""
    if (labels > 0).any():
        raise ValueError(
            f"online crops: the training records hold {int((labels > 0).sum())} abnormal tiles; their lesions' crops are "
            "cut during training, so the records must hold normal tiles only"
        )
    lesions = records.read_contexts(lesion_paths).cache()
    lesion_count = sum(1 for _ in lesions)
    if not lesion_count:
        raise ValueError(f"online crops: no lesion context patch in {[str(path) for path in lesion_paths]}")

    def example(lesion, image):
        kept = {key: lesion[key] for key in ("label", "label_normal", "tile_id", "patient_id")}
        image = tf.ensure_shape(image, [params.tile, params.tile, 1])
        return {**kept, "image": image, "weight": tf.constant(1.0, tf.float32)}

    def window(lesion, draw):
        return example(lesion, crop_window(lesion["image"], lesion["radius"], draw, params))

    crops = tf.data.Dataset.zip(lesions.repeat(params.crops), _draws(seed + 10)).map(window)
    if not params.transplants:
        return crops, lesion_count * params.crops

    def moved(lesion, draw, host, host_draw):
        host_image = resample_like_crops(host["image"], host_draw)
        return example(lesion, transplant(lesion["image"], lesion["radius"], draw, host_image, params))

    hosts = normals.shuffled(TRANSPLANT_HOST_BUFFER, seed + 12).repeat()
    transplanted = tf.data.Dataset.zip(lesions.repeat(params.transplants), _draws(seed + 13), hosts, _draws(seed + 14))
    return crops.concatenate(transplanted.map(moved)), lesion_count * (params.crops + params.transplants)


def _resampled_normals(passes, seed: int):
    """Every normal example of a pass resampled as online crops are (mammo.online_crops.resample_like_crops)."""

    def resampled(example, draw):
        image = tf.cond(example["label"] == 0, lambda: resample_like_crops(example["image"], draw), lambda: example["image"])
        return {**example, "image": tf.ensure_shape(image, example["image"].shape)}

    mixed = tf.data.Dataset.zip(passes, _draws(seed + 11)).map(resampled)
    return mixed.apply(tf.data.experimental.assert_cardinality(int(passes.cardinality())))


def recompute_batchnorm_statistics(model, batches, forward=None) -> None:
    """Replace BatchNorm moving averages by the average over `batches` ("precise BN"): each batch's statistics,
    averaged. `forward`: the model called in training mode (training_forward), by default called eagerly.

    With momentum 0.99 the moving averages need several hundred steps to
    forget their initial values; a short run (the demo, a fine-tuning stage)
    would otherwise be validated and evaluated with half-initialised statistics.
    """
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in norms]
    forward = forward or (lambda images: model(images, training=True))
    sums, count = None, 0
    for layer in norms:
        layer.momentum = 0.0  # a call leaves the batch's own statistics in the moving ones, summed here
    for images, _, _ in batches:
        forward(images)
        statistics = [keras.ops.convert_to_numpy(v).astype(np.float64) for n in norms for v in (n.moving_mean, n.moving_variance)]
        sums = statistics if sums is None else [total + value for total, value in zip(sums, statistics)]
        count += 1
    for index, (layer, momentum) in enumerate(zip(norms, momenta)):
        layer.momentum = momentum
        if count:
            layer.moving_mean.assign(sums[2 * index] / count)
            layer.moving_variance.assign(sums[2 * index + 1] / count)


def training_forward(model):
    """`model` called in training mode, as a TensorFlow graph under the TensorFlow backend (traced at the first call,
    so only inside recompute_batchnorm_statistics, every BatchNorm's momentum 0 then): 6 batches of the real-data
    recipe in 0.9 s against 1.5 s called eagerly, at every epoch. Under another backend the eager call."""
    if keras.backend.backend() != "tensorflow":
        return None
    return tf.function(lambda images: model(images, training=True))


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recompute the BatchNorm statistics of the network named `network` (the model inside the one being fitted)
    after the last training batch of every epoch, before validation."""

    def __init__(self, network: str, batches, steps_per_epoch: int):
        super().__init__()
        self.network, self.batches, self.steps_per_epoch = network, batches, steps_per_epoch
        self.forward = None

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.steps_per_epoch - 1:
            # through `self.model`: under JAX the fitted weights live outside the model's variables until an epoch
            # ends, and reading `model` puts them back first (then the next step takes the new statistics)
            network = self.model.get_layer(self.network)
            self.forward = self.forward or training_forward(network)
            recompute_batchnorm_statistics(network, self.batches, self.forward)


class WeightAveraging(keras.callbacks.Callback):
    """Stochastic weight averaging (Izmailov et al. 2018): the running mean of the trainable weights of the network
    named `network` after each epoch from `first_epoch` (0-based, over all stages), written to `store` after each
    epoch so that a killed run resumes with it (an epoch run again after a resumption is not counted twice). With
    `ends`, the network takes the mean when the stage ends and its BatchNorm statistics are recomputed over
    `batches` for it."""

    def __init__(self, network: str, first_epoch: int, store: Path, batches=None, ends: bool = False):
        super().__init__()
        self.network, self.first_epoch, self.store = network, first_epoch, Path(store)
        self.batches, self.ends = batches, ends
        self.mean, self.counted = self._read()  # an earlier stage's or a killed run's; kept in memory from here on

    def _read(self) -> tuple[list[np.ndarray], list[int]]:
        if not self.store.exists():
            return [], []
        with np.load(self.store) as saved:
            return [saved[f"w{index}"] for index in range(len(saved.files) - 1)], saved["epochs"].tolist()

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.first_epoch or epoch in self.counted:
            return
        weights = [keras.ops.convert_to_numpy(value) for value in self.model.get_layer(self.network).trainable_weights]
        count = len(self.counted) + 1
        self.mean = weights if not self.mean else [old + (new - old) / count for old, new in zip(self.mean, weights)]
        self.counted = self.counted + [epoch]
        partial = self.store.with_suffix(".partial.npz")
        np.savez(partial, epochs=np.array(self.counted), **{f"w{index}": value for index, value in enumerate(self.mean)})
        partial.replace(self.store)

    def on_train_end(self, logs=None):
        if not self.ends:
            return
        network = self.model.get_layer(self.network)
        for variable, value in zip(network.trainable_weights, self.mean):
            variable.assign(value)
        recompute_batchnorm_statistics(network, self.batches)
        print(f"weights averaged over epochs {', '.join(str(epoch + 1) for epoch in self.counted)}; BatchNorm recomputed")


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


def train(
    train_paths,
    val_paths,
    config: TrainConfig,
    out_dir: str | Path,
    lesion_paths=(),
    mine=None,
    place_negatives: Sequence[tuple[np.ndarray, float]] = (),
) -> Path:
    """Train stage by stage and save `model.keras` and `history.csv` in out_dir (`lesion_paths`: the training
    lesions' context patches, with `online_crops`; `place_negatives`: (tiles, loss weight) of normal windows
    given up front, at the training lesions' places, that join every pass of every stage). With `hard_negatives`, rounds follow the stages: `mine(predict)`
    returns the hard negatives (tiles, table: mammo.hard_negatives.mine_films) of the training films under the model
    as it is, which join the training examples of that round and every later one; their table, shares by location
    and picture go to out_dir.

    A killed run resumes when called again: finished stages and rounds are kept as weights in <out>/progress (and a
    round's mined windows beside them), the running stage resumes from its last finished epoch (BackupAndRestore),
    and the history so far is kept there too (Snakemake deletes the declared outputs of a failed job, not this folder).
    """
    configure_tensorflow(config.seed, config.threads, config.backend)  # refused where Keras runs another backend
    if config.backend != "tensorflow":
        try:  # TensorFlow only reads the records then: kept off the GPUs, which JAX holds (each reserves most of one)
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:
            pass  # TensorFlow already started in this process: its devices are fixed
    hard = None if config.hard_negatives is None else HardNegatives(**config.hard_negatives)
    if hard is not None and hard.rounds and mine is None:
        raise ValueError("hard negatives: rounds are set but no training films were given to mine")
    out_dir = Path(out_dir)
    progress = out_dir / "progress"
    progress.mkdir(parents=True, exist_ok=True)
    policy = dtype_policy(config.mixed_precision)
    print(f"Keras backend: {keras.backend.backend()}, dtype policy: {policy}")
    keras.mixed_precision.set_global_policy(policy)
    strategy = _distribution()
    mined_tiles, mined = [], []
    try:
        with strategy.scope():
            model = build(config.model, config.num_classes, **config.build_options)
            if config.init:
                print(f"initialised from {config.init}: {initialise_from(model, config.init, config.freeze)}")
        stages = [(stage, None) for stage in config.stage_settings()]
        averaged_stage = len(stages) - 1  # the recipe's last stage takes the mean; hard-negative rounds go on from it
        stages += (
            [(replace(config, epochs=hard.epochs, stages=()), round_number) for round_number in range(1, hard.rounds + 1)]
            if hard
            else []
        )
        epochs_done = 0
        for number, (stage, round_number) in enumerate(stages):
            finished = progress / f"stage{number}.weights.h5"
            if round_number is not None:
                tiles, table = _mined_round(progress / f"hard_negatives_{round_number}", mine, model, stage.contrast, finished)
                mined_tiles.append(tiles)
                mined.append(table.assign(round=round_number))
                print(
                    f"round {round_number}: {len(tiles)} hard negatives from {table['scan_id'].nunique()} films, by location "
                    f"{location_shares(mined[-1])[str(round_number)]}"
                )
            if finished.exists():
                model.load_weights(finished)
                print(f"stage {number} already trained: weights from {finished}")
            else:
                negatives = [stream for stream in place_negatives if len(stream[0])]
                negatives += [(np.concatenate(mined_tiles), hard.weight)] if mined_tiles else []
                _train_stage(
                    model,
                    strategy,
                    train_paths,
                    val_paths,
                    stage,
                    epochs_done,
                    progress,
                    out_dir,
                    number,
                    lesion_paths,
                    negatives,
                    average_from=config.average_from if number <= averaged_stage else 0,
                    average_ends=number == averaged_stage,
                )
                model.save_weights(finished)
            epochs_done += stage.epochs
            if round_number is not None:
                holds, before, after = round_holds(
                    pd.read_csv(progress / "history.csv"), epochs_done - stage.epochs - 1, epochs_done - 1
                )
                kept = holds or not hard.undo_worse_rounds
                mined[-1] = mined[-1].assign(kept=kept)
                outcome = "kept" if kept else "undone (the weights before it kept), no further round"
                print(f"round {round_number}: inner-validation PR-AUC {before:.4f} before it, {after:.4f} after: {outcome}")
                if not kept:
                    model.load_weights(progress / f"stage{number - 1}.weights.h5")
                    break
    finally:
        keras.mixed_precision.set_global_policy("float32")
    one_row_per_epoch(pd.read_csv(progress / "history.csv")).to_csv(out_dir / "history.csv", index=False)
    if hard is not None:
        table = pd.concat(mined, ignore_index=True) if mined else pd.DataFrame(columns=HARD_NEGATIVE_COLUMNS)
        table[HARD_NEGATIVE_COLUMNS].to_csv(out_dir / "hard_negatives.tsv", sep="\t", index=False)
        tiles = np.concatenate(mined_tiles) if mined_tiles else np.zeros((0, TILE_SIZE, TILE_SIZE), np.uint8)
        hard_negative_picture(tiles, table, out_dir / "hard_negatives.png")
    model_path = out_dir / "model.keras"
    model.save(model_path)
    shutil.rmtree(progress)
    return model_path


def one_row_per_epoch(history: pd.DataFrame) -> pd.DataFrame:
    """A training history (Keras' CSVLogger rows) with one row an epoch: an epoch run again after a resumption
    counts by its last row."""
    return history.drop_duplicates("epoch", keep="last")


def round_holds(history: pd.DataFrame, last_epoch_before: int, last_epoch_after: int) -> tuple[bool, float, float]:
    """Whether a round's training left the inner validation's PR-AUC (`val_abnormal_pr_auc` of the training history,
    epochs from 0, a resumed epoch's last row) no lower than after the last epoch before it, and the two figures. A
    figure that is undefined (no abnormal validation tile) does not undo a round."""
    figures = one_row_per_epoch(history).set_index("epoch")["val_abnormal_pr_auc"]
    before, after = float(figures[last_epoch_before]), float(figures[last_epoch_after])
    return not after < before, before, after


def _mined_round(stem: Path, mine, model, contrast: float, trained: Path) -> tuple[np.ndarray, pd.DataFrame]:
    """A round's hard negatives: mined from the model as the stages before left it, or read back when this round was
    mined before (a resumed run; `trained`: the round's weights, which must not be mined from)."""
    tiles_file, table_file = stem.with_suffix(".npy"), stem.with_suffix(".tsv")
    if tiles_file.exists():
        return np.load(tiles_file), pd.read_csv(table_file, sep="\t", dtype={"patient_id": str, "scan_id": str})
    if trained.exists():
        raise RuntimeError(f"{trained} exists but not the hard negatives mined before it ({tiles_file})")

    def predict(batch: np.ndarray) -> np.ndarray:
        images = apply_contrast(tf.constant(batch[..., np.newaxis]), contrast)
        return keras.ops.convert_to_numpy(model(images, training=False)).astype(np.float32)

    tiles, table = mine(predict)
    table.to_csv(table_file, sep="\t", index=False)
    np.save(tiles_file, tiles)
    return tiles, table


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
    extra_normals: Sequence[tuple[np.ndarray, float]] = (),
    average_from: int = 0,
    average_ends: bool = False,
) -> None:
    """One stage: its own data settings (loss weight, contrast, augmentation), a fresh Adam at the scheduled rate.
    `lesion_paths`: the training lesions' context patches (online crops); `extra_normals`: normal tiles and their
    weight, every one in every pass (make_dataset); `average_from`: weight averaging from this epoch (1-based, over
    all stages; 0: none), the mean taken when this stage ends if it `average_ends` (WeightAveraging)."""
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
        extra_normals=extra_normals,
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
    batches = train_data.take(min(stage.batchnorm_batches, steps_per_epoch))
    if stage.batchnorm_batches:
        callbacks.insert(0, PreciseBatchNorm(model.name, batches, steps_per_epoch))
    if average_from:  # after the epoch's BatchNorm statistics, before its backup: a resumed epoch is then counted once
        callbacks.insert(1, WeightAveraging(model.name, average_from - 1, progress / "average.npz", batches, average_ends))
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
