"""`mammo check`: rows, patients, scans, missing files and rejected rows per table."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

MAMMO = Path(sys.executable).with_name("mammo")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MAMMO), "check", *args], capture_output=True, text=True)


def test_demo_root_is_complete(demo_root, demo_counts, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(demo_root / "cbis", root / "cbis-ddsm")
    shutil.copytree(demo_root / "ddsm", root / "ddsm")
    shutil.copytree(demo_root / "mias", root / "mias")
    shutil.copytree(demo_root / "vindr", root / "vindr")
    shutil.copytree(demo_root / "own", root / "own")
    result = run(str(root), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    own = report.pop("own")  # the demo's own CSV: its two rows a user might get wrong, rejected
    assert own["rows"] == demo_counts["own_rows"] and own["patients"] == 9 and own["missing_files"] == ["not_scanned.png"]
    assert len(own["rejected"]) == 2 and own["findings"] == {"calcification": 3, "mass": 3}
    abnormal = report.pop("ddsm-abnormal")  # the demo's DDSM abnormal cases: outlined, and not normal tissue
    assert abnormal["rows"] == demo_counts["ddsm_abnormal_rois"] == 7 and abnormal["rejected"] == []
    ddsm_rejected = report["ddsm"].pop("rejected")
    assert len(ddsm_rejected) == 4 * 4 and all("an abnormal case" in row["reason"] for row in ddsm_rejected)
    report["ddsm"]["rejected"] = []
    vindr = report.pop("vindr")
    assert vindr["scans"] == demo_counts["vindr_images"] == 12 and vindr["patients"] == 3 and vindr["missing_files"] == []
    assert [row["reason"] for row in vindr["rejected"]] == [next(r["reason"] for r in vindr["rejected"])]  # one, by design
    assert "leaves the" in vindr["rejected"][0]["reason"] and sum(vindr["findings"].values()) == demo_counts["vindr_boxes"] - 1
    assert report["cbis-ddsm"]["rows"] == demo_counts["cbis_rois"]
    assert report["ddsm"]["scans"] == demo_counts["ddsm_normal_scans"] == 16
    assert report["ddsm"]["patients"] == 4
    assert report["mias"]["scans"] == demo_counts["mias_images"]
    for entry in report.values():
        assert set(entry) == {"rows", "patients", "scans", "files_found", "missing_files", "rejected"}
        assert entry["missing_files"] == [] and entry["rejected"] == []
    # a deleted DICOM and a deleted PGM are listed as missing; the table says so too
    dicom = next((root / "cbis-ddsm").rglob("*.dcm"))
    dicom.unlink()
    (root / "mias" / "mdb001.pgm").unlink()
    report = json.loads(run(str(root), "--json").stdout)
    assert [str(dicom).endswith(p) for p in report["cbis-ddsm"]["missing_files"]] == [True]
    assert report["mias"]["missing_files"] == ["mdb001.pgm"]
    table = run(str(root)).stdout
    assert "mias: missing mdb001.pgm" in table and table.splitlines()[0].split()[:3] == ["table", "rows", "patients"]


def test_real_tables(shared):
    csvs = [str(shared / "data/cbis-ddsm" / f"{k}_case_description_train_set.csv") for k in ("mass", "calc")]
    report = json.loads(run("--cbis", *csvs, "--mias", str(shared / "data/mias/Info.txt"), "--json").stdout)
    assert (report["cbis-ddsm"]["rows"], report["cbis-ddsm"]["patients"], report["cbis-ddsm"]["scans"]) == (
        2864,
        1248,
        2458,
    )  # 691 + 602 patients, 45 in both tables
    assert (report["mias"]["rows"], report["mias"]["scans"], report["mias"]["patients"]) == (330, 322, 161)
    assert report["mias"]["rejected"] == []


def test_unreadable_input_exits_non_zero_with_the_file(tmp_path):
    bad = tmp_path / "mass_case_description_train_set.csv"
    bad.write_text("patient_id\nP_1\n")
    result = run("--cbis", str(bad))
    assert result.returncode == 1 and str(bad) in result.stderr and "Traceback" not in result.stderr
    empty = run(str(tmp_path / "nothing"))
    assert empty.returncode == 1 and "no cbis-ddsm" in empty.stderr
