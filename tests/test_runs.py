"""Which (dataset, model) pairs `all` and the comparison tables build."""

from __future__ import annotations

import pytest
import yaml
from snakemake_run import ROOT

from mammo.graph import selected_runs

CONFIG = {"datasets": {"ds9": {}, "ds8": {}}, "models": {"a": {"epochs": 1}, "b": {"epochs": 2}}}


def test_without_runs_every_dataset_goes_with_every_model():
    pairs = [(run["dataset"], run["model"]) for run in selected_runs(CONFIG)]
    assert pairs == [("ds9", "a"), ("ds9", "b"), ("ds8", "a"), ("ds8", "b")]
    assert selected_runs(CONFIG)[1]["settings"] == {"epochs": 2}


def test_runs_pick_pairs():
    runs = selected_runs({**CONFIG, "runs": ["ds8/b"]})
    assert runs == [{"dataset": "ds8", "model": "b", "settings": {"epochs": 2}}]


@pytest.mark.parametrize(
    "runs, named", [(["ds7/a"], "runs: ds7/a: no dataset ds7"), (["ds9/a", "ds9/c"], "runs: ds9/c: no model c")]
)
def test_unknown_names_are_errors_naming_the_entry(runs, named):
    with pytest.raises(ValueError, match=named):
        selected_runs({**CONFIG, "runs": runs})


def test_default_config_runs_the_demo_model_on_every_recipe_and_holds_the_study_rows():
    config = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    assert [(run["dataset"], run["model"]) for run in selected_runs(config)] == [
        (ds, "1.0.0.35") for ds in ("ds9", "ds9b", "ds8", "ds6")
    ]
    models = config["models"]
    assert {settings["model"] for settings in models.values()} == {
        "1.0.0.29",
        "1.0.0.35",
        "1.0.0.46",
        "vgg16_lite",
        "inception_v4_lite",
        "vgg19_transfer",
        "inception_v3_transfer",
        "resnet_small",
    }
    best = models["1.0.0.35b.98"]  # SPEC: 20 epochs weight 6 contrast 1.1, then +15 and +5 with weight 5
    assert (best["epochs"], best["abnormal_weight"], best["contrast"]) == (20, 6.0, 1.1)
    assert best["stages"] == [{"epochs": 15, "abnormal_weight": 5.0}, {"epochs": 5, "abnormal_weight": 5.0}]
    transfer = models["1.0.0.35l.b"]
    assert models[transfer["init"]]["labels"] == "five_class" and transfer["freeze"] == "convolutions"
    assert models["1.0.0.29n.l"]["labels"] == "five_class" and models["vgg16_lite"]["decay_epochs"] == 10
