"""The study's comparison tables (Tables 1-3) across every trained dataset and model, each cell with its interval."""

from __future__ import annotations

import pandas as pd

TABLES = ("binary_test", "multiclass_test", "mias")


def cell(value: float | None, interval: list | None) -> str:
    """'0.935 [0.901, 0.962]'; '-' where the rate is undefined on the set."""
    if value is None:
        return "-"
    if not interval or interval[0] is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _rate(entry: dict, block: str, name: str) -> str:
    part = entry["operating_points"][block] if block in entry["operating_points"] else entry[block]
    return cell(part[name], part.get("ci95", {}).get(name))


def study_tables(runs: list[dict]) -> dict[str, pd.DataFrame]:
    """`runs`: one dict per trained model with keys dataset, model, settings, metrics (metrics.json), shortcut.

    Table 1 (binary models, test set), Table 2 (5-class models, test set) and Table 3 (mini-MIAS), at the fixed
    threshold as in the study, plus the validation-chosen best-F1 threshold and the threshold-free ROC-AUC.
    """
    rows = {name: [] for name in TABLES}
    for run in runs:
        metrics, settings = run["metrics"], run["settings"]
        best = metrics["operating_points"].get("best_f1", {}).get("threshold")
        common = {
            "Model": run["model"],
            "Classification": "Binary" if metrics["labels"] == "binary" else "Multi-class",
            "Dataset": run["dataset"],
            "Epochs": settings["epochs"],
            "Initialization": "Scratch",
        }
        test, mias = metrics["sets"]["test"], metrics["sets"]["mias"]
        shortcut = run["shortcut"]
        table = "binary_test" if metrics["labels"] == "binary" else "multiclass_test"
        row = {
            **common,
            "Threshold": f"{metrics['operating_points']['fixed']['threshold']:.2f}",
            "Accuracy": _rate(test, "fixed", "accuracy"),
            "Recall": _rate(test, "fixed", "recall"),
            "Specificity": _rate(test, "fixed", "specificity"),
            "ROC-AUC": _rate(test, "raw", "roc_auc"),
            "Best-F1 threshold (val)": "-" if best is None else f"{best:.3f}",
            "Accuracy at best F1": _rate(test, "best_f1", "accuracy") if "best_f1" in test["operating_points"] else "-",
            "Recall at best F1": _rate(test, "best_f1", "recall") if "best_f1" in test["operating_points"] else "-",
            "Shortcut AUC": cell(shortcut["collection_auc"], shortcut["ci95"]) + (" FLAGGED" if shortcut["flagged"] else ""),
            "Baseline": cell(test["majority_baseline_accuracy"], None),
        }
        if "multiclass" in test:
            multi = test["multiclass"]
            row["Label set"] = multi["label_set"]
            row["Multi-class accuracy"] = cell(multi["accuracy"], multi["ci95"]["accuracy"])
            row["Macro-F1"] = cell(multi["macro_f1"], multi["ci95"]["macro_f1"])
        rows[table].append(row)
        rows["mias"].append(
            {
                "Model": run["model"],
                "Training Dataset": run["dataset"],
                "Threshold": row["Threshold"],
                "MIAS Accuracy": _rate(mias, "fixed", "accuracy"),
                "MIAS Recall": _rate(mias, "fixed", "recall"),
                "MIAS Specificity": _rate(mias, "fixed", "specificity"),
                "MIAS ROC-AUC": _rate(mias, "raw", "roc_auc"),
                "Baseline": cell(mias["majority_baseline_accuracy"], None),
            }
        )
    return {name: pd.DataFrame(found) for name, found in rows.items()}


def markdown(table: pd.DataFrame, empty: str = "(no trained model of this kind in the config)") -> str:
    """A GitHub-flavoured Markdown table; `empty` stands in for a table without rows."""
    if table.empty:
        return empty + "\n"
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"
