"""Which trained models a configuration builds: the (dataset, model) pairs of `all` and the comparison tables."""

from __future__ import annotations


def selected_runs(config: dict) -> list[dict]:
    """The pairs under `runs:` (dataset -> model names), else every dataset with every model.

    Each is {"dataset", "model", "settings"}; any other pair of the config's datasets and models is still
    a target of its own (results/<ds>/model_<model>/metrics.json). A name not in the config is an error.
    """
    chosen = config.get("runs") or {dataset: list(config["models"]) for dataset in config["datasets"]}
    for dataset, models in chosen.items():
        if dataset not in config["datasets"]:
            raise ValueError(f"runs.{dataset}: no such dataset under datasets: ({', '.join(config['datasets'])})")
        unknown = [model for model in models if model not in config["models"]]
        if unknown:
            raise ValueError(f"runs.{dataset}: {', '.join(unknown)} not under models: ({', '.join(config['models'])})")
    return [{"dataset": dataset, "model": model, "settings": config["models"][model]}
            for dataset, models in chosen.items() for model in models]  # fmt: skip
