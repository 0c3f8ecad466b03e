"""Readers (and the demo's writers) for the native collection formats."""


class FormatError(ValueError):
    """A file that cannot be read as what it claims to be; the message names the file."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")
