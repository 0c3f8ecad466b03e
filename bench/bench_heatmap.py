"""Whole-scan analysis benchmark (issue targets on a 2-core CPU: one ~5300x3100 scan, reading included,
in at most 5 s at stride 299 and 15 s at stride 149 with TensorFlow, and under 1 s at stride 299 with the
fastest engine; peak memory at most 1.5 GB).

Each configuration (engine and precision, stride) runs in a fresh process, so its peak resident memory (the
engine and the model included) is its own. The model is 1.0.0.35 with random weights (the same arithmetic as
a trained one), exported to ONNX for OpenVINO and ONNX Runtime.

Usage: .venv/bin/python bench/bench_heatmap.py [--rows 5300 --columns 3100 --repeats 3 --strides 299 149
       --engines tensorflow/float32 openvino/float32 openvino/bfloat16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGETS = {299: 5.0, 149: 15.0}  # seconds per scan through TensorFlow
FASTEST_TARGET = {299: 1.0}  # seconds per scan through the fastest engine
MEMORY_TARGET_MB = 1536


def make_inputs(folder: Path, rows: int, columns: int) -> tuple[Path, Path]:
    """A generated breast with one mass as an uncompressed 16-bit DICOM (as CBIS-DDSM ships), and the model."""
    import numpy as np

    from mammo.demo import anatomy
    from mammo.intensity import od_to_uint16
    from mammo.io.dicom import write_dicom
    from mammo.models import build

    rng = np.random.default_rng(0)
    od, breast = anatomy.normal_breast((rows, columns), rng, chest_wall_left=True)
    anatomy.add_mass(od, breast, rng, malignant=True, size=300)
    scan_path, model_path = folder / "scan.dcm", folder / "model.keras"
    write_dicom(scan_path, od_to_uint16(od), "BENCH", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    build("1.0.0.35", 2).save(model_path)
    # exported in its own process: Linux keeps a process's peak RSS across exec, so the parent stays small
    export = (
        f"from mammo.inference import export_onnx; export_onnx({str(model_path)!r}, {str(model_path.with_suffix('.onnx'))!r})"
    )
    subprocess.run([sys.executable, "-c", export], check=True, capture_output=True)
    return scan_path, model_path


def run_one(scan_path: str, model_path: str, stride: int, repeats: int, engine: str) -> dict:
    """In this process: open the model once through `engine` (name/precision), then read and score the scan
    `repeats` times."""
    from mammo.heatmap import Windowing, score_scan
    from mammo.inference import open_engine
    from mammo.io.scan import read_scan

    name, precision = engine.split("/")
    started = time.perf_counter()
    predict = open_engine(model_path, name, precision, threads=2).predictor()
    load_seconds = time.perf_counter() - started
    windowing = Windowing(stride=stride)
    times, result = [], None
    for _ in range(repeats + 1):  # the first call traces the graph: warm-up, not counted
        start = time.perf_counter()
        result = score_scan(read_scan(scan_path), predict, windowing)
        times.append(time.perf_counter() - start)
    timed = times[1:]
    return {
        "stride": stride,
        "shape": list(result.shape),
        "windows_scored": int(len(result.scores)),
        "windows_total": int(result.windows_total),
        "seconds_best": round(min(timed), 2),
        "seconds_mean": round(sum(timed) / len(timed), 2),
        "first_call_seconds": round(times[0], 2),
        "model_load_seconds": round(load_seconds, 2),
        "windows_per_second": round(len(result.scores) / min(timed), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=5300)
    parser.add_argument("--columns", type=int, default=3100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strides", type=int, nargs="+", default=[299, 149])
    parser.add_argument("--engines", nargs="+", default=["tensorflow/float32", "openvino/float32", "openvino/bfloat16"])
    parser.add_argument("--one", nargs=4, metavar=("SCAN", "MODEL", "STRIDE", "ENGINE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], args.one[1], int(args.one[2]), args.repeats, args.one[3])))
        return
    with tempfile.TemporaryDirectory() as folder:
        scan_path, model_path = make_inputs(Path(folder), args.rows, args.columns)
        print(f"scan {args.rows}x{args.columns} ({scan_path.stat().st_size / 1e6:.0f} MB DICOM), model 1.0.0.35")
        for stride, engine in [(stride, engine) for stride in args.strides for engine in args.engines]:
            command = [
                sys.executable,
                __file__,
                "--repeats",
                str(args.repeats),
                "--one",
                str(scan_path),
                str(model_path),
                str(stride),
                engine,
            ]
            figures = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
            target = (TARGETS if engine.startswith("tensorflow") else FASTEST_TARGET).get(stride)
            verdict = (
                ""
                if target is None
                else (" (target %.0f s: %s)" % (target, "met" if figures["seconds_best"] <= target else "MISSED"))
            )
            memory = "met" if figures["peak_rss_mb"] <= MEMORY_TARGET_MB else "MISSED"
            print(
                f"{engine}, stride {stride}: {figures['seconds_best']} s best, {figures['seconds_mean']} s mean{verdict}; "
                f"{figures['windows_scored']}/{figures['windows_total']} windows scored, {figures['windows_per_second']} windows/s; "
                f"peak RSS {figures['peak_rss_mb']} MB (target {MEMORY_TARGET_MB} MB: {memory}); "
                f"model load {figures['model_load_seconds']} s, first call {figures['first_call_seconds']} s"
            )


if __name__ == "__main__":
    main()
