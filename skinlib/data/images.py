"""One image loader for every source: EXIF orientation, any mode, 16-bit and DICOM to 8-bit RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinlib.errors import DataError

# Pillow refuses absurdly large images (decompression bombs); we turn that into a message.
# Truncated files must raise, so ImageFile.LOAD_TRUNCATED_IMAGES stays False.
Image.MAX_IMAGE_PIXELS = 200_000_000

# The files a dataset's images may be, in order of preference: earlier suffixes win when one id
# has several files (ISIC 2020 ships JPEG and DICOM).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".dcm")
# Dermoscopes deliver 1-25 megapixels and a 12-megapixel phone photo is 12e6 pixels. Beyond 50 a
# file costs over 140 MiB per decoded copy (in every DataLoader worker), and a small file
# declaring that many pixels is the shape of a decompression bomb: `skinlib validate` measures
# such files from their header only, and the app refuses such uploads.
MAX_PIXELS = 50_000_000
HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")


def scale_to_uint8(array: np.ndarray, bits: int | None = None) -> np.ndarray:
    """Map pixel values onto 0..255 by their container's range, never by clipping.

    Args:
        array: integer or float pixels.
        bits: significant bits of an integer array (DICOM BitsStored); default 16, or the
            array's own min..max when its values do not fit in 0..65535.

    Unsigned 16-bit maps 0..65535 onto 0..255 (a dark 16-bit image stays dark); floats in
    [0, 1] scale by 255, other floats and wider integers by their own min..max.
    """
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
        if lo < 0 or hi > 1:
            array = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
        return np.round(np.nan_to_num(array) * 255.0).astype(np.uint8)
    if bits is None:
        lo, hi = int(array.min()), int(array.max())
        if lo < 0 or hi > 65535:
            return scale_to_uint8(array.astype(np.float64))  # min..max
        bits = 16
    top = float(2**bits - 1)
    return np.round(np.clip(array, 0, top).astype(np.float64) * (255.0 / top)).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB the way a viewer shows it.

    Transparent areas are composited on white (as viewers and slide scanners show them; black
    would look like a dark lesion border), 16-bit is scaled rather than clipped.
    """
    if image.mode == "RGB":
        return image
    if image.mode in HIGH_BIT_MODES:
        return Image.fromarray(scale_to_uint8(np.asarray(image))).convert("RGB")
    if image.mode in ("P", "PA"):
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "La", "RGBa"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _dicom_array(ds) -> np.ndarray:
    """A DICOM dataset's first frame as uint8 (rows, cols[, 3])."""
    # pydicom only for DICOM files (ISIC 2020 ships some)
    from pydicom.pixels import apply_color_lut

    # pydicom converts YBR_FULL/YBR_FULL_422 (what ISIC 2020's JPEG DICOMs hold) to RGB itself.
    array = ds.pixel_array
    if int(getattr(ds, "NumberOfFrames", 1) or 1) > 1:
        array = array[0]
    photometric = str(getattr(ds, "PhotometricInterpretation", "RGB"))
    if photometric == "PALETTE COLOR":
        return scale_to_uint8(apply_color_lut(array, ds))
    bits = int(getattr(ds, "BitsStored", 8))
    if getattr(ds, "PixelRepresentation", 0) == 1:  # signed: shift onto 0..2**bits-1
        array = array.astype(np.int64) + 2 ** (bits - 1)
    array = scale_to_uint8(np.asarray(array), bits=bits)
    if photometric == "MONOCHROME1":  # 0 is white
        array = 255 - array
    return array


def _load_dicom(path: Path) -> Image.Image:
    # pydicom only for DICOM files (ISIC 2020 ships some)
    import pydicom

    try:
        array = _dicom_array(pydicom.dcmread(str(path)))
    except Exception as err:  # pydicom raises many types for broken or unsupported files
        raise DataError(
            f"{path}: unreadable DICOM ({type(err).__name__}: {err}); re-export it as JPEG/PNG "
            "or install a decoder for its transfer syntax (pylibjpeg)"
        ) from None
    return Image.fromarray(array).convert("RGB")


def is_dicom(path: Path) -> bool:
    """DICOM Part 10 files carry ``DICM`` after a 128-byte preamble, whatever their name."""
    if path.suffix.lower() == ".dcm":
        return True
    try:
        with open(path, "rb") as f:
            return f.read(132)[128:] == b"DICM"
    except OSError:
        return False  # Pillow's open below reports it


def load_image(path: str | Path) -> Image.Image:
    """Read an image file as 8-bit RGB, upright (EXIF orientation applied).

    Raises:
        DataError: naming the file when it is missing, empty, truncated or not an image.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found; restore it or remove its row")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: empty file (0 bytes); re-download it or remove its row")
    if is_dicom(path):
        return _load_dicom(path)
    try:
        with Image.open(path) as image:
            image.load()  # decode now: a truncated file raises here, not in a DataLoader worker
            return to_rgb(ImageOps.exif_transpose(image))
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: not an image file Pillow can read; replace it or remove its row"
        ) from None
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: image too large ({err}); downscale it first") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"{path}: truncated or corrupt image ({err}); re-download it, or set "
            "data.skip_bad=true to skip unreadable images"
        ) from None
