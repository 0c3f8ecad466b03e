"""Run a trained tile model: the Keras model, or its portable export (ONNX) through OpenVINO or ONNX Runtime.

Every engine runs the same graph, `tile_graph`: uint8 tiles (n, 299, 299) and the test-time contrast of each tile
(n, 1) in, class probabilities out, the contrast applied inside. Evaluation, whole-scan scoring and `mammo scan`
open an engine with `open_engine` and record its name and precision in their outputs.

TensorFlow, Keras and the runtimes are imported inside the functions that need them: the command line imports
this module for every command, `mammo check` should not pay for TensorFlow, and an inference-only install
(`pip install .`, no TensorFlow) runs the exported model.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mammo.backend import DEFAULT_BACKEND, cpu_computes_bfloat16, use_keras_backend
from mammo.card import CARD_FILE, card_path, file_sha256, read_card
from mammo.tiles import TILE_SIZE

# "auto" tries them in this order: fastest first (BENCHMARKS.md). OpenVINO compiles the model for a static batch
# shape; shorter batches are padded up to the largest met (_padded_to_one_shape), so a run compiles once (again only
# where a later batch is larger than all before) and its compile time does not change this order.
ENGINES = ("openvino", "onnxruntime", "tensorflow")
# "auto": bfloat16 where OpenVINO computes it on the CPU's own bfloat16 arithmetic, float32 elsewhere (resolved_precision)
PRECISIONS = ("float32", "bfloat16", "auto")
EXPORT_SUFFIX = ".onnx"
# what `tile_graph` takes (None: any batch), as the exported model declares it: name -> (shape, dtype); a model with
# the surround channel takes its tiles as (n, 299, 299, 2)
GRAPH_INPUTS = {"tiles": ((None, TILE_SIZE, TILE_SIZE), "uint8"), "contrast": ((None, 1), "float32")}
SURROUND_GRAPH_INPUTS = {**GRAPH_INPUTS, "tiles": ((None, TILE_SIZE, TILE_SIZE, 2), "uint8")}
# a tile model's input: 1 channel, or 2 with the surround channel (mammo.tiles.surround_view)
TILE_CHANNELS = (1, 2)
_PACKAGES = {"openvino": "openvino", "onnxruntime": "onnxruntime", "tensorflow": "tensorflow"}


def graph_inputs(channels: int) -> dict[str, tuple[tuple, str]]:
    """What `tile_graph` of a model reading `channels` channels takes."""
    return GRAPH_INPUTS if channels == 1 else SURROUND_GRAPH_INPUTS


def load_tile_model(path: str | Path):
    """A Keras model of this pipeline: uint8 299x299x1 tiles (x2 with the surround channel) in, class probabilities
    out; else a clear error. Loaded on TensorFlow whichever backend trained it: the export (tf2onnx) and the
    TensorFlow engine (tf.function) need it."""
    use_keras_backend("tensorflow")
    import keras  # lazily: see the module's docstring

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: model file not found")
    try:
        model = keras.models.load_model(path)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(f"{path}: not a readable Keras model ({err})") from None
    expected = [(None, TILE_SIZE, TILE_SIZE, channels) for channels in TILE_CHANNELS]
    if tuple(model.input_shape) not in expected or len(model.output_shape) != 2 or model.output_shape[-1] < 2:
        raise ValueError(
            f"{path}: a tile model takes {' or '.join(map(str, expected))} and gives class probabilities; "
            f"this one takes {model.input_shape} and gives {model.output_shape}"
        )
    return model


def trained_dtype_policy(keras_file: str | Path) -> str:
    """The Keras dtype policy a saved model was trained under (float32, mixed_bfloat16, ...), read from its config
    without Keras: the policy most of its layers hold (a mixed model keeps a few, such as its softmax, in float32)."""
    try:
        with zipfile.ZipFile(keras_file) as archive:
            layers = json.loads(archive.read("config.json"))["config"]["layers"]
    except (OSError, KeyError, zipfile.BadZipFile, json.JSONDecodeError) as err:
        raise ValueError(f"{keras_file}: not a readable Keras model ({type(err).__name__}: {err})") from None
    policies = Counter(
        layer["config"]["dtype"]["config"]["name"] for layer in layers if isinstance(layer["config"].get("dtype"), dict)
    )
    return policies.most_common(1)[0][0] if policies else "float32"


def check_probabilities(probabilities: np.ndarray, source) -> np.ndarray:
    """The model's output, if it is class probabilities (each row in 0..1, summing to 1); else a clear error."""
    rows = np.asarray(probabilities, dtype=np.float64)
    if not np.isfinite(rows).all():
        raise ValueError(
            f"{source}: the model's outputs are not class probabilities ({np.size(rows) - np.isfinite(rows).sum()} NaN or infinite values)"
        )
    if rows.size and (rows.min() < -1e-6 or rows.max() > 1 + 1e-6 or np.abs(rows.sum(axis=1) - 1).max() > 1e-3):
        raise ValueError(
            f"{source}: the model's outputs are not class probabilities (values {rows.min():.3g}..{rows.max():.3g}, "
            f"row sums up to {rows.sum(axis=1).max():.3g}); a tile model ends in a softmax"
        )
    return probabilities


def configure_tensorflow(seed: int, threads: int, backend: str = DEFAULT_BACKEND) -> None:
    """Seeded, deterministic ops, bounded threads: same seed -> same weights on CPU (training) and same scores. Keras
    on `backend` (mammo.backend): inference runs on TensorFlow, training on its config's backend."""
    use_keras_backend(backend)
    import keras  # lazily: see the module's docstring
    import tensorflow as tf  # lazily: see the module's docstring

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass  # TensorFlow already started in this process: its thread pools are fixed
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def apply_contrast(image, factor: float):
    """The study's `adjust_contrast` on the uint8 image, clipped back to uint8 (training's augmentation)."""
    import tensorflow as tf  # lazily: see the module's docstring

    if factor == 1.0:
        return image
    adjusted = tf.image.adjust_contrast(tf.cast(image, tf.float32), factor)
    return tf.cast(tf.clip_by_value(adjusted, 0.0, 255.0), tf.uint8)


def tile_graph(model):
    """The model behind the test-time contrast: (uint8 tiles (n, 299, 299), or (n, 299, 299, 2) for a model with the
    surround channel, contrast (n, 1)) -> probabilities.

    The contrast is `apply_contrast` written in Keras operations, so that it exports: (x - mean) * f + mean per
    tile, clipped to 0..255 and truncated to whole grey levels as the cast to uint8 does; a factor of 1 leaves the
    tile as it is (computing it would round some grey levels down by one).
    """
    import keras  # lazily: see the module's docstring
    from keras import ops

    channels = model.input_shape[-1]
    tile_shape = graph_inputs(channels)["tiles"][0][1:]
    tiles = keras.Input(tile_shape, dtype="uint8", name="tiles")
    contrast = keras.Input((1,), dtype="float32", name="contrast")
    image = ops.cast(tiles, "float32")
    image = ops.expand_dims(image, -1) if channels == 1 else image
    factor = ops.reshape(contrast, (-1, 1, 1, 1))
    mean = ops.mean(image, axis=(1, 2), keepdims=True)
    adjusted = ops.floor(ops.clip((image - mean) * factor + mean, 0.0, 255.0))
    image = ops.where(ops.equal(factor, 1.0), image, adjusted)
    graph = keras.Model([tiles, contrast], model(image), name=f"{model.name}_tiles")
    graph([np.zeros((1, *tile_shape), np.uint8), np.ones((1, 1), np.float32)])  # built, as export needs
    return graph


def with_dtype_policy(model, policy: str):
    """The model with every layer computing under `policy` (the same weights): a model trained in mixed bfloat16
    runs in float32, or the reverse. Each layer's saved config names its policy, so the layers are cloned."""
    import keras  # lazily: see the module's docstring

    if all(layer.dtype_policy.name == policy for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)):
        return model
    clone = keras.models.clone_model(
        model,
        clone_function=lambda layer: layer.__class__.from_config({**layer.get_config(), "dtype": policy}),
        recursive=True,
    )
    clone.set_weights(model.get_weights())
    return clone


def check_graph(model_file: str | Path, inputs: dict[str, tuple[tuple, str]], output: tuple) -> int:
    """The class count of an exported model whose inputs (name -> (shape, dtype), None for a free dimension) and
    output shape are those of `tile_graph`; else a clear error naming the file."""
    if (
        inputs not in (GRAPH_INPUTS, SURROUND_GRAPH_INPUTS)
        or len(output) != 2
        or output[0] is not None
        or not (output[1] or 0) >= 2
    ):

        def shapes(described):
            return ", ".join(
                f"{name} {tuple('n' if size is None else size for size in shape)} {dtype}"
                for name, (shape, dtype) in described.items()
            )

        raise ValueError(
            f"{model_file}: not a tile model of this pipeline: it takes {shapes(inputs)} and gives "
            f"{tuple('n' if size is None else size for size in output)}; expected {shapes(GRAPH_INPUTS)} (or with the "
            f"surround channel {shapes(SURROUND_GRAPH_INPUTS)}) -> (n, classes)"
        )
    return output[1]


def export_onnx(model_path: str | Path, target: str | Path) -> None:
    """The Keras model at `model_path` in float32 (however it was trained) as ONNX (its `tile_graph`), written
    beside the target first and renamed; the engines lower it to bfloat16 where asked.

    The converter (tf2onnx) copies every constant of the graph at each of its ~25 rewrite passes; the study's
    models hold 32M weights, which made that copying nearly all of a 35-100 s export. So the graph is converted
    with the weights as inputs (`stateless_call`), they become initializers afterwards, and ONNX Runtime's basic
    (hardware-independent, standard-operator) level folds the weight arithmetic the converter would have folded:
    batch normalisation into the convolutions, the kernels' layout. BENCHMARKS.md has the times.
    """
    import onnx  # lazily: see the module's docstring
    import onnxruntime
    import tensorflow as tf
    from keras.src.export.tf2onnx_lib import patch_tf2onnx
    from tf2onnx.convert import from_function

    target = Path(target)
    partial = target.with_name(f".{target.name}.partial{EXPORT_SUFFIX}")
    model = load_tile_model(model_path)
    graph = tile_graph(with_dtype_policy(model, "float32"))
    weights = [variable.value for variable in (*graph.trainable_variables, *graph.non_trainable_variables)]
    trainable = len(graph.trainable_variables)
    described = graph_inputs(model.input_shape[-1])
    inputs = [tf.TensorSpec((None, *shape[1:]), dtype, name=name) for name, (shape, dtype) in described.items()]
    weight_inputs = [tf.TensorSpec(weight.shape, weight.dtype, name=f"weight_{number}") for number, weight in enumerate(weights)]

    @tf.function(input_signature=inputs + weight_inputs)
    def probabilities(tiles, contrast, *values):
        output, _ = graph.stateless_call(list(values[:trainable]), list(values[trainable:]), [tiles, contrast])
        return {"probabilities": output}

    patch_tf2onnx()  # Keras's fix of tf2onnx for NumPy 2, as Model.export applies it
    converted, _ = from_function(probabilities, input_signature=inputs + weight_inputs)
    names = {spec.name for spec in weight_inputs}
    kept = [entry for entry in converted.graph.input if entry.name not in names]
    converted.graph.initializer.extend(
        onnx.numpy_helper.from_array(np.asarray(weight), spec.name) for spec, weight in zip(weight_inputs, weights)
    )
    del converted.graph.input[:]
    converted.graph.input.extend(kept)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # unused weights (a layer's random-seed state) are dropped with a warning each
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(partial)
    onnxruntime.InferenceSession(converted.SerializeToString(), options, providers=["CPUExecutionProvider"])
    partial.replace(target)


@dataclass(frozen=True)
class Engine:
    """A tile model opened by one engine: `run(tiles, contrast)` gives the class probabilities of uint8 tiles."""

    name: str
    precision: str
    model_file: str
    run: Callable[[np.ndarray, float], np.ndarray] = field(repr=False)
    classes: int

    @property
    def version(self) -> str:
        return importlib.metadata.version(_PACKAGES[self.name] if self.name != "tensorflow" else "keras")

    def describe(self) -> dict:
        """What outputs record about the engine that produced them."""
        return {"engine": self.name, "version": self.version, "precision": self.precision, "model_file": self.model_file}

    def predictor(self, contrast: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
        """uint8 (n, 299, 299), or (n, 299, 299, 2) with the surround channel -> checked class probabilities
        (n, classes), all at one test-time contrast."""
        return lambda batch: check_probabilities(self.run(np.ascontiguousarray(batch), contrast), self.model_file)


def installed_engines() -> list[str]:
    return [name for name in ENGINES if importlib.util.find_spec(_PACKAGES[name]) is not None]


def model_files(model_path: str | Path) -> tuple[Path, Path]:
    """(model.keras, model.onnx) of a model named by either."""
    return Path(model_path).with_suffix(".keras"), Path(model_path).with_suffix(EXPORT_SUFFIX)


def resolved_precision(precision: str, engine: str = "auto") -> str:
    """The precision a run computes in: float32 and bfloat16 as named; "auto" is bfloat16 where OpenVINO (the one
    engine running bfloat16) is installed and allowed by `engine` and the CPU has bfloat16 arithmetic (emulated, it is
    slower than float32), float32 elsewhere."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    native = engine in ("auto", "openvino") and "openvino" in installed_engines() and cpu_computes_bfloat16()
    return "bfloat16" if native else "float32"


def choose_engine(model_path: str | Path, engine: str = "auto", precision: str = "float32") -> str:
    """The engine that `open_engine` will use for the model at `model_path` (model.keras or its export
    model.onnx; either finds the other beside it): "auto" takes the first installed of ENGINES that can run a file
    at hand; a named engine that cannot is refused with the reason."""
    model_path = Path(model_path)
    if engine not in ("auto", *ENGINES):
        raise ValueError(f"engine {engine!r}: one of auto, {', '.join(ENGINES)}")
    precision = resolved_precision(precision, engine)
    keras_file, onnx_file = model_files(model_path)
    if not (keras_file.exists() or onnx_file.exists()):
        raise FileNotFoundError(f"{model_path}: model file not found")
    installed = installed_engines()
    runnable = [name for name in installed if (keras_file if name == "tensorflow" else onnx_file).exists()]
    if precision == "bfloat16":
        runnable = [name for name in runnable if name == "openvino"]
    if engine == "auto":
        if not runnable:
            raise ValueError(
                f"{model_path}: no installed engine ({', '.join(installed) or 'none'}) runs it at {precision}; "
                f"{'bfloat16 needs OpenVINO and ' if precision == 'bfloat16' else ''}"
                f"an exported {onnx_file.name} needs OpenVINO or ONNX Runtime, {keras_file.name} needs TensorFlow"
            )
        return runnable[0]
    if engine not in installed:
        raise ValueError(f"engine {engine}: the package {_PACKAGES[engine]} is not installed")
    if engine not in runnable:
        wanted = keras_file if engine == "tensorflow" else onnx_file
        reason = f"{wanted} not found" if not wanted.exists() else f"{engine} runs float32 only"
        raise ValueError(f"{model_path}: engine {engine} cannot run it ({reason})")
    return engine


def open_engine(model_path: str | Path, engine: str = "auto", precision: str = "float32", threads: int = 2) -> Engine:
    """The model at `model_path` through the engine `choose_engine` names. float32 agrees with Keras to 1e-6 in
    every engine; bfloat16 is OpenVINO's (bfloat16 arithmetic where the CPU has it); "auto" as resolved_precision."""
    precision = resolved_precision(precision, engine)
    engine = choose_engine(model_path, engine, precision)
    keras_file, onnx_file = model_files(model_path)
    model_file = keras_file if engine == "tensorflow" else onnx_file
    card = read_card(model_file)
    _check_card_weights(card, model_file, keras_file)
    if engine == "tensorflow":
        configure_tensorflow(0, threads)  # the seed is unused by inference; the threads bound it
        run, classes = _tensorflow_runner(keras_file)
    else:
        opener = _openvino_runner if engine == "openvino" else _onnxruntime_runner
        run, classes = opener(onnx_file, precision, threads)
    if card is not None and len(card["classes"]) != classes:
        raise ValueError(
            f"{card_path(model_file)}: {len(card['classes'])} classes ({', '.join(card['classes'])}), "
            f"but {model_file} gives {classes}: the card of another model"
        )
    return Engine(engine, precision, str(model_file), _padded_to_one_shape(run), classes)


def _check_card_weights(card: dict | None, model_file: Path, keras_file: Path) -> None:
    """The card judged these very weights: a model file it does not name, or one changed since (retrained, exported
    again), is refused."""
    if card is None:
        return
    if model_file.name not in card["weights"]:
        raise ValueError(
            f"{card_path(model_file)}: judged {', '.join(card['weights'])}, not {model_file}: the card of another model"
        )
    for path in {model_file, keras_file}:
        recorded = card["weights"].get(path.name)
        if path.exists() and recorded and recorded != file_sha256(path):
            raise ValueError(f"{path}: changed since its card {CARD_FILE} was written; evaluate the model again")


def _padded_to_one_shape(run: Callable[[np.ndarray, float], np.ndarray]) -> Callable[[np.ndarray, float], np.ndarray]:
    """`run` given every batch padded with blank tiles up to the largest batch met so far, its rows for the real tiles
    returned: an engine meets one batch shape, not one per scan's last batch (OpenVINO compiled, and kept, a model
    for each, ONNX Runtime planned memory for each; memory grew with the number of scans). Each tile's
    probabilities do not depend on the others in its batch."""
    rows = 0

    def run_padded(batch: np.ndarray, contrast: float) -> np.ndarray:
        nonlocal rows
        rows = max(rows, len(batch))
        blank = np.zeros((rows - len(batch), *batch.shape[1:]), batch.dtype)
        return run(np.concatenate([batch, blank]) if len(blank) else batch, contrast)[: len(batch)]

    return run_padded


def _contrast_column(batch: np.ndarray, contrast: float) -> np.ndarray:
    return np.full((len(batch), 1), contrast, np.float32)


def _tensorflow_runner(keras_file: Path):
    import tensorflow as tf  # lazily: see the module's docstring

    model = load_tile_model(keras_file)
    graph = tile_graph(with_dtype_policy(model, "float32"))  # what the exports compute

    @tf.function(reduce_retracing=True)
    def run(tiles, contrast):
        return graph([tiles, contrast], training=False)

    def run_batch(batch: np.ndarray, contrast: float) -> np.ndarray:
        return run(tf.convert_to_tensor(batch), tf.convert_to_tensor(_contrast_column(batch, contrast))).numpy()

    return run_batch, model.output_shape[-1]


def _unreadable(onnx_file: Path, engine: str, err: Exception) -> ValueError:
    """One line for an export the engine cannot parse (empty, cut short, not ONNX): the last line of its message."""
    detail = [line.strip() for line in str(err).splitlines() if line.strip()][-1:] or [type(err).__name__]
    return ValueError(f"{onnx_file}: not a readable ONNX model ({engine}: {detail[0]})")


def _openvino_runner(onnx_file: Path, precision: str, threads: int):
    import openvino  # lazily: see the module's docstring

    core = openvino.Core()
    settings = {"INFERENCE_PRECISION_HINT": {"float32": "f32", "bfloat16": "bf16"}[precision], "INFERENCE_NUM_THREADS": threads}
    try:
        model = core.read_model(str(onnx_file))
    except RuntimeError as err:
        raise _unreadable(onnx_file, "openvino", err) from None

    def shape(port) -> tuple:
        return tuple(None if size.is_dynamic else size.get_length() for size in port.get_partial_shape())

    inputs = {port.get_any_name(): (shape(port), port.get_element_type().to_dtype().name) for port in model.inputs}
    classes = check_graph(onnx_file, inputs, shape(model.outputs[0]) if len(model.outputs) == 1 else ())
    compiled_shape, request, output = None, None, None

    def run(batch: np.ndarray, contrast: float) -> np.ndarray:
        nonlocal compiled_shape, request, output
        if batch.shape != compiled_shape:
            # compiled for one static batch shape: static shapes let OpenVINO plan its kernels once (faster than the
            # export's dynamic batch, 1.3x in bfloat16 in BENCHMARKS.md); the batches come padded to one shape
            # (_padded_to_one_shape), and a new one replaces the model compiled for the last
            model.reshape({model.inputs[0]: list(batch.shape), model.inputs[1]: [len(batch), 1]})
            compiled = core.compile_model(model, "CPU", settings)
            compiled_shape, request, output = batch.shape, compiled.create_infer_request(), compiled.output(0)
        return request.infer([batch, _contrast_column(batch, contrast)])[output].copy()

    return run, classes


def _onnxruntime_runner(onnx_file: Path, precision: str, threads: int):
    import onnxruntime  # lazily: see the module's docstring

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    try:
        session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # ONNX Runtime's load errors (InvalidProtobuf, InvalidArgument, Fail, ...) share no base
        raise _unreadable(onnx_file, "onnxruntime", err) from None

    def described(port) -> tuple[tuple, str]:
        shape = tuple(size if isinstance(size, int) else None for size in port.shape)  # a free dimension is named
        return shape, {"tensor(float)": "float32"}.get(port.type, port.type.removeprefix("tensor(").removesuffix(")"))

    inputs = {port.name: described(port) for port in session.get_inputs()}
    outputs = session.get_outputs()
    classes = check_graph(onnx_file, inputs, described(outputs[0])[0] if len(outputs) == 1 else ())

    def run(batch: np.ndarray, contrast: float) -> np.ndarray:
        return session.run(None, {"tiles": batch, "contrast": _contrast_column(batch, contrast)})[0]

    return run, classes
