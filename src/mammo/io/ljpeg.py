"""DDSM lossless JPEG (`.LJPEG`, SOF3) scans."""

from __future__ import annotations

import heapq
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import imagecodecs
import numpy as np

from mammo.io import MAX_PIXELS, FormatError, check_declared_size

# The longest stream an image within MAX_PIXELS can need: at most 31 coded bits a pixel (a 16-bit Huffman code and
# 15 extra bits), twice that where every byte is 0xFF and gets its stuffed 0x00, and 1 MiB for the header segments.
# A gzipped scan may expand to this and no further (a gzip bomb expands without limit).
MAX_STREAM_BYTES = MAX_PIXELS * 31 // 8 * 2 + (1 << 20)


@dataclass(frozen=True)
class LjpegHeader:
    precision: int
    rows: int
    columns: int
    predictor: int
    code_lengths: tuple = ()  # Huffman code length per difference category 0..16 of the scan's table (0: no code)
    scan_start: int = 0  # byte offset of the entropy-coded data
    restart_interval: int = 0


def read_bytes(path: str | Path, max_bytes: int | None = None) -> bytes:
    """Read a file, gunzipping transparently (DDSM ships some scans gzipped) up to `max_bytes` of output
    (MAX_STREAM_BYTES unless given)."""
    data = Path(path).read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = _gunzip(data, path, MAX_STREAM_BYTES if max_bytes is None else max_bytes)
        except zlib.error as err:
            raise FormatError(path, f"corrupt gzip stream ({err})") from None
    return data


def _gunzip(data: bytes, path, max_bytes: int) -> bytes:
    """Every gzip member of `data` (zero padding between them allowed, as gzip does), streamed so that at most
    `max_bytes` + 1 bytes are ever inflated."""
    output = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip header and trailer: the CRC is checked
        pending = rest
        while pending and not inflater.eof:
            output += inflater.decompress(pending, max_bytes + 1 - len(output))
            if len(output) > max_bytes:
                raise FormatError(path, f"gzip stream expands beyond {max_bytes:,} bytes")
            pending = inflater.unconsumed_tail
        if not inflater.eof:
            raise FormatError(path, "corrupt gzip stream (Compressed file ended before the end-of-stream marker was reached)")
        rest = inflater.unused_data.lstrip(b"\0")
    return bytes(output)


def parse_header(data: bytes, path: str | Path = "<ljpeg>") -> LjpegHeader:
    """Walk the JPEG markers up to SOS: SOF3 precision/size and the SOS predictor."""
    if data[:2] != b"\xff\xd8":
        raise FormatError(path, "not a JPEG stream (no SOI marker)")
    pos, sof, tables, restart = 2, None, {}, 0
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise FormatError(path, f"corrupt JPEG marker structure at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if length < 2 or len(segment) != length - 2:
            raise FormatError(path, f"truncated JPEG stream (marker segment 0x{marker:02X} at byte {pos})")
        if marker == 0xC3:
            if len(segment) < 9:
                raise FormatError(path, "SOF3 segment too short")
            precision, rows, columns, components = struct.unpack(">BHHB", segment[:6])
            if components != 1 or len(segment) != 6 + 3 * components or not 2 <= precision <= 16 or not rows or not columns:
                raise FormatError(path, f"corrupt SOF3 segment ({components} components, {precision} bits, {rows}x{columns})")
            check_declared_size(path, rows, columns)
            sof = (precision, rows, columns)
        elif marker in (0xC0, 0xC1, 0xC2):
            raise FormatError(path, "lossy JPEG, expected lossless SOF3")
        elif marker == 0xC4:
            tables.update(_huffman_tables(segment, path))
        elif marker == 0xDD and len(segment) >= 2:
            (restart,) = struct.unpack(">H", segment[:2])
        elif marker == 0xDA:
            if sof is None:
                raise FormatError(path, "SOS before SOF3")
            components = segment[0] if segment else 0
            if len(segment) < 4 + 2 * components:
                raise FormatError(path, "SOS segment too short")
            predictor = segment[1 + 2 * components]
            if components != 1 or len(segment) != 4 + 2 * components:
                raise FormatError(path, f"corrupt SOS segment ({components} components)")
            table = segment[2] >> 4  # the DC table of the component
            if table not in tables:
                raise FormatError(path, f"no Huffman table {table} defined before the scan")
            lengths = tables[table]
            return LjpegHeader(
                *sof, predictor=predictor, code_lengths=lengths, scan_start=pos + 2 + length, restart_interval=restart
            )
        pos += 2 + length
    raise FormatError(path, "truncated JPEG stream (no SOS marker)")


def _huffman_tables(segment: bytes, path) -> dict[int, tuple]:
    """Code length per symbol (difference category 0..16) of each Huffman table in a DHT segment."""
    tables, pos = {}, 0
    while pos + 17 <= len(segment):
        table, counts = segment[pos] & 0x0F, segment[pos + 1 : pos + 17]
        symbols = segment[pos + 17 : pos + 17 + sum(counts)]
        kraft = sum(count / 2**length for length, count in enumerate(counts, start=1))
        if (
            len(symbols) != sum(counts)
            or any(symbol > 16 for symbol in symbols)
            or len(set(symbols)) != len(symbols)
            or kraft > 1
        ):
            raise FormatError(path, "corrupt Huffman table (DHT segment)")
        lengths = [0] * 17
        position = 0
        for length, count in enumerate(counts, start=1):
            for symbol in symbols[position : position + count]:
                lengths[symbol] = length
            position += count
        tables[table] = tuple(lengths)
        pos += 17 + sum(counts)
    if pos != len(segment):
        raise FormatError(path, "corrupt Huffman table (DHT segment length)")
    return tables


# Difference category (T.81 SSSS) of every difference modulo 2**16: the bit length of its magnitude.
_MAGNITUDE = np.minimum(np.arange(65536), 65536 - np.arange(65536))
_CATEGORY = np.where(_MAGNITUDE == 0, 0, np.floor(np.log2(np.maximum(_MAGNITUDE, 1))) + 1).astype(np.uint8)
# Extra bits after the Huffman code of every difference: its category, except 32768 (category 16, none in T.81).
_EXTRA_BITS = _CATEGORY.astype(np.int64)
_EXTRA_BITS[32768] = 0


def coded_bits(t81_image: np.ndarray, header: LjpegHeader, band: int | None = None) -> int | None:
    """Bits of entropy-coded data that `t81_image` takes under the stream's own Huffman table and predictor (T.81
    semantics, as a standard decoder decoded it); None when a difference has no code in that table.

    One histogram of the 65,536 differences (modulo 2**16), `band` rows at a time. By default a band holds at most
    2**24 pixels, so that OpenCV's float32 counts stay exact; for predictors 2-7, which compute the prediction in
    temporaries, 2**20 pixels, so that memory stays a fraction of the image's.
    """
    columns = t81_image.shape[1]
    exact_rows = max(1, (1 << 24) // columns)
    band = min(band or (exact_rows if header.predictor == 1 else max(1, (1 << 20) // columns)), exact_rows)
    histogram = np.zeros(65536, dtype=np.int64)
    for differences in _t81_differences(t81_image, header.predictor, header.precision, band):
        histogram += cv2.calcHist([differences], [0], None, [65536], [0, 65536]).ravel().astype(np.int64)
    code_lengths = np.array(header.code_lengths or [0] * 17, dtype=np.int64)[_CATEGORY]
    if np.any(histogram[code_lengths == 0]):
        return None
    return int(histogram @ (code_lengths + _EXTRA_BITS))


def _t81_differences(t81_image: np.ndarray, predictor: int, precision: int, band: int):
    """The differences modulo 2**16 (uint16) that a T.81 encoder codes for `t81_image`, band by band of rows."""
    # predictors 1-4 need no shift, so uint16 arithmetic (which wraps modulo 2**16, as T.81 does) is exact
    dtype = np.uint16 if predictor <= 4 else np.int32
    for top in range(0, t81_image.shape[0], band):
        block = t81_image[max(top - 1, 0) : top + band].astype(dtype, copy=False)
        differences = np.empty((block.shape[0] - (top > 0), block.shape[1]), dtype=np.uint16)
        below_first_line = differences
        if top == 0:  # first line: the left neighbour, the first pixel from 2**(precision-1)
            differences[0, 0] = (int(block[0, 0]) - (1 << (precision - 1))) & 0xFFFF
            np.subtract(block[0, 1:], block[0, :-1], out=differences[0, 1:], casting="unsafe")
            below_first_line = differences[1:]
        values, above = block[1:], block[:-1]
        np.subtract(values[:, 0], above[:, 0], out=below_first_line[:, 0], casting="unsafe")
        prediction = _predict(predictor, values[:, :-1], above[:, 1:], above[:, :-1])
        if dtype == np.uint16:
            np.subtract(values[:, 1:], prediction, out=below_first_line[:, 1:])
        else:  # int32 differences wrapped modulo 2**16 as they are stored (subtracting into uint16 casts slowly)
            below_first_line[:, 1:] = np.subtract(values[:, 1:], prediction, out=prediction)
        yield differences


def _scan_bits(data: bytes, header: LjpegHeader) -> tuple[int, int, int]:
    """(bits of entropy-coded data between SOS and EOI once the 0x00 stuffed after each 0xFF is left out, its last
    data byte, byte offset of EOI)."""
    end = data.rstrip(b"\0").rfind(b"\xff\xd9")
    scan = np.frombuffer(data, dtype=np.uint8, count=max(end - header.scan_start, 0), offset=header.scan_start)
    if len(scan) == 0:
        return 0, 0, end
    # one comparison over the scan; 0xFF is rare in entropy-coded data, so looking after each one is cheap
    stuffed = int(np.count_nonzero(scan[np.flatnonzero(scan[:-1] == 0xFF) + 1] == 0x00))
    last = 0xFF if len(scan) > 1 and scan[-1] == 0x00 and scan[-2] == 0xFF else int(scan[-1])
    return 8 * (len(scan) - stuffed), last, end


def decode_ljpeg(path: str | Path, lines: int, pixels_per_line: int) -> np.ndarray:
    """Decode a DDSM LJPEG to uint16 raw grey levels of shape (lines, pixels_per_line).

    The `.ics` is the authority on geometry, but only as the stream's own size or its transpose (quirk: the
    stream's header is sometimes transposed, warned); another factorisation of the same pixel count is an error.
    The decoded image must account for the entropy-coded data exactly up to EOI: a damaged stream (flipped
    bytes, a cut, a leftover) decodes to garbage without any decoder error, so this is checked bit for bit count.
    """
    data = read_bytes(path)
    header = parse_header(data, path)
    if data.rstrip(b"\0")[-2:] != b"\xff\xd9":
        # Standard decoders fill a cut-off scan with garbage instead of failing.
        raise FormatError(path, "truncated lossless JPEG stream (no EOI marker at the end)")
    if not 1 <= header.predictor <= 7:
        raise FormatError(path, f"lossless JPEG predictor {header.predictor} is not in 1..7")
    image = _decode_t81(data, header, path)
    if header.predictor != 1:
        # Quirk: PVRG (the DDSM encoder) predicts the first line differently from ITU T.81 for predictors 2-7.
        image = pvrg_reconstruct(image, header.predictor, header.precision)
    if image.max() >= 1 << header.precision:
        raise FormatError(path, f"corrupt stream: decoded values up to {image.max()} exceed its {header.precision}-bit precision")
    if image.shape == (pixels_per_line, lines) and image.shape != (lines, pixels_per_line):
        warnings.warn(
            f"{path}: stream header says {image.shape[0]}x{image.shape[1]}, the .ics {lines}x{pixels_per_line}: "
            "taken as transposed (a known DDSM quirk)",
            stacklevel=2,
        )
    elif image.shape != (lines, pixels_per_line):
        raise FormatError(
            path,
            f"stream holds {image.shape[0]}x{image.shape[1]} pixels but the .ics says "
            f"{lines} lines x {pixels_per_line} pixels per line (neither that size nor its transpose)",
        )
    return np.ascontiguousarray(image.reshape(lines, pixels_per_line).astype(np.uint16, copy=False))


def _decode_t81(data: bytes, header: LjpegHeader, path) -> np.ndarray:
    """The stream decoded with ITU T.81 semantics, its pixels checked against its entropy-coded data.

    libjpeg-turbo's lossless decoder (imagecodecs.jpeg8_decode) is the fastest, and gives the pixels of imagecodecs'
    own (ljpeg_decode) on every fixture and on the encoder's 12- and 16-bit streams; the check (the pixels must take
    exactly the stream's bits) guards it stream by stream. Where libjpeg-turbo refuses a stream or its pixels fail
    the check, ljpeg_decode decodes again and its pixels are judged, as before. (After an invalid code libjpeg-turbo
    resynchronises where ljpeg_decode does not, so a damaged stream can pass with the one and not the other: 1 of
    200 seeded damages.) Streams with restart intervals, which the check cannot confirm (not used by DDSM), go to
    ljpeg_decode only.
    """
    if not header.restart_interval:
        try:
            image = imagecodecs.jpeg8_decode(data)
        except imagecodecs.Jpeg8Error:
            image = None
        if image is not None and _entropy_coded_data_problem(data, header, image) is None:
            return image
    try:
        image = imagecodecs.ljpeg_decode(data)
    except imagecodecs.LjpegError as err:
        raise FormatError(path, f"corrupt lossless JPEG stream ({err})") from None
    problem = _entropy_coded_data_problem(data, header, image)
    if problem is not None:
        raise FormatError(path, problem)
    return image


def _entropy_coded_data_problem(data: bytes, header: LjpegHeader, t81_image: np.ndarray) -> str | None:
    """Why the decoded pixels do not take exactly the stream's entropy-coded bits (up to the 0-7 padding bits
    before EOI); None when they do."""
    if header.restart_interval or not header.code_lengths:
        return None  # restart markers reset the prediction: not used by DDSM, not checked here
    available, last_byte, end = _scan_bits(data, header)
    needed = coded_bits(t81_image, header)
    if needed is not None and 0 <= available - needed <= 7 and available > needed:
        padding = last_byte & ((1 << (available - needed)) - 1)
        if padding not in (0, (1 << (available - needed)) - 1):  # 1-bits (T.81, PVRG) or 0-bits (some encoders)
            needed = None
    if needed is None or not 0 <= available - needed <= 7:
        position = header.scan_start + (min(needed, available) // 8 if needed is not None else 0)
        detail = "data left over before EOI" if needed is not None and available > needed else "premature end or invalid codes"
        return (
            f"corrupt stream at byte {min(position, end)}: the decoded image does not account for the "
            f"entropy-coded data ({detail})"
        )
    return None


def _predict(predictor: int, a, b, c):
    """The seven lossless JPEG predictors (Ra left, Rb above, Rc above-left), arithmetic shifts as in C."""
    return {
        1: lambda: a,
        2: lambda: b,
        3: lambda: c,
        4: lambda: a + b - c,
        5: lambda: a + ((b - c) >> 1),
        6: lambda: b + ((a - c) >> 1),
        7: lambda: (a + b) >> 1,
    }[predictor]()


def pvrg_reconstruct(t81_image: np.ndarray, predictor: int, precision: int, band: int = 512) -> np.ndarray:
    """Re-decode a PVRG stream that a standard (ITU T.81) decoder has already decoded.

    The entropy-coded differences are recovered exactly from the standard
    decoder's pixels with the T.81 rule, then the image is rebuilt with PVRG's
    rule: the first line uses the selected predictor with a virtual line above
    of value 2**(precision-1) (T.81 uses the left neighbour). The first column
    and the interior follow T.81; the interior is rebuilt band by band of rows
    (:func:`_rebuild_band`), so memory stays a small multiple of the image.
    """
    standard = np.asarray(t81_image)
    rows, columns = standard.shape
    half = 1 << (precision - 1)
    image = np.empty((rows, columns), dtype=np.uint16)
    first_line = standard[0].astype(np.int64)
    line_differences = _wrap16(np.diff(first_line, prepend=half))
    pixel = (half + int(line_differences[0])) & 0xFFFF
    image[0, 0] = pixel
    for column in range(1, columns):  # one line of a nonlinear recurrence
        pixel = (_predict(predictor, pixel, half, half) + int(line_differences[column])) & 0xFFFF
        image[0, column] = pixel
    column_differences = _wrap16(np.diff(standard[:, 0].astype(np.int64)))
    image[1:, 0] = (int(image[0, 0]) + np.cumsum(column_differences)) & 0xFFFF
    for top in range(1, rows, band):
        height = min(band, rows - top)
        block = standard[top - 1 : top + height].astype(np.int32)
        differences = _wrap16(block[1:, 1:] - _predict(predictor, block[1:, :-1], block[:-1, 1:], block[:-1, :-1]))
        _rebuild_band(image, differences, predictor, top, height)
    return image


def _wrap16(values: np.ndarray) -> np.ndarray:
    """Differences modulo 2**16 as signed values, as lossless JPEG codes them."""
    return (values + 32768) % 65536 - 32768


def _rebuild_band(image: np.ndarray, differences: np.ndarray, predictor: int, top: int, height: int) -> None:
    """Rebuild rows top..top+height-1 (columns >= 1) in place, one anti-diagonal per step.

    `differences` holds the band's coded differences for columns >= 1. A pixel
    needs only its left, upper and upper-left neighbours, so all pixels of an
    anti-diagonal are independent. The band is stored skewed,
    skew[e, k] = pixel (top + k - 1, e - k), so each anti-diagonal is one
    contiguous row of `skew`; column k = 0 holds the row above the band.
    Cells outside the image are computed but never read by cells inside it.
    """
    columns = image.shape[1]
    diagonals = columns + height
    skew = np.zeros((diagonals, height + 1), dtype=np.int32)
    skewed_differences = np.zeros_like(skew)
    skew[:columns, 0] = image[top - 1]
    for k in range(1, height + 1):
        skewed_differences[k + 1 : k + columns, k] = differences[k - 1]
    first_column = image[top : top + height, 0]
    skew[1, 1] = first_column[0]
    for e in range(2, diagonals):
        left, above, above_left = skew[e - 1, 1:], skew[e - 1, :-1], skew[e - 2, :-1]
        skew[e, 1:] = (_predict(predictor, left, above, above_left) + skewed_differences[e, 1:]) & 0xFFFF
        if e <= height:  # the cell in column 0 is known
            skew[e, e] = first_column[e - 1]
    for k in range(1, height + 1):
        image[top + k - 1] = skew[k : k + columns, k]


def encode_ljpeg(raw: np.ndarray, bits: int) -> bytes:
    """Encode raw grey levels as a SOF3 lossless JPEG with predictor 1, Huffman-coded.

    Predictor 1 is the one where the DDSM encoder and ITU T.81 agree, so the
    demo's scans decode identically with any standard decoder. (imagecodecs'
    own encoder always writes predictor 6 with T.81 semantics, which a
    DDSM-faithful reader must decode differently.)
    """
    image = np.ascontiguousarray(raw, dtype=np.uint16)
    rows, columns = image.shape
    differences = _predictor1_differences(image, bits)
    categories = _CATEGORY[differences & 0xFFFF].astype(np.int64)  # 32768 falls in category 16, as T.81 says
    lengths = _huffman_code_lengths(np.bincount(categories.ravel(), minlength=17))
    codes = _canonical_codes(lengths)
    extra = np.where(differences < 0, differences - 1, differences) & ((1 << categories) - 1)
    extra[categories == 16] = 0
    extra_len = np.where(categories == 16, 0, categories)
    words = (codes[categories] << extra_len) | extra
    word_lengths = lengths[categories] + extra_len
    scan = _stuff_ff(_pack_bits(words.ravel(), word_lengths.ravel()))

    bits_counts = np.bincount(lengths[lengths > 0], minlength=17)[1:17]
    symbols = sorted((s for s in range(17) if lengths[s] > 0), key=lambda s: (lengths[s], s))
    dht = bytes([0x00]) + bytes(bits_counts.astype(np.uint8)) + bytes(symbols)
    sof = struct.pack(">BHHB", bits, rows, columns, 1) + bytes([1, 0x11, 0])
    sos = bytes([1, 1, 0x00, 1, 0, 0])  # one component, table 0, predictor 1, Se 0, point transform 0
    return b"\xff\xd8" + _segment(0xC3, sof) + _segment(0xC4, dht) + _segment(0xDA, sos) + scan + b"\xff\xd9"


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def _predictor1_differences(image: np.ndarray, bits: int) -> np.ndarray:
    """T.81 predictor 1: left neighbour; first column from above; first pixel 2**(bits-1)."""
    values = image.astype(np.int64)
    prediction = np.empty_like(values)
    prediction[:, 1:] = values[:, :-1]
    prediction[1:, 0] = values[:-1, 0]
    prediction[0, 0] = 1 << (bits - 1)
    differences = (values - prediction) % 65536
    return np.where(differences > 32768, differences - 65536, differences)


def _huffman_code_lengths(frequencies: np.ndarray) -> np.ndarray:
    """Huffman code lengths (at most 16 bits, none all-ones) for the 17 difference categories."""

    # A reserved symbol keeps the all-ones code out of use, as T.81 requires.
    counts = [int(f) for f in frequencies] + [1]
    heap = [(count, [symbol]) for symbol, count in enumerate(counts) if count > 0]
    heapq.heapify(heap)
    depth = np.zeros(len(counts), dtype=np.int64)
    while len(heap) > 1:
        count_a, symbols_a = heapq.heappop(heap)
        count_b, symbols_b = heapq.heappop(heap)
        depth[symbols_a + symbols_b] += 1
        heapq.heappush(heap, (count_a + count_b, symbols_a + symbols_b))
    if depth.max() > 16:
        # Rare skew: fall back to flat 5-bit codes for every category (18 symbols fit in 32).
        depth[:] = 5
    # Give the reserved symbol the longest code so it takes the all-ones slot.
    depth[-1] = depth.max()
    return depth[:17]


def _canonical_codes(lengths: np.ndarray) -> np.ndarray:
    """Canonical JPEG Huffman codes from code lengths (T.81 Annex C)."""
    codes = np.zeros(len(lengths), dtype=np.int64)
    code, previous_length = 0, 0
    for symbol in sorted((s for s in range(len(lengths)) if lengths[s] > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[symbol]) - previous_length
        codes[symbol] = code
        code += 1
        previous_length = int(lengths[symbol])
    return codes


def _pack_bits(words: np.ndarray, lengths: np.ndarray) -> bytes:
    """Concatenate variable-length big-endian codes (each at most 32 bits); pad the last byte with 1-bits.

    Each code is shifted to its bit offset inside the 64-bit word where it starts and the codes of a word are ORed
    together (their bits are disjoint); a code that crosses into the next word adds its low bits there (at most one
    code crosses each boundary).
    """
    padding = int(-lengths.sum()) % 8
    words = np.append(words, (1 << padding) - 1).astype(np.uint64)
    lengths = np.append(lengths, padding).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    size = int(starts[-1] + lengths[-1]) // 8
    word_index = starts >> 6
    shift = 64 - (starts & 63) - lengths  # >= 0: the code ends inside its word; < 0: by that many bits in the next
    placed = np.where(
        shift >= 0, words << np.clip(shift, 0, 63).astype(np.uint64), words >> np.clip(-shift, 0, 63).astype(np.uint64)
    )
    placed[lengths == 0] = 0
    packed = np.zeros(size // 8 + 2, dtype=np.uint64)
    firsts = np.flatnonzero(np.diff(word_index, prepend=-1))  # codes are in order: each word's codes are one run
    packed[word_index[firsts]] = np.bitwise_or.reduceat(placed, firsts)
    crossing = shift < 0
    packed[word_index[crossing] + 1] |= words[crossing] << (64 + shift[crossing]).astype(np.uint64)
    return packed.astype(">u8").tobytes()[:size]


def _stuff_ff(scan: bytes) -> bytes:
    """Insert a zero byte after every 0xFF in entropy-coded data."""
    data = np.frombuffer(scan, dtype=np.uint8)
    positions = np.flatnonzero(data == 0xFF) + 1
    return np.insert(data, positions, 0).tobytes()
