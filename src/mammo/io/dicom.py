"""DICOM scans (CBIS-DDSM full mammograms, ROI masks and crops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from mammo.io import FormatError

DIGITAL_MAMMOGRAPHY_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"


def read_dicom(path: str | Path) -> np.ndarray:
    """Pixel array of a single-frame greyscale DICOM; MONOCHROME1 is inverted so bright = dense."""
    try:
        dataset = pydicom.dcmread(path)
    except (pydicom.errors.InvalidDicomError, OSError, EOFError, ValueError) as err:
        raise FormatError(path, f"not a readable DICOM file ({err})") from None
    if "PixelData" not in dataset:
        raise FormatError(path, "DICOM has no pixel data")
    try:
        pixels = dataset.pixel_array
    except Exception as err:  # pydicom raises several types for unsupported syntaxes and short data
        syntax = getattr(dataset.file_meta, "TransferSyntaxUID", "unknown")
        raise FormatError(path, f"cannot decode pixel data (transfer syntax {syntax}): {err}") from None
    if pixels.ndim != 2:
        raise FormatError(path, f"expected one greyscale frame, got array of shape {pixels.shape}")
    if dataset.get("PhotometricInterpretation") == "MONOCHROME1":
        pixels = (2 ** int(dataset.BitsStored) - 1) - pixels
    return pixels


def write_dicom(
    path: str | Path, pixels: np.ndarray, patient_id: str, study_uid: str, series_uid: str, instance_uid: str | None = None
) -> None:
    """Write an uncompressed little-endian MONOCHROME2 DICOM, as CBIS-DDSM ships them.

    Pass `instance_uid` for byte-identical files across runs (a random UID is drawn otherwise).
    """
    pixels = np.ascontiguousarray(pixels)
    bits = pixels.dtype.itemsize * 8
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DIGITAL_MAMMOGRAPHY_STORAGE
    meta.MediaStorageSOPInstanceUID = instance_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    dataset.SOPClassUID = DIGITAL_MAMMOGRAPHY_STORAGE
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.PatientID = patient_id
    dataset.PatientName = patient_id
    dataset.StudyInstanceUID = study_uid
    dataset.SeriesInstanceUID = series_uid
    dataset.Modality = "MG"
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.BitsAllocated = bits
    dataset.BitsStored = bits
    dataset.HighBit = bits - 1
    dataset.PixelRepresentation = 0
    dataset.PixelData = pixels.tobytes()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
