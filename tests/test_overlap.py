"""Image identity across datasets: ids, bytes, perceptual hashes and lesions find a run's images."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fixtures.builders import FIXTURES, make_isic2019_folder
from PIL import Image

from skinlib.data import load_table, overlap
from skinlib.data.overlap import (
    PHASH_MAX_DISTANCE,
    close_pairs,
    file_hashes,
    flag_run_images,
    hash_files,
    match_images,
    normalise_id,
)
from skinlib.data.synthetic import generate

REAL_HAM = Path("/work/shared/data/HAM10000_200x150")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Hashes are cached under SKINLIB_CACHE: keep each test's to itself."""
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def synthderm(tmp_path_factory) -> Path:
    """Ten SynthDerm images (96 px) in the HAM10000 layout."""
    out = tmp_path_factory.mktemp("synth") / "synthderm"
    return generate(out, n=10, seed=3, size=96, balanced=True, workers=1, progress=False)


def resized_copy(source: Path, target: Path, scale: float = 0.5, quality: int = 70) -> Path:
    """The picture of ``source`` resized by ``scale`` and re-saved as JPEG: new bytes, same image."""
    with Image.open(source) as image:
        w, h = image.size
        small = image.convert("RGB").resize((round(w * scale), round(h * scale)), Image.BICUBIC)
    target.parent.mkdir(parents=True, exist_ok=True)
    small.save(target, format="JPEG", quality=quality)
    return target


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ISIC_0000017_downsampled", "isic_0000017"),
        ("ISIC_0000017_downsampled.jpg", "isic_0000017"),
        ("isic_0024310.JPG", "isic_0024310"),
        (" ISIC_0024310 ", "isic_0024310"),
        ("IMD002.bmp", "imd002"),
        ("scan.v2", "scan.v2"),  # not an image extension: part of the id
    ],
)
def test_normalise_id(raw, expected):
    assert normalise_id(raw) == expected


def test_isic2019_folder_against_a_ham10000_run(tmp_path):
    """ISIC 2019's HAM images are found by id (with or without ``_downsampled``) and by lesion."""
    ham = load_table(FIXTURES / "ham10000", "ham10000", require_images=False)
    test_lesion = ham.loc[ham["image_id"] == "ISIC_0024310", "group"].item()
    split = ham.assign(split=np.where(ham["group"] == test_lesion, "test", "train"))
    # ISIC_0029505 itself is not in the run, but other images of its lesion HAM_0003789 are.
    split = split[split["image_id"] != "ISIC_0029505"]
    # The run also trained on an archive image that ISIC 2019 ships as "_downsampled".
    archive = pd.DataFrame(
        [{"image_id": "ISIC_0000017", "group": "ISIC_0000017", "label": "nv", "split": "val"}]
    )
    split = pd.concat([split, archive], ignore_index=True)
    external = load_table(make_isic2019_folder(tmp_path / "isic2019"), "isic2019")

    flagged, report = flag_run_images(external, split, progress=False)

    reason = flagged.set_index("image_id")["overlap_reason"]
    assert reason["ISIC_0000017_downsampled"] == "id"
    for image in ["ISIC_0024318", "ISIC_0024331", "ISIC_0024370", "ISIC_0026016", "ISIC_0031277"]:
        assert reason[image] == "id"
    assert reason["ISIC_0029505"] == "group"
    sibling = flagged.set_index("image_id").loc["ISIC_0029505", "overlap_image"]
    assert split.set_index("image_id").loc[sibling, "group"] == "HAM_0003789"
    assert reason["ISIC_0024310"] == "id"  # the run's own test image: flagged as internal
    assert flagged.set_index("image_id").loc["ISIC_0024310", "overlap_split"] == "test"
    assert reason[[i for i in reason.index if i.startswith("ISIC_0053")]].isna().all()  # BCN
    assert report.seen == {"id": 7, "content": 0, "perceptual": 0, "group": 1}
    assert report.run_test == 1 and report.kept == len(external) - 9 == 23
    assert report.unhashed_run == len(split)  # labels-only split: compared by id and lesion
    assert "dropped 8 the run trained or was selected on" in report.message()
    assert sorted(report.excluded["image_id"]) == sorted(reason[reason.notna()].index)


def test_copies_under_new_ids_are_found_by_content_and_phash(synthderm, tmp_path):
    table = load_table(synthderm, "ham10000")
    run = table.assign(split=["train"] * 6 + ["test"] * 4)
    source, tested = Path(run["path"][0]), Path(run["path"][7])
    copies = {
        "COPY_BYTES": shutil.copy(source, tmp_path / "bytes.jpg"),
        "COPY_SMALL": resized_copy(source, tmp_path / "small.jpg", 0.5, 70),
        "COPY_LARGE": resized_copy(source, tmp_path / "large.jpg", 2.0, 90),
        "COPY_TEST": resized_copy(tested, tmp_path / "test.jpg", 0.7, 80),
        "OTHER": resized_copy(Path(run["path"][6]), tmp_path / "other.png", 1.0),
    }
    external = pd.DataFrame(
        {
            "image_id": list(copies),
            "group": [f"L{i}" for i in range(5)],
            "path": list(copies.values()),
        }
    )
    # OTHER is a test image too, but under a train lesion: train outranks test.
    external.loc[4, "group"] = run["group"][0]

    flagged, report = flag_run_images(external, run, progress=False)

    got = flagged.set_index("image_id")[["overlap_reason", "overlap_split", "overlap_image"]]
    assert got.loc["COPY_BYTES"].tolist() == ["content", "train", run["image_id"][0]]
    assert got.loc["COPY_SMALL"].tolist() == ["perceptual", "train", run["image_id"][0]]
    assert got.loc["COPY_LARGE"].tolist() == ["perceptual", "train", run["image_id"][0]]
    assert got.loc["COPY_TEST"].tolist() == ["perceptual", "test", run["image_id"][7]]
    assert got.loc["OTHER"].tolist() == ["group", "train", run["image_id"][0]]
    assert report.seen == {"id": 0, "content": 1, "perceptual": 2, "group": 1}
    assert report.run_test == 1 and report.kept == 0


def test_phash_tells_real_lesions_apart_and_finds_their_copies(tmp_path):
    """On real HAM10000 images: a resized, re-compressed copy matches, other lesions do not."""
    meta = REAL_HAM / "HAM10000_metadata.csv"
    if not meta.is_file():
        pytest.skip(f"real HAM10000 images not found at {REAL_HAM}")
    meta = pd.read_csv(meta).drop_duplicates("lesion_id").head(60)
    folders = [REAL_HAM / "HAM10000_images_part_1", REAL_HAM / "HAM10000_images_part_2"]
    found = [[f / f"{i}.jpg" for f in folders if (f / f"{i}.jpg").is_file()] for i in meta.image_id]
    table = pd.DataFrame({"path": [str(p[0]) for p in found]})
    hashes = hash_files(table["path"], progress=False)["phash"].tolist()
    pairs = close_pairs(hashes)
    assert pairs.empty  # 60 different lesions: no two are "the same picture"
    for path in table["path"].head(10):
        copy = resized_copy(Path(path), tmp_path / "copy.jpg", 0.5, 70)
        near = close_pairs([file_hashes(copy)[1]], hashes)
        assert near["j"].tolist() == [table["path"].tolist().index(path)]


def test_close_pairs_equals_brute_force():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, (40, 256), dtype=np.uint8)
    noisy = base.copy()
    flips = rng.integers(0, 60, 40)  # 0..59 flipped bits: some within the limit, some beyond
    for row, k in enumerate(flips):
        noisy[row, rng.choice(256, k, replace=False)] ^= 1
    to_hex = [bytes(np.packbits(r)).hex() for r in (*base, *noisy)]
    a, b = to_hex[:40], to_hex[40:]
    got = close_pairs(a, b, PHASH_MAX_DISTANCE)
    dist = (base[:, None, :] != noisy[None, :, :]).sum(-1)
    want = np.argwhere(dist <= PHASH_MAX_DISTANCE)
    assert sorted(map(tuple, got[["i", "j"]].to_numpy())) == sorted(map(tuple, want))
    assert (got["distance"].to_numpy() == dist[got["i"], got["j"]]).all()
    within = close_pairs(a + b[:5], None, PHASH_MAX_DISTANCE)
    assert (within["i"] < within["j"]).all()
    assert {(i, 40 + i) for i in range(5) if flips[i] <= PHASH_MAX_DISTANCE} <= set(
        map(tuple, within[["i", "j"]].to_numpy())
    )


def test_hashes_are_cached_per_file_version(synthderm, tmp_path, monkeypatch):
    paths = [shutil.copy(p, tmp_path / p.name) for p in sorted(synthderm.rglob("ISIC_*.jpg"))[:3]]
    first = hash_files(paths, progress=False)
    assert first.notna().all().all() and first["sha256"].str.len().eq(64).all()

    def fail(path):
        raise AssertionError(f"{path} hashed again")

    monkeypatch.setattr(overlap, "file_hashes", fail)
    pd.testing.assert_frame_equal(hash_files(paths, progress=False), first)
    monkeypatch.undo()
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    Image.open(paths[1]).transpose(Image.Transpose.ROTATE_90).save(paths[1])  # changed file
    again = hash_files(paths, progress=False)
    assert again["sha256"].iloc[1] != first["sha256"].iloc[1]
    pd.testing.assert_frame_equal(again.iloc[[0, 2]], first.iloc[[0, 2]])


def test_unreadable_files_are_not_hashed(tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    hashes = hash_files([str(bad), str(tmp_path / "missing.jpg")], progress=False)
    assert hashes.isna().all().all()


def test_match_images_prefers_the_strongest_evidence():
    reference = pd.DataFrame(
        {"image_id": ["A", "B"], "group": ["L1", "B"], "sha256": ["x", "y"], "phash": np.nan}
    )
    table = pd.DataFrame(
        {
            "image_id": ["a.JPG", "C", "D", "E"],
            "group": ["L9", "C", "L1", "E"],
            "sha256": ["y", "y", "z", np.nan],
            "phash": np.nan,
        }
    )
    got = match_images(table, reference)
    assert got["reason"].tolist()[:3] == ["id", "content", "group"]
    assert got["match"].tolist()[:3] == ["A", "B", "A"]
    assert pd.isna(got["reason"].iloc[3])  # "B" as a group is only an image id: no lesion


def test_dicom_and_exif_pictures_hash_like_their_jpeg(tmp_path, synthderm):
    from fixtures.builders import write_dicom

    source = sorted(synthderm.rglob("ISIC_*.jpg"))[0]
    pixels = np.asarray(Image.open(source).convert("RGB"))
    dicom = write_dicom(tmp_path / "a.dcm", pixels)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated, shown upright
    rotated = tmp_path / "rotated.jpg"
    Image.fromarray(np.rot90(pixels, 1)).save(rotated, exif=exif, quality=95)
    hashes = [file_hashes(p)[1] for p in (source, dicom, rotated)]
    assert close_pairs(hashes[:1], hashes[1:])["j"].tolist() == [0, 1]


def test_file_hashes_are_sha256_and_phash_of_the_picture(synthderm):
    """One read gives both: sha256 of the bytes, pHash of the decoded picture."""
    path = sorted(synthderm.rglob("ISIC_*.jpg"))[0]
    sha, phash = file_hashes(path)
    assert sha == overlap.content_hash(path.read_bytes())
    assert phash == overlap.perceptual_hash(Image.open(io.BytesIO(path.read_bytes())))
