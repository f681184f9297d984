"""Class vocabularies of the public datasets and the mapping between them.

Canonical codes are HAM10000's lowercase ones, plus ``scc``:

=========  ==============  ==================================================================
code       ISIC 2019       meaning
=========  ==============  ==================================================================
akiec      AK              actinic keratosis; HAM10000's akiec also holds intraepithelial
                           carcinoma (Bowen's disease), which ISIC 2019 files under AK too
bcc        BCC             basal cell carcinoma
bkl        BKL             benign keratosis (solar lentigo, seborrheic and lichen-planus-like
                           keratosis)
df         DF              dermatofibroma
mel        MEL             melanoma
nv         NV              melanocytic nevus
vasc       VASC            vascular lesion
scc        SCC             squamous cell carcinoma (not a HAM10000 class)
=========  ==============  ==================================================================

ISIC 2020 names diagnoses in words; :data:`ALIASES` maps them (and folder names) to codes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from skinlib.errors import DataError

HAM10000_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
ISIC2019_CLASSES = ("akiec", "bcc", "bkl", "df", "mel", "nv", "scc", "vasc")
ISIC2019_COLUMNS = {
    "MEL": "mel",
    "NV": "nv",
    "BCC": "bcc",
    "AK": "akiec",
    "BKL": "bkl",
    "DF": "df",
    "VASC": "vasc",
    "SCC": "scc",
}
MALIGNANT = ("akiec", "bcc", "mel", "scc")
NEGATIVE = "other"

ALIASES = {
    **{k.lower(): v for k, v in ISIC2019_COLUMNS.items()},
    **{c: c for c in ISIC2019_CLASSES},
    "melanoma": "mel",
    "nevus": "nv",
    "naevus": "nv",
    "melanocytic nevus": "nv",
    "basal cell carcinoma": "bcc",
    "actinic keratosis": "akiec",
    "actinic keratoses": "akiec",
    "squamous cell carcinoma": "scc",
    "dermatofibroma": "df",
    "vascular lesion": "vasc",
    "benign keratosis": "bkl",
    "seborrheic keratosis": "bkl",
    "lentigo nos": "bkl",
    "lichenoid keratosis": "bkl",
    "solar lentigo": "bkl",
    "atypical melanocytic proliferation": "nv",
    "cafe-au-lait macule": "bkl",
}


def canonical(name: str) -> str | None:
    """The canonical code for a class name or alias, or None when it has none."""
    return ALIASES.get(str(name).strip().lower().replace("_", " "))


def class_list(source: pd.DataFrame | str) -> list[str]:
    """Ordered classes of a table (canonical order first, unknown codes after, sorted)."""
    if isinstance(source, str):
        return {"ham10000": list(HAM10000_CLASSES), "isic2019": list(ISIC2019_CLASSES)}.get(
            source, []
        ) or [NEGATIVE, "mel"]
    labels = set(source["label"].astype(str))
    if NEGATIVE in labels:
        return [NEGATIVE] + sorted(labels - {NEGATIVE})
    known = [c for c in ISIC2019_CLASSES if c in labels]
    return known + sorted(labels - set(known))


def map_labels(table: pd.DataFrame, target_classes: Sequence[str]) -> pd.DataFrame:
    """Express a table's labels in another vocabulary (e.g. ISIC 2019 data for a HAM10000 model).

    Raises:
        DataError: listing the classes that have no counterpart and how many images carry them.
    """
    target = set(target_classes)
    mapped = table["label"].map(lambda x: canonical(x) or x)
    missing = mapped[~mapped.isin(target)].value_counts()
    if len(missing):
        detail = ", ".join(f"{k} ({v} images)" for k, v in missing.items())
        raise DataError(
            f"classes {detail} have no counterpart among {sorted(target)}; drop those rows "
            "(e.g. table[table.label != 'scc']) or use a binary view (to_binary)"
        )
    out = table.copy()
    out["label"] = mapped
    return out


def to_binary(table: pd.DataFrame, positive: Iterable[str] = ("mel",)) -> pd.DataFrame:
    """One positive class (or a set, e.g. the malignant ones) against the rest.

    The positive label is the codes joined by ``+`` (``mel``, or ``akiec+bcc+mel``); the rest
    becomes ``other``. The original label is kept in ``label_multiclass``.
    """
    positive = sorted({canonical(p) or p for p in positive})
    name = "+".join(positive)
    out = table.copy()
    out["label_multiclass"] = out["label"]
    out["label"] = [name if lab in positive else NEGATIVE for lab in out["label"]]
    return out


def merge_tables(tables: Sequence[pd.DataFrame], on_duplicate: str = "keep_first") -> pd.DataFrame:
    """Concatenate sources; an image id present in several sources is kept once (or raises).

    Args:
        on_duplicate: ``keep_first`` (log the count) or ``raise``.
    """
    import logging

    merged = pd.concat(tables, ignore_index=True)
    dup = merged["image_id"].duplicated(keep="first")
    if dup.any():
        ids = merged.loc[dup, "image_id"].head(5).tolist()
        if on_duplicate == "raise":
            raise DataError(f"{int(dup.sum())} image ids appear in several sources, e.g. {ids}")
        logging.getLogger(__name__).warning(
            "merge: dropped %d images present in several sources (e.g. %s)", int(dup.sum()), ids
        )
    return merged.loc[~dup].reset_index(drop=True)
