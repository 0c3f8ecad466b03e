"""mammoflow: native mammography collections to trained ConvNets.

The library is pure: functions take arrays and tables and return arrays and
tables. File formats live in :mod:`mammo.io`, TFRecords in
:mod:`mammo.records`.
"""

__version__ = "0.5.0"
