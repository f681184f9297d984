"""Skin tone as the individual typology angle (ITA) of the skin around a lesion, and its bands.

ITA (Chardon et al. 1991) is ``arctan((L* - 50) / b*)`` in degrees, from the CIELAB lightness
``L*`` and yellow-blue axis ``b*`` of skin; Del Bino and Bernerd (2013) cut it into six bands,
very light (> 55) to dark (< -30). Skin measured with a colorimeter has ``b* > 0``; in
dermoscopic images a cool white balance can push it to zero or below (in a sample of 300
HAM10000 images, 40% of the skin medians had ``b* <= 0``, light pinkish-lilac skin), where the
arctangent of the ratio flips from +90 to -90 degrees and would call light skin dark.
:func:`ita` therefore takes the angle of the point ``(b*, L* - 50)``, ``atan2``: the formula
itself wherever ``b* > 0``, continued past 90 degrees (very light) for light skin with
``b* <= 0``; skin darker than ``L*`` 50 with ``b* <= 0`` is not measurable (its angle would
swing to -180 degrees on a grey cast). :func:`ita_table` keeps the medians so the share with a
cast can be reported. Dermoscopic images are lit and white-balanced by the
dermoscope, not a colorimeter, so an ITA read from them is a proxy for constitutive skin colour,
not a Fitzpatrick type: it ranks images by how light the imaged skin looks.

Which pixels are skin (:func:`skin_pixels`): those outside the lesion mask, grown by a margin so
the blurred lesion border does not count, where a mask exists; else a border ring (the frame
outside a centred ellipse, since dermoscopic images centre the lesion). Where the dermoscope's
round field leaves dark corners, only the field is kept, less a rim (:func:`field_of_view`:
the contact plate's edge is often lit beige or brown, not skin). From those, three kinds of
pixel are dropped: what is left of the dark vignette and shadows (``L*`` below
:data:`DARK_L`), hairs (a morphological black-hat of ``L*`` deeper than :data:`HAIR_DEPTH`,
i.e. thin structures darker than their surroundings, grown by one pixel) and specular glare
(``L*`` above :data:`GLARE_L`). The image's ITA is from the median ``L*`` and median ``b*`` of the remaining pixels (the typical skin
colour, which a few missed hair or gel pixels do not move); an image with fewer than
:data:`MIN_SKIN_PIXELS` left is "not measurable".
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab
from skimage.morphology import black_tophat, disk

from skinlib.data.images import load_image
from skinlib.evaluation.subgroups import MIN_LESIONS, subgroup_table
from skinlib.evaluation.thresholds import OperatingPoint

# Del Bino & Bernerd (2013): (name, lower bound exclusive, upper bound inclusive), light first
ITA_BANDS = (
    ("very light", 55.0, np.inf),
    ("light", 41.0, 55.0),
    ("intermediate", 28.0, 41.0),
    ("tan", 10.0, 28.0),
    ("brown", -30.0, 10.0),
    ("dark", -np.inf, -30.0),
)
BAND_NAMES = tuple(name for name, _, _ in ITA_BANDS)
NOT_MEASURABLE = "not measurable"

SIDE = 256  # pixels: images are measured at most this large (longer side); ITA is a median
DARK_L = 25.0  # L*: darker pixels are vignette or shadow (dark skin measures L* 30-45)
GLARE_L = 95.0  # L*: brighter pixels are specular glare or gel reflections
HAIR_DEPTH = 8.0  # L*: a pixel this much darker than its closed neighbourhood is hair
HAIR_RADIUS = 1 / 50  # of the longer side: the black-hat's disk (hairs are thinner than it)
MASK_MARGIN = 1 / 40  # of the longer side: the lesion mask is grown by this before excluding it
FIELD_RIM = 0.15  # of the shorter side: taken off a round dermoscope field (its lit rim)
ATTRIBUTE = "skin tone"  # the attribute the bands are audited as
RING_INNER = 0.7  # the ring: outside a centred ellipse of this share of the half-axes
MIN_SKIN_PIXELS = 100  # fewer skin pixels left: the image is not measurable


def ita(lightness, b) -> np.ndarray:
    """The individual typology angle in degrees, ``arctan((L* - 50) / b*) * 180 / pi`` where
    ``b* > 0``; as the angle of ``(b*, L* - 50)`` it continues past +-90 degrees where a colour
    cast makes ``b* <= 0`` (light skin stays very light instead of flipping to dark).

    >>> float(ita(50.0 + 20.0, 20.0))  # arctan(1)
    45.0
    >>> float(ita(70.0, 0.0)), float(ita(70.0, -20.0))  # no flip to -90 at b* = 0
    (90.0, 135.0)
    """
    lightness, b = np.asarray(lightness, float), np.asarray(b, float)
    return np.degrees(np.arctan2(lightness - 50.0, b))


def ita_band(values) -> pd.Series:
    """ITA in degrees -> Del Bino and Bernerd's band name; missing values -> "not measurable".

    >>> ita_band([60, 41, 41.5, -30, float("nan")]).tolist()
    ['very light', 'intermediate', 'light', 'dark', 'not measurable']
    """
    v = pd.Series(np.asarray(values, float))
    out = pd.Series(NOT_MEASURABLE, index=v.index, dtype=object)
    for name, low, high in ITA_BANDS:
        out[(v > low) & (v <= high)] = name
    return out


def band_ranges() -> dict[str, str]:
    """Each band's ITA range in words, e.g. ``"41° to 55°"``."""
    words = {}
    for name, low, high in ITA_BANDS:
        if np.isinf(high):
            words[name] = f"above {low:g}°"
        elif np.isinf(low):
            words[name] = f"{high:g}° or below"
        else:
            words[name] = f"{low:g}° to {high:g}°"
    return words


def ring(shape: tuple[int, int], inner: float = RING_INNER) -> np.ndarray:
    """The border ring (H, W) bool: pixels outside a centred ellipse whose half-axes are
    ``inner`` of the image's, where a lesion without a mask is least likely to be."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    ry, rx = (yy - (h - 1) / 2) / (h / 2), (xx - (w - 1) / 2) / (w / 2)
    return np.hypot(ry, rx) > inner


def field_of_view(lightness: np.ndarray) -> np.ndarray:
    """The dermoscope's round field (H, W) bool, less a rim of :data:`FIELD_RIM` of the shorter
    side; everything where the image has no dark vignette.

    The field's radius is where, coming in from the corners, most pixels at that distance from
    the centre first stop being dark (``L*`` below :data:`DARK_L`): a dark lesion at the centre
    does not end the field early.
    """
    h, w = lightness.shape
    yy, xx = np.mgrid[0:h, 0:w]
    rho = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2).round().astype(int)
    dark = np.bincount(rho.ravel(), (lightness < DARK_L).ravel().astype(float))
    share = dark / np.maximum(np.bincount(rho.ravel()), 1)
    if share[-1] <= 0.5:  # the corners are not dark: no vignette
        return np.ones((h, w), bool)
    radius = np.flatnonzero(share <= 0.5)
    if not len(radius):
        return np.zeros((h, w), bool)
    return rho < radius[-1] - FIELD_RIM * min(h, w)


def skin_pixels(lab: np.ndarray, lesion: np.ndarray | None = None) -> np.ndarray:
    """The pixels of a CIELAB image (H, W, 3) taken as skin, as a bool (H, W) mask.

    Args:
        lab: ``L*`` in [0, 100], ``a*``, ``b*`` (skimage's :func:`~skimage.color.rgb2lab`, D65).
        lesion: (H, W) bool lesion mask; excluded after growing it by :data:`MASK_MARGIN` of the
            longer side. None: the border ring (:func:`ring`) instead.
    """
    lightness = lab[..., 0]
    side = max(lightness.shape)
    if lesion is None:
        region = ring(lightness.shape)
    else:
        grow = max(1, round(side * MASK_MARGIN))
        region = ~ndimage.binary_dilation(np.asarray(lesion, bool), disk(grow))
    hair = black_tophat(lightness, disk(max(1, round(side * HAIR_RADIUS)))) > HAIR_DEPTH
    hair = ndimage.binary_dilation(hair, disk(1))
    return (
        region & field_of_view(lightness) & ~hair & (lightness >= DARK_L) & (lightness <= GLARE_L)
    )


def skin_colour(rgb: np.ndarray, lesion: np.ndarray | None = None) -> dict[str, float]:
    """The skin colour of an image: median ``L*`` and ``b*`` of its skin pixels
    (:func:`skin_pixels`), their ITA, and how many pixels were skin.

    Args:
        rgb: (H, W, 3) uint8 sRGB.
        lesion: (H, W) bool lesion mask, or None for the border ring.

    Returns:
        ``{"ita", "lightness", "b", "skin_pixels"}``; NaN values below :data:`MIN_SKIN_PIXELS`.
    """
    lab = rgb2lab(np.asarray(rgb, np.uint8))
    keep = skin_pixels(lab, lesion)
    n = int(keep.sum())
    if n < MIN_SKIN_PIXELS:
        return {"ita": np.nan, "lightness": np.nan, "b": np.nan, "skin_pixels": n}
    lightness, b = float(np.median(lab[..., 0][keep])), float(np.median(lab[..., 2][keep]))
    # a colour cast (b* <= 0) on skin darker than L* 50: the angle says nothing (near -180)
    angle = np.nan if b <= 0 and lightness < 50 else float(ita(lightness, b))
    return {"ita": angle, "lightness": lightness, "b": b, "skin_pixels": n}


def _measured_size(size: tuple[int, int], side: int) -> tuple[int, int]:
    scale = min(1.0, side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def image_colour(path: str, mask_path: str | None = None, side: int = SIDE) -> dict[str, float]:
    """:func:`skin_colour` of an image file, shrunk to at most ``side`` pixels (longer side), with
    its lesion mask (non-zero = lesion, resized to the image, nearest) where one is given."""
    image = load_image(path)
    size = _measured_size(image.size, side)
    rgb = np.asarray(image.resize(size, Image.Resampling.BILINEAR))
    lesion = None
    if isinstance(mask_path, str) and mask_path:
        with Image.open(mask_path) as m:
            lesion = np.asarray(m.convert("L").resize(size, Image.Resampling.NEAREST)) > 0
    return skin_colour(rgb, lesion)


def ita_table(rows: pd.DataFrame, side: int = SIDE) -> pd.DataFrame:
    """ITA of every image of a common-schema table (``image_id``, ``path``, optional
    ``mask_path``), in its order.

    Returns:
        ``image_id, ita, band, lightness, b`` (the skin's median ``L*`` and ``b*``),
        ``skin_from`` ("lesion mask" or "border ring"), ``skin_pixels``.
    """
    masks = rows["mask_path"] if "mask_path" in rows else pd.Series(np.nan, index=rows.index)
    out = []
    for image_id, path, mask in zip(rows["image_id"], rows["path"], masks, strict=True):
        has_mask = isinstance(mask, str) and bool(mask)
        colour = image_colour(path, mask if has_mask else None, side)
        from_ = "lesion mask" if has_mask else "border ring"
        out.append({"image_id": image_id, **colour, "skin_from": from_})
    columns = ["image_id", "ita", "lightness", "b", "skin_pixels", "skin_from"]
    table = pd.DataFrame(out, columns=columns)
    table.insert(2, "band", ita_band(table["ita"]).to_numpy())
    return table


def band_counts(
    bands: pd.Series, by: pd.Series, order: Sequence[str] | None = None
) -> pd.DataFrame:
    """Images per band (rows, light to dark, then "not measurable" where any) and per value of
    ``by`` (columns, e.g. split or class, in ``order``), with an ``all`` column.

    Args:
        bands: (N,) band names (:func:`ita_band`); by: (N,) aligned with it.
    """
    frame = pd.crosstab(pd.Series(np.asarray(bands), name="band"), pd.Series(np.asarray(by)))
    columns = list(order) if order is not None else sorted(frame.columns)
    rows = [*BAND_NAMES, *([NOT_MEASURABLE] if NOT_MEASURABLE in frame.index else [])]
    frame = frame.reindex(index=rows, columns=columns, fill_value=0)
    frame["all"] = frame.sum(axis=1)
    frame.columns.name = None
    return frame


def band_performance(
    bands: Sequence[str],
    labels: np.ndarray,
    proba: np.ndarray,
    groups: Sequence,
    classes: Sequence[str],
    point: OperatingPoint | None = None,
    n_boot: int = 1000,
    min_lesions: int = MIN_LESIONS,
    seed: int = 0,
) -> pd.DataFrame:
    """Each ITA band against the rest of the images, by the subgroup audit's own machinery
    (:func:`skinlib.evaluation.subgroups.subgroup_table`): balanced accuracy on the classes
    both contain (a fixed class set, so a band's case mix does not decide), the difference with
    a lesion-bootstrap interval, Holm's adjustment over the bands not small, per-class recall
    and AUC by band and, given ``point``, the positive set's sensitivity at the stored
    threshold with its interval.

    Args:
        bands: (N,) band names (:func:`ita_band`), aligned with ``labels``.
        labels, proba, groups: (N,) class indices, (N, C) calibrated probabilities, lesions.

    Returns:
        :func:`~skinlib.evaluation.subgroups.subgroup_table`'s rows (``attribute`` is
        :data:`ATTRIBUTE`), light to dark, then "not measurable"; its ``attrs`` as there.
    """
    attributes = pd.DataFrame({ATTRIBUTE: np.asarray(bands, dtype=object)})
    table = subgroup_table(
        labels,
        proba,
        groups,
        attributes,
        n_boot=n_boot,
        min_lesions=min_lesions,
        seed=seed,
        classes=classes,
        point=point,
    )
    order = {name: i for i, name in enumerate([*BAND_NAMES, NOT_MEASURABLE])}
    ordered = table.sort_values("group", key=lambda g: g.map(order), kind="stable")
    ordered = ordered.reset_index(drop=True)
    ordered.attrs = table.attrs | ({"positive": list(point.positive)} if point else {})
    return ordered


def performance_table(audit: pd.DataFrame) -> pd.DataFrame:
    """:func:`band_performance` as a reader sees it, one row per band (small ones marked in
    their name): lesions, the classes compared, balanced accuracy on them and its difference
    from the rest (each with ``_low``/``_high``), Holm's p, and where an operating point was
    given the positive set's sensitivity at its threshold (with ``_low``/``_high``) and AUC."""
    rows = audit.set_index("group")
    names = [f"{b} (small)" if s else b for b, s in zip(rows.index, rows["small"], strict=True)]
    out = pd.DataFrame(index=pd.Index(names, name="band"))
    out["lesions"] = rows["lesions"].to_numpy()
    out["classes"] = rows["classes"].to_numpy()
    for name, column in (("balanced_accuracy", "value"), ("", "low"), ("", "high")):
        out[name or f"balanced_accuracy_{column}"] = rows[column].to_numpy()
    for suffix in ("", "_low", "_high"):
        out[f"difference{suffix}"] = rows[f"difference{suffix}"].to_numpy()
    out["Holm p"] = rows["p_holm"].to_numpy()
    if "operating_point" in audit.attrs and "positive" in audit.attrs:
        positive = "+".join(audit.attrs["positive"])
        at = audit.attrs["operating_point"].loc[ATTRIBUTE].reindex(rows.index)
        for suffix in ("", "_low", "_high"):
            if f"sensitivity{suffix}" in at:
                out[f"sensitivity {positive}{suffix}"] = at[f"sensitivity{suffix}"].to_numpy()
        auc = audit.attrs["per_class_auc"].loc[ATTRIBUTE].reindex(rows.index)
        if positive in auc:
            out[f"AUC {positive}"] = auc[positive].to_numpy()
    return out
