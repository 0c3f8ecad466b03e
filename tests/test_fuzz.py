"""`mammo convert` and `mammo scan` fed damaged scans of every format: small files written here, cut at offsets of
their first kilobyte, with seeded byte flips, and with their size fields set to 0, 1 and the largest value.

Each case runs the command line in a forked copy of this process (much faster than a new Python each), under an
address-space limit and an alarm. The command must end by itself (no signal: no crash, no endless loop, no memory
exhaustion), never show a traceback, and either exit 0 with a readable image or exit 1 with one line naming the file.
"""

from __future__ import annotations

import gc
import os
import resource
import signal
import struct
import sys
import tempfile
import traceback
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pydicom
import pytest

from mammo import cli
from mammo.io.dicom import write_dicom
from mammo.io.ics import CaseHeader, ViewGeometry, format_ics
from mammo.io.ljpeg import encode_ljpeg
from mammo.io.mias import write_pgm

CASE_SECONDS = 20  # one small file: a reader that takes longer is looping
CASE_MEMORY = 3 * 2**30  # bytes a case may map beyond what this process holds already
FLIPS = 16
SHAPE = (40, 48)


@dataclass
class Result:
    returncode: int  # negative: the signal that ended it
    stdout: str
    stderr: str


def run_cli(argv: list[str], folder: Path) -> Result:
    """`mammo ARGV` in a forked child, its output captured in files of `folder`."""
    out_file, err_file = folder / "stdout.txt", folder / "stderr.txt"
    limit = _address_space() + CASE_MEMORY
    gc.freeze()  # the child's garbage collection leaves the pages it shares with this process alone: faster forks
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            sys.stdout, sys.stderr = open(out_file, "w"), open(err_file, "w")
            os.dup2(sys.stdout.fileno(), 1)
            os.dup2(sys.stderr.fileno(), 2)
            tempfile.tempdir = str(folder)  # where mammo.runner leaves an unexpected error's traceback
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            signal.alarm(CASE_SECONDS)
            cli.main(argv)
            code = 0
        except SystemExit as exit_info:
            code = exit_info.code if isinstance(exit_info.code, int) else 1
        except BaseException:
            traceback.print_exc()  # what Python prints for an exception nothing caught
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    gc.unfreeze()
    return Result(os.waitstatus_to_exitcode(status), out_file.read_text(), err_file.read_text())


def _address_space() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmSize:"))


# ----------------------------------------------------------------------------- the intact files
def film_pixels(bits: int) -> np.ndarray:
    """A smooth film with noise, in `bits` bits."""
    rows, columns = np.mgrid[: SHAPE[0], : SHAPE[1]]
    noise = np.random.default_rng(5).integers(0, 64, SHAPE)
    return ((rows * 37 + columns * 11 + noise) % 2**bits).astype(np.uint16)


def png_file() -> bytes:
    return cv2.imencode(".png", film_pixels(16) * 7)[1].tobytes()


def pgm_file(folder: Path) -> bytes:
    write_pgm(folder / "intact.pgm", (film_pixels(8)).astype(np.uint8))
    return (folder / "intact.pgm").read_bytes()


def dicom_file(folder: Path) -> bytes:
    write_dicom(folder / "intact.dcm", film_pixels(16) * 7, "P_00001_LEFT_CC", "1.2.3", "1.2.4", "1.2.5")
    return (folder / "intact.dcm").read_bytes()


def ljpeg_file() -> bytes:
    return encode_ljpeg(film_pixels(12), 12)


def ics_file(lines: int = SHAPE[0], pixels: int = SHAPE[1], bits: int = 12) -> bytes:
    views = {"LEFT_CC": ViewGeometry(lines, pixels, bits, 43.5, False)}
    header = CaseHeader(name="A-0001-1", digitizer="HOWTEK 43.5", density=2, patient_age=60, views=views)
    return format_ics(header, "1 2 1995", "6 4 1999").encode()


# ----------------------------------------------------------------------------- the damage
def cuts(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The file cut at every offset of its first 64 bytes, every 16th up to 256 and every 64th up to 1024 (the
    headers; fewer cases keep the test within a minute on a busy machine), in its middle and one byte short."""
    offsets = {*range(64), *range(64, 256, 16), *range(256, 1024, 64), len(data) // 2, len(data) - 1}
    for offset in sorted(offset for offset in offsets if offset < len(data)):
        yield f"cut at {offset}", data[:offset]


def flips(data: bytes, seed: int) -> Iterator[tuple[str, bytes]]:
    """Seeded flips of 1 to 8 bytes: in the first 256 bytes (the headers) for half the cases, anywhere for the rest."""
    rng = np.random.default_rng(seed)
    for number in range(FLIPS):
        damaged = bytearray(data)
        span = len(data) if number % 2 else min(len(data), 256)
        for position in rng.integers(0, span, rng.integers(1, 9)):
            damaged[position] ^= int(rng.integers(1, 256))
        yield f"flip {number}", bytes(damaged)


SIZES = (0, 1, 2**31 - 1)


def png_sizes(data: bytes) -> Iterator[tuple[str, bytes]]:
    """IHDR width or height changed, its CRC made right again (else libpng stops at the CRC)."""
    for offset, field in ((16, "width"), (20, "height")):
        for size in SIZES:
            chunk = data[12:16] + data[16:offset] + struct.pack(">I", size) + data[offset + 4 : 29]
            yield f"{field} {size}", data[:12] + chunk + struct.pack(">I", zlib.crc32(chunk)) + data[33:]


def pgm_sizes(data: bytes) -> Iterator[tuple[str, bytes]]:
    pixels = data.split(b"\n", 3)[3]
    for size in SIZES:
        yield f"width {size}", f"P5\n{size} {SHAPE[0]}\n255\n".encode() + pixels
        yield f"height {size}", f"P5\n{SHAPE[1]} {size}\n255\n".encode() + pixels
    for maxval in (0, 1, 65535, 2**31 - 1):
        yield f"maxval {maxval}", f"P5\n{SHAPE[1]} {SHAPE[0]}\n{maxval}\n".encode() + pixels


def dicom_sizes(data: bytes, folder: Path) -> Iterator[tuple[str, bytes]]:
    """Rows, Columns and BitsAllocated changed (16-bit fields: 65535 is their largest value)."""
    for keyword, values in (("Rows", (0, 1, 65535)), ("Columns", (0, 1, 65535)), ("BitsAllocated", (0, 1, 64))):
        for value in values:
            dataset = pydicom.dcmread(folder / "intact.dcm")
            setattr(dataset, keyword, value)
            dataset.save_as(folder / "changed.dcm")
            yield f"{keyword} {value}", (folder / "changed.dcm").read_bytes()


def ljpeg_sizes(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The SOF3 header's precision, height and width changed."""
    sof = data.index(b"\xff\xc3") + 4
    for offset, field, values in ((0, "precision", (0, 1, 255)), (1, "height", (0, 1, 65535)), (3, "width", (0, 1, 65535))):
        for value in values:
            packed = struct.pack(">B" if field == "precision" else ">H", value)
            yield f"SOF3 {field} {value}", data[: sof + offset] + packed + data[sof + offset + len(packed) :]


def ics_sizes() -> Iterator[tuple[str, bytes]]:
    for size in SIZES:
        yield f"LINES {size}", ics_file(lines=size)
        yield f"PIXELS_PER_LINE {size}", ics_file(pixels=size)
    for bits in (0, 64):
        yield f"BITS_PER_PIXEL {bits}", ics_file(bits=bits)


def cases(kind: str, folder: Path) -> tuple[str, list[tuple[str, bytes]], bool]:
    """(the damaged file's name, its damaged versions, whether a cut may still read: only the .ics is read as
    lines, of which a cut may leave every one the view needs)."""
    if kind == "png":
        data = png_file()
        return "scan.png", [*cuts(data), *flips(data, 1), *png_sizes(data)], False
    if kind == "pgm":
        data = pgm_file(folder)
        return "mdb001.pgm", [*cuts(data), *flips(data, 2), *pgm_sizes(data)], False
    if kind == "dicom":
        data = dicom_file(folder)
        return "000000.dcm", [*cuts(data), *flips(data, 3), *dicom_sizes(data, folder)], False
    if kind == "ljpeg":
        data = ljpeg_file()
        return "A_0001_1.LEFT_CC.LJPEG", [*cuts(data), *flips(data, 4), *ljpeg_sizes(data)], False
    data = ics_file()
    return "A-0001-1.ics", [*cuts(data), *flips(data, 5), *ics_sizes()], True


def listing(folder: Path) -> set[Path]:
    """Every file and folder under `folder` but run_cli's captured output: what a case wrote outside the output it
    names is what it should not (temporary files included: run_cli's child keeps them in `folder`)."""
    return set(folder.rglob("*")) - {folder / "stdout.txt", folder / "stderr.txt"}


def problems(result: Result, names: set[str], output: Path, cut: bool, may_read_cut: bool) -> str | None:
    """What is wrong with how the command line met a damaged file; None: nothing. Its error must name one of `names`
    (the damaged file, or the scan read with it)."""
    if result.returncode < 0:
        return f"ended by signal {-result.returncode}" + (" (timeout)" if -result.returncode == signal.SIGALRM else "")
    if "Traceback" in result.stderr:
        return "a traceback: " + result.stderr.strip().splitlines()[-1]
    lines = result.stderr.strip().splitlines()
    if "(unexpected; traceback in" in result.stderr:  # mammo.runner's line for a failure that is not bad input
        return f"an unexpected error: {lines[-1]}"
    if result.returncode == 1:
        return None if lines and any(name in lines[-1] for name in names) else f"exit 1 without a line naming the file: {lines}"
    if result.returncode != 0:
        return f"exit {result.returncode}: {lines}"
    if cut and not may_read_cut:
        return "a cut file read without a word"
    image = np.load(output, allow_pickle=False) if output.suffix == ".npy" else cv2.imread(str(output), cv2.IMREAD_UNCHANGED)
    return None if image.ndim == 2 and image.dtype == np.uint16 and image.size else f"read as {image.dtype} {image.shape}"


@pytest.mark.parametrize("kind", ["png", "pgm", "dicom", "ljpeg", "ics"])
def test_convert_meets_damaged_files_with_one_line_or_a_readable_image(kind, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    name, damaged_versions, may_read_cut = cases(kind, tmp_path)
    intact = {"A-0001-1.ics": ics_file(), "A_0001_1.LEFT_CC.LJPEG": ljpeg_file()}
    for other, data in intact.items():
        if kind in ("ljpeg", "ics"):
            (folder / other).write_bytes(data)
    damaged = folder / name
    convertible = "A_0001_1.LEFT_CC.LJPEG" if kind in ("ljpeg", "ics") else name
    failures = []
    for number, (case, data) in enumerate(damaged_versions):
        damaged.write_bytes(data)
        output = tmp_path / f"out{number}{('.npy', '.png')[number % 2]}"  # both writers, in turn
        before = listing(tmp_path)
        result = run_cli(["convert", str(folder / convertible), str(output)], tmp_path)
        problem = problems(result, {name, convertible}, output, case.startswith("cut"), may_read_cut)
        stray = listing(tmp_path) - before - ({output} if result.returncode == 0 else set())
        if problem or stray:
            failures.append(f"{name} {case}: {problem or f'wrote {sorted(map(str, stray))}'}")
    assert not failures, f"{len(failures)} of {len(damaged_versions)} cases:\n" + "\n".join(failures[:25])


@pytest.mark.parametrize("kind", ["png", "pgm", "dicom"])
def test_a_folder_scan_meets_damaged_files_with_one_line(kind, tmp_path):
    """A folder holding one damaged scan (sampled cases): found, and refused in one line naming it, before the model
    (a file no engine loads: a readable scan is refused for the model, in one line naming that)."""
    folder = tmp_path / "scans"
    folder.mkdir()
    (tmp_path / "model.onnx").write_bytes(b"not a model")
    name, damaged_versions, _ = cases(kind, tmp_path)
    damaged = folder / name
    failures = []
    for case, data in damaged_versions[::12]:
        damaged.write_bytes(data)
        argv = ["scan", str(folder), "--model", str(tmp_path / "model.onnx"), "--engine", "onnxruntime"]
        before = listing(tmp_path)
        result = run_cli([*argv, "--out", str(tmp_path / "out")], tmp_path)
        lines = result.stderr.strip().splitlines()
        named = lines and (damaged.name in lines[-1] or "model.onnx" in lines[-1] or str(folder) in lines[-1])
        stray = {path for path in listing(tmp_path) - before if not path.is_relative_to(tmp_path / "out")}
        if result.returncode != 1 or "Traceback" in result.stderr or not named or stray:
            failures.append(f"{name} {case}: exit {result.returncode}, {lines[-3:]}, wrote {sorted(map(str, stray))}")
    assert not failures, "\n".join(failures[:25])
