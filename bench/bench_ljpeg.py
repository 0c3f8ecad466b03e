"""DDSM LJPEG decode benchmark: the reader (with its stream check) side by side with the codecs it builds on, on the
same stream in one process (issue targets: predictor 1 at >= 0.85x imagecodecs.jpeg8_decode; predictors 2-7 not
slower than before; peak memory <= 4x the decoded image).

Each round times every decoder once, in an order that rotates from round to round, so that a busy machine slows
them alike; best and median over the rounds are printed, with the CPU and the load average.

Usage: .venv/bin/python bench/bench_ljpeg.py [--rows 4000 --columns 2500 --rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import imagecodecs
import numpy as np

from mammo.demo.anatomy import normal_breast
from mammo.intensity import od_to_raw
from mammo.io.ljpeg import decode_ljpeg, encode_ljpeg


def cpu_description() -> str:
    """CPU model and the vector extensions that matter to the codecs (from /proc/cpuinfo where there is one)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    vector = " ".join(flag for flag in ("sse4_2", "avx2", "avx512f", "avx512bw", "avx512_bf16") if flag in flags)
    return f"{fields.get('model name', '?')}, {os.cpu_count()} CPUs, {vector}{'' if 'avx512f' in flags else ', no AVX-512'}"


def side_by_side(decoders: dict, rounds: int) -> dict[str, dict[str, list[float]]]:
    """Wall-clock and CPU seconds of each decoder per round; round k starts at decoder k (mod their count). On a
    shared machine the CPU time (this process's) varies less than the wall-clock time, which waits for other work."""
    names = list(decoders)
    times = {name: {"wall": [], "cpu": []} for name in names}
    for round_index in range(rounds):
        for name in names[round_index % len(names) :] + names[: round_index % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            decoders[name]()
            times[name]["wall"].append(time.perf_counter() - wall)
            times[name]["cpu"].append(time.process_time() - cpu)
    return times


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
    parser.add_argument("--rounds", type=int, default=7)
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
    print(f"CPU: {cpu_description()}; load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print(f"12-bit scan of {shape[0]}x{shape[1]} = {megapixels:.1f} megapixels, {args.rounds} rounds side by side")
    for predictor, stream in streams.items():
        path = folder / f"k{predictor}.LJPEG"
        path.write_bytes(stream)
        expected = imagecodecs.ljpeg_decode(stream) if predictor == 1 else raw
        assert np.array_equal(decode_ljpeg(path, *shape), expected), "the reader must decode the stream exactly"
        times = side_by_side(
            {
                "decode_ljpeg": lambda: decode_ljpeg(path, *shape),
                "jpeg8_decode": lambda: imagecodecs.jpeg8_decode(path.read_bytes()),
                "ljpeg_decode": lambda: imagecodecs.ljpeg_decode(path.read_bytes()),
            },
            args.rounds,
        )
        peak = peak_memory(lambda: decode_ljpeg(path, *shape)) / raw.nbytes
        print(f"predictor {predictor}: peak traced memory of decode_ljpeg {peak:.1f}x the decoded image")
        for clock in ("wall", "cpu"):
            best = {name: min(seconds[clock]) for name, seconds in times.items()}
            median = {name: statistics.median(seconds[clock]) for name, seconds in times.items()}
            for name in times:
                print(
                    f"  {clock:4s} {name:13s} best {megapixels / best[name]:6.1f} Mpx/s, median {megapixels / median[name]:6.1f} "
                    f"Mpx/s; decode_ljpeg runs at {best[name] / best['decode_ljpeg']:.2f}x this (best), "
                    f"{median[name] / median['decode_ljpeg']:.2f}x (median)"
                )
    print(f"load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    print("targets: predictor 1 decode_ljpeg >= 0.85x jpeg8_decode; predictor 6 not slower than before; peak memory <= 4x")


if __name__ == "__main__":
    main()
