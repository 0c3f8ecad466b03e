"""Model registry: small functions returning `keras.Model`, registered by the study's names."""

from __future__ import annotations

from typing import Callable

MODELS: dict[str, Callable] = {}


def register(name: str):
    def decorator(builder):
        MODELS[name] = builder
        return builder

    return decorator


def build(name: str, num_classes: int):
    """Build a registered model for `num_classes` outputs (softmax probabilities)."""
    from mammo.models import study  # noqa: F401  (registers the study's models)

    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; registered: {sorted(MODELS)}")
    return MODELS[name](num_classes)
