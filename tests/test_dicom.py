"""CBIS-DDSM DICOM reading and the demo's writer."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian

from mammo.io import FormatError
from mammo.io.dicom import DIGITAL_MAMMOGRAPHY_STORAGE, read_dicom, write_dicom

MAMMO = Path(sys.executable).with_name("mammo")


def _write(path, pixels):
    write_dicom(path, pixels, "Mass-Training_P_00001_LEFT_CC", "1.2.3.4", "1.2.3.4.5")
    return path


@pytest.mark.parametrize("dtype, shape", [(np.uint16, (53, 31)), (np.uint8, (40, 41)), (np.uint16, (1, 1))])
def test_write_read_round_trip(tmp_path, dtype, shape):
    info = np.iinfo(dtype)
    pixels = np.random.default_rng(0).integers(0, info.max + 1, shape).astype(dtype)
    pixels.flat[0], pixels.flat[-1] = 0, info.max
    path = _write(tmp_path / "sub" / "dir" / "000000.dcm", pixels)  # parent folders are created
    out = read_dicom(path)
    assert out.dtype == np.uint16 and out.shape == shape
    assert np.array_equal(out, pixels.astype(np.uint16) * (np.iinfo(np.uint16).max // info.max))  # 8 bit: stretched


def test_non_contiguous_input_is_written_correctly(tmp_path):
    pixels = np.arange(60, dtype=np.uint16).reshape(6, 10)[:, ::2]
    assert np.array_equal(read_dicom(_write(tmp_path / "a.dcm", pixels)), pixels)


@pytest.mark.parametrize("dtype, bits", [(np.uint16, 16), (np.uint8, 8)])
def test_written_file_is_standard_dicom(tmp_path, dtype, bits):
    pixels = np.arange(12 * 7, dtype=dtype).reshape(12, 7)
    path = _write(tmp_path / "000000.dcm", pixels)
    assert path.read_bytes()[128:132] == b"DICM"
    dataset = pydicom.dcmread(path)  # plain pydicom, no force
    assert dataset.Rows == 12 and dataset.Columns == 7
    assert dataset.BitsAllocated == bits and dataset.BitsStored == bits and dataset.HighBit == bits - 1
    assert dataset.PixelRepresentation == 0
    assert dataset.SamplesPerPixel == 1
    assert dataset.PhotometricInterpretation == "MONOCHROME2"
    assert dataset.Modality == "MG"
    assert dataset.PatientID == "Mass-Training_P_00001_LEFT_CC"
    assert dataset.StudyInstanceUID == "1.2.3.4" and dataset.SeriesInstanceUID == "1.2.3.4.5"
    assert dataset.SOPClassUID == DIGITAL_MAMMOGRAPHY_STORAGE
    assert dataset.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert dataset.SOPInstanceUID == dataset.file_meta.MediaStorageSOPInstanceUID
    assert np.array_equal(dataset.pixel_array, pixels)


FULL = np.iinfo(np.uint16).max


@pytest.mark.parametrize("dtype", [np.uint16, np.uint8])
def test_monochrome1_is_inverted(tmp_path, dtype):
    maximum = np.iinfo(dtype).max
    pixels = np.array([[0, 1, 2], [maximum - 1, maximum, 100]], dtype=dtype)
    path = _write(tmp_path / "mono1.dcm", pixels)
    dataset = pydicom.dcmread(path)
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.save_as(path)
    out = read_dicom(path)
    assert out.dtype == np.uint16  # the shared 16-bit space, whatever the stored depth
    assert np.array_equal(out, FULL - pixels.astype(np.uint32) * (FULL // maximum))


def test_monochrome1_uses_bits_stored(tmp_path):
    pixels = np.array([[0, 4095], [1000, 2000]], dtype=np.uint16)
    path = _write(tmp_path / "mono1_12.dcm", pixels)
    dataset = pydicom.dcmread(path)
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.BitsStored, dataset.HighBit = 12, 11
    dataset.save_as(path)
    assert np.array_equal(read_dicom(path), FULL - np.round(pixels * (FULL / 4095)).astype(np.uint16))


def test_twelve_bit_dicom_fills_the_16_bit_range(tmp_path):
    """BitsStored 12 in a 16-bit container: read as stored, the image was dark and its breast mask empty."""
    pixels, dataset = _twelve_bit(tmp_path)
    dataset.save_as(tmp_path / "twelve.dcm")
    image = read_dicom(tmp_path / "twelve.dcm")
    assert np.array_equal(image, np.round(pixels * (FULL / 4095)).astype(np.uint16))
    assert image.max() > 65000


def test_signed_dicom_reads_the_same_in_npy_and_png(tmp_path):
    import cv2

    values = np.array([[-32768, -1000], [0, 32767]], dtype=np.int16)
    path = _write(tmp_path / "plain.dcm", values.view(np.uint16))
    dataset = pydicom.dcmread(path)
    dataset.PixelRepresentation = 1
    dataset.save_as(path)
    image = read_dicom(path)
    assert image.dtype == np.uint16 and image.tolist() == [[0, 31768], [32768, 65535]]  # order kept, no wrap-around
    for suffix in ("npy", "png"):
        subprocess.run([str(MAMMO), "convert", str(path), str(tmp_path / f"out.{suffix}")], check=True, capture_output=True)
    assert np.array_equal(np.load(tmp_path / "out.npy"), cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED))


def test_rescale_slope_and_intercept_are_applied(tmp_path):
    pixels, dataset = _twelve_bit(tmp_path)
    dataset.RescaleSlope, dataset.RescaleIntercept = -1, 4095  # a modality LUT that reverses the values
    dataset.save_as(tmp_path / "rescaled.dcm")
    assert np.array_equal(read_dicom(tmp_path / "rescaled.dcm"), np.round((4095 - pixels) * (FULL / 4095)).astype(np.uint16))


def test_dicom_without_pixel_data_raises(tmp_path):
    path = _write(tmp_path / "nopixels.dcm", np.zeros((4, 4), np.uint16))
    dataset = pydicom.dcmread(path)
    del dataset.PixelData
    dataset.save_as(path)
    with pytest.raises(FormatError, match="no pixel data") as info:
        read_dicom(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a dicom file at all\n" * 20, b"\0" * 128 + b"DICX" + b"\0" * 64])
def test_non_dicom_file_raises(tmp_path, content):
    path = tmp_path / "000000.dcm"
    path.write_bytes(content)
    with pytest.raises(FormatError) as info:
        read_dicom(path)
    assert str(path) in str(info.value)
    assert info.value.path == str(path)


def test_short_pixel_data_raises(tmp_path):
    path = _write(tmp_path / "short.dcm", np.zeros((10, 10), np.uint16))
    dataset = pydicom.dcmread(path)
    dataset.PixelData = dataset.PixelData[:50]
    dataset.save_as(path)
    with pytest.raises(FormatError) as info:
        read_dicom(path)
    assert str(path) in str(info.value)


def test_missing_file_raises(tmp_path):
    path = tmp_path / "absent.dcm"
    with pytest.raises(FormatError) as info:
        read_dicom(path)
    assert str(path) in str(info.value)


def _twelve_bit(tmp_path):
    pixels = (np.arange(64 * 48).reshape(64, 48) * 3 % 4096).astype(np.uint16)
    write_dicom(tmp_path / "plain.dcm", pixels, "P_00001", "1.2.3", "1.2.3.4", "1.2.3.4.5")
    dataset = pydicom.dcmread(tmp_path / "plain.dcm")
    dataset.BitsStored, dataset.HighBit = 12, 11
    return pixels, dataset


def test_rle_compressed_dicom_decodes(tmp_path):
    from pydicom.uid import RLELossless

    pixels, dataset = _twelve_bit(tmp_path)
    dataset.compress(RLELossless)
    dataset.save_as(tmp_path / "rle.dcm")
    assert pydicom.dcmread(tmp_path / "rle.dcm").file_meta.TransferSyntaxUID == RLELossless
    assert np.array_equal(read_dicom(tmp_path / "rle.dcm"), np.round(pixels * (FULL / 4095)).astype(np.uint16))


def test_jpeg_lossless_dicom_decodes_through_the_pylibjpeg_plugin(tmp_path):
    import imagecodecs
    from pydicom.encaps import encapsulate

    pixels, dataset = _twelve_bit(tmp_path)
    dataset.PixelData = encapsulate([imagecodecs.ljpeg_encode(pixels, bitspersample=12)])
    dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.57"  # JPEG Lossless, process 14
    dataset.save_as(tmp_path / "jpeg.dcm", enforce_file_format=True)
    assert np.array_equal(read_dicom(tmp_path / "jpeg.dcm"), np.round(pixels * (FULL / 4095)).astype(np.uint16))


def test_unsupported_transfer_syntax_is_a_clear_error(tmp_path):
    from pydicom.encaps import encapsulate

    _, dataset = _twelve_bit(tmp_path)
    dataset.PixelData = encapsulate([b"\x00" * 64])
    dataset.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2: no decoder here
    path = tmp_path / "mpeg.dcm"
    dataset.save_as(path, enforce_file_format=True)
    with pytest.raises(FormatError, match="transfer syntax") as info:
        read_dicom(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- presentation (full-field digital)
def test_window_centre_and_width_are_applied(tmp_path):
    """DICOM's linear window (PS3.3 C.11.2.1.2.1) over 12 bits: below the window black, above it white, the
    window itself stretched over the 16-bit range; the first of two windows is the one used."""
    pixels, dataset = _twelve_bit(tmp_path)
    dataset.WindowCenter, dataset.WindowWidth = [2048.5, 1000], [1024, 500]
    dataset.save_as(tmp_path / "window.dcm")
    image = read_dicom(tmp_path / "window.dcm").astype(np.float64)
    centre, width = 2048.5 - 0.5, 1024 - 1.0
    expected = np.clip(((pixels - centre) / width + 0.5), 0, 1) * FULL
    assert np.abs(image - expected).max() <= 1
    assert image[pixels < 1536].max() == 0 and image[pixels > 2560].min() == FULL


def test_monochrome1_with_a_window_is_windowed_then_inverted(tmp_path):
    pixels, dataset = _twelve_bit(tmp_path)
    dataset.WindowCenter, dataset.WindowWidth = 2048.5, 1024
    dataset.save_as(tmp_path / "window.dcm")
    dataset.PhotometricInterpretation = "MONOCHROME1"
    dataset.save_as(tmp_path / "window_mono1.dcm")
    assert np.array_equal(read_dicom(tmp_path / "window_mono1.dcm"), FULL - read_dicom(tmp_path / "window.dcm"))


def test_voi_lut_sequence_is_applied(tmp_path):
    """A VOI LUT table (here the square root of the 12-bit value, into 12 bits) wins over a window beside it."""
    from pydicom.dataset import Dataset

    pixels, dataset = _twelve_bit(tmp_path)
    table = np.round(np.sqrt(np.arange(4096) / 4095) * 4095).astype(np.uint16)
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.LUTData = table.astype("<u2").tobytes()  # OW, as scanners write it
    dataset.VOILUTSequence = [lut]
    dataset.WindowCenter, dataset.WindowWidth = 100, 10
    dataset.save_as(tmp_path / "lut.dcm")
    expected = np.round(table[pixels] * (FULL / 4095)).astype(np.uint16)
    assert np.array_equal(read_dicom(tmp_path / "lut.dcm"), expected)


def test_for_processing_images_are_refused_with_the_reason(tmp_path):
    pixels, dataset = _twelve_bit(tmp_path)
    dataset.PresentationIntentType = "FOR PROCESSING"
    dataset.save_as(tmp_path / "raw.dcm")
    with pytest.raises(FormatError, match="raw.dcm.*FOR PROCESSING image"):
        read_dicom(tmp_path / "raw.dcm")
    dataset.PresentationIntentType = "FOR PRESENTATION"
    dataset.save_as(tmp_path / "presented.dcm")
    assert read_dicom(tmp_path / "presented.dcm").shape == pixels.shape


@pytest.mark.parametrize(
    ("laterality", "orientation", "flipped"),
    [
        ("L", ["A", "R"], False),  # LCC as hung: chest wall at the left edge
        ("R", ["P", "L"], False),  # RCC as hung: chest wall at the right edge
        ("L", ["P", "L"], True),  # a left breast stored mirrored
        ("R", ["A", "FL"], True),  # a right MLO stored mirrored
        ("R", None, False),  # no orientation: taken as stored
        (None, ["P", "L"], False),  # no laterality: taken as stored
    ],
)
def test_a_mirrored_breast_is_flipped_to_the_one_orientation(tmp_path, laterality, orientation, flipped):
    """Every collection's orientation: a left breast's chest wall at the image's left edge, a right breast's at its
    right edge (DDSM, CBIS-DDSM, radiologists' hanging); PatientOrientation's row direction says where it is."""
    pixels = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    header = {}
    if laterality:
        header["ImageLaterality"] = laterality
    if orientation:
        header["PatientOrientation"] = orientation
    write_dicom(tmp_path / "x.dcm", pixels, "P", "1.2", "1.3", header=header)
    assert np.array_equal(read_dicom(tmp_path / "x.dcm"), pixels[:, ::-1] if flipped else pixels)


def test_pixel_spacing_is_read_from_either_element(tmp_path):
    from mammo.io.dicom import dicom_geometry

    pixels = np.zeros((4, 4), np.uint16)
    for header, expected in (
        ({"PixelSpacing": [0.085, 0.085]}, 0.085),
        ({"ImagerPixelSpacing": [0.1, 0.1]}, 0.1),
        ({"PixelSpacing": [0.07, 0.07], "ImagerPixelSpacing": [0.1, 0.1]}, 0.07),  # the calibrated one first
        ({}, None),
    ):
        write_dicom(tmp_path / "s.dcm", pixels, "P", "1.2", "1.3", header=header)
        assert dicom_geometry(tmp_path / "s.dcm") == ((pytest.approx(expected) if expected else None), False)
    write_dicom(tmp_path / "m.dcm", pixels, "P", "1.2", "1.3", header={"ImageLaterality": "R", "PatientOrientation": ["A", "L"]})
    assert dicom_geometry(tmp_path / "m.dcm") == (None, True)  # read_dicom flips it: boxes drawn on it must follow
    (tmp_path / "bad.dcm").write_bytes(b"not dicom")
    assert dicom_geometry(tmp_path / "bad.dcm") == (None, False)
