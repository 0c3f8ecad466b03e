"""MkDocs hooks: pictures made at build time by the project's own tools, never committed.

* the job graph: Snakemake's rule graph of the default config's `all`, laid out in layers and drawn with matplotlib
  (no Graphviz needed);
* the landing page: README.md, its links into docs/ made site-relative, with the overlay of a real mini-MIAS film's
  heatmap when a trained model and ../shared/data/mias-real are there (real films never enter the repository), else
  the steps that make it.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REAL_MIAS = ROOT.parent / "shared" / "data" / "mias-real" / "all-mias-dev.tar.gz"
OVERLAY_FILM = "mdb028"  # a circumscribed mass (Info.txt: centre 338, 314, radius 56)
# a model trained on real films first (the one to take away, else a fold's), else the demo's
MODELS = [
    "results/mias_final/model_1.0.0.35.mias/model.onnx",
    "results/mias_cv/model_1.0.0.35.mias/fold_0/model.onnx",
    "results/ds9/model_1.0.0.35/model.onnx",
]
OVERLAY_MARK = re.compile(r"<!-- overlay:.*?-->")
HOW_TO_MAKE_OVERLAY = """\
!!! note "The overlay picture is made when the site is built"
    It shows `mammo scan` on a real mini-MIAS film, and real films never enter the repository. `make docs` draws it
    when the real archive lies at `../shared/data/mias-real/all-mias-dev.tar.gz` and a trained model at
    `results/mias_final/model_1.0.0.35.mias/model.onnx`, `results/mias_cv/model_1.0.0.35.mias/fold_0/model.onnx` or
    `results/ds9/model_1.0.0.35/model.onnx` (`make run` trains the demo's). By hand, for any film:
    `.venv/bin/mammo scan FILM --model results/ds9/model_1.0.0.35/model.onnx --out heatmaps`
    writes `heatmaps/<film>.overlay.png`.
"""


def rule_graph_edges() -> list[tuple[str, str]]:
    """(upstream rule, downstream rule) pairs of Snakemake's rule graph for `all` on the default config."""
    with tempfile.TemporaryDirectory() as workdir:
        shutil.copytree(ROOT / "config", Path(workdir) / "config")
        dot = subprocess.run(
            [BIN / "snakemake", "--snakefile", ROOT / "workflow" / "Snakefile", "--directory", workdir]
            + ["--rulegraph", "dot", "--quiet", "all"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    names = dict(re.findall(r'^\s*(\d+)\[label = "([^"]+)"', dot, re.M))
    return [(names[a], names[b]) for a, b in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M)]


def without_implied_edges(edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The edges no longer path implies (a transitive reduction): Snakemake lists every direct input, which would
    draw a tangle of arrows into `all`."""
    downstream = {a: {b for x, b in edges if x == a} for a, _ in edges}

    def reachable(start: str, skip: tuple[str, str]) -> set[str]:
        seen, todo = set(), [b for b in downstream.get(start, ()) if (start, b) != skip]
        while todo:
            rule = todo.pop()
            if rule not in seen:
                seen.add(rule)
                todo.extend(downstream.get(rule, ()))
        return seen

    return [(a, b) for a, b in edges if b not in reachable(a, (a, b))]


def job_graph_svg(edges: list[tuple[str, str]]) -> bytes:
    """The rule graph drawn top-down: each rule one layer below its deepest input."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rules = sorted({rule for edge in edges for rule in edge})
    inputs = {rule: [a for a, b in edges if b == rule] for rule in rules}
    depth: dict[str, int] = {}

    def layer(rule: str) -> int:
        if rule not in depth:
            depth[rule] = 1 + max((layer(a) for a in inputs[rule]), default=-1)
        return depth[rule]

    layers: dict[int, list[str]] = {}
    for rule in rules:
        layers.setdefault(layer(rule), []).append(rule)
    width = max(len(row) for row in layers.values())
    position = {
        rule: ((i + 0.5) * width / len(row), -level) for level, row in layers.items() for i, rule in enumerate(sorted(row))
    }
    figure, axes = plt.subplots(figsize=(2.0 * width, 0.9 * len(layers)))
    for a, b in edges:
        (xa, ya), (xb, yb) = position[a], position[b]
        axes.annotate("", (xb, yb + 0.18), (xa, ya - 0.18), arrowprops=dict(arrowstyle="->", color="grey", lw=1))
    for rule, (x, y) in position.items():
        axes.text(x, y, rule, ha="center", va="center", fontsize=9, bbox=dict(boxstyle="round", fc="#e8eef7", ec="#3f6ea6"))
    axes.set_xlim(0, width)
    axes.set_ylim(-len(layers) + 0.5, 0.5)
    axes.axis("off")
    svg = io.BytesIO()
    figure.savefig(svg, format="svg", bbox_inches="tight")
    plt.close(figure)
    return svg.getvalue()


def real_film_overlay() -> bytes | None:
    """`mammo scan`'s overlay of one real mini-MIAS film, or None where the archive or a trained model is missing."""
    model = next((ROOT / name for name in MODELS if (ROOT / name).is_file()), None)
    if model is None or not REAL_MIAS.is_file():
        return None
    with tempfile.TemporaryDirectory() as workdir:
        with tarfile.open(REAL_MIAS) as archive:
            member = archive.getmember(f"all-mias/{OVERLAY_FILM}.pgm")
            film = Path(workdir) / f"{OVERLAY_FILM}.pgm"
            film.write_bytes(archive.extractfile(member).read())
        out = Path(workdir) / "out"
        subprocess.run([BIN / "mammo", "scan", film, "--model", model, "--out", out], capture_output=True, check=True)
        return (out / f"{OVERLAY_FILM}.overlay.png").read_bytes()


def on_files(files, config):
    files.append(File.generated(config, "job-graph.svg", content=job_graph_svg(without_implied_edges(rule_graph_edges()))))
    overlay = real_film_overlay()
    if overlay is not None:
        files.append(File.generated(config, "overlay.png", content=overlay))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri != "index.md":
        return markdown
    landing = (ROOT / "README.md").read_text().replace("](docs/", "](")
    if files.get_file_from_path("overlay.png") is not None:
        picture = f"![mammo scan on the real mini-MIAS film {OVERLAY_FILM}: heatmap and regions](overlay.png)"
    else:
        picture = HOW_TO_MAKE_OVERLAY
    return OVERLAY_MARK.sub(lambda _: picture, landing)
