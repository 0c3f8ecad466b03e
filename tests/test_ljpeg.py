"""DDSM lossless JPEG: header parsing, the reader on the PVRG fixtures, the demo's encoder."""

from __future__ import annotations

import gzip
import re
import struct
import tracemalloc

import cv2
import imagecodecs
import numpy as np
import pytest

from mammo.io import MAX_PIXELS, MAX_SIDE, FormatError, ljpeg
from mammo.io.ljpeg import (
    MAX_STREAM_BYTES,
    _huffman_code_lengths,
    _scan_bits,
    coded_bits,
    decode_ljpeg,
    encode_ljpeg,
    parse_header,
    pvrg_reconstruct,
    read_bytes,
)

# name -> (precision, rows, columns, predictor) of ../shared/fixtures/ljpeg/*.LJPEG
FIXTURES = {
    "dba_16bit_k1": (16, 256, 192, 1),
    "dba_16bit_k6": (16, 256, 192, 6),
    "howtek_12bit_k1": (12, 320, 224, 1),
    "howtek_12bit_k6": (12, 320, 224, 6),
    "lumisys_12bit_k7": (12, 288, 200, 7),
}
PREDICTOR_1 = [name for name, geometry in FIXTURES.items() if geometry[3] == 1]
OTHER_PREDICTORS = [name for name, geometry in FIXTURES.items() if geometry[3] != 1]


def _fixture(shared, name):
    folder = shared / "fixtures" / "ljpeg"
    return folder / f"{name}.LJPEG", np.load(folder / f"{name}.npy")


# ----------------------------------------------------------------------------- PVRG fixtures
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_parse_header_of_fixtures(shared, name):
    path, pixels = _fixture(shared, name)
    precision, rows, columns, predictor = FIXTURES[name]
    header = parse_header(read_bytes(path), path)
    assert (header.precision, header.rows, header.columns, header.predictor) == (precision, rows, columns, predictor)
    assert pixels.shape == (rows, columns)
    assert pixels.max() < 2**precision


@pytest.mark.parametrize("name", PREDICTOR_1)
def test_decode_predictor_1_fixtures_exactly(shared, name):
    path, expected = _fixture(shared, name)
    image = decode_ljpeg(path, *expected.shape)
    assert image.dtype == np.uint16
    assert image.shape == expected.shape
    assert np.array_equal(image, expected)
    assert image.flags["C_CONTIGUOUS"]


@pytest.mark.parametrize("name", OTHER_PREDICTORS)
def test_pvrg_predictor_6_and_7_fixtures_decode_exactly(shared, name):
    # PVRG predicts the first line differently from T.81: a standard decoder returns wrong
    # pixels, the reader must return the true ones.
    path, expected = _fixture(shared, name)
    assert not np.array_equal(imagecodecs.ljpeg_decode(path.read_bytes()), expected)
    image = decode_ljpeg(path, *expected.shape)
    assert image.dtype == np.uint16
    assert np.array_equal(image, expected)


def _predict(k, a, b, c):
    return [None, a, b, c, a + b - c, a + ((b - c) >> 1), b + ((a - c) >> 1), (a + b) >> 1][k]


def _t81_decode(differences, predictor, bits, pvrg=False):
    """Per-pixel ITU T.81 reconstruction (what a standard decoder does with the differences); `pvrg`: PVRG's, whose
    first line is predicted with the predictor over a virtual line of 2**(bits-1)."""
    rows, columns = differences.shape
    half = 1 << (bits - 1)
    out = np.zeros((rows, columns), dtype=np.int64)
    for i in range(rows):
        for j in range(columns):
            if i == 0 and j == 0:
                prediction = half
            elif i == 0:
                prediction = _predict(predictor, out[0, j - 1], half, half) if pvrg else out[0, j - 1]
            elif j == 0:
                prediction = out[i - 1, 0]
            else:
                prediction = _predict(predictor, out[i, j - 1], out[i - 1, j], out[i - 1, j - 1])
            out[i, j] = (prediction + differences[i, j]) % 65536
    return out


@pytest.mark.parametrize("predictor", range(2, 8))
@pytest.mark.parametrize("bits", [12, 16])
def test_pvrg_reconstruct_inverts_the_pvrg_encoder_for_every_predictor(predictor, bits):
    rng = np.random.default_rng(predictor * 100 + bits)
    image = rng.integers(0, 1 << bits, size=(9, 13)).astype(np.int64)
    differences = _differences_of(image, predictor, bits, pvrg=True)
    standard = _t81_decode(differences, predictor, bits)
    rebuilt = pvrg_reconstruct(standard.astype(np.uint16), predictor, bits)
    assert np.array_equal(rebuilt, image)


def _differences_of(image, predictor, bits, pvrg=False):
    """What a T.81 encoder codes for `image`: each pixel minus its prediction, modulo 2**16; `pvrg`: what PVRG's
    encoder codes, the first line predicted with the predictor over a virtual line of 2**(bits-1)."""
    half = 1 << (bits - 1)
    prediction = np.empty_like(image)
    prediction[0, 0] = half
    prediction[0, 1:] = _predict(predictor, image[0, :-1], half, half) if pvrg else image[0, :-1]
    prediction[1:, 0] = image[:-1, 0]
    prediction[1:, 1:] = _predict(predictor, image[1:, :-1], image[:-1, 1:], image[:-1, :-1])
    return (image - prediction) % 65536


@pytest.mark.parametrize("predictor", range(1, 8))
def test_reader_gives_the_encoders_pixels_on_200_random_streams_of_each_predictor(tmp_path, predictor):
    """libjpeg-turbo encodes a random image with the predictor; the reader must give the image a PVRG decoder makes
    of that stream (for predictor 1 the image itself: PVRG and T.81 agree there). 16 bit for predictors 2-7, where
    T.81 and PVRG wrap modulo 2**16 alike; predictor 1 in 12 and 16 bit."""
    rng = np.random.default_rng(predictor)
    for number in range(200):
        bits = 12 if predictor == 1 and number % 2 else 16
        shape = tuple(rng.integers(1, 25, 2))
        image = rng.integers(0, 1 << bits, shape).astype(np.uint16)
        stream = imagecodecs.jpeg8_encode(image, lossless=True, predictor=predictor, bitspersample=bits)
        path = tmp_path / f"{number}.LJPEG"
        path.write_bytes(stream)
        differences = _differences_of(image.astype(np.int64), predictor, bits)
        if predictor == 1:
            assert np.array_equal(_t81_decode(differences, 1, bits, pvrg=True), image)  # the two rules agree
        expected = _t81_decode(differences, predictor, bits, pvrg=True)
        assert np.array_equal(decode_ljpeg(path, *shape), expected), (predictor, number, bits, shape)


@pytest.mark.parametrize("name", PREDICTOR_1)
def test_gzipped_fixture_is_read_transparently(shared, tmp_path, name):
    path, expected = _fixture(shared, name)
    gzipped = tmp_path / f"{path.name}.gz"
    gzipped.write_bytes(gzip.compress(path.read_bytes()))
    assert read_bytes(gzipped) == path.read_bytes()
    assert np.array_equal(decode_ljpeg(gzipped, *expected.shape), expected)


# ----------------------------------------------------------------------------- encoder
def _smooth(shape, bits):
    rows = np.arange(shape[0])[:, None]
    cols = np.arange(shape[1])[None, :]
    field = (np.sin(rows / 9.0) + np.cos(cols / 13.0) + 2.0) / 4.0
    return np.round(field * (2**bits - 1)).astype(np.uint16)


def _random(shape, bits, seed=0):
    return np.random.default_rng(seed).integers(0, 2**bits, shape).astype(np.uint16)


def _extremes(shape, bits):
    """Alternating 0 / max: every difference is as large as the precision allows."""
    return ((np.indices(shape).sum(axis=0) % 2) * (2**bits - 1)).astype(np.uint16)


IMAGES = {
    "random": _random,
    "smooth": _smooth,
    "zeros": lambda shape, bits: np.zeros(shape, np.uint16),
    "max": lambda shape, bits: np.full(shape, 2**bits - 1, np.uint16),
    "extremes": _extremes,
}
SHAPES = [(1, 1), (1, 9), (9, 1), (2, 3), (33, 17), (101, 77), (128, 255)]


@pytest.mark.parametrize("bits", [12, 16])
@pytest.mark.parametrize("kind", sorted(IMAGES))
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_encode_round_trip_through_imagecodecs(bits, kind, shape):
    image = IMAGES[kind](shape, bits)
    stream = encode_ljpeg(image, bits)
    header = parse_header(stream)
    assert (header.precision, header.rows, header.columns, header.predictor) == (bits, shape[0], shape[1], 1)
    decoded = imagecodecs.ljpeg_decode(stream)  # an independent decoder
    assert decoded.shape == shape
    assert np.array_equal(decoded, image)


def test_encoded_stream_markers():
    stream = encode_ljpeg(_random((20, 30), 12), 12)
    assert stream[:2] == b"\xff\xd8" and stream[-2:] == b"\xff\xd9"
    assert stream[2:4] == b"\xff\xc3"  # SOF3 right after SOI
    # no unstuffed 0xFF inside the entropy-coded data: every 0xFF is followed by 0x00 or a marker
    sos = stream.index(b"\xff\xda")
    (sos_length,) = struct.unpack(">H", stream[sos + 2 : sos + 4])
    scan = stream[sos + 2 + sos_length : -2]
    positions = [i for i in range(len(scan)) if scan[i] == 0xFF]
    assert all(scan[i + 1] == 0x00 for i in positions)


def test_encode_difference_32768_round_trip():
    # 16 bit: 0 after the first-pixel prediction 32768, and 0 <-> 32768 jumps give difference 32768
    # (category 16, no extra bits), the one special case of T.81.
    image = np.array([[0, 32768, 0, 65535, 0, 32768, 32768, 1], [32768, 0, 0, 0, 65535, 32767, 0, 32768]], np.uint16)
    assert np.array_equal(imagecodecs.ljpeg_decode(encode_ljpeg(image, 16)), image)


def _image_from_differences(differences: np.ndarray, shape, bits: int) -> np.ndarray:
    """Invert predictor 1: first pixel from 2**(bits-1), first column from above, the rest from the left."""
    d = differences.reshape(shape)
    first_column = 2 ** (bits - 1) + np.cumsum(d[:, 0])
    rest = np.cumsum(np.concatenate([np.zeros((shape[0], 1), np.int64), d[:, 1:]], axis=1), axis=1)
    return ((first_column[:, None] + rest) % 65536).astype(np.uint16)


def test_encode_skewed_statistics_use_the_flat_code_fallback():
    # Category counts that halve from one category to the next make an optimal Huffman
    # code deeper than the 16 bits JPEG allows: the encoder must fall back and stay decodable.
    counts = np.array([2 ** (16 - k) for k in range(16)] + [1])
    counts[0] += 1  # 131072 = 256 x 512 pixels
    lengths = _huffman_code_lengths(counts)
    assert lengths.max() <= 16
    assert np.all(lengths == 5), "expected the flat fallback for this skew"
    rng = np.random.default_rng(0)
    magnitudes = np.repeat([0] + [1 << (k - 1) for k in range(1, 16)] + [32768], counts)
    rng.shuffle(magnitudes)
    differences = magnitudes * np.where(rng.random(magnitudes.size) < 0.5, -1, 1)
    image = _image_from_differences(differences, (256, 512), 16)
    assert np.array_equal(imagecodecs.ljpeg_decode(encode_ljpeg(image, 16)), image)


def test_huffman_lengths_never_exceed_16_and_satisfy_kraft():
    rng = np.random.default_rng(5)
    for _ in range(50):
        counts = rng.integers(0, 1000, 17) * (rng.random(17) < 0.7)
        counts[0] += 1
        lengths = _huffman_code_lengths(counts)
        used = lengths[lengths > 0]
        assert used.max() <= 16
        assert np.all(lengths[counts > 0] > 0), "every used category needs a code"
        assert np.sum(2.0**-used) < 1.0, "the all-ones code must stay free"


# ----------------------------------------------------------------------------- reader on encoded files
def test_decode_ljpeg_on_encoded_file(tmp_path):
    image = _random((40, 30), 12, seed=2)
    path = tmp_path / "A_0001_1.LEFT_CC.LJPEG"
    path.write_bytes(encode_ljpeg(image, 12))
    assert np.array_equal(decode_ljpeg(path, 40, 30), image)


def test_gzipped_encoded_file_is_read_transparently(tmp_path):
    image = _smooth((50, 31), 16)
    path = tmp_path / "A_0001_1.LEFT_CC.LJPEG.gz"
    path.write_bytes(gzip.compress(encode_ljpeg(image, 16)))
    assert np.array_equal(decode_ljpeg(path, 50, 31), image)


def test_transposed_stream_header_is_reshaped_to_the_ics_geometry(tmp_path):
    image = _random((12, 20), 12, seed=3)
    path = tmp_path / "scan.LJPEG"
    path.write_bytes(encode_ljpeg(image, 12))
    out = decode_ljpeg(path, 20, 12)  # the .ics is the authority: 20 lines of 12 pixels
    assert out.shape == (20, 12)
    assert np.array_equal(out.ravel(), image.ravel())


@pytest.mark.parametrize("lines, pixels", [(41, 30), (40, 31), (30, 30), (1, 1)])
def test_wrong_ics_size_raises_format_error_naming_the_file(tmp_path, lines, pixels):
    path = tmp_path / "B_0001_1.RIGHT_MLO.LJPEG"
    path.write_bytes(encode_ljpeg(_random((40, 30), 12), 12))
    with pytest.raises(FormatError, match="40x30") as info:
        decode_ljpeg(path, lines, pixels)
    assert str(path) in str(info.value)


def test_not_a_jpeg_raises(tmp_path):
    path = tmp_path / "scan.LJPEG"
    path.write_bytes(b"P5\n2 2\n255\n\0\0\0\0")
    with pytest.raises(FormatError, match="SOI") as info:
        decode_ljpeg(path, 2, 2)
    assert str(path) in str(info.value)


def test_lossy_jpeg_raises(tmp_path):
    ok, baseline = cv2.imencode(".jpg", np.zeros((8, 8), np.uint8))
    assert ok
    path = tmp_path / "scan.LJPEG"
    path.write_bytes(baseline.tobytes())
    with pytest.raises(FormatError, match="lossy") as info:
        decode_ljpeg(path, 8, 8)
    assert str(path) in str(info.value)


@pytest.fixture
def encoded(tmp_path):
    image = _random((64, 48), 12, seed=4)
    return image, encode_ljpeg(image, 12), tmp_path / "C_0001_1.LEFT_MLO.LJPEG"


@pytest.mark.parametrize("keep", [0, 1, 3, 4, 30, 40])
def test_stream_truncated_before_the_scan_raises(encoded, keep):
    # 0-4 bytes: no SOI / no room for a marker; 30-40: cut inside the Huffman table, before SOS.
    _, stream, path = encoded
    path.write_bytes(stream[:keep])
    with pytest.raises(FormatError) as info:
        decode_ljpeg(path, 64, 48)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("where", ["inside SOF3", "inside SOS"])
def test_stream_truncated_inside_a_header_segment_raises_format_error(encoded, where):
    _, stream, path = encoded
    marker = b"\xff\xc3" if where == "inside SOF3" else b"\xff\xda"
    cut = stream.index(marker) + 6  # marker, length and two payload bytes
    path.write_bytes(stream[:cut])
    with pytest.raises(FormatError) as info:
        decode_ljpeg(path, 64, 48)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_stream_truncated_inside_the_scan_raises(encoded, fraction):
    image, stream, path = encoded
    path.write_bytes(stream[: int(len(stream) * fraction)])
    with pytest.raises(FormatError) as info:
        out = decode_ljpeg(path, 64, 48)
        assert np.array_equal(out, image), "a truncated stream returned wrong pixels without an error"
    assert str(path) in str(info.value)


def test_corrupt_gzip_raises(tmp_path, encoded):
    _, stream, _ = encoded
    gzipped = gzip.compress(stream, mtime=0)
    path = tmp_path / "scan.LJPEG.gz"
    path.write_bytes(gzipped[: len(gzipped) // 2])  # truncated gzip
    with pytest.raises(FormatError, match="gzip") as info:
        decode_ljpeg(path, 64, 48)
    assert str(path) in str(info.value)


def test_corrupt_deflate_data_raises_format_error(tmp_path, encoded):
    _, stream, _ = encoded
    gzipped = bytearray(gzip.compress(stream, mtime=0))
    gzipped[10] = 0x07  # first deflate block header: BFINAL=1, BTYPE=11 (reserved)
    path = tmp_path / "scan.LJPEG.gz"
    path.write_bytes(bytes(gzipped))
    with pytest.raises(FormatError) as info:
        read_bytes(path)
    assert str(path) in str(info.value)


@pytest.fixture(scope="module")
def breast_stream() -> tuple[np.ndarray, bytes]:
    """A 12-bit demo breast (raw grey levels of a HOWTEK film) as a predictor-1 stream."""
    from mammo.demo.anatomy import normal_breast
    from mammo.intensity import od_to_raw

    od, _ = normal_breast((1944, 1097), np.random.default_rng(5), chest_wall_left=True)
    raw = od_to_raw(od, "HOWTEK", "MGH", 12)
    return raw, encode_ljpeg(raw, 12)


def flip_20_bytes(stream: bytes, start: int) -> bytes:
    damaged = bytearray(stream)
    for position in range(start, start + 20):
        damaged[position] ^= 0x5A if damaged[position] not in (0xFF, 0xA5) else 0x01  # never create or break a marker
    return bytes(damaged)


@pytest.mark.parametrize("offset", [0.3, 0.5])
def test_flipped_bytes_in_the_scan_are_a_corrupt_stream_naming_the_byte(breast_stream, tmp_path, offset):
    """20 flipped bytes mid-stream decoded to an image with half its rows wrong, and exit status 0."""
    _, stream = breast_stream
    start = int(len(stream) * offset)
    path = tmp_path / "D_4606_1.LEFT_CC.LJPEG"
    path.write_bytes(flip_20_bytes(stream, start))
    with pytest.raises(FormatError, match=r"corrupt stream at byte \d+") as info:
        decode_ljpeg(path, 1944, 1097)
    assert str(path) in str(info.value)
    byte = int(re.search(r"at byte (\d+)", str(info.value)).group(1))
    assert start - 64 <= byte <= len(stream)  # where the damage begins or after it, never before


def test_most_damaged_streams_are_caught(breast_stream, tmp_path):
    """Huffman codes resynchronise, so a damaged stream can end within the last byte's padding and pass every
    check; measured: 181 of 200 seeded damages caught. Every image that passes must then be the true one or be
    counted here as silent."""
    raw, stream = breast_stream
    rng = np.random.default_rng(0)
    path = tmp_path / "scan.LJPEG"
    caught = silent = 0
    for start in rng.integers(200, len(stream) - 40, size=40):
        path.write_bytes(flip_20_bytes(stream, int(start)))
        try:
            silent += not np.array_equal(decode_ljpeg(path, 1944, 1097), raw)
        except FormatError:
            caught += 1
    print(f"40 damaged streams: {caught} caught, {silent} decoded wrong without an error")
    assert caught >= 28 and caught + silent == 40  # 33 measured; the bound leaves room for another demo anatomy


def test_bytes_appended_inside_the_scan_are_left_over_data(breast_stream, tmp_path):
    _, stream = breast_stream
    path = tmp_path / "scan.LJPEG"
    path.write_bytes(stream[:-2] + b"\x12\x34\x56\x78" * 4 + stream[-2:])  # more coded data than the image needs
    with pytest.raises(FormatError, match="data left over before EOI"):
        decode_ljpeg(path, 1944, 1097)


def test_another_factorisation_of_the_pixel_count_is_refused(breast_stream, tmp_path):
    """972x2194 for a 1944x1097 stream has the same pixel count: it was reshaped into a scrambled image."""
    raw, stream = breast_stream
    path = tmp_path / "scan.LJPEG"
    path.write_bytes(stream)
    with pytest.raises(FormatError, match="neither that size nor its transpose"):
        decode_ljpeg(path, 972, 2194)
    with pytest.warns(UserWarning, match="transposed"):
        assert decode_ljpeg(path, 1097, 1944).shape == (1097, 1944)
    assert np.array_equal(decode_ljpeg(path, 1944, 1097), raw)


# ----------------------------------------------------------------------------- decoder choice (libjpeg-turbo first)
@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_libjpeg_turbo_gives_the_reference_decoder_pixels_on_every_fixture(shared, name):
    """The reader decodes with imagecodecs.jpeg8_decode (libjpeg-turbo, the fastest); it must give the T.81 pixels
    imagecodecs' own lossless decoder gives, for 12- and 16-bit PVRG streams of every predictor."""
    path, _ = _fixture(shared, name)
    data = path.read_bytes()
    assert np.array_equal(imagecodecs.jpeg8_decode(data), imagecodecs.ljpeg_decode(data))


@pytest.mark.parametrize("bits", [12, 16])
@pytest.mark.parametrize("kind", sorted(IMAGES))
def test_libjpeg_turbo_gives_the_encoded_pixels(bits, kind):
    image = IMAGES[kind]((101, 77), bits)
    assert np.array_equal(imagecodecs.jpeg8_decode(encode_ljpeg(image, bits)), image)


def _refusing_decoder(data):
    raise imagecodecs.Jpeg8Error("refused")


def _wrong_decoder(data):
    image = imagecodecs.ljpeg_decode(data)
    image[-3:] = 0  # as a decoder that stopped early: pixels that do not account for the entropy-coded bits
    return image


@pytest.mark.parametrize("jpeg8_decode", [_refusing_decoder, _wrong_decoder], ids=["refuses", "wrong pixels"])
@pytest.mark.parametrize("name", ["howtek_12bit_k1", "dba_16bit_k6"])
def test_reader_falls_back_to_the_reference_decoder_stream_by_stream(shared, monkeypatch, jpeg8_decode, name):
    path, expected = _fixture(shared, name)
    monkeypatch.setattr(imagecodecs, "jpeg8_decode", jpeg8_decode)
    assert np.array_equal(decode_ljpeg(path, *expected.shape), expected)


# ----------------------------------------------------------------------------- declared size, gzip bombs
def test_stream_declaring_a_side_beyond_max_side_is_refused_before_decoding(tmp_path):
    """A 20,001 x 1 stream decoded without complaint: the declared size is now checked at SOF3, before any decoder."""
    path = tmp_path / "A_0001_1.LEFT_CC.LJPEG"
    stream = encode_ljpeg(np.full((MAX_SIDE + 1, 1), 2048, np.uint16), 12)
    path.write_bytes(stream)
    with pytest.raises(FormatError, match=rf"declares {MAX_SIDE + 1}x1 pixels, beyond the largest image read") as info:
        decode_ljpeg(path, MAX_SIDE + 1, 1)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(FormatError, match="beyond the largest image read"):
        parse_header(stream, path)


def _gzip_bomb(path, zeros: int) -> None:
    """`zeros` zero bytes gzipped as concatenated members (valid gzip), written without holding them in memory."""
    member = gzip.compress(bytes(1 << 20), mtime=0)  # 1 MiB of zeros in about 1 KiB
    path.write_bytes(member * (zeros >> 20))


def test_gzip_bomb_is_refused_at_the_cap_without_inflating_it(tmp_path):
    """gzip.decompress inflated the whole file: 64 MiB of zeros from a 66 KB file, a few GB from a few MB."""
    path = tmp_path / "A_0001_1.LEFT_CC.LJPEG.gz"
    _gzip_bomb(path, 64 << 20)
    tracemalloc.start()
    with pytest.raises(FormatError, match="gzip stream expands beyond 1,000,000 bytes") as info:
        read_bytes(path, max_bytes=1_000_000)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert peak < 8_000_000  # the compressed file and about one cap of output, not the 64 MiB


def test_gzip_stream_of_exactly_the_cap_and_concatenated_members_are_read(tmp_path):
    path = tmp_path / "scan.LJPEG.gz"
    _gzip_bomb(path, 2 << 20)
    path.write_bytes(path.read_bytes() + b"\0" * 16)  # zero padding after the last member, as gzip allows
    assert read_bytes(path, max_bytes=2 << 20) == bytes(2 << 20)
    with pytest.raises(FormatError, match="expands beyond"):
        read_bytes(path, max_bytes=(2 << 20) - 1)


def test_default_cap_holds_the_largest_stream_of_the_largest_image():
    # 16-bit differences: at most a 16-bit code and 15 extra bits a pixel, doubled by 0xFF stuffing at worst
    assert MAX_STREAM_BYTES >= MAX_PIXELS * 31 / 8 * 2


def test_mammo_convert_refuses_a_gzip_bomb_in_one_line(tmp_path, monkeypatch, capsys):
    """The cap applies wherever a scan is read (here `mammo convert` through mammo.io.scan), lowered for the test."""
    from mammo import cli

    monkeypatch.setattr(ljpeg, "MAX_STREAM_BYTES", 1_000_000)
    path = tmp_path / "A_0001_1.LEFT_CC.LJPEG.gz"
    _gzip_bomb(path, 64 << 20)
    with pytest.raises(SystemExit) as exit_info, pytest.warns(UserWarning, match="no A-0001-1.ics"):
        cli.main(["convert", str(path), str(tmp_path / "out.png"), "--raw"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(lines) == 1
    assert str(path) in lines[0] and "gzip stream expands beyond 1,000,000 bytes" in lines[0]
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_coded_bits_takes_the_streams_bits_in_bands_of_any_height(shared, name):
    """The check counts one histogram of differences per band: the count may not depend on where bands start."""
    path, _ = _fixture(shared, name)
    data = path.read_bytes()
    header = parse_header(data, path)
    t81_image = imagecodecs.ljpeg_decode(data)
    available = _scan_bits(data, header)[0]
    counts = {band: coded_bits(t81_image, header, band) for band in (1, 7, 128, None)}
    assert len(set(counts.values())) == 1
    assert 0 <= available - counts[None] <= 7  # the stream's own bits, up to the padding before EOI


@pytest.mark.parametrize("bits", [2, 8, 12, 15, 16])
def test_coded_bits_are_the_streams_own_at_every_precision_in_bands_or_not(bits):
    """Without the shared fixtures: predictor-1 streams of every precision, the first column's steps as large as they
    come (the prediction from above), counted whole and in bands of 5 rows."""
    image = _random((61, 47), bits, seed=bits)
    image[:, 0] = np.where(np.arange(61) % 2, 0, (1 << bits) - 1)
    stream = encode_ljpeg(image, bits)
    header = parse_header(stream)
    available = _scan_bits(stream, header)[0]
    counts = {band: coded_bits(image, header, band) for band in (None, 5)}
    assert counts[None] == counts[5] and 0 <= available - counts[None] <= 7


def test_stream_with_restart_intervals_is_decoded_by_imagecodecs_own_decoder_only(tmp_path, monkeypatch):
    """The check cannot confirm libjpeg-turbo's pixels where restart markers reset the prediction (not used by DDSM)."""
    image = _random((40, 30), 12, seed=6)
    stream = encode_ljpeg(image, 12)
    path = tmp_path / "scan.LJPEG"
    path.write_bytes(stream[:2] + b"\xff\xdd\x00\x04\xff\xff" + stream[2:])  # DRI: one interval longer than the image
    calls = []
    monkeypatch.setattr(imagecodecs, "jpeg8_decode", lambda data: calls.append(data) or _refusing_decoder(data))
    assert parse_header(path.read_bytes()).restart_interval == 65535
    assert np.array_equal(decode_ljpeg(path, 40, 30), image)
    assert not calls
