"""``skinlib validate`` lists every problem of a dataset, one row each, and exits non-zero."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.builders import make_class_folders, make_ham10000_folder, write_jpeg
from PIL import Image, ImageDraw

from skinlib.cli import main
from skinlib.data.validate import REPORT_COLUMNS, check_image, size_problem, validate_dataset


@pytest.fixture
def clean_ham(tmp_path):
    """20 HAM10000 rows with 80x64 images: nothing to report."""
    return make_ham10000_folder(tmp_path / "ham", 20, size=(80, 64))


def test_clean_dataset_has_empty_report_and_exit_0(clean_ham, tmp_path, capsys):
    report = validate_dataset(clean_ham, "ham10000", progress=False)
    assert report.empty and list(report.columns) == REPORT_COLUMNS
    out = tmp_path / "report.csv"
    assert main(["validate", str(clean_ham), "--report", str(out)]) == 0
    assert "no problems found" in capsys.readouterr().out
    assert pd.read_csv(out).empty


def test_validate_finds_each_problem(clean_ham, tmp_path, capsys):
    part1 = clean_ham / "HAM10000_images_part_1"
    images = sorted(part1.glob("*.jpg"))
    images[0].write_bytes(b"")  # zero bytes
    images[1].write_text("hello")  # not an image
    good = images[2].read_bytes()
    images[2].write_bytes(good[: len(good) // 2])  # truncated JPEG
    images[3].unlink()  # missing
    images[5].write_bytes(images[4].read_bytes())  # byte-identical under another id
    write_jpeg(images[6], size=(40, 30))  # too small
    write_jpeg(images[7], size=(400, 80))  # aspect 5
    meta = pd.read_csv(clean_ham / "HAM10000_metadata.csv")
    meta.loc[0, "dx"] = "mole"  # line 2
    meta = pd.concat([meta, meta.iloc[[1]]])  # duplicate id at line 22
    meta.to_csv(clean_ham / "HAM10000_metadata.csv", index=False)

    report = validate_dataset(clean_ham, "ham10000", progress=False)
    by_kind = report.groupby("problem")["file"].apply(list).to_dict()
    assert {k: len(v) for k, v in by_kind.items()} == {
        "corrupt_image": 1,
        "duplicate_id": 1,
        "duplicate_image": 1,
        "empty_file": 1,
        "extreme_size": 2,
        "missing_image": 1,
        "not_image": 1,
        "unknown_label": 1,
    }
    assert by_kind["empty_file"] == [str(images[0])]
    assert by_kind["not_image"] == [str(images[1])]
    assert by_kind["corrupt_image"] == [str(images[2])]
    assert by_kind["duplicate_image"] == [str(images[5])]
    assert sorted(by_kind["extreme_size"]) == sorted([str(images[6]), str(images[7])])
    rows = report.set_index("problem")["row"]
    assert rows["unknown_label"] == 2 and rows["duplicate_id"] == 22
    missing = report[report["problem"] == "missing_image"].iloc[0]
    assert missing["file"].endswith("HAM10000_metadata.csv") and images[3].stem in missing["detail"]
    dup = report[report["problem"] == "duplicate_image"]["detail"].item()
    assert images[4].stem in dup and images[5].stem in dup

    out = tmp_path / "report.csv"
    assert main(["validate", str(clean_ham), "--report", str(out)]) == 1
    written = pd.read_csv(out)
    assert list(written.columns) == REPORT_COLUMNS and len(written) == len(report) == 9
    assert "9 problem(s)" in capsys.readouterr().out


def test_onehot_problems_are_all_listed(isic2019_folder):
    csv = isic2019_folder / "ISIC_2019_Training_GroundTruth.csv"
    text = csv.read_bytes()
    text = text.replace(b"ISIC_0000001,0,1,0", b"ISIC_0000001,1,1,0")  # line 3: two ones
    text = text.replace(b"ISIC_0000003,0,1,0", b"ISIC_0000003,0,0,0")  # line 5: none
    csv.write_bytes(text)
    report = validate_dataset(isic2019_folder, "isic2019", progress=False)
    onehot = report[report["problem"] == "onehot"]
    assert onehot["row"].tolist() == [3, 5]
    assert "ISIC_0000001 has 2 classes" in onehot["detail"].iloc[0]
    assert "ISIC_0000003 has 0 classes" in onehot["detail"].iloc[1]


def test_unreadable_label_file_is_one_report_row(clean_ham, tmp_path):
    meta = pd.read_csv(clean_ham / "HAM10000_metadata.csv").drop(columns="lesion_id")
    meta.to_csv(clean_ham / "HAM10000_metadata.csv", index=False)
    report = validate_dataset(clean_ham, "ham10000", progress=False)
    assert report["problem"].tolist() == ["label_file"]
    assert "missing column(s) ['lesion_id']" in report["detail"].item()
    assert main(["validate", str(clean_ham), "--report", str(tmp_path / "r.csv")]) == 1


def test_folder_format_and_check_image(tmp_path):
    root = make_class_folders(tmp_path / "data", {"mel": ["a.png", "b.jpg"]}, size=(64, 64))
    (root / "mel" / "c.bmp").write_bytes(b"BM not really")
    report = validate_dataset(root, "folder", progress=False, workers=1)
    assert report[["file", "problem"]].values.tolist() == [
        [str(root / "mel" / "c.bmp"), "not_image"]
    ]
    check = check_image(str(root / "mel" / "a.png"))
    assert check.problem is None and check.size == (64, 64) and len(check.digest) == 64
    assert len(check.phash) == 64  # 256-bit perceptual hash, hex


def test_size_rules():
    assert size_problem((600, 450)) is None
    assert "extreme size 63x450" in size_problem((63, 450))
    assert size_problem((10001, 5000)) is not None and size_problem((401, 100)) is not None
    assert size_problem((400, 100)) is None  # aspect exactly 4


def test_exif_size_is_upright(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(np.zeros((64, 200, 3), np.uint8)).save(tmp_path / "r.jpg", exif=exif)
    assert check_image(str(tmp_path / "r.jpg")).size == (64, 200)


def write_lesion(path, seed: int, size=(80, 64)) -> None:
    """A dark ellipse on skin colour at a seed-chosen place: a picture with structure (pure noise
    changes under resizing, a lesion keeps its perceptual hash)."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(150, 230, 3)))
    w, h = size
    x, y = rng.integers(5, w // 2), rng.integers(5, h // 2)
    ImageDraw.Draw(image).ellipse(
        [x, y, x + rng.integers(10, w // 2), y + rng.integers(10, h // 2)],
        fill=tuple(int(v) for v in rng.integers(20, 110, 3)),
    )
    image.save(path, quality=95)


def test_more_than_50_megapixels_is_flagged_without_decoding(tmp_path, monkeypatch):
    from skinlib.data import validate
    from skinlib.data.images import MAX_PIXELS
    from skinlib.data.validate import pixel_problem

    root = make_class_folders(tmp_path / "data", {"nv": ["a.jpg"]}, size=(64, 64))
    big = root / "nv" / "big.png"
    Image.new("1", (9000, 6000), 1).save(big)  # 54 MP, sides within MAX_SIDE; a 19 kB file
    decode = validate.load_image
    monkeypatch.setattr(
        validate,
        "load_image",
        lambda p: pytest.fail(f"decoded {p}") if p == str(big) else decode(p),
    )
    report = validate_dataset(root, "folder", progress=False, workers=1)
    assert report[["file", "problem"]].values.tolist() == [[str(big), "too_many_pixels"]]
    detail = report["detail"].item()
    assert "9000x6000 px = 54 megapixels (limit 50)" in detail
    assert "decompression-bomb" in detail and "downscale it" in detail
    assert pixel_problem((7000, 7000)) is None and MAX_PIXELS == 50_000_000
    assert size_problem((9000, 6000)) is None  # the side rule alone let it through


@pytest.fixture
def repeats(clean_ham):
    """clean_ham with lesion pictures: row 1 re-encodes row 0 (same lesion HAM_0000118), row 2 is
    row 0 enlarged (another lesion), row 6 is row 4's bytes (another lesion)."""
    path = {p.stem: p for p in clean_ham.rglob("ISIC_*.jpg")}
    ids = pd.read_csv(clean_ham / "HAM10000_metadata.csv")["image_id"].tolist()
    for i, image in enumerate(ids):
        write_lesion(path[image], seed=i)
    with Image.open(path[ids[0]]) as first:
        first.save(path[ids[1]], quality=80)
        first.resize((160, 128)).save(path[ids[2]], quality=85)
    shutil.copy(path[ids[4]], path[ids[6]])
    return clean_ham, ids


def test_near_duplicates_of_other_lesions_are_reported(repeats):
    root, ids = repeats
    report = validate_dataset(root, "ham10000", progress=False)
    assert sorted(report["problem"]) == ["duplicate_image", "near_duplicate"]
    near = report[report["problem"] == "near_duplicate"].iloc[0]
    assert near["file"].endswith(f"{ids[2]}.jpg")
    assert f"image {ids[2]} looks like" in near["detail"]
    assert ids[0] in near["detail"] or ids[1] in near["detail"]  # both show the same picture
    assert "of 256 bits apart" in near["detail"]
    dup = report[report["problem"] == "duplicate_image"].iloc[0]
    assert dup["file"].endswith(f"{ids[6]}.jpg") and ids[4] in dup["detail"]


def test_a_repeat_across_splits_is_a_split_leak(repeats, tmp_path, capsys):
    from skinlib.data import load_table
    from skinlib.data.splits import save_split

    root, ids = repeats
    table = load_table(root, "ham10000")
    where = {"HAM_0002730": "test", "HAM_0002761": "val", "HAM_0001396": "val"}
    split = table.assign(split=table["group"].map(where).fillna("train"))
    split_file = save_split(split, tmp_path / "split.csv")

    report = validate_dataset(root, "ham10000", progress=False, split_file=split_file)
    assert report["problem"].tolist() == ["split_leak", "split_leak"]
    by_file = report.set_index("file")["detail"]
    leak = by_file[next(f for f in by_file.index if f.endswith(f"{ids[6]}.jpg"))]
    assert f"image {ids[6]} (val) and {ids[4]} (train" in leak and "identical bytes" in leak
    leak = by_file[next(f for f in by_file.index if f.endswith(f"{ids[2]}.jpg"))]
    assert f"image {ids[2]} (test) and" in leak and "perceptual hashes" in leak

    out = tmp_path / "report.csv"
    args = ["validate", str(root), "--split", str(split_file), "--report", str(out)]
    assert main(args) == 1
    assert "split_leak    2" in capsys.readouterr().out
    (tmp_path / "bad.csv").write_text("image_id,split\nx,train\n")
    bad = validate_dataset(root, "ham10000", progress=False, split_file=tmp_path / "bad.csv")
    assert bad["problem"].tolist() == ["split_file"] and "expected columns" in bad["detail"].item()


@pytest.mark.skipif(
    not Path("/work/shared/data/HAM10000_200x150/HAM10000_metadata.csv").is_file(),
    reason="real HAM10000 images not available",
)
def test_real_images_of_different_lesions_are_not_near_duplicates(tmp_path):
    """100 real HAM10000 images of 100 lesions: no false near-duplicate among them."""
    real = Path("/work/shared/data/HAM10000_200x150")
    meta = pd.read_csv(real / "HAM10000_metadata.csv").drop_duplicates("lesion_id").head(100)
    (tmp_path / "images").mkdir()
    for image in meta["image_id"]:
        source = next(real.glob(f"HAM10000_images_part_*/{image}.jpg"))
        shutil.copy(source, tmp_path / "images" / source.name)
    meta.to_csv(tmp_path / "HAM10000_metadata.csv", index=False)
    assert validate_dataset(tmp_path, "ham10000", progress=False).empty


def test_bad_metadata_and_orphan_files_are_named_and_exit_1(clean_ham, tmp_path, capsys):
    """The subgroup audit splits on age, sex and site: each bad value, and each image file no row
    names, is a report row naming the image, the column and the value."""
    meta = pd.read_csv(clean_ham / "HAM10000_metadata.csv")
    meta.loc[0, "age"] = 250  # line 2
    meta.loc[1, "sex"] = "M"  # line 3
    meta.loc[2, "localization"] = "elbow"  # line 4
    meta.to_csv(clean_ham / "HAM10000_metadata.csv", index=False)
    orphan = write_jpeg(clean_ham / "HAM10000_images_part_1" / "ISIC_9999999.jpg", size=(80, 64))

    report = validate_dataset(clean_ham, "ham10000", progress=False)
    assert sorted(report["problem"]) == ["bad_metadata"] * 3 + ["orphan_image"]
    bad = report[report["problem"] == "bad_metadata"].set_index("row")["detail"]
    assert f"image {meta.loc[0, 'image_id']}: age '250.0' is not an age" in bad[2]
    assert f"image {meta.loc[1, 'image_id']}: sex 'M' is not one of" in bad[3]
    assert "['male', 'female', 'unknown']" in bad[3]
    assert f"image {meta.loc[2, 'image_id']}: localization 'elbow'" in bad[4]
    assert report.loc[report["problem"] == "orphan_image", "file"].item() == str(orphan)

    out = tmp_path / "report.csv"
    assert main(["validate", str(clean_ham), "--report", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "bad_metadata    3" in printed and "ISIC_9999999.jpg" in printed
    assert len(pd.read_csv(out)) == 4


def test_age_rules():
    from skinlib.data.formats.base import bad_age

    raw = pd.Series(["0", "85.0", "120", None, "125", "-5", "42", "abc"], dtype=object)
    assert bad_age(raw).tolist() == [False, False, False, False, True, True, True, True]


def test_real_ham10000_metadata_passes_the_metadata_checks():
    """The fixture is the whole published metadata (10,015 rows, 57 without an age)."""
    from fixtures.builders import HAM_CSV

    from skinlib.data.formats import read_source

    table, problems = read_source(HAM_CSV, "ham10000", require_images=False)
    assert len(table) == 10_015 and table["age"].isna().sum() == 57
    assert problems == []


def test_isic2019_metadata_is_checked(isic2019_folder):
    meta = isic2019_folder / "ISIC_2019_Training_Metadata.csv"
    text = meta.read_bytes()
    text = text.replace(b"ISIC_0000000,45.0,anterior torso", b"ISIC_0000000,47,torso")  # line 2
    text = text.replace(b"ISIC_0000001,50.0,posterior torso,,male", b"ISIC_0000001,,,,F")
    meta.write_bytes(text)
    report = validate_dataset(isic2019_folder, "isic2019", progress=False)
    bad = report[report["problem"] == "bad_metadata"]
    assert bad["file"].str.endswith("ISIC_2019_Training_Metadata.csv").all()
    assert bad["row"].tolist() == [2, 2, 3]
    details = " | ".join(bad["detail"])
    assert "image ISIC_0000000: age_approx '47'" in details
    assert "image ISIC_0000000: anatom_site_general 'torso'" in details
    assert "image ISIC_0000001: sex 'F'" in details


def test_bad_metadata_does_not_stop_loading(clean_ham, caplog):
    """Training needs no metadata: load_table warns and points at `skinlib validate`."""
    from skinlib.data import load_table

    meta = pd.read_csv(clean_ham / "HAM10000_metadata.csv")
    meta.loc[0, "sex"] = "M"
    meta.to_csv(clean_ham / "HAM10000_metadata.csv", index=False)
    assert len(load_table(clean_ham, "ham10000")) == 20
    assert "skinlib validate" in caplog.text and "sex 'M'" in caplog.text
