"""A model entry's training settings, in a module of their own: evaluation reads them without importing Keras or
TensorFlow (mammo.train, which trains with them, imports both)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from mammo.backend import DEFAULT_BACKEND
from mammo.labels import LABEL_SETS

# fields passed to the model builder rather than read by the training loop
BUILD_OPTIONS = ("weights", "standardise_tiles", "input_pool", "channels")


@dataclass(frozen=True)
class TrainConfig:
    model: str = "1.0.0.35"
    labels: str = "binary"  # a label set of mammo.labels.LABEL_SETS
    epochs: int = 20
    batch_size: int = 32
    learning_rate: float = 0.001
    decay_rate: float = 0.8
    decay_epochs: int = 5  # staircase: the rate falls by decay_rate every decay_epochs epochs, counted over all stages
    abnormal_weight: float = 6.0  # loss weight of every abnormal example (label > 0); normal = 1
    contrast: float = 1.0  # adjust_contrast factor on training images
    flips: bool = True  # online random horizontal and vertical flips (training only, on the accelerator)
    rotations: bool = True  # online rotations by k * 90 degrees, k uniform in 0..3 (as flips)
    batchnorm_batches: int = (
        10  # batches over which BatchNorm statistics are recomputed after each epoch; 0: keep the moving averages
    )
    stages: tuple = ()  # further stages after the first: dicts overriding epochs, abnormal_weight, contrast, flips, rotations
    init: str | None = None  # a trained model whose layers (by name and shape, not the output layer) start this one
    freeze: str = "none"  # "convolutions": the layers before the first flatten/pooling to vector stay as initialised
    weights: str | None = None  # local ImageNet weights file of a transfer baseline's backbone
    standardise_tiles: bool = False  # each tile to zero mean, unit deviation inside the model (mammo.models.standardised)
    input_pool: int = 1  # the tile averaged over this many pixels a side inside the model (mammo.models.tile_input)
    channels: int = 1  # 2: each tile with its surround channel (mammo.tiles.surround_view; a mias_cv recipe's `surround`)
    mixed_precision: str | None = None  # Keras dtype policy ("mixed_bfloat16", "mixed_float16"), or "auto" (dtype_policy)
    tensorboard: bool = True  # scalars every 50 steps and the validation PR curve every epoch, in <out>/tensorboard
    steps_per_epoch: int | None = None  # at most this many batches per epoch (a quick trial); None: one pass
    # each epoch: every abnormal training tile and a fresh seeded draw of normal tiles, abnormal about this share
    # (the records hold every normal tile); None: one pass over the records, as balanced when they were written
    abnormal_fraction: float | None = None
    # training lesions as context patches (mammo.online_crops), new crops of each every epoch: OnlineCrops' fields;
    # None: the records' fixed crops
    online_crops: dict | None = None
    # rounds of hard negatives mined from the training women's whole films after the stages: HardNegatives' fields;
    # None: no rounds (and no hard-negative table written)
    hard_negatives: dict | None = None
    # weight averaging (SWA): the network ends its stages as the mean of its weights after each of the last epochs,
    # this share of all the stages' epochs (rounded up), BatchNorm statistics recomputed for it; 0: the last epoch's
    # weights. Hard-negative rounds go on from the averaged network.
    average_last: float = 0.0
    seed: int = 42
    threads: int = 2
    backend: str = DEFAULT_BACKEND  # the Keras backend (mammo.backend.BACKENDS) that trains; the saved model runs on any

    @classmethod
    def from_settings(cls, settings: dict) -> "TrainConfig":
        """A model's config entry (which also holds evaluation keys) as training settings."""
        values = {key: value for key, value in settings.items() if key in cls.__dataclass_fields__}
        return cls(**{**values, "stages": tuple(values.get("stages", ()))})

    def __post_init__(self):
        if not 0 <= self.average_last <= 1:
            raise ValueError(f"average_last: a share of the epochs from 0 (no averaging) to 1, got {self.average_last}")
        if self.average_last and not self.batchnorm_batches:
            raise ValueError("average_last needs batchnorm_batches > 0: averaged weights need their own BatchNorm statistics")

    @property
    def total_epochs(self) -> int:
        """Epochs over all stages."""
        return self.epochs + sum(stage.get("epochs", self.epochs) for stage in self.stages)

    @property
    def average_from(self) -> int:
        """The first averaged epoch (1-based, over all stages), 0 for none: the last `average_last` of the epochs,
        at least one (a share times the epochs is rounded up; the tolerance keeps 0.28 x 25 at 7)."""
        if not self.average_last:
            return 0
        return self.total_epochs - math.ceil(self.average_last * self.total_epochs - 1e-9) + 1

    @property
    def build_options(self) -> dict:
        """The model builder's options this config sets (mammo.models.build), each only where it is not the default:
        a builder without an option refuses it by name, so models without it train where it is left alone."""
        return {
            name: getattr(self, name) for name in BUILD_OPTIONS if getattr(self, name) != self.__dataclass_fields__[name].default
        }

    @property
    def num_classes(self) -> int:
        return len(LABEL_SETS[self.labels][0])

    def stage_settings(self) -> list["TrainConfig"]:
        """The first stage (this config) and each further stage with its overrides (the averaging is the whole
        training's: mammo.train reads it from this config)."""
        return [self] + [replace(self, **stage, stages=(), average_last=0.0) for stage in self.stages]
