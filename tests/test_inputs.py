"""Upload checks: what a browser can send is refused with a message or converted with a note
(app/inputs.py)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import write_jpeg
from fixtures.uploads import CONVERTED, REFUSED, make_bad_file

from skinlib.app.inputs import UploadError, read_upload


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_bad_uploads_are_refused_with_a_message(kind, tmp_path):
    path = make_bad_file(kind, tmp_path)
    with pytest.raises(UploadError) as err:
        read_upload(path)
    message = str(err.value)
    assert REFUSED[kind] in message
    assert path.name in message  # names the file the user chose
    assert str(tmp_path) not in message  # but not the server's temporary folder


@pytest.mark.parametrize("kind", sorted(CONVERTED))
def test_unusual_images_are_converted_with_a_note(kind, tmp_path):
    upload = read_upload(make_bad_file(kind, tmp_path))
    assert upload.image.mode == "RGB"
    assert upload.image.size == (32, 32)
    assert any(CONVERTED[kind] in note for note in upload.notes)


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path):
    pixels = np.asarray(read_upload(make_bad_file("grey16", tmp_path)).image)
    # the ramp covers 0..65535, so the 8-bit copy must cover 0..255 (clipping would give 255s)
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.mean(pixels == 255) < 0.01


def test_ordinary_image_and_file_size_limit(tmp_path):
    path = write_jpeg(tmp_path / "lesion.jpg", size=(40, 30))
    upload = read_upload(path)
    assert upload.image.size == (40, 30) and upload.notes == [] and upload.name == "lesion.jpg"
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (3 * 2**20 // 2))  # 1.5 MB, refused before it is even opened
    with pytest.raises(UploadError, match="is 1.5 MB, above the limit of 1 MB"):
        read_upload(big, max_bytes=2**20)


def test_pixel_limit_is_adjustable(tmp_path):
    path = write_jpeg(tmp_path / "lesion.jpg", size=(40, 30))
    with pytest.raises(UploadError, match="40x30 pixels"):
        read_upload(path, max_pixels=1000)
