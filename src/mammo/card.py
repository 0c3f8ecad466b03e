"""The model card: `model.json` beside every judged tile model.

Evaluation writes it once the model's temperature and operating points are chosen on validation. Whole-scan
scoring and `mammo scan` read the test-time contrast and the temperature from it, so one model file and its card
give the same numbers everywhere, whichever config is at hand.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema

from mammo import __version__
from mammo.backend import BACKENDS, model_backend
from mammo.labels import LABEL_SETS
from mammo.tiles import NATIVE_TILE, TILE_SIZE

CARD_FILE = "model.json"
FORMAT = "mammoflow-model-card/1"
INPUT = {
    "tile": TILE_SIZE,
    "channels": 1,
    "dtype": "uint8",
    "intensity": "the scan in the shared 16-bit space (CBIS-DDSM's: bright = dense) mapped to 0-255 by mammo.intensity.to_uint8",
    "geometry": f"a tile shows {NATIVE_TILE} pixels of a CBIS-DDSM scan at {TILE_SIZE} (mini-MIAS: its film upscaled 2.58x)",
}
_NUMBER_OR_NULL = {"type": ["number", "null"]}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": [
        "format",
        "model",
        "labels",
        "classes",
        "input",
        "training",
        "test_contrast",
        "temperature",
        "thresholds",
        "trained_on",
        "weights",
        "evaluated_with",
        "code_version",
    ],
    "properties": {
        "format": {"const": FORMAT},
        "model": {"type": "string", "minLength": 1},
        "labels": {"enum": sorted(LABEL_SETS)},
        "classes": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "input": {"const": INPUT},
        "training": {
            "type": "object",
            "required": ["contrast", "epochs", "abnormal_weight", "flips", "rotations", "dtype_policy", "seed"],
            "properties": {
                "contrast": {"type": "number", "exclusiveMinimum": 0},
                "epochs": {"type": "integer", "minimum": 1},
                "dtype_policy": {"type": "string"},
                # not required: cards written before JAX could train lack it (those models trained on TensorFlow)
                "backend": {"enum": list(BACKENDS), "description": "the Keras backend that trained the model"},
            },
        },
        "test_contrast": {"type": "number", "exclusiveMinimum": 0},
        "temperature": {"type": "number", "exclusiveMinimum": 0},
        "thresholds": {
            "type": "object",
            "required": ["fixed"],
            "additionalProperties": _NUMBER_OR_NULL,
            "description": "P(abnormal) thresholds: fixed from the config, the others chosen on validation",
        },
        "trained_on": {
            "type": "object",
            "required": ["tile_tables", "sha256"],
            "properties": {
                "tile_tables": {"type": "array", "items": {"type": "string"}},
                "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            },
        },
        "weights": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "description": "sha256 of each model file the card judged (model.keras, its export model.onnx)",
        },
        "evaluated_with": {
            "type": "object",
            "required": ["engine", "version", "precision"],
            "description": "the inference engine that produced the figures the thresholds were chosen on",
        },
        "code_version": {"type": "string"},
    },
}


def card_path(model_path: str | Path) -> Path:
    return Path(model_path).with_name(CARD_FILE)


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tables_sha256(paths: list[str]) -> str:
    """One hash over the tile tables a model was trained and judged on (their bytes, in the order given)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def model_card(
    settings: dict,
    dtype_policy: str,
    temperature: float,
    thresholds: dict,
    tile_tables: list[str],
    model_files: list[str],
    engine: dict,
) -> dict:
    """The card of a model trained with the config entry `settings`, judged with `temperature` and `thresholds`
    through `engine` (Engine.describe) on the weights in `model_files` (checked against the schema when written)."""
    return {
        "format": FORMAT,
        "model": settings["model"],
        "labels": settings["labels"],
        "classes": list(LABEL_SETS[settings["labels"]][0]),
        "input": INPUT,
        "training": {
            "contrast": settings.get("contrast", 1.0),
            "epochs": settings["epochs"] + sum(stage.get("epochs", 0) for stage in settings.get("stages", ())),
            "abnormal_weight": settings.get("abnormal_weight"),
            "flips": settings.get("flips", True),
            "rotations": settings.get("rotations", True),
            "dtype_policy": dtype_policy,
            "backend": model_backend(settings),
            "seed": settings.get("seed"),
        },
        "test_contrast": settings["test_contrast"],
        "temperature": temperature,
        "thresholds": thresholds,
        "trained_on": {"tile_tables": [str(path) for path in tile_tables], "sha256": tables_sha256(tile_tables)},
        "weights": {Path(path).name: file_sha256(path) for path in model_files},
        "evaluated_with": {key: engine[key] for key in ("engine", "version", "precision")},
        "code_version": __version__,
    }


def write_card(card: dict, path: str | Path) -> None:
    jsonschema.validate(card, SCHEMA)
    Path(path).write_text(json.dumps(card, indent=2) + "\n")


def read_card(model_path: str | Path) -> dict | None:
    """The card beside a model, or None where there is none (a model not yet evaluated); a file that is not a valid
    card is a clear error naming it, raised before any scan is scored."""
    path = card_path(model_path)
    if not path.exists():
        return None
    try:
        card = json.loads(path.read_text())
        jsonschema.validate(card, SCHEMA)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not a model card (not JSON: {err.msg} at line {err.lineno})") from None
    except jsonschema.ValidationError as err:
        where = "/".join(map(str, err.absolute_path)) or "the top level"
        raise ValueError(f"{path}: not a model card ({where}: {err.message})") from None
    return card
