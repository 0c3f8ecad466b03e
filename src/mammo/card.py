"""The model card: `model.json` beside every judged tile model.

Evaluation writes it once the model's temperature and operating points are chosen on validation. Whole-scan
scoring and `mammo scan` read the test-time contrast and the temperature from it, and `mammo scan` its scanning
section (the tile geometry and the windowing the model was judged with), so one model file and its card give the
same numbers everywhere, whichever config is at hand.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema

from mammo import __version__
from mammo.backend import BACKENDS, model_backend
from mammo.film_scores import FEATURES, OTHER_BREAST_FEATURES
from mammo.labels import LABEL_SETS
from mammo.sources import SOURCES, window_scale_of, windowing_scale
from mammo.tiles import NATIVE_TILE, SURROUND, TILE_SIZE
from mammo.train_config import TrainConfig

CARD_FILE = "model.json"
FORMAT = "mammoflow-model-card/2"
# cards of format 1 have no scanning section: read still, `mammo scan` then guesses each scan's scale and says so
FORMAT_1 = "mammoflow-model-card/1"
INPUT = {
    "tile": TILE_SIZE,
    "channels": 1,
    "dtype": "uint8",
    "intensity": "the scan in the shared 16-bit space (CBIS-DDSM's: bright = dense) mapped to 0-255 by mammo.intensity.to_uint8",
    "geometry": f"a tile shows {NATIVE_TILE} pixels of a CBIS-DDSM scan at {TILE_SIZE}, or a film of another "
    "collection resized as the scanning section says (scanning.tile_scale)",
}
# a model trained with each tile's surroundings as a second channel (a mias_cv recipe's `surround`)
SURROUND_INPUT = {
    **INPUT,
    "channels": 2,
    "second_channel": f"the tile's place {SURROUND} times wider, on the same centre, shrunk to {TILE_SIZE} by area, "
    "black outside the breast and beyond the film (mammo.tiles.surround_view)",
}
INPUT_1 = {
    **INPUT,
    "geometry": f"a tile shows {NATIVE_TILE} pixels of a CBIS-DDSM scan at {TILE_SIZE} (mini-MIAS: its film upscaled 2.58x)",
}
# the recipes of `datasets` (CBIS-DDSM, DDSM, VinDr-Mammo, own images, each brought to the CBIS-DDSM scale) cut
# 598-pixel tiles seen at 299: their films are shrunk by 2
CBIS_TILE_SCALE = TILE_SIZE / NATIVE_TILE
# the Windowing fields a model was judged with (batch_size is the machine's business, scale follows from tile_scale);
# cards written before the surround channel lack `surround` (their models read the window alone)
WINDOWING_KEYS = ("stride", "min_tissue", "skip_muscle", "top", "overlap", "surround")
REQUIRED_WINDOWING_KEYS = WINDOWING_KEYS[:-1]
_NUMBERS = {"type": "array", "items": {"type": "number"}}
_LOGISTIC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["method", "features", "mean", "scale", "coefficients", "intercept", "uses_other_breast", "fitted_on"],
    "properties": {
        "method": {"const": "logistic"},
        "features": {"type": "array", "items": {"enum": list(FEATURES)}},
        "mean": _NUMBERS,
        "scale": _NUMBERS,
        "coefficients": _NUMBERS,
        "intercept": {"type": "number"},
        "uses_other_breast": {"const": False},
        "fitted_on": {"type": "object"},
    },
}
SCANNING_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["collection", "tile_scale", "window_scale", *REQUIRED_WINDOWING_KEYS, "aggregate", "uses_other_breast"],
    "properties": {
        "collection": {
            "enum": ["cbis", "mias"],
            "description": "whose films the tiles were cut from (cbis: the CBIS-DDSM scale every recipe of `datasets` "
            "brings its collections to; mias: mini-MIAS films, mias_cv)",
        },
        "tile_scale": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "those films were resized by this before 299 tiles were cut (CBIS-DDSM 0.5: 598 seen at 299)",
        },
        "window_scale": {
            "type": "number",
            "exclusiveMinimum": 0,
            "description": "Windowing.scale of such a film: CBIS-scale pixels per film pixel, tile_scale x 598 / 299",
        },
        "stride": {"type": "integer", "minimum": 1},
        "min_tissue": {"type": "number", "minimum": 0, "maximum": 1},
        "skip_muscle": {"type": "boolean"},
        "top": {"type": "integer", "minimum": 1},
        "overlap": {"type": "number", "minimum": 0, "maximum": 1},
        "surround": {"type": "boolean", "description": "each window is shown with its surroundings as a second channel"},
        "aggregate": {
            "type": "object",
            "required": ["method"],
            "properties": {"method": {"enum": ["max", "above_median", "level_difference", "logistic"]}},
            "allOf": [
                {
                    "if": {"properties": {"method": {"const": "max"}}},
                    "then": {"additionalProperties": False, "properties": {"method": {}}},
                },
                {
                    "if": {"properties": {"method": {"const": "above_median"}}},
                    "then": {
                        "additionalProperties": False,
                        "required": ["uses_other_breast"],
                        "properties": {"method": {}, "uses_other_breast": {"type": "boolean"}},
                    },
                },
                {
                    "if": {"properties": {"method": {"const": "level_difference"}}},
                    "then": {
                        "additionalProperties": False,
                        "required": ["uses_other_breast", "plus_max"],
                        "properties": {"method": {}, "uses_other_breast": {"const": True}, "plus_max": {"type": "boolean"}},
                    },
                },
                {
                    "if": {"properties": {"method": {"const": "logistic"}}},
                    "then": {
                        **_LOGISTIC_SCHEMA,
                        "properties": {
                            **_LOGISTIC_SCHEMA["properties"],
                            "features": {"type": "array", "items": {"enum": [*FEATURES, *OTHER_BREAST_FEATURES]}},
                            "uses_other_breast": {"type": "boolean"},
                            "without_other_breast": _LOGISTIC_SCHEMA,
                        },
                        "if": {"properties": {"uses_other_breast": {"const": True}}},
                        "then": {"required": ["without_other_breast"]},
                    },
                },
            ],
            "description": "how a film's score comes from its windows' scores (max: the strongest window; above_median: "
            "the strongest window's logit above the median of the film's, or where uses_other_breast of both her films', "
            "windows; level_difference: the breast's grey level above the other breast's, plus_max: added to the "
            "strongest window's logit; logistic: "
            "mammo.film_scores' features of its windows, and of the other breast's where uses_other_breast, fitted on "
            "inner-validation women, with the aggregate without the other breast for films whose partner is missing)",
        },
        "uses_other_breast": {"type": "boolean", "description": "whether a film's score reads the other breast's film"},
    },
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
        "format": {"enum": [FORMAT, FORMAT_1]},
        "model": {"type": "string", "minLength": 1},
        "labels": {"enum": sorted(LABEL_SETS)},
        "classes": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        "input": {"type": "object"},
        "training": {
            "type": "object",
            "required": ["contrast", "epochs", "abnormal_weight", "flips", "rotations", "dtype_policy", "seed"],
            "properties": {
                "contrast": {"type": "number", "exclusiveMinimum": 0},
                "epochs": {"type": "integer", "minimum": 1},
                "dtype_policy": {"type": "string"},
                # not required: cards written before it was a setting lack it (their models saw the tiles as scaled)
                "standardise_tiles": {"type": "boolean", "description": "each tile standardised inside the model"},
                # not required: cards written before it was a setting lack it (their models read every pixel)
                "input_pool": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "the tile averaged over this many pixels a side inside the model",
                },
                # not required: cards written before weight averaging lack it (their models kept the last epoch's weights)
                "average_from": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "the weights are the mean over the epochs from this one to the stages' last (0: the last epoch's)",
                },
                # not required: cards written before JAX could train lack it (those models trained on TensorFlow)
                "backend": {"enum": list(BACKENDS), "description": "the Keras backend that trained the model"},
                "initialised_from": {
                    "type": "object",
                    "required": ["path", "sha256"],
                    "properties": {"path": {"type": "string"}, "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
                    "description": "the weights training started from (pre-trained on demo films), where it did not start at random",
                },
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
        "scanning": SCANNING_SCHEMA,
    },
    # a card of this format has a scanning section and the input it describes, one of format 1 its own input (their
    # "type" and their place after the keys above tell a card without a format that first: jsonschema's best match)
    "if": {"properties": {"format": {"const": FORMAT}}},
    "then": {"type": "object", "required": ["scanning"], "properties": {"input": {"enum": [INPUT, SURROUND_INPUT]}}},
    "else": {"type": "object", "properties": {"input": {"const": INPUT_1}}},
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
    scanning: dict,
) -> dict:
    """The card of a model trained with the config entry `settings`, judged with `temperature` and `thresholds`
    through `engine` (Engine.describe) on the weights in `model_files`, to be scanned as `scanning` says
    (scanning_section); checked against the schema when written."""
    training = TrainConfig.from_settings(settings)
    return {
        "format": FORMAT,
        "model": settings["model"],
        "labels": settings["labels"],
        "classes": list(LABEL_SETS[settings["labels"]][0]),
        "input": SURROUND_INPUT if training.channels == 2 else INPUT,
        "training": {
            "contrast": settings.get("contrast", 1.0),
            "epochs": training.total_epochs,
            "abnormal_weight": settings.get("abnormal_weight"),
            "flips": settings.get("flips", True),
            "rotations": settings.get("rotations", True),
            "dtype_policy": dtype_policy,
            "backend": model_backend(settings),
            "seed": settings.get("seed"),
            "standardise_tiles": training.standardise_tiles,
            "input_pool": training.input_pool,
            "average_from": training.average_from,
            **(
                {
                    "initialised_from": {
                        "path": str(settings["initialised_from"]),
                        "sha256": file_sha256(settings["initialised_from"]),
                    }
                }
                if settings.get("initialised_from")
                else {}
            ),
        },
        "test_contrast": settings["test_contrast"],
        "temperature": temperature,
        "thresholds": thresholds,
        "trained_on": {"tile_tables": [str(path) for path in tile_tables], "sha256": tables_sha256(tile_tables)},
        "weights": {Path(path).name: file_sha256(path) for path in model_files},
        "evaluated_with": {key: engine[key] for key in ("engine", "version", "precision")},
        "code_version": __version__,
        "scanning": scanning,
    }


def scanning_section(collection: str, tile_scale: float, windowing: dict) -> dict:
    """What scanning whole films needs of a model whose tiles were cut from `collection`'s films ("cbis" or "mias")
    resized by `tile_scale`, judged with `windowing` (the fields of mammo.heatmap.Windowing): the film score is its
    strongest window's, and no film's score reads the other breast."""
    return {
        "collection": collection,
        "tile_scale": tile_scale,
        "window_scale": windowing_scale(tile_scale),
        **{key: windowing[key] for key in REQUIRED_WINDOWING_KEYS},
        "surround": windowing.get("surround", False),
        "aggregate": {"method": "max"},
        "uses_other_breast": False,
    }


def reads_surround(scanning: dict | None) -> bool:
    """Whether the model of a scanning section reads each window with its surround channel (a section written before
    the channel, or none, says no)."""
    return bool(scanning and scanning.get("surround", False))


def window_scale_for(scanning: dict, scan_path: str | Path) -> float:
    """Windowing.scale of a scan for the model of a scanning section: the model's window_scale, for a scan of another
    collection times its pixel size against that of the model's films (mammo.sources.window_scale_of). A mini-MIAS
    film is windowed at the card's window_scale (2.0 for a model trained at 1.0, not the 5.16 of the study's 2.58)."""
    return scanning["window_scale"] * (window_scale_of(scan_path) / SOURCES[scanning["collection"]].window_scale)


def write_card(card: dict, path: str | Path) -> None:
    jsonschema.validate(card, SCHEMA)
    Path(path).write_text(json.dumps(card, indent=2) + "\n")


def read_card(model_path: str | Path, path: str | Path | None = None) -> dict | None:
    """The card beside a model (or at `path`), or None where there is none (a model not yet evaluated); a file that is
    not a valid card is a clear error naming it, raised before any scan is scored."""
    path = Path(path) if path is not None else card_path(model_path)
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
    scanning = card.get("scanning")
    if scanning is not None:
        if reads_surround(scanning) != (card["input"]["channels"] == 2):
            raise ValueError(
                f"{path}: not a model card (scanning/surround: {reads_surround(scanning)}, but input/channels: "
                f"{card['input']['channels']}; a model reads the surround channel exactly when it has two)"
            )
        aggregate = scanning["aggregate"]
        if scanning["uses_other_breast"] != aggregate.get("uses_other_breast", False):
            raise ValueError(
                f"{path}: not a model card (scanning/uses_other_breast: {scanning['uses_other_breast']}, but "
                f"scanning/aggregate/uses_other_breast: {aggregate.get('uses_other_breast', False)})"
            )
        for part in (aggregate, aggregate.get("without_other_breast", {})):
            lengths = {key: len(part[key]) for key in ("features", "mean", "scale", "coefficients") if key in part}
            if len(set(lengths.values())) > 1:
                raise ValueError(f"{path}: not a model card (scanning/aggregate: one value per feature, got {lengths})")
    return card
