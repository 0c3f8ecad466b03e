"""Shared fixtures for the unit tests.

* ``shared``: the read-only reference folder ``../shared`` (skips cleanly when absent).
* ``demo_root``: a small demo of the three collections, generated once per session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of test output

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"

SMALL_DEMO = dict(
    seed=3,
    scale=0.15,
    cbis_train_patients=3,
    cbis_test_patients=2,
    ddsm_normal_cases=4,
    mias_images=8,
    vindr_studies=3,
    own_patients=9,  # women 7 and 8: lesions as mask files
    ddsm_abnormal_cases=4,  # cases 1 and 3: CBIS-DDSM women (their films copied)
)


# The longest modules, longest first. The suite runs on two pytest-xdist workers, a module at a time
# (pyproject: --dist loadfile --no-loadscope-reorder); a worker takes the next module of this order when it has two
# tests left. So the tiny run's module (about 1,300 s) has one worker to itself, the other runs the real-film,
# SLURM and training modules first, and the short modules fill in around them at the end; left to the alphabet, the
# training module (about 210 s) came last, with the other worker idle.
LONGEST_FIRST = (
    "test_workflow.py",
    "test_mias_cv_workflow.py",
    "test_slurm.py",
    "test_workflow_fresh.py",
    "test_train.py",
    "test_surround.py",
    "test_hard_negatives.py",
    "test_scan_hostile.py",
    "test_fuzz.py",
    "test_heatmap.py",
)


def pytest_collection_modifyitems(items) -> None:
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)  # stable: within a module and among the rest, the usual order


@pytest.fixture(scope="session")
def shared() -> Path:
    """Path of ../shared (relative to the project root); skip the test where it is absent."""
    if not SHARED.is_dir():
        pytest.skip("../shared reference data not available")
    return SHARED


@pytest.fixture(scope="session")
def real_mias_archive(shared) -> Path:
    """The 216 real mini-MIAS films of ../shared, in the official archive's layout; skip the test where it is absent."""
    archive = shared / "data" / "mias-real" / "all-mias-dev.tar.gz"
    if not archive.is_file():
        pytest.skip("../shared/data/mias-real/all-mias-dev.tar.gz not available")
    return archive


@pytest.fixture(scope="session")
def _demo(tmp_path_factory) -> tuple[Path, dict]:
    from mammo.demo.collections import DemoSpec, generate

    root = tmp_path_factory.mktemp("demo")
    spec = DemoSpec(**SMALL_DEMO)
    counts = generate(root / "cbis", root / "ddsm", root / "mias", spec, vindr_root=root / "vindr", own_root=root / "own")
    return root, counts


@pytest.fixture(scope="session")
def demo_root(_demo) -> Path:
    """Root holding cbis/, ddsm/, mias/, vindr/ and own/ of a small generated demo (a few seconds, once per session)."""
    return _demo[0]


@pytest.fixture(scope="session")
def demo_counts(_demo) -> dict:
    """What generate() reported for the small demo: cbis_rois, ddsm_normal_scans, ddsm_abnormal_rois, mias_images,
    vindr_images, vindr_boxes."""
    return _demo[1]


@pytest.fixture
def full_disk(monkeypatch):
    """`full_disk(text)`: from then on, writes to every file whose path holds `text` fail as on a full disk
    (ENOSPC), where mammo.atomic writes the outputs of `mammo scan` and `mammo convert`; monkeypatch.undo() ends it."""
    import errno

    real_open = open

    class FullDisk:
        def __init__(self, path, mode):
            self.handle = real_open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    def fill(text: str) -> None:
        monkeypatch.setattr(
            "mammo.atomic.open",
            lambda path, mode="r", *a, **k: FullDisk(path, mode) if text in str(path) else real_open(path, mode, *a, **k),
            raising=False,
        )

    return fill
