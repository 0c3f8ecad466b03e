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
    args = parser.parse_args(argv)
    if args.command == "demo":
        spec = DemoSpec(**{field.name: getattr(args, field.name) for field in fields(DemoSpec)})
        roots = [f"{args.out}/{name}" for name in ("cbis-ddsm", "ddsm", "mias")]
        counts = run_stage(None, generate, *roots, spec, args.workers)
        print(json.dumps(counts))


if __name__ == "__main__":
    main()
