"""Checks on an uploaded file before the model sees it: one readable message per way it can fail.

The web app accepts any file (``gr.File``), so everything a browser can send arrives here first:
text files, empty files, decompression bombs, animated GIFs, multi-page TIFFs, 16-bit and CMYK
images. Refusals raise :class:`UploadError` with a message meant for the page; images that can be
used after a conversion come back with a note saying what was done to them.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from skinlib.data.images import IMAGE_SUFFIXES, MAX_PIXELS, to_rgb
from skinlib.errors import DataError

SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
SUPPORTED = "JPEG, PNG, BMP, TIFF or WebP"
# What a browser may upload: a dataset's image files (no DICOM, which browsers do not show)
# and WebP
UPLOAD_SUFFIXES = (*(s for s in IMAGE_SUFFIXES if s != ".dcm"), ".webp")


class UploadError(DataError):
    """An upload the app refuses; the message is shown on the page as it is."""


@dataclass
class UploadedImage:
    """A validated upload.

    Attributes:
        image: 8-bit RGB, upright (EXIF orientation applied).
        notes: what was converted on the way (16-bit, CMYK, transparency), for the page.
        name: the file name as uploaded (no folder), for messages.
    """

    image: Image.Image
    notes: list[str] = field(default_factory=list)
    name: str = ""


def _bits_per_channel(image: Image.Image, path: Path) -> int:
    """Bit depth as stored in the file; Pillow reads 48-bit RGB as 8-bit without saying so."""
    if image.mode in SIXTEEN_BIT_MODES:
        return 16 if image.mode.startswith("I;16") else 32
    if image.format == "PNG":
        with path.open("rb") as fh:
            header = fh.read(25)  # signature (8), chunk length (4), b"IHDR", width, height, depth
        return header[24] if len(header) == 25 and header[12:16] == b"IHDR" else 8
    if image.format == "TIFF":
        bits = image.tag_v2.get(258, (8,))  # TIFF tag 258: BitsPerSample
        return max(bits) if isinstance(bits, tuple) else int(bits)
    return 8


def _conversion_notes(image: Image.Image, path: Path) -> list[str]:
    notes = []
    bits = _bits_per_channel(image, path)
    if bits > 8:
        notes.append(f"{bits}-bit image: reduced to 8 bits per channel before prediction.")
    if image.mode == "CMYK":
        notes.append("CMYK image: converted to RGB (colours may differ from the original).")
    elif image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        notes.append("Transparent areas were filled with white.")
    elif image.mode in ("L", "1"):
        notes.append("Greyscale image: copied to three colour channels.")
    return notes


def _open_checked(path: Path, name: str, max_pixels: int) -> Image.Image:
    """Open (header only) and refuse bombs, huge and multi-frame images before decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except UnidentifiedImageError:
        raise UploadError(
            f"'{name}' is not an image this app can read. Upload a {SUPPORTED} file."
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UploadError(
            f"'{name}' declares an enormous size (a possible decompression bomb); "
            f"refused without decoding. Upload an image below {max_pixels / 1e6:.0f} megapixels."
        ) from None
    except OSError as err:
        raise UploadError(
            f"'{name}' could not be opened ({err}). Upload a {SUPPORTED} file."
        ) from None
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise UploadError(
            f"'{name}' is {width}x{height} pixels ({width * height / 1e6:.0f} megapixels), above "
            f"the limit of {max_pixels / 1e6:.0f} megapixels. Downscale it and upload it again."
        )
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        image.close()
        raise UploadError(
            f"'{name}' holds {frames} frames (an animation or a multi-page file). "
            "Upload a single still image."
        )
    return image


def read_upload(
    path: str | Path,
    name: str | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int | None = None,
) -> UploadedImage:
    """Validate and decode one uploaded file.

    Args:
        path: the file on disk (Gradio's temporary copy).
        name: the name to show in messages; defaults to the file name of ``path``.
        max_pixels: refuse images with more pixels than this, before decoding them.
        max_bytes: refuse larger files (Gradio's own limit applies to uploads; this one also
            covers files handed over directly, e.g. examples or tests).

    Raises:
        UploadError: with a message for the page (empty, not an image, too large, animated,
            truncated).
    """
    path = Path(path)
    name = name or path.name
    if not path.is_file():
        raise UploadError(f"'{name}' was not received; upload it again.")
    size = path.stat().st_size
    if size == 0:
        raise UploadError(f"'{name}' is empty (0 bytes). Upload a {SUPPORTED} file.")
    if max_bytes is not None and size > max_bytes:
        raise UploadError(
            f"'{name}' is {size / 2**20:.1f} MB, above the limit of {max_bytes / 2**20:.0f} MB."
        )
    image = _open_checked(path, name, max_pixels)
    try:
        notes = _conversion_notes(image, path)
        image.load()
        upright = ImageOps.exif_transpose(image) or image
        rgb = to_rgb(upright)
        if rgb is image:
            rgb = rgb.copy()  # closing the file below would invalidate the returned image
    except (OSError, SyntaxError, ValueError) as err:
        raise UploadError(
            f"'{name}' is truncated or corrupt ({err}). Upload the complete file."
        ) from None
    finally:
        image.close()
    return UploadedImage(image=rgb, notes=notes, name=name)
