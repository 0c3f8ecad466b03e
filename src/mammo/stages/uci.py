"""Stage of workflow/rules/uci.smk: the UCI Wisconsin baselines."""

from __future__ import annotations

from mammo.plots import feature_boxplots
from mammo.tables import write_json
from mammo.uci import load, nested_cv


def uci_baselines(seed: int, repeats: int, folds: int, jobs: int, metrics_out: str, plot_out: str) -> None:
    """The study's classical-ML comparison (nested, scaled) and the features by diagnosis."""
    features, labels, names = load()
    feature_boxplots(features, labels, names, plot_out)
    result = nested_cv(seed, repeats, folds, jobs=jobs)
    write_json(result, metrics_out)
