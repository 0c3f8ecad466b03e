"""The `mammo` command line against hostile input: options out of bounds, folders holding links and its own outputs,
outputs that would replace their input, and failures that are not bad input (one line, the traceback in a log)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from mammo import cli
from mammo.io.dicom import write_dicom
from mammo.runner import run_stage
from mammo.sources import scan_files


def exit_of(argv: list[str], capsys) -> tuple[int, list[str]]:
    """Run `mammo ARGV` in this process: its exit status and its stderr lines."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code, capsys.readouterr().err.strip().splitlines()


SCAN = ["scan", "scan.png", "--model", "model.keras"]


@pytest.mark.parametrize(
    "option, value",
    [
        ("--scale", "1e6"),
        ("--scale", "inf"),
        ("--scale", "nan"),
        ("--scale", "0.01"),
        ("--contrast", "inf"),
        ("--contrast", "nan"),
        ("--contrast", "1000"),
        ("--stride", "100000000"),
        ("--batch-size", "1000000"),
        ("--top", "1000000"),
        ("--threads", "100000"),
        ("--min-tissue", "nan"),
    ],
)
def test_scan_refuses_options_out_of_bounds_naming_them(option, value, capsys):
    status, lines = exit_of([*SCAN, option, value], capsys)
    assert status == 2 and option in lines[-1] and value in lines[-1]


# a demo of one woman's images, generated in a moment (options given again later replace these)
SMALLEST_DEMO = [
    "--scale",
    "0.01",
    *("--cbis-train-patients", "0", "--cbis-test-patients", "0", "--ddsm-normal-cases", "0", "--mias-images", "0"),
    *("--vindr-studies", "0", "--ddsm-abnormal-cases", "0", "--own-patients", "1"),
]


@pytest.mark.parametrize(
    "option, value",
    [
        ("--cbis-train-patients", "-3"),
        ("--own-patients", "0"),  # the own-images CSV needs a woman: all counts 0 ended in an IndexError
        ("--mias-images", "100000000"),
        ("--scale", "0"),
        ("--scale", "100"),
        ("--scale", "inf"),
        ("--seed", "-1"),
        ("--workers", "0"),
    ],
)
def test_demo_refuses_options_out_of_bounds_naming_them(option, value, tmp_path, capsys):
    status, lines = exit_of(["demo", str(tmp_path / "demo"), *SMALLEST_DEMO, option, value], capsys)
    assert status == 2 and option in lines[-1] and value in lines[-1]
    assert not (tmp_path / "demo").exists()


def test_demo_into_a_folder_holding_data_needs_force(tmp_path, capsys):
    own_csv = tmp_path / "own" / "images.csv"
    own_csv.parent.mkdir()
    own_csv.write_text("mine\n")
    status, lines = exit_of(["demo", str(tmp_path), *SMALLEST_DEMO], capsys)
    assert status == 1 and len(lines) == 1 and str(tmp_path / "own") in lines[0] and "--force" in lines[0]
    assert own_csv.read_text() == "mine\n" and not (tmp_path / "mias").exists()
    cli.main(["demo", str(tmp_path), *SMALLEST_DEMO, "--force"])
    assert own_csv.read_text() != "mine\n"


def test_convert_refuses_to_replace_its_own_input(tmp_path, capsys, monkeypatch):
    image = np.arange(40 * 30, dtype=np.uint16).reshape(40, 30) * 50
    cv2.imwrite(str(tmp_path / "x.png"), image)
    (tmp_path / "link.png").symlink_to(tmp_path / "x.png")
    monkeypatch.chdir(tmp_path)
    for target in ("x.png", "./x.png", str(tmp_path / "x.png"), "link.png"):
        status, lines = exit_of(["convert", "x.png", target], capsys)
        assert status == 1 and len(lines) == 1 and target in lines[0] and "input" in lines[0]
    assert np.array_equal(cv2.imread("x.png", cv2.IMREAD_UNCHANGED), image)


def test_a_failure_that_is_not_bad_input_is_one_line_and_a_logged_traceback(tmp_path, capsys, monkeypatch):
    def broken(*_):
        raise KeyError("a bug")

    monkeypatch.setattr(cli, "convert_scan", broken)
    status, lines = exit_of(["convert", "in.png", str(tmp_path / "out.png")], capsys)
    assert status == 1 and len(lines) == 1 and "KeyError" in lines[0] and "a bug" in lines[0]
    log = lines[0].rsplit("traceback in ", 1)[1].rstrip(")")
    traceback = Path(log).read_text()
    Path(log).unlink()
    assert "Traceback" in traceback and "a bug" in traceback


def film(path, value: int = 30000) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 30), value, np.uint16))


def test_folder_scan_skips_links_to_files_outside_it_with_a_warning(tmp_path):
    film(tmp_path / "elsewhere" / "private.png")
    film(tmp_path / "folder" / "a.png")
    (tmp_path / "folder" / "outside.png").symlink_to(tmp_path / "elsewhere" / "private.png")
    (tmp_path / "folder" / "same.png").symlink_to(tmp_path / "folder" / "a.png")  # the same film twice: scanned once
    with pytest.warns(UserWarning, match="outside.png.*outside the folder"):
        assert scan_files(tmp_path / "folder") == [tmp_path / "folder" / "a.png"]


def test_folder_scan_finds_dicoms_without_extension_and_skips_its_own_outputs(tmp_path):
    write_dicom(tmp_path / "IM0001", np.full((40, 30), 30000, np.uint16), "P1", "1.2.3", "1.2.4", "1.2.5")
    film(tmp_path / "b.png")
    film(tmp_path / "b.overlay.png")  # an earlier scan's outputs
    np.save(tmp_path / "b.heatmap.npy", np.zeros((4, 3)))
    (tmp_path / "b.regions.json").write_text("{}")
    (tmp_path / "notes").write_text("not a scan")
    assert scan_files(tmp_path) == [tmp_path / "IM0001", tmp_path / "b.png"]


def test_an_error_message_of_several_lines_is_shown_on_one(capsys):
    def stage():
        raise ValueError("scan.dcm: a library's message\n  on two lines")

    with pytest.raises(SystemExit):
        run_stage(None, stage)
    assert capsys.readouterr().err.strip().splitlines() == ["ERROR in stage: scan.dcm: a library's message on two lines"]
