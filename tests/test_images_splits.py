"""Image loading, split audit on the real HAM10000 metadata, validation and the cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FIXTURES, write_jpeg
from PIL import Image
from sklearn.model_selection import train_test_split

from skinlib.cli import main
from skinlib.data import load_table
from skinlib.data.cache import build_cache
from skinlib.data.images import load_image
from skinlib.data.splits import (
    audit_split,
    load_split,
    make_folds,
    make_split,
    save_split,
    shared_groups,
)
from skinlib.data.validate import validate_dataset
from skinlib.errors import DataError

# --- images ---------------------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    Image.fromarray(pixels).save(tmp_path / "r.jpg", exif=exif, quality=100)
    image = load_image(tmp_path / "r.jpg")
    assert image.size == (10, 20)  # width and height swapped
    top = np.asarray(image)[:5].mean()
    assert top > 200  # the white half is now on top


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK"])
def test_modes_convert_to_rgb(tmp_path, mode):
    image = Image.new("RGB", (8, 8), (200, 100, 50)).convert(mode)
    suffix = ".tif" if mode == "CMYK" else ".png"
    image.save(tmp_path / f"x{suffix}")
    out = load_image(tmp_path / f"x{suffix}")
    assert out.mode == "RGB" and out.size == (8, 8)
    expected = np.asarray(image.convert("RGB"), dtype=int)[0, 0]
    assert np.abs(np.asarray(out, dtype=int)[0, 0] - expected).max() <= 3


def test_transparent_pixels_on_white(tmp_path):
    Image.new("RGBA", (4, 4), (255, 0, 0, 0)).save(tmp_path / "t.png")
    assert tuple(np.asarray(load_image(tmp_path / "t.png"))[0, 0]) == (255, 255, 255)


def test_16bit_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    Image.fromarray(ramp).save(tmp_path / "d.png")
    out = np.asarray(load_image(tmp_path / "d.png"))[..., 0]
    assert out.min() == 0 and out.max() == 255
    assert np.all(np.diff(out.reshape(-1).astype(int)) >= 0)  # order kept


def test_dicom_loads(tmp_path):
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = generate_uid()
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = FileDataset(str(tmp_path / "x.dcm"), {}, file_meta=meta, preamble=b"\0" * 128)
    pixels = np.full((6, 5, 3), (10, 120, 240), np.uint8)
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 6, 5, 3
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.tobytes()
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=True)
    out = load_image(tmp_path / "x.dcm")
    assert out.size == (5, 6) and tuple(np.asarray(out)[0, 0]) == (10, 120, 240)


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not an image")
    good = write_jpeg(tmp_path / "good.jpg", size=(64, 64)).read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    for name, needle in [
        ("empty.jpg", "empty file"),
        ("text.jpg", "not an image"),
        ("cut.jpg", "truncated"),
        ("none.jpg", "not found"),
    ]:
        with pytest.raises(DataError, match=needle) as err:
            load_image(tmp_path / name)
        assert name in str(err.value)


# --- splits ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ham_metadata():
    return load_table(FIXTURES / "ham10000" / "HAM10000_metadata.csv", require_images=False)


def test_grouped_split_on_real_ham10000(ham_metadata):
    split = make_split(ham_metadata, seed=0)
    audit = audit_split(split)
    assert audit.shared_groups == 0
    big = ham_metadata["label"].value_counts()
    big = big[big >= 100].index
    assert (audit.max_deviation[big] <= 0.02).all(), audit.max_deviation
    shares = split["split"].value_counts(normalize=True)
    assert abs(shares["train"] - 0.70) < 0.03 and abs(shares["test"] - 0.15) < 0.03


def test_image_level_split_leaks_hundreds_of_lesions(ham_metadata):
    _, test_idx = train_test_split(np.arange(len(ham_metadata)), test_size=0.3, random_state=0)
    naive = ham_metadata.assign(split="train")
    naive.loc[test_idx, "split"] = "test"
    leaked = len(shared_groups(naive))
    assert leaked > 300  # hundreds of lesions on both sides
    with pytest.raises(DataError, match="groups appear in more than one split"):
        audit_split(naive)


def test_split_is_deterministic_and_roundtrips(ham_metadata, tmp_path):
    ham_metadata = ham_metadata.head(1500)
    a, b = make_split(ham_metadata, seed=3), make_split(ham_metadata, seed=3)
    assert a["split"].tolist() == b["split"].tolist()
    assert a["split"].tolist() != make_split(ham_metadata, seed=4)["split"].tolist()
    save_split(a, tmp_path / "s.csv")
    assert load_split(tmp_path / "s.csv")["split"].tolist() == a["split"].tolist()


def test_folds_are_grouped(ham_metadata):
    folds = make_folds(ham_metadata.head(2000), k=5)
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert len(shared_groups(folds, "fold")) == 0


def test_split_cli_writes_file(tmp_path, capsys):
    csv = str(FIXTURES / "ham10000" / "HAM10000_metadata.csv")
    code = main(["split", csv, "--labels-only", "--out", str(tmp_path / "s.csv")])
    assert code == 0 and "groups shared between splits: 0" in capsys.readouterr().out
    assert len(pd.read_csv(tmp_path / "s.csv")) == 10015


# --- validation -----------------------------------------------------------------------------


def test_validate_finds_each_problem(ham_folder, tmp_path, capsys):
    images = sorted((ham_folder / "HAM10000_images_part_1").glob("*.jpg"))
    images[0].write_bytes(b"")  # zero bytes
    images[1].write_text("hello")  # not an image
    images[2].unlink()  # missing
    images[4].write_bytes(images[3].read_bytes())  # byte-identical to another id
    report = validate_dataset(ham_folder, "ham10000", progress=False)
    kinds = report["problem"].value_counts().to_dict()
    assert kinds["missing_image"] == 1 and kinds["empty_file"] == 1
    assert kinds["unreadable_image"] == 1 and kinds["duplicate_image"] == 1
    assert kinds["extreme_size"] >= 1  # the 40x30 test images are tiny
    out = tmp_path / "report.csv"
    assert main(["validate", str(ham_folder), "--report", str(out)]) == 1
    assert len(pd.read_csv(out)) == len(report)


# --- cache ----------------------------------------------------------------------------------


def test_cache_resizes_once_and_rebuilds_changed(ham_folder, tmp_path):
    table = load_table(ham_folder).head(6)
    for i, path in enumerate(table["path"]):
        write_jpeg(type(ham_folder)(path), size=(600, 450), seed=i)
    cached = build_cache(table, 100, cache_root=tmp_path / "c", workers=1, progress=False)
    assert cached["source_path"].tolist() == table["path"].tolist()
    sizes = {Image.open(p).size for p in cached["path"]}
    assert sizes == {(133, 100)}  # shorter side 100, aspect kept
    mtimes = [type(ham_folder)(p).stat().st_mtime_ns for p in cached["path"]]
    again = build_cache(table, 100, cache_root=tmp_path / "c", workers=1, progress=False)
    assert [type(ham_folder)(p).stat().st_mtime_ns for p in again["path"]] == mtimes
    import os

    os.utime(table["path"].iloc[0], ns=(1, 1))  # the source changed
    rebuilt = build_cache(table, 100, cache_root=tmp_path / "c", workers=1, progress=False)
    assert rebuilt["path"].iloc[0] != cached["path"].iloc[0]
    assert rebuilt["path"].iloc[1] == cached["path"].iloc[1]
