"""Train on records under a MirroredStrategy of two replicas on two logical CPU devices (the code path of a
machine with several GPUs). Run as a separate process: logical devices are set before TensorFlow starts.

Usage: python tests/mirrored_training.py RECORDS OUT_DIR [MIXED_PRECISION_POLICY]
"""

from __future__ import annotations

import sys

import tensorflow as tf

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
)

import mammo.train  # noqa: E402

records, out_dir = sys.argv[1], sys.argv[2]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mammo.train._distribution = lambda: strategy  # what several GPUs would give
config = mammo.train.TrainConfig(
    epochs=1, batch_size=6, batchnorm_batches=1, threads=2, seed=1, mixed_precision=sys.argv[3] if len(sys.argv) > 3 else None
)
print(f"replicas: {strategy.num_replicas_in_sync}")
print(f"saved: {mammo.train.train([records], [records], config, out_dir)}")
