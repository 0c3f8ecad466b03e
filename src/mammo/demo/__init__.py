"""Deterministic demo collections in the native formats and folder layouts of the real downloads."""
