"""mias_cv end to end on a few REAL mini-MIAS films from ../shared: archive -> folds by woman -> training -> pooled metrics.

The films are repacked (in the test's scratch folder, never in the repository) into a small archive of the
official layout, so the run also reads an archive as downloaded. And the job graph of mias_final, the recipe
trained once on every woman.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from snakemake_run import LIGHT_MODEL, ROOT, TINY, job_counts, light_config, snakemake, write_config

ARCHIVE = Path("data") / "mias-real" / "all-mias-dev.tar.gz"
# six women: four abnormal (masses and calcifications, benign and malignant), two normal
FILMS = ["mdb001", "mdb002", "mdb005", "mdb006", "mdb027", "mdb028", "mdb213", "mdb214", "mdb007", "mdb008", "mdb035", "mdb036"]
# the cross-validation on real films trains the tests' light network (stand_in_model.LIGHT_MODEL)
MODEL_DIR = f"results/mias_cv/model_{LIGHT_MODEL}"
TARGET = f"{MODEL_DIR}/metrics.json"
FILM_TARGET = f"{MODEL_DIR}/scans/metrics.json"


def small_archive(source: Path, target: Path) -> Path:
    """The chosen films and their Info.txt rows (the prose header kept), as all-mias/ in a .tar.gz."""
    with tarfile.open(source) as tar:
        members = {Path(m.name).name: m for m in tar.getmembers() if m.isfile()}
        info = tar.extractfile(members["Info.txt"]).read().decode()
        kept = "\n".join(line for line in info.splitlines() if not line.startswith("mdb") or line[:6] in FILMS)
        with tarfile.open(target, "w:gz") as out:
            data = kept.encode()
            entry = tarfile.TarInfo("all-mias/Info.txt")
            entry.size = len(data)
            out.addfile(entry, io.BytesIO(data))
            for film in FILMS:
                member = members[f"{film}.pgm"]
                member.name = f"all-mias/{film}.pgm"
                out.addfile(member, tar.extractfile(members[f"{film}.pgm"]))
    return target


def six_women_run(shared: Path, workdir: Path, overlay: dict) -> Path:
    """The cross-validation and its film scoring run in `workdir` on the six women's films (small_archive), on the
    tests' light config with `overlay` over it (config/real.yaml); skipped where ../shared lacks the films."""
    source = shared / ARCHIVE
    if not source.is_file():
        pytest.skip(f"../shared/{ARCHIVE} not available")
    shutil.copytree(ROOT / "config", workdir / "config")
    archive = small_archive(source, workdir / "all-mias-six-women.tar.gz")
    real = write_config(workdir, "real", {"data": {"demo": False, "mias": str(archive)}, **overlay})
    snakemake(workdir, TARGET, FILM_TARGET, "--cores", "2", "--configfile", light_config(workdir), real)
    return workdir


@pytest.fixture(scope="module")
def real_cv_run(shared, tmp_path_factory) -> Path:
    overlay = {
        # training cuts its lesions' crops each epoch, with the other breast's and other women's windows at each
        # lesion's place, then mines one round of hard negatives from its women's films
        "mias_cv": {
            "folds": 2,
            "surround": False,  # the levers below cut tiles without it (tests/test_surround.py runs it)
            "online_crops": {"enabled": True},
            "other_breast_negatives": {"per_lesion": 2},
            "other_women_negatives": {"films": 1},
            "hard_negatives": {"rounds": 1, "epochs": 1},
        },
        # its one epoch averaged (as the real-data recipe averages its second half) before the round; the tile
        # averaged 2 x 2 inside the model through training, export, evaluation and film scoring
        "models": {LIGHT_MODEL: {"steps_per_epoch": 3, "average_last": 1.0, "input_pool": 2}},
    }
    return six_women_run(shared, tmp_path_factory.mktemp("mias_cv"), overlay)


@pytest.mark.workflow
def test_mias_cv_on_real_films_runs_end_to_end(real_cv_run):
    summary = json.loads((real_cv_run / "results/mias_cv/summary.json").read_text())
    assert summary["inputs"] == summary["accepted"] + summary["rejected"]
    assert summary["lesion_free_scans"] > 0 and summary["edge_tiles"] > 0
    assert sum(fold["women"] for fold in summary["folds"].values()) == 6
    metrics = json.loads((real_cv_run / TARGET).read_text())
    assert metrics["bootstrap"]["unit"] == "woman" and metrics["protocol"]["folds"] == 2
    pooled = metrics["sets"]["out_of_fold"]
    assert pooled["women"] == 6 and pooled["raw"]["roc_auc"] is not None
    assert set(metrics["folds"]) == {"0", "1"}
    assert set(metrics["operating_points"]["best_f1"]["threshold"]) == {"0", "1"}
    for fold in (0, 1):  # the fold models average their tiles 2 x 2, and their cards say so
        card = json.loads((real_cv_run / MODEL_DIR / f"fold_{fold}/model.json").read_text())
        assert card["training"]["input_pool"] == 2
        with zipfile.ZipFile(real_cv_run / MODEL_DIR / f"fold_{fold}/model.keras") as saved:
            assert '"name": "input_pool"' in saved.read("config.json").decode()


@pytest.mark.workflow
def test_mias_cv_on_real_films_scores_every_tile_once_and_never_splits_a_woman(real_cv_run):
    tiles = pd.read_csv(real_cv_run / "results/mias_cv/tiles.tsv", sep="\t")
    predictions = pd.read_csv(real_cv_run / MODEL_DIR / "predictions.tsv", sep="\t")
    edge = tiles["method"] == "edge"
    assert edge.any() and (tiles.loc[edge, "label_normal"] == 0).all()
    # out-of-fold: each tile once, but edge windows, which train and are judged on whole films
    assert sorted(predictions["tile_id"]) == sorted(tiles.loc[~edge, "tile_id"])
    assert predictions.groupby("patient_id")["fold"].nunique().max() == 1
    for fold in (0, 1):
        split = pd.read_csv(real_cv_run / f"results/mias_cv/fold_{fold}/tiles.tsv", sep="\t")
        assert split.groupby("patient_id")["split"].nunique().max() == 1
        held_out = set(split.loc[split["split"] == "test", "patient_id"])
        assert held_out == set(predictions.loc[predictions["fold"] == fold, "patient_id"])
        assert (split.loc[split["split"] != "test", "method"] == "edge").any()
        # fresh normals: the training records hold every normal training tile, each epoch draws its own normal tiles;
        # online crops: no fixed crop trains, the inner validation and the held-out women keep theirs
        train = split[split["split"] == "train"]
        assert train.loc[train["label_normal"] == 0, "kept"].all() and not train.loc[train["label_normal"] == 1, "kept"].any()
        assert split.loc[(split["split"] != "train") & (split["label_normal"] == 1), "kept"].all()


@pytest.mark.workflow
def test_mias_cv_on_real_films_trains_on_context_patches_of_the_training_women_only(real_cv_run):
    from mammo.records import read_contexts

    tiles = pd.read_csv(real_cv_run / "results/mias_cv/tiles.tsv", sep="\t", dtype={"patient_id": str})
    lesions = pd.read_csv(real_cv_run / "results/mias_cv/lesion_contexts.tsv", sep="\t", dtype={"patient_id": str})
    roi_ids = set(tiles.loc[tiles["label_normal"] == 1, "tile_id"].str.split("/").str[1])
    assert set(lesions["roi_id"]) == roi_ids and len(lesions) == len(roi_ids)  # one patch per tiled lesion
    for fold in (0, 1):
        split = pd.read_csv(real_cv_run / f"results/mias_cv/fold_{fold}/tiles.tsv", sep="\t", dtype={"patient_id": str})
        records = real_cv_run / f"results/mias_cv/fold_{fold}/records/lesions-train.tfrecord"
        women = {example["patient_id"].decode() for example in read_contexts([records]).as_numpy_iterator()}
        train_women = set(split.loc[split["split"] == "train", "patient_id"])
        assert women and women <= train_women
        assert women == set(lesions.loc[lesions["patient_id"].isin(train_women), "patient_id"])


@pytest.mark.workflow
def test_mias_cv_on_real_films_mines_hard_negatives_of_the_training_women_only(real_cv_run):
    images = pd.read_csv(real_cv_run / "results/sources/mias/images.tsv", sep="\t", dtype={"patient_id": str})
    for fold in (0, 1):
        split = pd.read_csv(real_cv_run / f"results/mias_cv/fold_{fold}/tiles.tsv", sep="\t", dtype={"patient_id": str})
        model_dir = real_cv_run / MODEL_DIR / f"fold_{fold}"
        mined = pd.read_csv(model_dir / "hard_negatives.tsv", sep="\t", dtype={"patient_id": str})
        train_women = set(split.loc[split["split"] == "train", "patient_id"])
        films = images[images["patient_id"].isin(train_women) & (images["unlocated"] == 0)]
        assert set(mined["scan_id"]) == set(films["refnum"]) and set(mined["round"]) == {1}
        assert mined.groupby("scan_id").size().max() <= 4  # windows_per_film of the default config
        assert list(pd.read_csv(model_dir / "history.csv")["epoch"]) == [0, 1]  # the tiny epoch, then the round's
        assert (model_dir / "hard_negatives.png").stat().st_size > 0
        # and trained on the other breast's windows at its training lesions' places from the first pass
        log = (real_cv_run / f"logs/mias_cv/train_{LIGHT_MODEL}_{fold}.log").read_text()
        assert re.search(r"other breast: [1-9]\d* windows of \d+ films at the place of [1-9]\d* lesions", log), log[-2000:]
        # the round mines with, and goes on from, the averaged network
        averaged, mining = log.find("weights averaged over epochs 1; BatchNorm recomputed"), log.find("round 1:")
        assert 0 <= averaged < mining, log[-2000:]


@pytest.mark.workflow
def test_a_fold_trainings_input_holds_the_films_only_when_it_mines_them(real_cv_run):
    """Without hard-negative rounds or the other breast's windows a fold's training reads no film: a changed film does
    not retrain it, and the scheduler does not check every film of the collection for each training waiting for the
    cores."""

    def films_read(*overlay: str) -> int:
        plan = snakemake(
            real_cv_run,
            f"{MODEL_DIR}/fold_0/model.keras",
            "-n",
            "--forcerun",
            "train_mias_cv",
            "--configfile",
            "config/light.yaml",
            "config/real.yaml",
            *overlay,
        ).stdout
        return sum(path.endswith(".pgm") for path in re.search(r"rule train_mias_cv:\n\s+input: (.*)", plan).group(1).split(", "))

    assert films_read() == len(FILMS)  # the fixture's recipe mines one round
    no_mining = {"mias_cv": {"hard_negatives": {"rounds": 0}}}
    assert films_read(write_config(real_cv_run, "no_mining", no_mining)) == len(FILMS)  # the other breast's windows
    only_other_women = {"mias_cv": {"hard_negatives": {"rounds": 0}, "other_breast_negatives": {"per_lesion": 0}}}
    assert films_read(write_config(real_cv_run, "only_other_women", only_other_women)) == len(FILMS)
    no_films = {"mias_cv": {**only_other_women["mias_cv"], "other_women_negatives": {"films": 0}}}
    assert films_read(write_config(real_cv_run, "no_films", no_films)) == 0


@pytest.mark.workflow
def test_mias_cv_on_real_films_detects_on_every_held_out_film(real_cv_run):
    metrics = json.loads((real_cv_run / FILM_TARGET).read_text())
    films = metrics["sets"]["out_of_fold"]
    assert films["scans"] == 12 and films["abnormal"] == 6  # every film of the six women, each scored by its fold's model
    assert films["scans_without_breast_windows"] == 0 and films["roc_auc"] is not None
    localisation = films["localisation"]
    assert localisation["abnormal_scans_with_outline"] == 6
    # intervals over women, the six women scored by their higher film, localisation per class of lesion
    assert films["women"]["n"] == 6 and len(films["ci95"]["roc_auc"]) == 2
    assert set(localisation["by_class"]) <= {"CIRC", "SPIC", "MISC", "ARCH", "ASYM", "CALC"}
    assert sum(entry["lesions"] for entry in localisation["by_class"].values()) >= 6
    assert set(localisation["sensitivity_at_fp_per_scan"]) == {"1", "2", "4"}
    ranked = localisation["lesion_window_rank"]  # each lesion's strongest window ranked within its own film
    lesions = sum(entry["lesions"] for entry in localisation["by_class"].values())  # a film may hold two
    assert ranked["lesions"] + ranked["without_a_window"] == lesions and 1 <= ranked["median_rank"] <= 100
    # the film rates per breast density (Info.txt's background tissue), every film counted once
    assert set(films["by_density"]) <= {"F", "G", "D"} and sum(d["n"] for d in films["by_density"].values()) == 12
    scans = pd.concat([pd.read_csv(path, sep="\t") for path in (real_cv_run / MODEL_DIR / "scans").glob("fold_*.scans.tsv")])
    assert scans["scale"].unique().tolist() == [pytest.approx(5.16)]  # windows see the film area of the 2.58x tiles
    assert (real_cv_run / MODEL_DIR / "scans/cases.png").stat().st_size > 0
    # the film scores learnt on each fold's inner-validation women, beside the maximum window, on every held-out film
    assert set(metrics["film_scores"]) == {
        "films",
        "other_breast_used",
        "max",
        "above_film",
        "above_woman",
        "asymmetry",
        "max_and_asymmetry",
        "learned",
        "learned_other_breast",
    }
    assert metrics["film_scores"]["films"] == 12 and metrics["film_scores"]["max"]["n"] == 12
    # every film score's rates per density; the regions ranked above their film's median give a FROC of their own
    for name in ("max", "above_film", "learned"):
        assert sum(d["n"] for d in metrics["film_scores"][name]["by_density"].values()) == 12
    assert metrics["film_scores"]["above_film"]["threshold"] is None  # a rank, no probability
    assert set(metrics["film_scores"]["above_film"]["localisation"]["sensitivity_at_fp_per_scan"]) == {"1", "2", "4"}
    for fold in (0, 1):
        split = pd.read_csv(real_cv_run / f"results/mias_cv/fold_{fold}/tiles.tsv", sep="\t", dtype={"patient_id": str})
        model_dir = real_cv_run / MODEL_DIR
        validation = pd.read_csv(model_dir / f"fold_{fold}/validation_scans/scans.tsv", sep="\t", dtype={"patient_id": str})
        assert set(validation["patient_id"]) == set(split.loc[split["split"] == "val", "patient_id"])
        films = pd.read_csv(model_dir / f"scans/fold_{fold}.films.tsv", sep="\t", dtype={"patient_id": str})
        assert set(films["patient_id"]) == set(split.loc[split["split"] == "test", "patient_id"])
        assert films["partner"].notna().all()  # every woman of these six has both films
        # each film's breast level kept beside its windows; a woman's two films' asymmetries mirror each other
        with np.load(model_dir / f"scans/fold_{fold}.heatmaps.npz") as archive:
            assert all(100 < float(archive[f"{scan_id}/level"]) < 255 for scan_id in films["scan_id"])
        asymmetry = films.set_index("scan_id")["asymmetry"]
        assert all(
            asymmetry[film] + asymmetry[partner] == pytest.approx(1, abs=1e-5)
            for film, partner in zip(films["scan_id"], films["partner"])
        )
        assert json.loads((model_dir / f"fold_{fold}/film_scores.json").read_text())["max"] == {"method": "max"}


@pytest.mark.workflow
def test_the_final_model_is_its_own_target_trained_once_on_all_women(tmp_path):
    """results/mias_final/model_<model>/: the fold rules with no held-out women, one split of all women, one training,
    its export and card, judged on its inner validation only; no fold is trained, and `all` leaves it out."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    final = [f"results/mias_final/model_1.0.0.35/{name}" for name in ("model.keras", "model.onnx", "model.json", "metrics.json")]
    plan = snakemake(tmp_path, *final, "-n", "--quiet", "rules", "--configfile", *TINY).stdout
    assert job_counts(plan) == {
        "demo_data": 1,
        "index_mias": 1,
        "tiles_mias_cv": 1,
        "mias_final_split": 1,
        "records_mias_final": 2,  # train and the inner validation: no held-out records
        "train_mias_final": 1,
        "export_model": 1,
        "evaluate_mias_final": 1,
        "score_validation_films_mias_final": 1,  # the film score learnt from the inner validation's films
        "card_mias_final": 1,
    }
    assert "mias_final" not in snakemake(tmp_path, "all", "-n", "--quiet", "rules", "--configfile", *TINY).stdout
    # with online crops the training also reads its lesions' context patches, every woman's but the inner validation's
    online = "config/ablations/mias_online_crops.yaml"
    plan = snakemake(tmp_path, *final, "-n", "--quiet", "rules", "--configfile", *TINY, online).stdout
    assert job_counts(plan)["context_records_mias_final"] == 1 and job_counts(plan)["train_mias_final"] == 1


@pytest.mark.workflow
def test_pretrained_weights_are_made_once_and_reused_until_what_they_depend_on_changes(tmp_path):
    """mias_cv.pretrain: the recipe trained once on generated films; every fold's training and evaluation take its
    weights; done once, it is not redone when the folds or the fine-tuning change, and is when its films or epochs do
    (another folder for other films: the earlier weights stay)."""
    shutil.copytree(ROOT / "config", tmp_path / "config")
    overlay = {
        "mias_cv": {"surround": False, "pretrain": {"films": 8, "seed": 3, "epochs": 1}},
        "models": {"1.0.0.35": {"steps_per_epoch": 2}},
    }
    configs = ("--configfile", *TINY, write_config(tmp_path, "pretrain", overlay))
    pretrained = "results/pretrain/mias-demo-8-seed3/model_1.0.0.35/model.keras"
    folds = [f"results/mias_cv/model_1.0.0.35/fold_{fold}/model.json" for fold in range(5)]
    plan = job_counts(snakemake(tmp_path, *folds, "-n", "--quiet", "rules", *configs).stdout)
    assert plan["train_pretrain"] == 1 and plan["pretrain_films"] == 1 and plan["train_mias_cv"] == 5
    # the folds' training itself starts from the weights (not only the evaluation that names them in the card)
    trained = [f"results/mias_cv/model_1.0.0.35/fold_{fold}/model.keras" for fold in range(5)]
    assert job_counts(snakemake(tmp_path, *trained, "-n", "--quiet", "rules", *configs).stdout)["train_pretrain"] == 1
    snakemake(tmp_path, pretrained, "--cores", "2", *configs)
    assert (tmp_path / "resources/pretrain/mias-demo-8-seed3/mdb008.pgm").is_file()
    history = pd.read_csv(tmp_path / "results/pretrain/mias-demo-8-seed3/model_1.0.0.35/history.csv")
    assert list(history["epoch"]) == [0]

    def plan_with(change: dict) -> dict[str, int]:
        changed = write_config(tmp_path, "change", change)
        return job_counts(snakemake(tmp_path, *folds, "-n", "--quiet", "rules", *configs, changed).stdout)

    assert "train_pretrain" not in plan_with({})
    assert "train_pretrain" not in plan_with({"mias_cv": {"folds": 4}, "models": {"1.0.0.35": {"epochs": 3}}})
    assert plan_with({"mias_cv": {"pretrain": {"films": 8, "seed": 3, "epochs": 2}}})["train_pretrain"] == 1
    assert plan_with({"mias_cv": {"pretrain": {"films": 10, "seed": 3, "epochs": 1}}})["pretrain_films"] == 1
