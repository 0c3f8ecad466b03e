"""ONNX export of a tile model, one process per export, to time side by side as whole commands
(for instance with hyperfine):

    .venv/bin/python bench/bench_export.py --model 1.0.0.35 --save build/bench/model.keras   # once: a seeded model
    hyperfine -r 5 '.venv/bin/python bench/bench_export.py --via pipeline build/bench/model.keras' \
        '.venv/bin/python bench/bench_export.py --via keras build/bench/model.keras'

`--via pipeline` is `mammo.inference.export_onnx` (the weights converted as graph inputs, folded afterwards by
ONNX Runtime); `--via keras` is Keras's own `Model.export(format="onnx")` of the same `tile_graph`, what the
pipeline did before. Each prints its export seconds (loading the model not counted) and, for the pipeline, the
largest difference from the Keras model's probabilities through ONNX Runtime on a few tiles.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def save_model(name: str, path: Path) -> None:
    import keras

    from mammo.models import build

    keras.utils.set_random_seed(0)
    path.parent.mkdir(parents=True, exist_ok=True)
    build(name, 2).save(path)


def export(model_path: Path, via: str, target: Path) -> float:
    from mammo.inference import export_onnx, load_tile_model, tile_graph, with_dtype_policy

    if via == "pipeline":
        start = time.perf_counter()
        export_onnx(model_path, target)
        return time.perf_counter() - start
    graph = tile_graph(with_dtype_policy(load_tile_model(model_path), "float32"))
    start = time.perf_counter()
    graph.export(str(target), format="onnx", verbose=False)
    return time.perf_counter() - start


def largest_difference(model_path: Path, export_path: Path) -> float:
    import onnxruntime

    from mammo.inference import load_tile_model, tile_graph

    tiles = np.random.default_rng(0).integers(0, 256, (4, 299, 299), dtype=np.uint8)
    contrast = np.full((4, 1), 1.3, np.float32)
    expected = tile_graph(load_tile_model(model_path)).predict([tiles, contrast], verbose=0)
    session = onnxruntime.InferenceSession(str(export_path), providers=["CPUExecutionProvider"])
    return float(np.abs(session.run(None, {"tiles": tiles, "contrast": contrast})[0] - expected).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_file", nargs="?", type=Path, help="a saved model.keras to export")
    parser.add_argument("--via", choices=("pipeline", "keras"), default="pipeline")
    parser.add_argument("--model", default="1.0.0.35", help="registered model name (with --save)")
    parser.add_argument("--save", type=Path, help="build the model seeded and save it here instead of exporting")
    args = parser.parse_args()
    if args.save:
        save_model(args.model, args.save)
        return
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / "model.onnx"
        seconds = export(args.model_file, args.via, target)
        print(f"export via {args.via}: {seconds:.1f} s, {target.stat().st_size / 1e6:.0f} MB")
        if args.via == "pipeline":
            print(f"largest difference from Keras (ONNX Runtime): {largest_difference(args.model_file, target):.2e}")


if __name__ == "__main__":
    main()
