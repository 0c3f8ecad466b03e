"""`mammo` console script."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from mammo.demo.collections import DemoSpec, generate
from mammo.runner import run_stage


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mammo", description="mammoflow command-line tools")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="generate the demo collections (DDSM normals, CBIS-DDSM, mini-MIAS)")
    demo.add_argument("out", help="folder to write cbis-ddsm/, ddsm/ and mias/ into")
    demo.add_argument("--workers", type=int, default=1, help="processes for the DDSM scans")
    for field in fields(DemoSpec):
        demo.add_argument(f"--{field.name.replace('_', '-')}", type=type(field.default), default=field.default)
    convert = commands.add_parser("convert", help="turn one scan (LJPEG with its .ics, DICOM, PGM) into a 16-bit PNG or .npy")
    convert.add_argument("input")
    convert.add_argument("output", help="ends in .png (16-bit) or .npy")
    convert.add_argument("--raw", action="store_true", help="keep the stored values (no optical-density mapping)")
    args = parser.parse_args(argv)
    if args.command == "convert":
        run_stage(None, convert_scan, args.input, args.output, args.raw)
    if args.command == "demo":
        spec = DemoSpec(**{field.name: getattr(args, field.name) for field in fields(DemoSpec)})
        roots = [f"{args.out}/{name}" for name in ("cbis-ddsm", "ddsm", "mias")]
        counts = run_stage(None, generate, *roots, spec, args.workers)
        print(json.dumps(counts))


def convert_scan(source: str, target: str, raw: bool) -> None:
    import cv2
    import numpy as np

    from mammo.io.scan import read_scan

    image = read_scan(source, raw=raw)
    if target.lower().endswith(".npy"):
        np.save(target, image)
    elif target.lower().endswith(".png"):
        if not cv2.imwrite(target, image.astype(np.uint16)):
            raise ValueError(f"{target}: could not write the PNG")
    else:
        raise ValueError(f"{target}: output must end in .png or .npy")
    print(f"{source} -> {target}: {image.shape[0]}x{image.shape[1]} {image.dtype}, values {image.min()}..{image.max()}")


if __name__ == "__main__":
    main()
