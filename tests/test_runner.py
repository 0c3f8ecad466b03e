"""Bad input stops a stage with one line naming the file (traceback only in the log)."""

from __future__ import annotations

import pytest

from mammo.runner import run_stage
from mammo.stages.sources import index_cbis


def test_csv_with_missing_columns_stops_with_the_file_name(tmp_path, capsys):
    bad = tmp_path / "mass_case_description_train_set.csv"
    bad.write_text("patient_id,pathology\nP_00001,BENIGN\n")
    log = tmp_path / "index.log"
    with pytest.raises(SystemExit) as exit_info:
        run_stage(log, index_cbis, [str(bad)], *(str(tmp_path / name) for name in ("r.tsv", "j.tsv", "s.json")))
    assert exit_info.value.code == 1
    terminal = capsys.readouterr().err.strip().splitlines()
    assert len(terminal) == 1
    assert str(bad) in terminal[0] and "missing columns" in terminal[0]
    assert "Traceback" in log.read_text() and str(bad) in log.read_text()


def test_missing_csv_stops_with_the_file_name(tmp_path, capsys):
    missing = tmp_path / "calc_case_description_test_set.csv"
    with pytest.raises(SystemExit):
        run_stage(tmp_path / "log", index_cbis, [str(missing)], *(str(tmp_path / name) for name in ("r.tsv", "j.tsv", "s.json")))
    assert str(missing) in capsys.readouterr().err


def test_programming_errors_keep_their_traceback(tmp_path):
    def broken():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_stage(tmp_path / "log", broken)


def test_stage_output_goes_to_the_log(tmp_path, capsys):
    def chatty():
        print("progress line")
        return 42

    assert run_stage(tmp_path / "log", chatty) == 42
    assert "progress line" in (tmp_path / "log").read_text()
    assert "progress line" not in capsys.readouterr().out


def test_stage_writes_its_own_benchmark_file(tmp_path):
    """Rules cached between workflows may not have benchmark:, so their stage writes the same columns itself."""
    import numpy as np
    import pandas as pd

    from mammo.stages.report import benchmark_table

    def allocate(megabytes: int) -> int:
        return int(np.ones(megabytes * 2**20 // 8).sum())

    bench = tmp_path / "benchmarks" / "ds9" / "tiles_cbis_0.tsv"
    assert run_stage(tmp_path / "log", allocate, 200, benchmark_path=str(bench)) == 200 * 2**20 // 8
    recorded = pd.read_csv(bench, sep="\t")
    assert list(recorded.columns) == ["s", "max_rss"] and recorded.loc[0, "max_rss"] > 200
    (tmp_path / "benchmarks" / "split.tsv").write_text("s\th:m:s\tmax_rss\n9.5\t0:00:09\t120.0\n")
    benchmark_table(str(tmp_path / "benchmarks"), str(tmp_path / "b.csv"), str(tmp_path / "b.md"))
    table = pd.read_csv(tmp_path / "b.csv")
    assert table["job"].tolist() == ["split", "ds9/tiles_cbis_0"] and table.loc[0, "seconds"] == 9.5
    assert (tmp_path / "b.md").read_text().startswith("| job | seconds | max_rss_mb |")


def test_what_libraries_write_to_the_descriptors_goes_to_the_log(tmp_path, capfd):
    """TensorFlow's C++ start-up lines bypass sys.stderr: descriptor 2 itself points at the log inside a stage."""
    import os

    def native():
        os.write(2, b"I0000 oneDNN custom operations are on\n")
        os.write(1, b"native stdout\n")

    run_stage(tmp_path / "log", native)
    assert "oneDNN custom operations" in (tmp_path / "log").read_text() and "native stdout" in (tmp_path / "log").read_text()
    terminal = capfd.readouterr()
    assert "oneDNN" not in terminal.err and "native stdout" not in terminal.out
    os.write(2, b"after the stage\n")  # the descriptors are back
    assert "after the stage" in capfd.readouterr().err


def test_a_workflow_script_imports_its_stage_inside_the_log(tmp_path):
    """Every script opens the log before importing anything heavy, so TensorFlow's import lines land in it."""
    import ast

    from snakemake_run import ROOT

    for script in sorted((ROOT / "workflow" / "scripts").glob("*.py")):
        tree = ast.parse(script.read_text())
        top_imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        assert [getattr(node, "module", None) for node in top_imports] == ["mammo.runner"], script.name
        assert any(isinstance(node, ast.With) for node in tree.body), script.name
