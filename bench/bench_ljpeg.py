"""DDSM LJPEG decode benchmark (issue targets: predictor 1 at >= 80% of the raw codec's speed,
predictors 2-7 at >= 20 megapixels/s, peak memory <= 4x the decoded image).

Usage: .venv/bin/python bench/bench_ljpeg.py [--rows 4000 --columns 2500 --repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path

import imagecodecs
import numpy as np

from mammo.demo.anatomy import normal_breast
from mammo.intensity import od_to_raw
from mammo.io.ljpeg import decode_ljpeg, encode_ljpeg


def best_of(repeats: int, function) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def peak_memory(function) -> int:
    tracemalloc.start()
    function()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--columns", type=int, default=2500)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    shape = (args.rows, args.columns)
    megapixels = shape[0] * shape[1] / 1e6
    od, _ = normal_breast(shape, np.random.default_rng(0), chest_wall_left=True)
    raw = od_to_raw(od, "HOWTEK", "MGH", 12)
    raw[0] = 1 << 11  # a first line at 2**(12-1): PVRG and T.81 predict it alike, so imagecodecs' stream is a valid PVRG one
    folder = Path(tempfile.mkdtemp())
    streams = {
        1: encode_ljpeg(raw, 12),
        # imagecodecs writes predictor 6; the reader treats any predictor-6 stream as PVRG, same work
        6: imagecodecs.ljpeg_encode(raw, bitspersample=12),
    }
    print(f"12-bit scan of {shape[0]}x{shape[1]} = {megapixels:.1f} megapixels, best of {args.repeats}")
    for predictor, stream in streams.items():
        path = folder / f"k{predictor}.LJPEG"
        path.write_bytes(stream)
        codec = best_of(args.repeats, lambda: imagecodecs.ljpeg_decode(path.read_bytes()))
        reader = best_of(args.repeats, lambda: decode_ljpeg(path, *shape))
        peak = peak_memory(lambda: decode_ljpeg(path, *shape)) / raw.nbytes
        print(
            f"predictor {predictor}: raw codec {megapixels / codec:6.1f} Mpx/s, reader {megapixels / reader:6.1f} Mpx/s "
            f"({codec / reader:.0%} of the codec), peak traced memory {peak:.1f}x the decoded image"
        )
    print("targets: predictor 1 >= 80% of the codec; predictors 2-7 >= 20 Mpx/s; peak memory <= 4x")


if __name__ == "__main__":
    main()
