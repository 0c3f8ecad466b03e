"""File-level stages, one module per rule file of workflow/rules/: each reads its inputs, calls the pure library
functions and writes its outputs. The workflow's scripts and the command line call them; the graph itself needs
only :mod:`mammo.graph`."""
