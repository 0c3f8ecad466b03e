"""DICOM scans (CBIS-DDSM full mammograms, ROI masks and crops)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from mammo.io import FormatError, check_declared_size

DIGITAL_MAMMOGRAPHY_STORAGE = "1.2.840.10008.5.1.4.1.1.1.2"
# The pixel sizes, in mm, a mammogram can have: film digitizers scanned at 42 to 200 microns (DDSM, mini-MIAS),
# full-field detectors have 50 to 100 micron pixels. A header outside this range is damaged, and its image would be
# scaled to the CBIS-DDSM scale by a factor of thousands or of nothing.
PIXEL_MM_RANGE = (0.01, 1.0)


def read_dicom(path: str | Path) -> np.ndarray:
    """A single-frame greyscale DICOM as uint16, presented as its header says, the same for every collection:
    the VOI LUT or window where the header has one (the first of several; full-field digital mammograms carry
    them, CBIS-DDSM's films do not), else the declared stored range (to_shared_space); MONOCHROME1 inverted so
    bright = dense; a breast stored mirrored flipped to the one orientation of every collection (chest_wall_flip).
    "FOR PROCESSING" images (raw detector data, no presentation) are refused."""
    try:
        dataset = pydicom.dcmread(path)
        # pydicom parses elements when first used: a damaged header fails here, with one of many exception types
        has_pixels = "PixelData" in dataset
        header = {
            key: dataset.get(key)
            for key in ("PhotometricInterpretation", "BitsStored", "PixelRepresentation", "RescaleSlope", "RescaleIntercept")
        }
        intent = str(dataset.get("PresentationIntentType", "")).upper()
        mirrored = chest_wall_flip(dataset)
        size = int(dataset.get("Rows") or 0), int(dataset.get("Columns") or 0)
        frames, samples = int(dataset.get("NumberOfFrames") or 1), int(dataset.get("SamplesPerPixel") or 1)
    except OSError as err:
        raise FormatError(path, f"not a readable DICOM file ({err})") from None
    except Exception as err:  # pydicom's parse errors: InvalidDicomError, BytesLengthException, ValueError, ...
        raise FormatError(path, f"not a readable DICOM file ({type(err).__name__}: {err})") from None
    if not has_pixels:
        raise FormatError(path, "DICOM has no pixel data")
    # checked before pixel_array allocates what the header declares
    check_declared_size(path, *size)
    if (frames, samples) != (1, 1):
        raise FormatError(path, f"expected one greyscale frame, the header declares {frames} frames of {samples} samples")
    if intent == "FOR PROCESSING":
        raise FormatError(path, "a FOR PROCESSING image (raw detector data): only FOR PRESENTATION images are read")
    try:
        pixels = dataset.pixel_array
        if pixels.shape != size:  # pydicom reads pixel data longer than Rows x Columns declare as several frames
            raise ValueError(f"the pixel data hold an array of shape {pixels.shape}, the header declares {size[0]}x{size[1]}")
        image = _presented(pixels, dataset) if _has_voi(dataset) else to_shared_space(pixels, header)
    except Exception as err:  # pydicom raises several types for unsupported syntaxes, short data and bad pixel modules
        syntax = getattr(getattr(dataset, "file_meta", None), "TransferSyntaxUID", "unknown")
        raise FormatError(path, f"cannot decode pixel data (transfer syntax {syntax}): {err}") from None
    if header["PhotometricInterpretation"] == "MONOCHROME1":
        image = np.iinfo(np.uint16).max - image
    return np.ascontiguousarray(image[:, ::-1]) if mirrored else image


def _has_voi(dataset) -> bool:
    return "VOILUTSequence" in dataset or ("WindowCenter" in dataset and "WindowWidth" in dataset)


def _presented(pixels: np.ndarray, dataset) -> np.ndarray:
    """The modality and VOI transforms of the header (pydicom's), their output range stretched to uint16."""
    values = apply_voi_lut(apply_modality_lut(pixels, dataset), dataset, index=0, prefer_lut=True)
    if "VOILUTSequence" in dataset:
        low, high = 0.0, 2.0 ** int(dataset.VOILUTSequence[0].LUTDescriptor[2]) - 1  # the LUT's output bits
    else:  # a window: the output range of DICOM's linear function, as pydicom's apply_windowing takes it
        bits, signed = int(dataset.BitsStored), int(dataset.PixelRepresentation) == 1
        low, high = (-(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1) if signed else (0.0, 2.0**bits - 1)
        slope, intercept = float(dataset.get("RescaleSlope", 1)), float(dataset.get("RescaleIntercept", 0))
        low, high = low * slope + intercept, high * slope + intercept
    scaled = (np.asarray(values, np.float64) - low) / (high - low) * np.iinfo(np.uint16).max
    return np.round(np.clip(scaled, 0, np.iinfo(np.uint16).max)).astype(np.uint16)


def to_shared_space(pixels: np.ndarray, header: dict) -> np.ndarray:
    """Stored values -> uint16 over the full range the header declares (BitsStored, signed or not, Rescale
    Slope/Intercept), so that a 12-bit or signed image reads the same as a 16-bit one; CBIS-DDSM's unsigned
    16-bit pixels come back unchanged."""
    bits = int(header.get("BitsStored") or pixels.dtype.itemsize * 8)
    signed = int(header.get("PixelRepresentation") or 0) == 1
    slope, intercept = float(header.get("RescaleSlope") or 1), float(header.get("RescaleIntercept") or 0)
    if bits == 16 and not signed and pixels.dtype == np.uint16 and (slope, intercept) == (1.0, 0.0):
        return pixels
    low = -(2 ** (bits - 1)) if signed else 0
    stored = np.asarray(pixels, dtype=np.float64)
    if signed and pixels.dtype.kind == "u":  # pixel data read as unsigned: undo the two's complement of BitsStored bits
        stored = np.where(stored >= 2 ** (bits - 1), stored - 2**bits, stored)
    ends = np.array([low, low + 2**bits - 1], dtype=np.float64) * slope + intercept  # the modality LUT keeps the order
    values = stored * slope + intercept
    scaled = (values - ends.min()) / (ends.max() - ends.min()) * np.iinfo(np.uint16).max
    return np.round(np.clip(scaled, 0, np.iinfo(np.uint16).max)).astype(np.uint16)


# The one orientation of every collection, as DDSM and CBIS-DDSM store films and radiologists hang them (IHE
# Mammography): a left breast's chest wall at the image's left edge, a right breast's at its right edge. In DICOM the
# first value of PatientOrientation is the direction of increasing column: A (toward the nipple) puts the chest wall
# at the left edge, P at the right edge.
_CHEST_WALL_ROW_DIRECTION = {"L": "A", "R": "P"}


def chest_wall_flip(dataset) -> bool:
    """Whether an image must be flipped left-right to that orientation: its laterality (ImageLaterality, else
    Laterality) and PatientOrientation disagree with it. Without either, the image is taken as stored."""
    side = str(dataset.get("ImageLaterality", "") or dataset.get("Laterality", "")).upper()
    orientation = dataset.get("PatientOrientation")
    if side not in _CHEST_WALL_ROW_DIRECTION or not orientation:
        return False
    row_direction = str(orientation[0] if not isinstance(orientation, str) else orientation.split("\\")[0]).upper()
    return row_direction[:1] in ("A", "P") and row_direction[:1] != _CHEST_WALL_ROW_DIRECTION[side]


def dicom_geometry(path: str | Path) -> tuple[float | None, bool]:
    """(pixel spacing in mm, mirrored) of a DICOM: PixelSpacing, else ImagerPixelSpacing (the mean of rows and
    columns; None where the header has neither), and whether read_dicom flips it (chest_wall_flip), so that
    coordinates drawn on the stored image can follow. (None, False) where the header cannot be read (reading the
    image names the problem); a spacing outside PIXEL_MM_RANGE is an error."""
    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        keyword = "PixelSpacing" if dataset.get("PixelSpacing") else "ImagerPixelSpacing"
        values = [float(value) for value in dataset.get(keyword) or []]
        mirrored = chest_wall_flip(dataset)
    except Exception:  # pydicom's parse errors, as in read_dicom
        return None, False
    for value in values:
        checked_pixel_mm(path, value, keyword)
    return (float(np.mean(values)) if values else None), mirrored


def checked_pixel_mm(path: str | Path, value: float, source: str) -> float:
    """`value` where it is a mammogram's pixel size (PIXEL_MM_RANGE), else an error naming the file and the
    `source` of the value (nan and infinities fail the comparison too)."""
    low, high = PIXEL_MM_RANGE
    if not low <= value <= high:
        raise FormatError(path, f"{source} {value:g} mm is outside {low:g}..{high:g} mm (a mammogram's pixel size)")
    return value


def write_dicom(
    path: str | Path,
    pixels: np.ndarray,
    patient_id: str,
    study_uid: str,
    series_uid: str,
    instance_uid: str | None = None,
    header: dict | None = None,
) -> None:
    """Write an uncompressed little-endian MONOCHROME2 DICOM, as CBIS-DDSM ships them; `header` sets further
    elements by keyword (a full-field digital image's BitsStored, PhotometricInterpretation, window, ...).

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
    for keyword, value in (header or {}).items():
        setattr(dataset, keyword, value)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(path, enforce_file_format=True)
