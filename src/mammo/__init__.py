"""mammoflow: native mammography collections to trained ConvNets.

The library is pure: functions take arrays and tables and return arrays and
tables. File formats live in :mod:`mammo.io`, TFRecords in
:mod:`mammo.records`.
"""

import os

__version__ = "0.6.0"

# TensorFlow turns its oneDNN kernels on by default only on CPUs with AVX-512; on an AVX2 CPU they train model
# 1.0.0.35 1.5x faster and run it 1.6x faster (BENCHMARKS.md). Set before any module imports TensorFlow (they
# import it lazily, after this package); a value the user set wins.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
