import os
import re
from dataclasses import asdict
from pathlib import Path

from mammo.card import CBIS_TILE_SCALE, scanning_section
from mammo.demo.collections import DemoSpec, ddsm_ics_paths
from mammo.comparison import TABLES
from mammo.io.cbis import CSV_NAMES
from mammo.io.mias import ARCHIVE_SUFFIXES, is_archive
from mammo.online_crops import recipe_crops
from mammo.sources import LISTED as LISTED_READERS, window_scale_of
from mammo.graph import selected_runs
from mammo.graph import chunk_scan_files

SPLITS = ["train", "val", "test"]
# collections listed in tables of images and findings (mammo.io.listed), tiled by rule tiles_listed
LISTED = list(LISTED_READERS)
EXTERNAL_SETS = ["mias"]
CHUNKS = list(range(config["chunks"]))
STUDY_TABLES = list(TABLES)
# the trained models of `all` and the comparison tables: `runs:`, else every (dataset, model) pair
RUNS = selected_runs(config)
MODEL_OUTPUTS = [
    "metrics.json",
    "training_curves.png",
    "roc_pr.png",
    "reliability.png",
    "thresholds.png",
    "confusion.png",
    "errors.png",
    "shortcut.png",
    "scans/metrics.json",
]
# what `all` builds besides the benchmark table, which summarises the jobs behind them
FINAL_OUTPUTS = [
    *(
        f"results/{run['dataset']}/model_{run['model']}/{name}"
        for run in RUNS
        for name in MODEL_OUTPUTS
    ),
    *(
        f"results/{dataset}/montage.png"
        for dataset in dict.fromkeys(run["dataset"] for run in RUNS)
    ),
    "results/uci/metrics.json",
    *(f"results/tables/{table}.md" for table in TABLES),
]


wildcard_constraints:
    dataset="|".join(config["datasets"]),
    model="|".join(m.replace(".", r"\.") for m in config["models"]),
    chunk=r"\d+",
    fold=r"\d+",
    split="|".join(SPLITS + EXTERNAL_SETS),
    shard=r"\d+",
    shards=r"\d+",
    name="|".join(map(re.escape, config["scans"].get("files", {}))) or "(?!)",
    trained=r"[^/]+/model_[^/]+(/fold_\d+)?",
    listed="|".join(LISTED),


def data_root(key):
    """A configured collection root. Real data (data.demo false) must exist and must not be the demo's folder, which
    an earlier demo run leaves behind; checked when a job needs the root, so unused roots may stay unset.
    """
    root = config["data"][key]
    if not config["data"]["demo"]:
        if Path(root).resolve().is_relative_to(Path("resources/demo").resolve()):
            raise ValueError(
                f"data.{key}: {root} is the demo's folder but data.demo is false: point it at the download"
            )
        if not Path(root).exists():
            raise ValueError(f"data.{key}: {root} does not exist")
    return root


def cbis_csvs():
    return [f"{data_root('cbis_ddsm')}/{name}" for name in CSV_NAMES]


def mias_info(checked=True):
    """Info.txt of mini-MIAS: in the `data.mias` folder, or unpacked (by rule unpack_mias) from the official archive."""
    source = data_root("mias") if checked else config["data"]["mias"]
    if not is_archive(source):
        return f"{source}/Info.txt"
    name = Path(source).name
    stem = next(name[: -len(s)] for s in ARCHIVE_SUFFIXES if name.lower().endswith(s))
    return f"resources/mias/{stem}/Info.txt"


def listed_inputs(name):
    """The files a listed collection's index reads (VinDr-Mammo's two CSVs; your own CSV), where the config names
    its root (data.<name>); none otherwise."""
    root = config["data"].get(name)
    return LISTED_READERS[name].files(root) if root else []


def ddsm_inputs():
    """The demo's .ics files (so the demo rule runs first), or the real data root."""
    if config["data"]["demo"]:
        spec = DemoSpec(**config.get("demo", {}))
        return [f"{config['data']['ddsm']}/{path}" for path in ddsm_ics_paths(spec)]
    return [data_root("ddsm")]


def shard_paths(dataset, split):
    shards = config["datasets"][dataset]["shards"]
    return [
        f"results/{dataset}/records/{split}-{shard}-of-{shards}.tfrecord"
        for shard in range(shards)
    ]


# a recipe's `abnormal` choice -> (index kinds whose ROIs its tile jobs cut, index kinds of its normal scans)
# (a listed collection's tile jobs cut its normal images as well: it has no separate normal source)
RECIPE_SOURCES = {
    "cbis": (["cbis"], ["ddsm"]),
    "ddsm": (["ddsm_abnormal"], ["ddsm"]),
    "both": (["cbis", "ddsm_abnormal"], ["ddsm"]),
    **{listed: ([listed], []) for listed in LISTED},
}
# where each kind's index lies, by the names the split and whole-scan stages give its tables
INDEX_TABLES = {
    "cbis": {"cbis_rois": "results/sources/cbis/rois.tsv"},
    "ddsm_abnormal": {"ddsm_rois": "results/sources/ddsm_abnormal/rois.tsv"},
    "ddsm": {"ddsm_scans": "results/sources/ddsm/scans.tsv"},
    **{
        listed: {
            f"{listed}_images": f"results/sources/{listed}/images.tsv",
            f"{listed}_findings": f"results/sources/{listed}/findings.tsv",
        }
        for listed in LISTED
    },
}


def recipe_sources(dataset):
    """(ROI kinds, normal kinds) of a recipe."""
    return RECIPE_SOURCES[config["datasets"][dataset].get("abnormal", "cbis")]


def chunk_outputs(dataset, kind):
    """One output of every tile job of a recipe: its ROI sources' jobs and its normal scans' (fingerprints: the ROI
    sources' only)."""
    rois, normals = recipe_sources(dataset)
    sources = rois if kind == "fingerprints.tsv" else rois + normals
    return [
        f"results/{dataset}/tiles/{source}_{chunk}.{kind}"
        for source in sources
        for chunk in CHUNKS
    ]


def collection_recipes():
    """The first recipe of the config for each ROI source it names (`abnormal`: cbis, ddsm, vindr, own; both adds
    none)."""
    first = {}
    for name, recipe in config["datasets"].items():
        first.setdefault(recipe.get("abnormal", "cbis"), name)
    return [name for choice, name in first.items() if choice != "both"]


def collection_tables():
    """The split tile tables of collection_recipes() and the mini-MIAS set of the first."""
    recipes = collection_recipes()
    return [f"results/{name}/tiles.tsv" for name in recipes] + [
        f"results/{recipes[0]}/mias/tiles.tsv"
    ]


def lesion_indexes(dataset):
    """The index tables of a recipe's ROI sources: where the split counts them and whole-scan scoring finds lesions."""
    rois, _ = recipe_sources(dataset)
    return indexes_of(rois)


def recipe_indexes(dataset):
    """The index tables of every source a recipe reads (its ROI sources and its normal scans)."""
    rois, normals = recipe_sources(dataset)
    return indexes_of(rois + normals)


def indexes_of(kinds):
    """The index tables of these kinds, by the names the split and whole-scan stages give them."""
    return {key: path for kind in kinds for key, path in INDEX_TABLES[kind].items()}


def split_inputs(wildcards):
    """The split's inputs: every tile job's outputs and the indexes (with their rejected rows) the recipe reads."""
    dataset = wildcards.dataset
    rois, normals = recipe_sources(dataset)
    indexes = recipe_indexes(dataset)
    rejected = {
        f"{kind}_rejected": f"results/sources/{kind}/rejected.tsv"
        for kind in rois + normals
    }
    return {
        **indexes,
        **rejected,
        "tables": chunk_outputs(dataset, "tsv"),
        "tiles": chunk_outputs(dataset, "npy"),
        "rejected": chunk_outputs(dataset, "rejected.tsv"),
        "fingerprints": chunk_outputs(dataset, "fingerprints.tsv"),
    }


def split_tiles(wildcards):
    """The tile table and tile arrays that one split's records are written from."""
    if wildcards.split == "mias":
        return {
            "tiles": f"results/{wildcards.dataset}/mias/tiles.tsv",
            "arrays": [f"results/{wildcards.dataset}/mias/tiles.npy"],
        }
    return {
        "tiles": f"results/{wildcards.dataset}/tiles.tsv",
        "arrays": chunk_outputs(wildcards.dataset, "npy"),
    }


def scan_chunks(wildcards, kind):
    return [
        f"results/{wildcards.dataset}/model_{wildcards.model}/scans/chunk_{chunk}.{kind}"
        for chunk in CHUNKS
    ]


def windowing_settings():
    """The config's `scans` entry without the list of files: the fields of mammo.heatmap.Windowing."""
    return {key: value for key, value in config["scans"].items() if key != "files"}


def mias_windowing():
    """The config's `scans` as mias_cv windows its films: each window with its surround channel where the recipe's
    `surround` says so."""
    return {**windowing_settings(), "surround": config["mias_cv"]["surround"]}


def scan_windowing(name):
    """Windowing of one configured scan, at its collection's scale (mini-MIAS films: upscaled as their tiles)."""
    return {
        **windowing_settings(),
        "scale": window_scale_of(config["scans"]["files"][name]),
    }


def recipe_part(dataset, *keys):
    """The seed and the given keys of a dataset recipe: a job reruns only when what it uses changes."""
    recipe = config["datasets"][dataset]
    return {key: recipe[key] for key in ("seed", *keys) if key in recipe}


def epoch_draws(recipe):
    """What a recipe adds to its models' training settings: with fresh normals, the share of abnormal tiles in each
    epoch's draw (mammo.train_config.TrainConfig.abnormal_fraction); with online crops, their settings; its hard-negative
    rounds (mammo.train_config.TrainConfig.hard_negatives); with the surround channel, a second input channel.
    """
    crops = recipe_crops(recipe)
    return {
        **({"channels": 2} if recipe["surround"] else {}),
        **(
            {"abnormal_fraction": recipe["abnormal_fraction"]}
            if recipe["fresh_normals"]
            else {}
        ),
        **({"online_crops": asdict(crops)} if crops else {}),
        "hard_negatives": recipe["hard_negatives"],
    }


# mias_cv.pretrain: where the pre-training's films and results lie, named by what makes them (films, seed)
PRETRAIN_NAME = "pretrain/mias-demo-{films}-seed{seed}".format(
    **config["mias_cv"]["pretrain"]
)
PRETRAIN_FILMS = f"resources/{PRETRAIN_NAME}"
PRETRAIN = f"results/{PRETRAIN_NAME}"


def tiling_recipe(recipe):
    """What of a mias_cv recipe its tiles depend on (mammo.stages.crossval.tiles_mias_cv reads these keys), so that
    changing how they train (hard negatives, pre-training, fresh normals) does not cut them again.
    """
    keys = (
        "seed",
        "folds",
        "scale",
        "tile",
        "roi",
        "online_crops",
        "normals",
        "surround",
        "lesion_margin",
        "edges_per_film",
    )
    return {key: recipe[key] for key in keys}


def pretrain_recipe():
    """The mias_cv recipe as the pre-training runs it: its tiling and training settings, not the cross-validation's
    folds (the pre-training holds no woman out; two folds only tag its tiles) nor the pre-training entry itself, so
    that changing those leaves the pre-trained weights as they are."""
    return {
        **{key: value for key, value in config["mias_cv"].items() if key != "pretrain"},
        "folds": 2,
    }


def pretrained_input():
    """A mias_cv training job's starting weights: the pre-trained model of its model entry (mias_cv.pretrain.films
    above 0), else none."""
    return (
        [f"{PRETRAIN}/model_{{model}}/model.keras"]
        if config["mias_cv"]["pretrain"]["films"]
        else []
    )


def online_crops_input(path):
    """A training job's lesion context patches (mias_cv.online_crops enabled), else nothing."""
    return [path] if recipe_crops(config["mias_cv"]) else []


def mining_input(recipe, films):
    """A training job's films to mine hard negatives from (the recipe's hard_negatives.rounds above 0) or to cut windows
    at its lesions' places from (other_breast_negatives.per_lesion or other_women_negatives.films above 0), else
    nothing: without any the job neither reads them nor reruns when they change."""
    wanted = (
        recipe["hard_negatives"]["rounds"]
        or recipe["other_breast_negatives"]["per_lesion"]
        or recipe["other_women_negatives"]["films"]
    )
    return films if wanted else []


def model_report(name, caption):
    """A per-model figure in the report, under its dataset and model."""
    return report(
        f"results/{{dataset}}/model_{{model}}/{name}",
        caption=f"../report/{caption}",
        category="Models",
        subcategory="{dataset} {model}",
    )


def scan_files(kind):
    """Input function: the image files of one chunk job, read from its index (a checkpoint) once it exists. Kind
    "listed": the collection named by the job's `listed` wildcard (vindr, own)."""
    index = {
        "cbis": lambda wc: checkpoints.index_cbis.get().output.rois,
        "ddsm": lambda wc: checkpoints.index_ddsm.get().output.scans,
        "ddsm_abnormal": lambda wc: checkpoints.index_ddsm_abnormal.get().output.rois,
        "listed": lambda wc: checkpoints.index_listed.get(
            listed=wc.listed
        ).output.images,
        "mias": lambda wc: checkpoints.index_mias.get().output.images,
        "targets": lambda wc: checkpoints.scan_targets.get(dataset=wc.dataset).output[
            0
        ],
    }[kind]
    root = config["data"]["cbis_ddsm"] if kind == "cbis" else ""

    def files(wildcards):
        chunk = int(wildcards.get("chunk", 0))
        source = wildcards.listed if kind == "listed" else kind
        return chunk_scan_files(index(wildcards), source, chunk, config["chunks"], root)

    return files


def transfer_source(dataset, model):
    """The trained model another model starts from (its `init` key), on the same dataset; none otherwise."""
    source = config["models"][model].get("init")
    if source is None:
        return []
    if source not in config["models"] or source == model:
        raise ValueError(
            f"models.{model}.init: {source!r} is not another model of this config"
        )
    return [f"results/{dataset}/model_{source}/model.keras"]


def exported(model):
    """The ONNX export of a trained model.keras (rule export_model)."""
    return model.removesuffix(".keras") + ".onnx"
