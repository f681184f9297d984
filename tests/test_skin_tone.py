"""Skin tone (ITA): the formula on patches of known colour, the lesion mask honoured, hairs and
the vignette left out, the bands, and the per-band audit on a fixed class set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from skinlib.evaluation.skin_tone import (
    ATTRIBUTE,
    BAND_NAMES,
    NOT_MEASURABLE,
    band_counts,
    band_performance,
    field_of_view,
    ita,
    ita_band,
    ita_table,
    skin_colour,
    skin_pixels,
)
from skinlib.evaluation.thresholds import OperatingPoint


def _patch(lightness: float, b: float, a: float = 12.0, shape=(60, 80)) -> np.ndarray:
    """A uniform uint8 sRGB patch of the CIELAB colour (L*, a*, b*)."""
    lab = np.broadcast_to([lightness, a, b], (*shape, 3)).astype(float)
    return (np.clip(lab2rgb(lab), 0, 1) * 255).round().astype(np.uint8)


def _formula(lightness: float, b: float) -> float:
    return float(np.degrees(np.arctan((lightness - 50) / b)))


@pytest.mark.parametrize(
    ("lightness", "b", "band"),
    [
        (82, 14, "very light"),
        (68, 18, "light"),
        (62, 20, "intermediate"),
        (55, 18, "tan"),
        (45, 20, "brown"),
        (36, 16, "dark"),
    ],
)
def test_ita_of_a_uniform_patch_is_the_formula(lightness, b, band):
    """The colour goes through sRGB and uint8 and back, as an image file's does: the measured
    angle matches arctan((L* - 50) / b*) within the rounding of 8-bit RGB."""
    measured = skin_colour(_patch(lightness, b))  # no mask: the border ring
    assert measured["lightness"] == pytest.approx(lightness, abs=0.5)
    assert measured["b"] == pytest.approx(b, abs=0.7)
    assert measured["ita"] == pytest.approx(_formula(lightness, b), abs=1.5)
    assert ita_band([measured["ita"]])[0] == band


def test_ita_is_the_formula_where_b_is_positive_and_does_not_flip_where_it_is_not():
    lightness = np.array([80.0, 55.0, 40.0, 20.0])
    b = np.array([10.0, 25.0, 5.0, 30.0])
    np.testing.assert_allclose(ita(lightness, b), np.degrees(np.arctan((lightness - 50) / b)))
    # a cool white balance (b* <= 0) on light skin: very light, not -90 (dark)
    assert ita(75.0, 0.0) == 90.0 and ita(75.0, -5.0) > 90.0
    assert ita_band([ita(75.0, -5.0)])[0] == "very light"
    # and on dark skin the angle says nothing: not measurable
    assert np.isnan(skin_colour(_patch(40, -6))["ita"])


def test_bands_follow_del_bino_and_bernerd_at_their_edges():
    values = [55.01, 55, 41.01, 41, 28.01, 28, 10.01, 10, -29.99, -30, np.nan]
    expected = ["very light", "light", "light", "intermediate", "intermediate", "tan", "tan"]
    expected += ["brown", "brown", "dark", NOT_MEASURABLE]
    assert ita_band(values).tolist() == expected


def test_the_lesion_mask_is_honoured():
    """Skin ITA 45 around a lesion of ITA -36 covering most of the image: with the mask the
    lesion's pixels do not count, whatever colour they are; the whole image would read the
    lesion."""
    skin, lesion_colour = _patch(70, 20), _patch(35, 20)
    yy, xx = np.mgrid[0:60, 0:80]
    lesion = np.hypot(yy - 30, xx - 40) < 34  # about 75% of the image
    image = np.where(lesion[..., None], lesion_colour, skin)
    masked = skin_colour(image, lesion)
    assert masked["ita"] == pytest.approx(_formula(70, 20), abs=1.5)
    other = np.where(lesion[..., None], _patch(60, 5), skin)  # another lesion colour
    assert skin_colour(other, lesion)["ita"] == masked["ita"]
    # the lesion's own pixels, mask grown by its margin, are never skin
    assert not (skin_pixels(rgb2lab(image), lesion) & lesion).any()
    everything = skin_colour(image, np.zeros_like(lesion))
    assert everything["ita"] < 0  # the lesion dominates when nothing is masked


def test_without_a_mask_the_border_ring_is_used(tmp_path):
    skin, lesion_colour = _patch(75, 15, shape=(90, 120)), _patch(30, 25, shape=(90, 120))
    yy, xx = np.mgrid[0:90, 0:120]
    lesion = np.hypot((yy - 45) / 45, (xx - 60) / 60) < 0.6  # centred, as dermoscopy frames it
    image = np.where(lesion[..., None], lesion_colour, skin)
    Image.fromarray(image).save(tmp_path / "a.png")
    Image.fromarray((lesion * 255).astype(np.uint8)).save(tmp_path / "a_mask.png")
    rows = pd.DataFrame(
        {
            "image_id": ["masked", "ring"],
            "path": [str(tmp_path / "a.png")] * 2,
            "mask_path": [str(tmp_path / "a_mask.png"), np.nan],
        }
    )
    table = ita_table(rows).set_index("image_id")
    assert table["skin_from"].tolist() == ["lesion mask", "border ring"]
    for name in ("masked", "ring"):
        assert table.loc[name, "ita"] == pytest.approx(_formula(75, 15), abs=1.5)
        assert table.loc[name, "band"] == "very light"


def test_hairs_and_the_dark_vignette_are_not_skin():
    """Thin dark lines (hairs darker than the skin around them, yet above the darkness cut) and
    the black corners of a round dermoscope field are left out; the skin's ITA is unmoved."""
    image = _patch(72, 18, shape=(120, 160)).copy()
    hair_colour = _patch(45, 10, shape=(1, 1))[0, 0]
    hair = np.zeros((120, 160), bool)
    for row in (20, 50, 90, 105):
        hair[row : row + 2, :] = True  # 2 px wide across the image
    image[hair] = hair_colour
    yy, xx = np.mgrid[0:120, 0:160]
    corners = np.hypot(yy - 59.5, xx - 79.5) > 85
    image[corners] = 5
    lab = rgb2lab(image)
    skin = skin_pixels(lab, np.zeros((120, 160), bool))
    assert not (skin & hair).any() and not (skin & corners).any()
    assert not field_of_view(lab[..., 0])[corners].any()  # the field ends before the corners
    assert field_of_view(lab[..., 0])[60, 80]
    assert skin_colour(image, np.zeros((120, 160), bool))["ita"] == pytest.approx(
        _formula(72, 18), abs=1.5
    )


def test_band_counts_list_every_band_light_to_dark():
    bands = pd.Series(["light", "very light", "light", "dark", NOT_MEASURABLE])
    split = pd.Series(["train", "test", "val", "train", "test"])
    counts = band_counts(bands, split, ["train", "val", "test"])
    assert counts.index.tolist() == [*BAND_NAMES, NOT_MEASURABLE]
    assert counts.columns.tolist() == ["train", "val", "test", "all"]
    assert counts.loc["light"].tolist() == [1, 1, 0, 2]
    assert counts.loc["tan", "all"] == 0 and counts["all"].sum() == 5
    assert NOT_MEASURABLE not in band_counts(bands[:4], split[:4]).index


def test_band_performance_compares_bands_on_the_classes_both_contain():
    """The light band holds classes 0, 1 and 2 and misses every image of class 2; the dark
    band holds only 0 and 1, read as well as in the light band. On a fixed class set (0 and 1)
    the two do not differ; balanced accuracy over each band's own classes would put the light
    band 0.33 below. The dark band is small (fewer lesions than min_lesions) and marked so."""
    n_light, n_dark = 300, 40
    y_light = np.repeat([0, 1, 2], n_light // 3)
    y_dark = np.repeat([0, 1], n_dark // 2)
    y = np.concatenate([y_light, y_dark])
    pred = np.where(y == 2, 0, y)  # class 2 always read as 0; 0 and 1 always right
    proba = np.full((len(y), 3), 0.05)
    proba[np.arange(len(y)), pred] = 0.9
    bands = ["light"] * n_light + ["dark"] * n_dark
    groups = np.arange(len(y))
    point = OperatingPoint(
        positive=["1"], criterion="specificity", target=0.9, threshold=0.5, temperature=1.0,
        val_sensitivity=1.0, val_specificity=1.0,
    )  # fmt: skip
    table = band_performance(
        bands, y, proba, groups, ["0", "1", "2"], point, n_boot=100, min_lesions=50
    )
    assert table["group"].tolist() == ["light", "dark"]  # light to dark, not by difference
    assert (table["attribute"] == ATTRIBUTE).all()
    rows = table.set_index("group")
    assert rows.loc["light", "classes"] == 2 and rows.loc["dark", "classes"] == 2
    assert rows.loc["light", "difference"] == pytest.approx(0.0)
    assert rows.loc["dark", "small"] and not rows.loc["light", "small"]
    recall = table.attrs["per_class_recall"].loc[ATTRIBUTE]
    assert recall.loc["light", "2"] == 0.0 and np.isnan(recall.loc["dark", "2"])
    sens = table.attrs["operating_point"].loc[ATTRIBUTE]
    assert sens.loc["dark", "sensitivity"] == 1.0 and sens.loc["dark", "positives"] == 20
