"""Cut the demo's mini-MIAS films into tiles, write them as records and train on them with one Keras backend, in a
process of its own (Keras fixes its backend when first imported).

Writes into OUT_DIR: records/ (train and val shards), batches.sha256 (the training batches of one epoch, as the
input pipeline gives them), model.keras and history.csv, and predictions.npy (the trained model on the val tiles,
computed on this backend).

Usage: python tests/backend_training.py BACKEND DEMO_ROOT OUT_DIR
"""

from __future__ import annotations

import sys

from mammo.backend import use_keras_backend

backend, demo_root, out_dir = sys.argv[1:4]
use_keras_backend(backend)  # before anything imports keras or tensorflow

import hashlib  # noqa: E402
from pathlib import Path  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from mammo.extract import mias_tiles  # noqa: E402
from mammo.io.mias import index_info  # noqa: E402
from mammo.records import write_shard  # noqa: E402
from mammo.tiles import Method2, NormalThresholds, NormalTiling  # noqa: E402
from mammo.train import make_dataset, train  # noqa: E402
from mammo.train_config import TrainConfig  # noqa: E402

SEED = 9
out = Path(out_dir)
(out / "records").mkdir(parents=True, exist_ok=True)
images, rois, _, _ = index_info(Path(demo_root) / "mias" / "Info.txt")
tiles, table, _ = mias_tiles(
    images, rois, "ds9", Method2(tile=299), NormalThresholds(38, 20, 2000), NormalTiling(299, 200, 0.07), 2.58, SEED, "m.npy"
)
# half the abnormal tiles and a seeded draw of normal ones each: 24 training tiles (3 steps of 8), 8 validation tiles
abnormal = table[table["label_normal"] == 1]
normal = table[table["label_normal"] == 0].sample(frac=1.0, random_state=SEED)
splits = {"train": (abnormal.iloc[0::2], 24), "val": (abnormal.iloc[1::2], 8)}
taken = 0
paths = {}
for split, (lesions, count) in splits.items():
    chosen = pd.concat([lesions, normal.iloc[taken : taken + count - len(lesions)]])
    taken += count - len(lesions)
    paths[split] = [out / "records" / f"{split}.tfrecord"]
    write_shard(chosen, lambda row: tiles[int(row["tile_index"])], paths[split][0])

config = TrainConfig(epochs=1, batch_size=8, batchnorm_batches=1, threads=2, seed=SEED, backend=backend)
batches = make_dataset(paths["train"], config.labels, config.batch_size, training=True, abnormal_weight=6.0, seed=SEED)
digest = hashlib.sha256()
for image, label, weight in batches.as_numpy_iterator():
    digest.update(image.tobytes() + label.tobytes() + weight.tobytes())
(out / "batches.sha256").write_text(digest.hexdigest())

model_path = train(paths["train"], paths["val"], config, out)
val_images = np.concatenate([image for image, _, _ in make_dataset(paths["val"], config.labels, 8).as_numpy_iterator()])
np.save(out / "predictions.npy", keras.models.load_model(model_path).predict(val_images, verbose=0))
