"""`mammo` console script."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import warnings
from dataclasses import fields
from pathlib import Path

import numpy as np

from mammo.atomic import npy_bytes, png_bytes, write_atomically
from mammo.check import (
    check_cbis,
    check_ddsm,
    check_ddsm_abnormal,
    check_mias,
    check_own,
    check_root,
    check_vindr,
    format_report,
)
from mammo.demo.collections import SPEC_RANGES, DemoSpec, generate
from mammo.heatmap import Windowing
from mammo.inference import ENGINES, PRECISIONS, choose_engine
from mammo.io.mias import is_archive, read_info, unpack_archive
from mammo.io.scan import read_scan
from mammo.runner import output_to, run_stage
from mammo.sources import scan_files
from mammo.stages.scans import analyse_scans


def _within(kind, low, high):
    """An argparse type: a number of `kind` in low..high (refuses inf and nan too: they lie in no range)."""

    def parse(text: str):
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must lie in {low}..{high}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the kind in "invalid int value"
    return parse


def _add_bounded(parser, option: str, kind, low, high, help: str = "", **kwargs) -> None:
    """A numeric option refused by argparse (exit 2, naming it) outside low..high, its range shown in --help."""
    parser.add_argument(option, type=_within(kind, low, high), help=f"{help} [{low}..{high}]".lstrip(), **kwargs)


def _warning_line(message, category, *_) -> str:
    return f"{category.__name__}: {message}\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mammo", description="mammoflow command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="generate the demo collections (DDSM normals, CBIS-DDSM, mini-MIAS)")
    demo.add_argument("out", help="folder to write cbis-ddsm/, ddsm/, mias/, vindr/ and own/ into")
    _add_bounded(demo, "--workers", int, 1, 64, "processes for the DDSM scans", default=1)
    for field in fields(DemoSpec):
        option = f"--{field.name.replace('_', '-')}"
        _add_bounded(demo, option, type(field.default), *SPEC_RANGES[field.name], default=field.default)
    demo.add_argument("--force", action="store_true", help="write into collection folders that hold files already")
    convert = commands.add_parser(
        "convert", help="turn one scan (LJPEG with its .ics, DICOM, PGM, PNG) into a 16-bit PNG or .npy"
    )
    convert.add_argument("input")
    convert.add_argument("output", help="ends in .png (16-bit) or .npy")
    convert.add_argument("--raw", action="store_true", help="keep the stored values (no optical-density mapping)")
    check = commands.add_parser("check", help="report rows, patients, scans, missing files and rejected rows of a download")
    check.add_argument("root", nargs="?", help="data root holding cbis-ddsm/, ddsm/ and mias/")
    check.add_argument("--cbis", nargs="+", metavar="CSV", help="CBIS-DDSM case description CSVs")
    check.add_argument("--mias", metavar="INFO", help="mini-MIAS Info.txt, or the official archive all-mias.tar.gz")
    check.add_argument("--ddsm", metavar="DIR", help="DDSM folder holding normals/")
    check.add_argument("--vindr", metavar="DIR", help="VinDr-Mammo folder holding the annotation CSVs and images/")
    check.add_argument("--own", metavar="CSV", help="a CSV of your own images (README, 'Your own images')")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    scan = commands.add_parser(
        "scan",
        help="heatmaps and top regions of full scans from a trained tile model, and per woman her films side by side",
    )
    scan.add_argument(
        "input",
        nargs="+",
        help="scans: DDSM .LJPEG (with its .ics), DICOM, mini-MIAS PGM or 16-bit PNG; a folder (every scan under it, "
        "DICOMs known by content whatever their name, links to files outside it skipped, earlier outputs of mammo scan "
        "ignored); or the mini-MIAS archive all-mias.tar.gz (every film in it)",
    )
    scan.add_argument(
        "--model",
        required=True,
        help="a trained model: model.keras, or its export model.onnx (no TensorFlow needed), its card model.json beside it",
    )
    scan.add_argument(
        "--engine", choices=("auto", *ENGINES), default="auto", help="what runs the model (auto: the fastest installed)"
    )
    scan.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="bfloat16: OpenVINO on CPUs with bfloat16 arithmetic; auto: bfloat16 where the CPU has it, else float32",
    )
    _add_bounded(scan, "--threads", int, 1, 1024, "CPU threads of the engine", default=os.cpu_count() or 1)
    scan.add_argument(
        "--out",
        default=".",
        help="folder for <scan>.heatmap.npy, .overlay.png and .regions.json, and <woman>.exam.json and .exam.png",
    )
    defaults = Windowing()
    _add_bounded(
        scan,
        "--stride",
        int,
        1,
        5000,
        f"window stride in pixels at the CBIS-DDSM scale (default: the model card's, else {defaults.stride})",
    )
    _add_bounded(
        scan,
        "--scale",
        float,
        0.05,
        20,
        "CBIS-scale pixels per scan pixel (default: from the model card, for each scan at the model's tile scale; a "
        "card without a scanning section, or none: guessed, 5.16 for a mini-MIAS PGM, else 1)",
    )
    _add_bounded(
        scan,
        "--min-tissue",
        float,
        0,
        1,
        f"skip windows with less breast outside the pectoral muscle (default: the model card's, else {defaults.min_tissue})",
    )
    scan.add_argument(
        "--skip-muscle",
        action=argparse.BooleanOptionalAction,
        help=f"choose windows on breast outside the pectoral muscle (default: the model card's, else {defaults.skip_muscle})",
    )
    _add_bounded(scan, "--batch-size", int, 1, 512, "windows per model call", default=defaults.batch_size)
    _add_bounded(scan, "--top", int, 1, 100, f"regions to report (default: the model card's, else {defaults.top})")
    _add_bounded(
        scan, "--contrast", float, 0.1, 10, "test-time contrast (default: the model card's, model.json beside the model)"
    )
    scan.add_argument("--force", action="store_true", help="replace outputs that exist already")
    args = parser.parse_args(argv)
    warnings.formatwarning = _warning_line  # a warning is one line on the terminal, as an error is
    if args.command == "scan":
        with tempfile.TemporaryDirectory() as unpacked:
            paths = run_stage(None, scan_inputs, args.input, unpacked)
            # options left out (None) are the model card's, and each scan's identity and scale are read, in
            # analyse_scans, where a bad scan fails alone
            windowing = Windowing(
                args.stride, args.scale, args.min_tissue, args.batch_size, args.top, skip_muscle=args.skip_muscle
            )
            scans = [(path, None, windowing) for path in paths]
            inference = {"engine": args.engine, "precision": args.precision, "threads": args.threads}
            start_up = Path(unpacked) / "tensorflow.log"
            if run_stage(None, choose_engine, args.model, args.engine, args.precision) == "tensorflow":
                with output_to(start_up):  # TensorFlow's start-up lines: into the output folder's log, not the terminal
                    import tensorflow  # noqa: F401
            run_stage(None, analyse_scans, scans, args.model, args.out, args.contrast, inference, force=args.force, exams=True)
            if start_up.exists():
                shutil.copy(start_up, Path(args.out) / start_up.name)
    if args.command == "check":
        if not (args.root or args.cbis or args.mias or args.ddsm or args.vindr or args.own):
            parser.error("check needs a data root or --cbis/--mias/--ddsm/--vindr/--own")
        report = run_stage(None, check_download, args.root, args.cbis, args.mias, args.ddsm, args.vindr, args.own)
        print(json.dumps(report, indent=2) if args.json else format_report(report))
    if args.command == "convert":
        run_stage(None, convert_scan, args.input, args.output, args.raw)
    if args.command == "demo":
        spec = DemoSpec(**{field.name: getattr(args, field.name) for field in fields(DemoSpec)})
        roots = [f"{args.out}/{name}" for name in ("cbis-ddsm", "ddsm", "mias", "vindr", "own")]
        if not args.force:
            run_stage(None, refuse_folders_holding_files, roots)
        counts = run_stage(None, generate, *roots[:3], spec, args.workers, vindr_root=roots[3], own_root=roots[4])
        print(json.dumps(counts))


def scan_inputs(inputs: list[str], unpack_into: str) -> list[str]:
    """The scans named on the command line: a folder stands for every scan under it, a mini-MIAS archive for every
    film it holds (checked and unpacked)."""
    paths = []
    for number, name in enumerate(inputs):
        if Path(name).is_dir():
            found = scan_files(name)
            if not found:
                raise ValueError(f"{name}: no scan files under it (DICOM, .LJPEG, .pgm, .png)")
            paths += map(str, found)
        elif is_archive(name):
            info = unpack_archive(name, Path(unpack_into) / str(number))
            paths += [str(info.parent / f"{refnum}.pgm") for refnum in sorted(set(read_info(info)[0]["refnum"]))]
        else:
            paths.append(name)
    return paths


def refuse_folders_holding_files(folders: list[str]) -> None:
    """Stop a demo before it writes over collections already there (a download, an earlier demo)."""
    filled = [folder for folder in folders if Path(folder).is_dir() and any(Path(folder).iterdir())]
    if filled:
        raise ValueError(f"{', '.join(filled)}: hold(s) files already: not overwritten (use --force to write the demo there)")


def check_download(root, cbis, mias, ddsm, vindr, own) -> dict:
    report = check_root(root) if root else {}
    if cbis:
        report["cbis-ddsm"] = check_cbis(cbis)
    if ddsm:
        report["ddsm"] = check_ddsm(ddsm)
        if abnormal := check_ddsm_abnormal(ddsm):
            report["ddsm-abnormal"] = abnormal
    if mias:
        report["mias"] = check_mias(mias)
    if vindr:
        report["vindr"] = check_vindr(vindr)
    if own:
        report["own"] = check_own(own)
    return report


def convert_scan(source: str, target: str, raw: bool) -> None:
    """One scan to a 16-bit PNG or .npy, written beside the target first and renamed: a failed write (a full disk)
    leaves neither a partial file nor a damaged earlier one."""

    target_path = Path(target)
    if target_path.suffix.lower() not in (".npy", ".png"):
        raise ValueError(f"{target}: output must end in .png or .npy")
    if Path(source).exists() and target_path.exists() and os.path.samefile(source, target):
        raise ValueError(f"{target}: is the input itself: not replaced (choose another output)")
    image = read_scan(source, raw=raw)
    npy = target_path.suffix.lower() == ".npy"
    write_atomically({target: npy_bytes(image) if npy else png_bytes(image.astype(np.uint16), target)})
    print(f"{source} -> {target}: {image.shape[0]}x{image.shape[1]} {image.dtype}, values {image.min()}..{image.max()}")


if __name__ == "__main__":
    main()
