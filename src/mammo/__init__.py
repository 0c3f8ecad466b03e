"""mammoflow: native mammography collections to trained ConvNets.

The library is pure: functions take arrays and tables and return arrays and
tables. File formats live in :mod:`mammo.io`, TFRecords in
:mod:`mammo.records`.
"""

import os

__version__ = "0.6.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512; on an AVX2 CPU the model-rate
# benchmark of 1.0.0.35 then takes 0.75x the CPU time, inference 14-15 instead of 8 tiles/s (BENCHMARKS.md). Set
# before any module imports TensorFlow (they import it lazily, after this package); a value the user set wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
