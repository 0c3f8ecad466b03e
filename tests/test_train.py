"""Training stage on a handful of records: data pipeline, weighted loss, precise BatchNorm, saved model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from stand_in_model import LIGHT_MODEL  # noqa: E402
from tile_records import tile_table  # noqa: E402

from mammo.inference import apply_contrast  # noqa: E402
from mammo.models import build  # noqa: E402
from mammo.records import write_shard  # noqa: E402
from mammo.train import WeightAveraging, make_dataset, recompute_batchnorm_statistics, train  # noqa: E402
from mammo.train_config import TrainConfig  # noqa: E402


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("records")
    rng = np.random.default_rng(0)
    images = rng.integers(60, 160, size=(12, 299, 299), dtype=np.uint8)
    images[6:, 120:180, 120:180] = 250  # abnormal tiles carry a bright blob
    table = tile_table([0] * 6 + [2, 4, 2, 4, 1, 3])
    paths = [root / "train-0.tfrecord", root / "train-1.tfrecord"]
    for shard, path in enumerate(paths):
        write_shard(table.iloc[shard::2], lambda row: images[int(row["tile_index"])], path)
    return paths, images, table


def test_evaluation_batches_are_not_augmented(shards):
    paths, images, table = shards
    data = make_dataset(paths, "five_class", batch_size=5, abnormal_weight=4.0)
    assert int(data.cardinality()) == 3
    seen, labels, weights = zip(*[(x.numpy(), y.numpy(), w.numpy()) for x, y, w in data])
    seen, labels, weights = np.concatenate(seen)[..., 0], np.concatenate(labels), np.concatenate(weights)
    order = [0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]  # shard 0 then shard 1
    assert np.array_equal(seen, images[order])
    assert np.array_equal(labels, table["class_code"].to_numpy()[order])
    assert np.array_equal(weights, np.where(labels > 0, 4.0, 1.0))


def test_contrast_matches_the_study_formula():
    image = np.array([[[100], [150], [200]]], dtype=np.uint8)
    adjusted = apply_contrast(image, 1.5).numpy()[0, :, 0]
    mean = image.mean()
    assert np.array_equal(adjusted, np.clip((image[0, :, 0] - mean) * 1.5 + mean, 0, 255).astype(np.uint8))


def test_training_shuffle_is_seeded_and_leaves_images_untouched(shards):
    paths, images, _ = shards

    def first_batch(seed):
        return next(iter(make_dataset(paths, "binary", 12, training=True, seed=seed)))[0].numpy()[..., 0]

    first = first_batch(5)
    assert np.array_equal(first, first_batch(5))
    assert not np.array_equal(first, first_batch(6))
    # flips and rotations belong to the fitted model (on the accelerator), not to the input pipeline
    assert sorted(tile.tobytes() for tile in first) == sorted(tile.tobytes() for tile in images)


def test_fresh_normals_draw_every_abnormal_tile_and_a_new_sample_of_normals_each_epoch(tmp_path):
    images = np.zeros((40, 299, 299), np.uint8)
    images[:, 0, 0] = np.arange(40)  # each tile's id in its first pixel
    table = tile_table([0] * 32 + [2, 4] * 4)
    path = tmp_path / "train.tfrecord"
    write_shard(table, lambda row: images[int(row["tile_index"])], path)

    def epochs(seed):
        data = make_dataset([path], "binary", 4, training=True, seed=seed, abnormal_fraction=0.25)
        batches = iter(data.repeat())
        steps = int(data.cardinality())
        return [np.concatenate([next(batches)[0].numpy()[:, 0, 0, 0] for _ in range(steps)]) for _ in range(3)]

    drawn = epochs(7)
    normal_sets = []
    for ids in drawn:
        assert len(ids) == 32 and len(set(ids)) == 32  # 8 abnormal / 0.25 = 32 tiles, none twice
        assert set(range(32, 40)) <= set(ids)  # every abnormal tile in every epoch
        normal_sets.append(frozenset(ids) - set(range(32, 40)))
    assert len(set(normal_sets)) == 3  # a new sample of normal tiles each epoch
    assert all(np.array_equal(a, b) for a, b in zip(drawn, epochs(7)))  # seeded


def test_a_table_stream_shuffles_as_a_shuffle_of_its_examples_does_at_every_pass():
    import tensorflow as tf

    from mammo.train import ExampleTable

    labels = np.arange(60) % 3
    examples = tf.data.Dataset.from_tensor_slices({"label": labels, "image": np.arange(60) * 7})
    table = ExampleTable.read(examples).where(labels == 0)
    assert list(table.labels()) == [0] * 20
    by_rows = iter(table.shuffled(20, seed=5).repeat(3))
    themselves = iter(examples.filter(lambda example: example["label"] == 0).shuffle(20, seed=5).repeat(3))
    passes = [[int(next(by_rows)["image"]) for _ in range(20)] for _ in range(3)]
    assert passes == [[int(next(themselves)["image"]) for _ in range(20)] for _ in range(3)]
    assert sorted(passes[0]) == list(range(0, 420, 21)) and passes[0] != passes[1]  # every row once, reshuffled


def test_precise_batchnorm_sets_the_mean_of_each_batchs_statistics_compiled_or_not(shards):
    paths, _, _ = shards
    from mammo.models import build
    from mammo.train import training_forward

    model = build("1.0.0.35", 2)
    norm = model.get_layer("block1a_bn")
    batches = list(make_dataset(paths, "binary", 6).take(3))
    # the first BatchNorm's input does not depend on the training mode: its statistics per batch, over rows, columns
    before_norm = keras.Model(model.inputs, norm.input)
    inputs = [keras.ops.convert_to_numpy(before_norm(images)).astype(np.float64) for images, _, _ in batches]
    expected_mean = np.mean([values.mean(axis=(0, 1, 2)) for values in inputs], axis=0)
    expected_variance = np.mean([values.var(axis=(0, 1, 2)) for values in inputs], axis=0)
    for forward in (None, training_forward(model)):
        norm.moving_mean.assign(np.zeros_like(expected_mean))
        recompute_batchnorm_statistics(model, batches, forward)
        assert np.allclose(norm.moving_mean.numpy(), expected_mean, rtol=1e-4, atol=1e-5)
        assert np.allclose(norm.moving_variance.numpy(), expected_variance, rtol=1e-3, atol=1e-5)
        assert norm.momentum == 0.99  # restored


def test_train_saves_model_and_history(shards, tmp_path):
    paths, images, table = shards
    config = TrainConfig(model=LIGHT_MODEL, epochs=1, batch_size=6, batchnorm_batches=1, threads=2, seed=3)
    model_path = train(paths, paths[:1], config, tmp_path)  # validation: shard 0, 6 tiles of which 3 abnormal
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [0]
    assert not (tmp_path / "progress").exists()  # progress is kept only while a run is unfinished
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "val_abnormal_pr_auc"} <= set(history.columns)
    # the validation PR curve for TensorBoard's plugin: counts of exactly one pass over the validation tiles
    import tensorflow as tf

    curves = [
        tf.make_ndarray(value.tensor)
        for event in (tmp_path / "tensorboard" / "validation").glob("events.out.tfevents.*")
        for record in tf.compat.v1.train.summary_iterator(str(event))
        for value in record.summary.value
        if value.metadata.plugin_data.plugin_name == "pr_curves"
    ]
    assert len(curves) == 1 and curves[0].shape == (6, 101)  # TP, FP, TN, FN, precision, recall at 101 thresholds
    true_positives, false_positives, true_negatives, false_negatives = curves[0][:4]
    assert np.allclose(true_positives + false_positives + true_negatives + false_negatives, 6)
    assert np.allclose(true_positives + false_negatives, 3)
    validation = table.iloc[0::2]
    scores = 1 - keras.models.load_model(model_path).predict(images[validation["tile_index"], :, :, None], verbose=0)[:, 0]
    abnormal = validation["label_normal"].to_numpy() == 1
    assert true_positives[50] == np.sum(abnormal & (scores > 0.5)) and false_positives[50] == np.sum(~abnormal & (scores > 0.5))
    model = keras.models.load_model(model_path)
    probabilities = model.predict(np.zeros((2, 299, 299, 1), np.uint8), verbose=0)
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)


def test_same_seed_same_weights_on_cpu(shards, tmp_path):
    """Seeded initialisation, shuffling and augmentation plus deterministic ops: a rerun gives the same model."""
    paths, _, _ = shards
    config = TrainConfig(model=LIGHT_MODEL, epochs=1, batch_size=6, batchnorm_batches=1, threads=2, seed=11, tensorboard=False)
    weights = []
    for run, seed in (("a", 11), ("b", 11), ("c", 12)):
        model_path = train(paths, paths, TrainConfig(**{**config.__dict__, "seed": seed}), tmp_path / run)
        weights.append(keras.models.load_model(model_path).get_weights())
    assert all(np.array_equal(x, y) for x, y in zip(weights[0], weights[1]))
    assert not all(np.array_equal(x, y) for x, y in zip(weights[0], weights[2]))


def test_weight_averaging_ends_on_the_mean_of_the_epochs_weights_with_batchnorm_recomputed(shards, tmp_path):
    """Deterministic training: a 2-epoch run averaged from epoch 1 ends on the mean of the weights that a 1-epoch and
    a 2-epoch run of the same seed end on (stages counted together), with BatchNorm statistics of its own."""
    paths, _, _ = shards
    config = TrainConfig(
        model=LIGHT_MODEL, epochs=1, batch_size=6, batchnorm_batches=1, threads=2, seed=5, tensorboard=False, steps_per_epoch=1
    )
    runs = {
        "one": config,
        "two": TrainConfig(**{**config.__dict__, "stages": ({"epochs": 1},)}),
        "averaged": TrainConfig(**{**config.__dict__, "stages": ({"epochs": 1},), "average_last": 1.0}),
    }
    models = {name: keras.models.load_model(train(paths, paths, run, tmp_path / name)) for name, run in runs.items()}
    trainable = {name: [w.numpy() for w in model.trainable_weights] for name, model in models.items()}
    for one, two, averaged in zip(trainable["one"], trainable["two"], trainable["averaged"]):
        assert np.allclose(averaged, (one + two) / 2, atol=1e-6)
    assert not all(np.allclose(one, two) for one, two in zip(trainable["one"], trainable["two"]))
    # BatchNorm statistics recomputed for the mean: neither run's
    means = {name: model.get_layer("stem_bn").moving_mean.numpy() for name, model in models.items()}
    assert not np.allclose(means["averaged"], means["two"]) and not np.allclose(means["averaged"], means["one"])
    assert not (tmp_path / "averaged" / "progress").exists()


class _Network:
    def __init__(self):
        self.trainable_weights = [keras.Variable(np.zeros(3, np.float32))]


class _Fitted:
    def __init__(self, network):
        self.network = network

    def get_layer(self, name):
        return self.network


def test_weight_averaging_counts_an_epoch_run_again_after_a_resumption_once(tmp_path):
    network = _Network()
    averaging = WeightAveraging("net", first_epoch=1, store=tmp_path / "average.npz")
    averaging.set_model(_Fitted(network))
    for epoch, value in ((0, 100.0), (1, 1.0), (2, 3.0), (2, 50.0), (3, 8.0)):  # epoch 2 again after a kill
        network.trainable_weights[0].assign(np.full(3, value, np.float32))
        averaging.on_epoch_end(epoch)
    resumed = WeightAveraging("net", first_epoch=1, store=tmp_path / "average.npz")  # a new process reads the store
    mean, counted = resumed._read()
    assert counted == [1, 2, 3] and np.allclose(mean[0], 4.0)


def test_the_builder_gets_only_the_model_options_an_entry_sets():
    """Options left at their defaults are not passed: a builder without them (vgg16_lite, the transfer models)
    refuses any option by name, so an entry that does not name one must still build."""
    assert TrainConfig.from_settings({"model": "vgg16_lite", "epochs": 2}).build_options == {}
    entry = {"model": "1.0.0.35", "standardise_tiles": True, "input_pool": 2, "epochs": 2}
    assert TrainConfig.from_settings(entry).build_options == {"standardise_tiles": True, "input_pool": 2}
    assert TrainConfig(model="vgg19_transfer", weights="vgg19.weights.h5").build_options == {"weights": "vgg19.weights.h5"}
    # the surround channel (a mias_cv recipe's) reaches the builder; a network without the option refuses it by name
    assert TrainConfig(model="1.0.0.35", channels=2).build_options == {"channels": 2}
    with pytest.raises(ValueError, match=r"vgg16_lite.*\['channels'\]"):
        build("vgg16_lite", 2, **TrainConfig(model="vgg16_lite", channels=2).build_options)


@pytest.mark.parametrize(
    "settings, problem",
    [
        ({"epochs": 3, "average_last": 1.5}, "a share of the epochs"),
        ({"epochs": 3, "average_last": -0.5}, "a share of the epochs"),
        ({"epochs": 3, "average_last": 0.5, "batchnorm_batches": 0}, "needs batchnorm_batches"),
    ],
)
def test_weight_averaging_settings_are_checked(settings, problem):
    with pytest.raises(ValueError, match=problem):
        TrainConfig(**settings)


@pytest.mark.parametrize(
    "epochs, stages, share, first",
    [
        (8, (), 0.5, 5),  # the real-data recipe: epochs 5-8
        (3, (), 0.5, 2),  # its quick setting: 2-3 (1.5 rounded up)
        (25, (), 0.28, 19),  # 0.28 x 25 is 7 epochs, not 8 (the float product is 7.000000000000001)
        (2, ({"epochs": 2},), 0.5, 3),  # over all stages
        (4, (), 0.01, 4),  # at least the last epoch
        (4, (), 1.0, 1),
        (4, (), 0.0, 0),  # none
    ],
)
def test_weight_averaging_starts_at_the_share_of_the_epochs_counted_from_the_end(epochs, stages, share, first):
    config = TrainConfig(epochs=epochs, stages=stages, average_last=share)
    assert config.average_from == first
    assert all(stage.average_from == 0 for stage in config.stage_settings()[1:])  # the whole training's, read once


def test_label_sets_map_the_five_class_codes(shards):
    paths, _, table = shards
    codes = table["class_code"].to_numpy()[[0, 2, 4, 6, 8, 10, 1, 3, 5, 7, 9, 11]]
    for label_set, classes in (("type", [0, 1, 2, 1, 2]), ("pathology", [0, 1, 1, 2, 2]), ("binary", [0, 1, 1, 1, 1])):
        labels = np.concatenate([y.numpy() for _, y, _ in make_dataset(paths, label_set, 4)])
        assert np.array_equal(labels, np.asarray(classes)[codes]), label_set


def test_stages_continue_the_schedule_and_history(shards, tmp_path):
    paths, _, _ = shards
    config = TrainConfig(
        model=LIGHT_MODEL,
        epochs=1,
        batch_size=6,
        batchnorm_batches=0,
        threads=2,
        seed=3,
        decay_rate=0.5,
        decay_epochs=1,
        tensorboard=False,
        stages=({"epochs": 1, "abnormal_weight": 2.0, "contrast": 1.2},),
    )
    assert [stage.abnormal_weight for stage in config.stage_settings()] == [6.0, 2.0]
    train(paths, paths, config, tmp_path)
    history = pd.read_csv(tmp_path / "history.csv")
    assert list(history["epoch"]) == [0, 1]
    assert history["learning_rate"].tolist() == pytest.approx([0.001, 0.0005])  # the staircase runs on over stages


def test_transfer_copies_layers_freezes_convolutions_and_trains_the_new_head(tmp_path):
    from mammo.models import build
    from mammo.train import initialise_from

    source = build("1.0.0.35", 5)
    source.save(tmp_path / "source.keras")
    model = build("1.0.0.35", 2)
    copied = initialise_from(model, str(tmp_path / "source.keras"), "convolutions")
    assert "probabilities" not in copied and {"block1a_conv", "block5a_conv", "fc1_dense"} <= set(copied)
    assert np.array_equal(model.get_layer("block3a_conv").get_weights()[0], source.get_layer("block3a_conv").get_weights()[0])
    assert not model.get_layer("block1a_conv").trainable and not model.get_layer("block5a_bn").trainable
    assert model.get_layer("fc1_dense").trainable and model.get_layer("probabilities").trainable
    with pytest.raises(ValueError, match="no layer matches"):
        initialise_from(build("vgg19_transfer", 2), str(tmp_path / "source.keras"), "none")


def test_mirrored_strategy_with_mixed_precision_trains_and_saves(shards, tmp_path):
    """Several devices: variables mirrored over two replicas, bfloat16 compute, the augmentation's seed state,
    precise BatchNorm and the TensorBoard callbacks all run; the saved model is a plain float32 model."""
    paths, _, _ = shards
    script = Path(__file__).with_name("mirrored_training.py")
    run = subprocess.run(
        [sys.executable, str(script), str(paths[0]), str(tmp_path), "mixed_bfloat16"], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "replicas: 2" in run.stdout
    model = keras.models.load_model(tmp_path / "model.keras")
    assert model.dtype_policy.name == "float32"
    probabilities = model.predict(np.zeros((2, 299, 299, 1), np.uint8), verbose=0)
    assert probabilities.dtype == np.float32 and np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1


def test_dtype_policy_auto_uses_bfloat16_only_where_it_is_native(monkeypatch):
    import mammo.train as training

    monkeypatch.setattr(training, "bfloat16_arithmetic", lambda: True)
    assert training.dtype_policy("auto") == "mixed_bfloat16"
    monkeypatch.setattr(training, "bfloat16_arithmetic", lambda: False)
    assert training.dtype_policy("auto") == "float32"  # emulated bfloat16 is slower than float32
    assert training.dtype_policy(None) == "float32" and training.dtype_policy("mixed_bfloat16") == "mixed_bfloat16"


def test_bfloat16_arithmetic_follows_the_cpu_flags():
    from mammo.train import bfloat16_arithmetic

    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU decides as well")
    assert bfloat16_arithmetic() == bool(flags & {"avx512_bf16", "amx_bf16"})


@pytest.fixture(scope="module")
def backend_runs(demo_root, tmp_path_factory) -> dict[str, Path]:
    """The demo's mini-MIAS films cut into tiles, written as records and trained on for one epoch of 3 steps, seed 9,
    on each Keras backend in a process of its own (tests/backend_training.py), both at once: backend -> its folder."""
    from mammo.backend import BACKENDS

    root = tmp_path_factory.mktemp("backends")
    script = Path(__file__).with_name("backend_training.py")
    runs = {}
    for backend in BACKENDS:
        with open(root / f"{backend}.log", "w") as log:
            command = [sys.executable, str(script), backend, str(demo_root), str(root / backend)]
            runs[backend] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    for backend, run in runs.items():
        assert run.wait(timeout=900) == 0, (root / f"{backend}.log").read_text()[-3000:]
        assert f"Keras backend: {backend}," in (root / f"{backend}.log").read_text()
    return {backend: root / backend for backend in BACKENDS}


def test_a_model_trained_on_jax_loads_exports_and_scores_on_tensorflow(backend_runs, tmp_path):
    """model.keras does not depend on the backend that trained it: on TensorFlow (this process) it gives the
    probabilities JAX gave to 1e-5 (two implementations of float32 kernels), and the validation metrics that JAX's fit
    reported come out of those probabilities; its ONNX export and the inference engines run it."""
    import shutil

    from mammo.inference import export_onnx, open_engine
    from mammo.train import AbnormalPRAUC

    assert keras.backend.backend() == "tensorflow"
    trained = backend_runs["jax"]
    model = keras.models.load_model(trained / "model.keras")
    val = make_dataset([trained / "records" / "val.tfrecord"], "binary", batch_size=8, abnormal_weight=6.0)
    images, labels, weights = next(val.as_numpy_iterator())  # the 8 validation tiles, as fit's validation saw them
    probabilities = model.predict(images, verbose=0)
    np.testing.assert_allclose(probabilities, np.load(trained / "predictions.npy"), atol=1e-5)

    reported = pd.read_csv(trained / "history.csv").iloc[-1]
    pr_auc = AbnormalPRAUC()
    pr_auc.update_state(labels, probabilities)
    assert float(pr_auc.result()) == pytest.approx(reported["val_abnormal_pr_auc"], abs=1e-6)
    accuracy = np.sum(weights * (probabilities.argmax(axis=1) == labels)) / np.sum(weights)
    assert accuracy == pytest.approx(reported["val_accuracy"], abs=1e-6)
    # Keras' cross-entropy of probabilities (clipped to 1e-7) weighted per tile over the batch, plus the L2 penalties
    chosen = np.clip(probabilities[np.arange(len(labels)), labels], 1e-7, 1 - 1e-7)
    loss = np.sum(weights * -np.log(chosen)) / len(labels) + sum(float(penalty) for penalty in model.losses)
    assert loss == pytest.approx(reported["val_loss"], rel=1e-5)

    shutil.copy(trained / "model.keras", tmp_path / "model.keras")
    export_onnx(tmp_path / "model.keras", tmp_path / "model.onnx")
    for engine in ("tensorflow", "onnxruntime"):
        scores = open_engine(tmp_path / "model.keras", engine).predictor()(images[..., 0])
        np.testing.assert_allclose(scores, probabilities, atol=1e-5, err_msg=engine)


# Each backend draws the initial weights, dropout and augmentation from its own generator, so the same seed does not
# give the same weights, and the metrics agree only as those of two seeds do. The training loss of these 3 steps (about
# 10.2 of L2 penalty, the same in expectation for both initialisers, and 1-2.5 of weighted cross-entropy) was 11.3-12.8
# over seeds 1-4 on either backend (8 runs): the two backends' losses are within this share of each other. The
# validation metrics after 3 steps from different weights are noise (PR AUC 0.41-0.85 over the same runs): not compared.
LOSS_TOLERANCE = 0.15


def test_same_seed_same_tiles_and_batches_on_both_backends_and_the_loss_within_tolerance(backend_runs):
    from mammo.records import read_dataset

    runs = [backend_runs["tensorflow"], backend_runs["jax"]]
    for split in ("train", "val"):
        tensorflow_records, jax_records = [
            list(read_dataset([run / "records" / f"{split}.tfrecord"]).as_numpy_iterator()) for run in runs
        ]
        assert len(tensorflow_records) == len(jax_records) == {"train": 24, "val": 8}[split]
        for ours, theirs in zip(tensorflow_records, jax_records):
            assert ours.keys() == theirs.keys() and all(np.array_equal(ours[key], theirs[key]) for key in ours)
    tensorflow_batches, jax_batches = [(run / "batches.sha256").read_text() for run in runs]
    assert tensorflow_batches == jax_batches  # the seeded tf.data pipeline is the same on both
    tensorflow_loss, jax_loss = [pd.read_csv(run / "history.csv")["loss"].iloc[-1] for run in runs]
    assert jax_loss == pytest.approx(tensorflow_loss, rel=LOSS_TOLERANCE)


def test_training_refuses_a_backend_other_than_the_one_keras_runs(shards, tmp_path):
    import os

    from mammo.backend import use_keras_backend

    before = os.environ.get("KERAS_BACKEND")
    with pytest.raises(ValueError, match="this needs Keras on jax, but this process already runs Keras on tensorflow"):
        train(shards[0], shards[0], TrainConfig(epochs=1, batch_size=6, backend="jax"), tmp_path)
    assert os.environ.get("KERAS_BACKEND") == before and list(tmp_path.iterdir()) == []  # refused before anything
    with pytest.raises(ValueError, match="Keras backend 'torch': one of tensorflow, jax"):
        use_keras_backend("torch")
