"""Tile inference benchmark of every engine, side by side (issue targets on a CPU: the fastest engine at least
2x Keras/TensorFlow float32 on the same machine; float32 engines within 1e-4 of Keras in P(abnormal)).

Engines: Keras/TensorFlow float32, TensorFlow mixed_bfloat16 (the same weights in a model built under that
policy), and the ONNX export through OpenVINO (float32 and bfloat16) and ONNX Runtime (float32). Each runs the
same tiles in batches of `--batch`; the engines take turns `--repeats` times (a shared virtual machine's speed
drifts) and the median rate is reported in images per second and as a share of the bound: the model's
arithmetic per image against this machine's float32 matrix-multiply rate (bench_train.py). The largest
difference in P(abnormal) from Keras float32 is printed for each engine; with `--records` (a folder of TFRecords
and the tile table of a trained model's test set) the ROC-AUC of each engine on those tiles too.

Usage: .venv/bin/python bench/bench_inference.py [--model results/ds9/model_1.0.0.35/model.keras]
       [--records results/ds9/records] [--tiles 256 --batch 32 --repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_model_rate import device_name  # sibling scripts: bench/ is on sys.path when run
from bench_train import forward_flops, matmul_flops_per_second

SPEEDUP_TARGET = 2.0
AGREEMENT_TARGET = 1e-4


def cpu_description() -> str:
    """The CPU model and the flags that decide the arithmetic (vector width, bfloat16, AMX)."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wanted = [flag for flag in flags if flag in ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")]
    return f"{model}; flags {' '.join(wanted) or 'none of avx2/avx512/amx'}"


def breast_like_tiles(count: int) -> np.ndarray:
    """Smooth bright blobs over noise: a spread of grey levels like tissue (random weights do not care, bfloat16 does)."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:299, :299]
    tiles = []
    for _ in range(count):
        cy, cx, radius = rng.uniform(0, 299), rng.uniform(0, 299), rng.uniform(40, 200)
        blob = 200 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * radius**2))
        tiles.append(np.clip(blob + rng.normal(40, 25, blob.shape), 0, 255).astype(np.uint8))
    return np.stack(tiles)


def test_tiles(records: Path) -> tuple[np.ndarray, np.ndarray]:
    """The test split's tiles and labels (label_normal) from a trained model's records."""
    from mammo.records import read_dataset

    paths = sorted(str(path) for path in records.glob("test-*.tfrecord"))
    images, labels = [], []
    for example in read_dataset(paths).as_numpy_iterator():
        images.append(example["image"][..., 0])
        labels.append(int(example["label"] > 0))
    return np.stack(images), np.asarray(labels)


def bfloat16_keras(model_path: Path):
    """Keras under mixed_bfloat16: the trained weights in every layer computing in bfloat16, behind the tile graph."""
    import tensorflow as tf

    from mammo.inference import load_tile_model, tile_graph, with_dtype_policy

    graph = tile_graph(with_dtype_policy(load_tile_model(model_path), "mixed_bfloat16"))
    run = tf.function(lambda tiles, contrast: tf.cast(graph([tiles, contrast], training=False), tf.float32))
    return lambda batch: run(tf.constant(batch), tf.ones((len(batch), 1))).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a trained model.keras (default: 1.0.0.35 with random weights)")
    parser.add_argument("--records", type=Path, help="folder of the model's TFRecords: its test split is scored")
    parser.add_argument("--tiles", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    from mammo.evaluate import p_abnormal
    from mammo.inference import configure_tensorflow, export_onnx, load_tile_model, open_engine
    from mammo.models import build

    configure_tensorflow(1, args.threads)
    print(f"CPU: {cpu_description()}; {device_name()}; {args.threads} threads, batch {args.batch}")
    with tempfile.TemporaryDirectory() as folder:
        model_path = Path(folder) / "model.keras"
        if args.model:
            model_path.write_bytes(args.model.read_bytes())
        else:
            build("1.0.0.35", 2).save(model_path)
        started = time.perf_counter()
        export_onnx(model_path, model_path.with_suffix(".onnx"))
        print(f"export to ONNX: {time.perf_counter() - started:.1f} s")
        flops, peak = forward_flops(load_tile_model(model_path)), matmul_flops_per_second()
        bound = peak / flops
        print(f"model: {flops / 1e9:.2f} GFLOP per tile; float32 matmul {peak / 1e9:.0f} GFLOP/s: bound {bound:.0f} img/s")

        labels = None
        if args.records:
            tiles, labels = test_tiles(args.records)
            print(f"tiles: the test split of {args.records}, {len(tiles)} tiles ({int(labels.sum())} abnormal)")
        else:
            tiles = breast_like_tiles(args.tiles)
            print(f"tiles: {len(tiles)} generated breast-like tiles")
        engines = {
            "tensorflow float32": open_engine(model_path, "tensorflow").predictor(),
            "tensorflow mixed_bfloat16": bfloat16_keras(model_path),
            "openvino float32": open_engine(model_path, "openvino", "float32", args.threads).predictor(),
            "openvino bfloat16": open_engine(model_path, "openvino", "bfloat16", args.threads).predictor(),
            "onnxruntime float32": open_engine(model_path, "onnxruntime", "float32", args.threads).predictor(),
        }
        batches = [tiles[start : start + args.batch] for start in range(0, len(tiles), args.batch)]
        scores = {name: p_abnormal(np.concatenate([run(batch) for batch in batches])) for name, run in engines.items()}
        rates = {name: [] for name in engines}
        for repeat in range(args.repeats):
            for name, run in engines.items():
                started = time.perf_counter()
                for batch in batches:
                    run(batch)
                rates[name].append(len(tiles) / (time.perf_counter() - started))
            print(f"repeat {repeat + 1}: " + ", ".join(f"{name} {rate[-1]:.1f}" for name, rate in rates.items()), flush=True)

    reference = "tensorflow float32"
    base = float(np.median(rates[reference]))
    print(
        f"\n{'engine':<28}{'img/s':>8}{'x TF fp32':>11}{'of bound':>10}{'max |dP|':>11}"
        + ("  ROC-AUC" if labels is not None else "")
    )
    for name in engines:
        rate = float(np.median(rates[name]))
        difference = float(np.abs(scores[name] - scores[reference]).max())
        line = f"{name:<28}{rate:>8.1f}{rate / base:>10.2f}x{rate / bound:>10.0%}{difference:>11.1e}"
        if labels is not None:
            from sklearn.metrics import roc_auc_score

            line += f"  {roc_auc_score(labels, scores[name]):.4f}"
        print(line)
    best = max((name for name in engines if name != reference), key=lambda name: np.median(rates[name]))
    speedup = float(np.median(rates[best])) / base
    print(
        f"\nfastest: {best}, {speedup:.2f}x TensorFlow float32 (target >= {SPEEDUP_TARGET}x): {'met' if speedup >= SPEEDUP_TARGET else 'MISSED'}"
    )
    float32 = [name for name in engines if name.endswith("float32") and name != reference]
    worst = max(float(np.abs(scores[name] - scores[reference]).max()) for name in float32)
    verdict = "met" if worst <= AGREEMENT_TARGET else "MISSED"
    print(f"float32 engines agree with Keras to {worst:.1e} in P(abnormal) (target <= {AGREEMENT_TARGET}): {verdict}")


if __name__ == "__main__":
    main()
