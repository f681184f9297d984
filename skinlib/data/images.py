"""One image loader for every source: EXIF orientation, any mode, 16-bit and DICOM to 8-bit RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from skinlib.errors import DataError

# Pillow refuses absurdly large images (decompression bombs) with an error we turn into a message.
Image.MAX_IMAGE_PIXELS = 200_000_000


def _scale_to_uint8(array: np.ndarray) -> np.ndarray:
    """Map an integer or float array onto 0..255 by its dtype range (16-bit: /257), not clipping."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.integer):
        info = np.iinfo(array.dtype)
        if info.max > 255 and array.max() <= 255 and array.min() >= 0:
            return array.astype(np.uint8)  # 16-bit container holding 8-bit values
        top = 65535 if array.max() > 255 else 255
        return np.clip(array.astype(np.float64) / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
    lo, hi = float(np.nanmin(array)), float(np.nanmax(array))
    scaled = (array - lo) / (hi - lo) if hi > lo else np.zeros_like(array)
    return (scaled * 255.0 + 0.5).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB the way a viewer would show it."""
    if image.mode == "RGB":
        return image
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return Image.fromarray(_scale_to_uint8(np.asarray(image))).convert("RGB")
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA"):
        # Transparent areas are shown on white, as every image viewer does.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def _load_dicom(path: Path) -> Image.Image:
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        array = ds.pixel_array
    except Exception as err:  # pydicom raises many types for broken files
        raise DataError(f"{path}: unreadable DICOM ({err}); re-export the file") from None
    if getattr(ds, "PhotometricInterpretation", "") == "MONOCHROME1":
        array = array.max() - array
    if getattr(ds, "PhotometricInterpretation", "").startswith("YBR"):
        from pydicom.pixels import convert_color_space

        array = convert_color_space(array, ds.PhotometricInterpretation, "RGB")
    array = _scale_to_uint8(np.asarray(array))
    if array.ndim == 3 and array.shape[0] > 1 and array.shape[-1] not in (3, 4):
        array = array[0]  # multi-frame: first frame
    return Image.fromarray(array).convert("RGB")


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
    if path.suffix.lower() == ".dcm":
        return _load_dicom(path)
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image) or image
            return to_rgb(image)
    except UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read; replace or remove it") from None
    except Image.DecompressionBombError as err:
        raise DataError(f"{path}: image too large ({err}); downscale it first") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(
            f"{path}: truncated or corrupt image ({err}); re-download it, or set "
            "data.skip_bad=true to skip unreadable images"
        ) from None
