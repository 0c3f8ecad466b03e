"""Class codes of the study and the label sets derived from them."""

from __future__ import annotations

NORMAL = 0
CLASS_NAMES = {
    0: "normal",
    1: "benign_calcification",
    2: "benign_mass",
    3: "malignant_calcification",
    4: "malignant_mass",
}


def class_code(abnormality_type: str, pathology: str) -> int:
    """0 normal, 1 benign calc, 2 benign mass, 3 malignant calc, 4 malignant mass."""
    is_mass = abnormality_type == "mass"
    is_malignant = pathology == "MALIGNANT"
    return 1 + int(is_mass) + 2 * int(is_malignant)


def label_normal(code: int) -> int:
    """Binary label: 1 for any abnormality, 0 for normal tissue."""
    return int(code > NORMAL)


# Label sets a model can be trained on: class names, and the class of each 5-class code (0-4).
LABEL_SETS = {
    "binary": (("normal", "abnormal"), (0, 1, 1, 1, 1)),
    "five_class": (tuple(CLASS_NAMES.values()), (0, 1, 2, 3, 4)),
    "type": (("normal", "calcification", "mass"), (0, 1, 2, 1, 2)),
    "pathology": (("normal", "benign", "malignant"), (0, 1, 1, 2, 2)),
}
