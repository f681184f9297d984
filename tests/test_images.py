"""load_image: upright 8-bit RGB from any mode, 16-bit, DICOM; bad files named with a remedy."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures.builders import write_dicom, write_jpeg
from PIL import Image, ImageFile

from skinlib.data.images import load_image, scale_to_uint8
from skinlib.errors import DataError


def _pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image, dtype=int)


# --- orientation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("orientation", "size", "white_at"),
    [
        (1, (20, 10), "left"),  # as stored
        (3, (20, 10), "right"),  # rotated 180
        (6, (10, 20), "top"),  # rotated 90 clockwise for display
        (8, (10, 20), "bottom"),  # rotated 90 counter-clockwise
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, size, white_at):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # stored with the left half white
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = _pixels(load_image(tmp_path / "r.jpg"))
    assert out.shape[1::-1] == size  # (width, height)
    h, w = out.shape[:2]
    halves = {
        "left": out[:, : w // 2],
        "right": out[:, w // 2 :],
        "top": out[: h // 2],
        "bottom": out[h // 2 :],
    }
    assert halves[white_at].mean() > 250
    opposite = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[white_at]
    assert halves[opposite].mean() < 5


# --- modes ----------------------------------------------------------------------------------


def test_grey_and_palette(tmp_path):
    Image.new("L", (4, 4), 77).save(tmp_path / "l.png")
    assert (_pixels(load_image(tmp_path / "l.png")) == 77).all()
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    palette.save(tmp_path / "p.png")
    assert (_pixels(load_image(tmp_path / "p.png")) == (10, 200, 30)).all()
    palette.save(tmp_path / "p.gif")  # GIF is palette-only
    assert (_pixels(load_image(tmp_path / "p.gif")) == (10, 200, 30)).all()


def test_transparency_is_composited_on_white(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (200, 0, 0, 255)  # opaque red stays red
    rgba[0, 1] = (200, 0, 0, 0)  # fully transparent -> white, not black
    rgba[1, 0] = (200, 0, 0, 128)  # half: 200*a + 255*(1-a) = 227.4; 0*a + 255*(1-a) = 127.0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "t.png")
    out = _pixels(load_image(tmp_path / "t.png"))
    assert tuple(out[0, 0]) == (200, 0, 0) and tuple(out[0, 1]) == (255, 255, 255)
    assert np.abs(out[1, 0] - (227, 127, 127)).max() <= 1
    la = Image.fromarray(np.array([[[50, 255], [50, 0]]], np.uint8), "LA")
    la.save(tmp_path / "la.png")
    out = _pixels(load_image(tmp_path / "la.png"))
    assert tuple(out[0, 0]) == (50, 50, 50) and tuple(out[0, 1]) == (255, 255, 255)
    palette = Image.new("P", (2, 1), 0)
    palette.putpalette([9, 9, 9, 10, 200, 30] + [0] * 762)
    palette.putpixel((1, 0), 1)
    palette.info["transparency"] = 0
    palette.save(tmp_path / "pt.png", transparency=0)
    assert _pixels(load_image(tmp_path / "pt.png")).tolist() == [[[255, 255, 255], [10, 200, 30]]]


def test_cmyk(tmp_path):
    cmyk = Image.new("CMYK", (4, 4), (255, 0, 0, 0))  # pure cyan ink
    cmyk.save(tmp_path / "c.tif")
    cmyk.save(tmp_path / "c.jpg", quality=100)
    assert (_pixels(load_image(tmp_path / "c.tif")) == (0, 255, 255)).all()
    assert np.abs(_pixels(load_image(tmp_path / "c.jpg")) - (0, 255, 255)).max() <= 3


def test_16bit_is_scaled_not_clipped(tmp_path):
    values = np.array([[0, 1000, 257 * 100, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "d.png")
    assert Image.open(tmp_path / "d.png").mode == "I;16"
    out = _pixels(load_image(tmp_path / "d.png"))[0, :, 0]
    # v * 255 / 65535: a clipping conversion would give 255 for all but 0
    assert out.tolist() == [0, 4, 100, 128, 255]
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "ramp.tif")
    out = _pixels(load_image(tmp_path / "ramp.tif"))[..., 0].ravel()
    assert out[0] == 0 and out[-1] == 255 and (np.diff(out) >= 0).all()


def test_32bit_integer_and_float(tmp_path):
    Image.fromarray(np.array([[0, 257 * 100, 65535]], np.int32), "I").save(tmp_path / "i.tif")
    assert _pixels(load_image(tmp_path / "i.tif"))[0, :, 0].tolist() == [0, 100, 255]
    np.testing.assert_array_equal(scale_to_uint8(np.array([0.0, 0.5, 1.0])), [0, 128, 255])
    np.testing.assert_array_equal(scale_to_uint8(np.array([-1.0, 1.0])), [0, 255])


# --- DICOM ----------------------------------------------------------------------------------


def test_dicom_rgb(tmp_path):
    pixels = np.zeros((6, 5, 3), np.uint8)
    pixels[:] = (10, 120, 240)
    pixels[0, 0] = (255, 0, 0)
    out = _pixels(load_image(write_dicom(tmp_path / "x.dcm", pixels)))
    assert out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out, pixels)


def test_dicom_ybr_jpeg_like_isic2020(tmp_path):
    # ISIC 2020 DICOMs hold JPEG-compressed YBR_FULL_422; pydicom already returns RGB for it,
    # so a second colour conversion would shift every hue.
    pixels = np.zeros((16, 16, 3), np.uint8)
    pixels[:] = (200, 60, 30)
    out = _pixels(load_image(write_dicom(tmp_path / "y.dcm", pixels, "YBR_FULL_422")))
    assert np.abs(out - (200, 60, 30)).max() <= 3


@pytest.mark.parametrize(("photometric", "expected"), [("MONOCHROME2", 100), ("MONOCHROME1", 155)])
def test_dicom_16bit_grey(tmp_path, photometric, expected):
    pixels = np.full((4, 4), 257 * 100, np.uint16)
    pixels[0, 0] = 65535
    out = _pixels(load_image(write_dicom(tmp_path / "g.dcm", pixels, photometric)))
    assert (out[1:, 1:] == expected).all()  # scaled by 16 bits; MONOCHROME1: 0 is white
    assert (out[0, 0] == (255 if photometric == "MONOCHROME2" else 0)).all()


def test_dicom_found_by_content_without_suffix(tmp_path):
    pixels = np.full((4, 4, 3), 33, np.uint8)
    write_dicom(tmp_path / "x.dcm", pixels).rename(tmp_path / "ISIC_0000001")
    assert (_pixels(load_image(tmp_path / "ISIC_0000001")) == 33).all()


# --- bad files ------------------------------------------------------------------------------


def test_bad_files_name_the_file_and_the_remedy(tmp_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    good = write_jpeg(tmp_path / "good.jpg", size=(64, 64)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    (tmp_path / "bad.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"garbage")
    cases = [
        ("empty.jpg", "empty file (0 bytes); re-download it"),
        ("text.jpg", "not an image file Pillow can read; replace it"),
        ("cut.jpg", "truncated or corrupt image"),
        ("none.jpg", "file not found; restore it"),
        ("bad.dcm", "unreadable DICOM"),
    ]
    for name, needle in cases:
        with pytest.raises(DataError) as err:
            load_image(tmp_path / name)
        assert str(err.value).startswith(str(tmp_path / name)) and needle in str(err.value)
    assert load_image(tmp_path / "good.jpg").size == (64, 64)
