"""The project's configs: one base, short overlays merged over it (as --configfile A B merges) that hold only what
differs, each valid against the schema."""

from __future__ import annotations

import copy

import jsonschema
import pytest
import yaml
from snakemake.utils import update_config
from snakemake_run import ROOT

BASE = ROOT / "config" / "config.yaml"
OVERLAYS = [
    "tiny.yaml",
    "fullscale.yaml",
    "mias_real.yaml",
    *(f"ablations/{p.name}" for p in sorted((ROOT / "config/ablations").glob("*.yaml"))),
]


def schema() -> dict:
    return yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


def repeated(base: dict, overlay: dict, path: str = "") -> list[str]:
    """Overlay keys whose value equals the base's: they belong in the base only."""
    found = []
    for key, value in overlay.items():
        if key in base and isinstance(value, dict) and isinstance(base[key], dict):
            found += repeated(base[key], value, f"{path}{key}.")
        elif key in base and value == base[key]:
            found.append(f"{path}{key}")
    return found


def test_the_base_config_is_valid_alone():
    jsonschema.validate(yaml.safe_load(BASE.read_text()), schema())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_overlay_merged_over_the_base_is_valid_and_holds_only_what_differs(overlay):
    base = yaml.safe_load(BASE.read_text())
    extra = yaml.safe_load((ROOT / "config" / overlay).read_text())
    merged = copy.deepcopy(base)
    update_config(merged, extra)
    jsonschema.validate(merged, schema())
    assert repeated(base, extra) == []
    assert len((ROOT / "config" / overlay).read_text().splitlines()) < 60  # short: the base says the rest


def test_the_tiny_run_trains_two_models_of_one_recipe():
    merged = copy.deepcopy(yaml.safe_load(BASE.read_text()))
    update_config(merged, yaml.safe_load((ROOT / "config/tiny.yaml").read_text()))
    assert merged["runs"] == ["ds9/1.0.0.35", "ds9/1.0.0.35l"]
    assert merged["models"]["1.0.0.35"]["epochs"] == 1 and merged["models"]["1.0.0.35l"]["labels"] == "five_class"
