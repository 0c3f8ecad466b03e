"""`mammo` console script."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from dataclasses import fields
from pathlib import Path

import cv2
import numpy as np

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
from mammo.demo.collections import DemoSpec, generate
from mammo.heatmap import Windowing
from mammo.inference import ENGINES, PRECISIONS, choose_engine
from mammo.io.mias import is_archive, read_info, unpack_archive
from mammo.io.scan import read_scan
from mammo.runner import output_to, run_stage
from mammo.sources import scan_files, scan_identity, window_scale_of
from mammo.stages.scans import analyse_scans


def _positive(kind):
    """An argparse type: a number of `kind` above zero."""

    def parse(text: str):
        value = kind(text)
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must lie in 0..1, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mammo", description="mammoflow command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="generate the demo collections (DDSM normals, CBIS-DDSM, mini-MIAS)")
    demo.add_argument("out", help="folder to write cbis-ddsm/, ddsm/, mias/, vindr/ and own/ into")
    demo.add_argument("--workers", type=int, default=1, help="processes for the DDSM scans")
    for field in fields(DemoSpec):
        demo.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
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
    scan = commands.add_parser("scan", help="heatmaps and top regions of full scans from a trained tile model")
    scan.add_argument(
        "input",
        nargs="+",
        help="scans: DDSM .LJPEG (with its .ics), DICOM, mini-MIAS PGM or 16-bit PNG; a folder (every scan under it); "
        "or the mini-MIAS archive all-mias.tar.gz (every film in it)",
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
        "--precision", choices=PRECISIONS, default="float32", help="bfloat16: OpenVINO on CPUs with bfloat16 arithmetic"
    )
    scan.add_argument("--threads", type=_positive(int), default=os.cpu_count() or 1, help="CPU threads of the engine")
    scan.add_argument("--out", default=".", help="folder for <scan>.heatmap.npy, .overlay.png and .regions.json")
    defaults = Windowing()
    scan.add_argument(
        "--stride", type=_positive(int), default=defaults.stride, help="window stride in pixels at the CBIS-DDSM scale"
    )
    scan.add_argument(
        "--scale",
        type=_positive(float),
        help="CBIS-scale pixels per scan pixel (default for a mini-MIAS PGM 5.16: its tiles are 299 at 2.58x; else 1)",
    )
    scan.add_argument("--min-tissue", type=_fraction, default=defaults.min_tissue, help="skip windows with less breast (0..1)")
    scan.add_argument("--batch-size", type=_positive(int), default=defaults.batch_size)
    scan.add_argument("--top", type=_positive(int), default=defaults.top, help="regions to report")
    scan.add_argument(
        "--contrast", type=_positive(float), help="test-time contrast (default: the model card's, model.json beside the model)"
    )
    scan.add_argument("--force", action="store_true", help="replace outputs that exist already")
    args = parser.parse_args(argv)
    if args.command == "scan":
        with tempfile.TemporaryDirectory() as unpacked:
            paths = run_stage(None, scan_inputs, args.input, unpacked)
            scans = []
            for path in paths:
                scale = args.scale if args.scale is not None else window_scale_of(path)
                scans.append(
                    (path, scan_identity(path), Windowing(args.stride, scale, args.min_tissue, args.batch_size, args.top))
                )
            inference = {"engine": args.engine, "precision": args.precision, "threads": args.threads}
            start_up = Path(unpacked) / "tensorflow.log"
            if run_stage(None, choose_engine, args.model, args.engine, args.precision) == "tensorflow":
                with output_to(start_up):  # TensorFlow's start-up lines: into the output folder's log, not the terminal
                    import tensorflow  # noqa: F401
            run_stage(None, analyse_scans, scans, args.model, args.out, args.contrast, inference, force=args.force)
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
        roots = [f"{args.out}/{name}" for name in ("cbis-ddsm", "ddsm", "mias")]
        counts = run_stage(None, generate, *roots, spec, args.workers, vindr_root=f"{args.out}/vindr", own_root=f"{args.out}/own")
        print(json.dumps(counts))


def scan_inputs(inputs: list[str], unpack_into: str) -> list[str]:
    """The scans named on the command line: a folder stands for every scan under it, a mini-MIAS archive for every
    film it holds (checked and unpacked)."""
    paths = []
    for number, name in enumerate(inputs):
        if Path(name).is_dir():
            found = scan_files(name)
            if not found:
                raise ValueError(f"{name}: no scan files under it (.dcm, .LJPEG, .pgm, .png)")
            paths += map(str, found)
        elif is_archive(name):
            info = unpack_archive(name, Path(unpack_into) / str(number))
            paths += [str(info.parent / f"{refnum}.pgm") for refnum in sorted(set(read_info(info)[0]["refnum"]))]
        else:
            paths.append(name)
    return paths


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
    image = read_scan(source, raw=raw)
    partial = target_path.with_name(f".{target_path.name}.partial")
    try:
        with open(partial, "wb") as handle:
            if target_path.suffix.lower() == ".npy":
                np.save(handle, image)
            else:
                encoded, data = cv2.imencode(".png", image.astype(np.uint16))
                if not encoded:
                    raise OSError("OpenCV could not encode the PNG")
                handle.write(data.tobytes())
        os.replace(partial, target_path)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OSError(f"{target}: could not write ({err.strerror or err})") from None
    print(f"{source} -> {target}: {image.shape[0]}x{image.shape[1]} {image.dtype}, values {image.min()}..{image.max()}")


if __name__ == "__main__":
    main()
