"""Readers (and the demo's writers) for the native collection formats."""


class FormatError(ValueError):
    """A file that cannot be read as what it claims to be; the message names the file."""

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


# The largest image any reader accepts, checked against the size a file declares before anything is allocated:
# a full-field DDSM scan is at most about 7,000 x 5,000 pixels, so these leave room for any real mammogram while a
# header claiming 100,000 x 100,000 pixels (40 GB as 32-bit floats) is refused in one line.
MAX_SIDE = 20_000
MAX_PIXELS = 400_000_000


def check_declared_size(path, rows: int, columns: int) -> None:
    """Refuse an image whose declared size is empty or beyond MAX_SIDE / MAX_PIXELS, before it is allocated."""
    if rows < 1 or columns < 1:
        raise FormatError(path, f"declares an empty image ({rows}x{columns} pixels)")
    if max(rows, columns) > MAX_SIDE or rows * columns > MAX_PIXELS:
        raise FormatError(
            path,
            f"declares {rows}x{columns} pixels, beyond the largest image read "
            f"({MAX_SIDE:,} pixels a side, {MAX_PIXELS // 1_000_000:,} Mpx)",
        )
