"""Class vocabularies of the public datasets, the mapping between them, and table merging.

Canonical codes are HAM10000's lowercase ones, plus ``scc``:

=========  =========  ==================================================================
code       ISIC 2019  meaning (and what else the sources file under it)
=========  =========  ==================================================================
akiec      AK         actinic keratosis; HAM10000's akiec also holds intraepithelial
                      carcinoma (Bowen's disease), which ISIC 2019 files under AK too
bcc        BCC        basal cell carcinoma
bkl        BKL        benign keratosis: seborrheic keratosis, solar lentigo, lichen-planus-
                      like (lichenoid) keratosis; ISIC 2020's "lentigo NOS" too
df         DF         dermatofibroma
mel        MEL        melanoma
nv         NV         melanocytic nevus
vasc       VASC       vascular lesion
scc        SCC        squamous cell carcinoma (ISIC 2019 only: no HAM10000 counterpart)
=========  =========  ==================================================================

ISIC 2018 Task 3 uses HAM10000's seven classes with upper-case one-hot columns (``AKIEC`` where
ISIC 2019 writes ``AK``). PH2 has melanocytic lesions only: its common and atypical nevi are
``nv``, its melanomas ``mel``.

ISIC 2019 ``UNK`` and ISIC 2020's ``unknown``, ``cafe-au-lait macule`` and ``atypical melanocytic
proliferation`` have no counterpart (the SIIM-ISIC 2020 winners mapped the last two to unknown
as well): :func:`map_labels` refuses them by name, and callers drop those rows first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

import pandas as pd

from skinlib.errors import DataError

log = logging.getLogger(__name__)

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
# ISIC 2018 Task 3 one-hot columns (HAM10000's classes under upper-case names)
ISIC2018_COLUMNS = {
    "MEL": "mel",
    "NV": "nv",
    "BCC": "bcc",
    "AKIEC": "akiec",
    "BKL": "bkl",
    "DF": "df",
    "VASC": "vasc",
}
# PH2's clinical diagnoses: both kinds of nevus are melanocytic nevi (HAM10000's nv)
PH2_DIAGNOSES = {"Common Nevus": "nv", "Atypical Nevus": "nv", "Melanoma": "mel"}
PH2_CLASSES = ("mel", "nv")
MALIGNANT = ("akiec", "bcc", "mel", "scc")
NEGATIVE = "other"  # the rest in a binary task
BINARY_CLASSES = (NEGATIVE, "mel")  # melanoma vs rest (the ISIC 2020 format)
# What a reader is shown for each code (the app's labels and decisions)
CLASS_NAMES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
    "scc": "squamous cell carcinoma",
    NEGATIVE: "other (not the positive class)",
}

# Lower-case names (underscores read as spaces) -> canonical code: ISIC 2019 column names,
# ISIC 2020 `diagnosis` strings and the folder names people give classes.
ALIASES = {
    **{k.lower(): v for k, v in ISIC2019_COLUMNS.items()},
    **{k.lower(): v for k, v in ISIC2018_COLUMNS.items()},
    **{k.lower(): v for k, v in PH2_DIAGNOSES.items()},
    **{c: c for c in ISIC2019_CLASSES},
    "melanoma": "mel",
    "nevus": "nv",
    "naevus": "nv",
    "nevi": "nv",
    "melanocytic nevus": "nv",
    "melanocytic nevi": "nv",
    "basal cell carcinoma": "bcc",
    "actinic keratosis": "akiec",
    "actinic keratoses": "akiec",
    "bowen": "akiec",
    "bowens disease": "akiec",
    "intraepithelial carcinoma": "akiec",
    "squamous cell carcinoma": "scc",
    "dermatofibroma": "df",
    "vascular lesion": "vasc",
    "vascular lesions": "vasc",
    "benign keratosis": "bkl",
    "benign keratosis-like lesions": "bkl",
    "seborrheic keratosis": "bkl",
    "lentigo nos": "bkl",
    "lichenoid keratosis": "bkl",
    "solar lentigo": "bkl",
}


def class_name(code: str) -> str:
    """A class code as a reader sees it; unknown codes are shown as they are.

    >>> class_name("mel")
    'melanoma (mel)'
    """
    return f"{CLASS_NAMES[code]} ({code})" if code in CLASS_NAMES else code


def canonical(name: str) -> str | None:
    """The canonical code for a class name or alias, or None when it has none.

    >>> canonical("Melanoma"), canonical("AK"), canonical("lentigo NOS"), canonical("unknown")
    ('mel', 'akiec', 'bkl', None)
    """
    key = str(name).strip().lower().replace("_", " ").replace("'", "")
    return ALIASES.get(key)


def class_list(table: pd.DataFrame) -> list[str]:
    """Ordered classes of a table (a format's fixed list is its ``DatasetFormat.classes``).

    Canonical codes come in ISIC 2019 order, unknown codes after them (sorted); a binary table
    starts with ``other``.
    """
    labels = set(table["label"].astype(str))
    if NEGATIVE in labels:
        return [NEGATIVE, *sorted(labels - {NEGATIVE})]
    known = [c for c in ISIC2019_CLASSES if c in labels]
    return known + sorted(labels - set(known))


def map_labels(table: pd.DataFrame, target_classes: Sequence[str]) -> pd.DataFrame:
    """Express a table's labels in another vocabulary (e.g. ISIC 2019 data for a HAM10000 model).

    Raises:
        DataError: listing every class that has no counterpart and how many images carry it.
    """
    target = set(target_classes)
    mapped = table["label"].map(lambda x: canonical(x) or x)
    missing = table.loc[~mapped.isin(target), "label"].value_counts()
    if len(missing):
        detail = ", ".join(f"{k} ({v} images)" for k, v in missing.items())
        raise DataError(
            f"classes {detail} have no counterpart among {sorted(target)}; drop those rows "
            "first (e.g. table[table.label != 'scc']) or use a binary view (to_binary)"
        )
    out = table.copy()
    out["label"] = mapped
    return out


def to_binary(table: pd.DataFrame, positive: Iterable[str] = ("mel",)) -> pd.DataFrame:
    """One positive class (or a set, e.g. :data:`MALIGNANT`) against the rest.

    The positive label is the codes joined by ``+`` (``mel``, or ``akiec+bcc+mel``); the rest
    becomes ``other``, so the classes are ``["other", <positive>]``. The original label is kept
    in ``label_multiclass``.
    """
    positive = sorted({canonical(p) or p for p in positive})
    if not positive:
        raise DataError("to_binary needs at least one positive class, e.g. ['mel']")
    name = "+".join(positive)
    out = table.copy()
    out["label_multiclass"] = out["label"]
    out["label"] = [name if lab in positive else NEGATIVE for lab in out["label"]]
    return out


def merge_tables(tables: Sequence[pd.DataFrame], on_duplicate: str = "keep_first") -> pd.DataFrame:
    """Concatenate sources; an image id present in several sources is kept once (or raises).

    ISIC 2019 contains all of HAM10000 under the same ``ISIC_*`` ids, so merging the two without
    this check would count (and split) those images twice. The kept row's ``group`` decides the
    split, so load ISIC 2019 with its metadata file: it carries HAM10000's lesion ids.

    Args:
        tables: common-schema tables, the preferred source first.
        on_duplicate: ``keep_first`` (drop later copies, log the count) or ``raise``.
    """
    if on_duplicate not in ("keep_first", "raise"):
        raise DataError(f"on_duplicate={on_duplicate!r}; choose keep_first or raise")
    merged = pd.concat(tables, ignore_index=True)
    dup = merged["image_id"].duplicated(keep="first")
    if dup.any():
        ids = merged.loc[dup, "image_id"].head(5).tolist()
        if on_duplicate == "raise":
            raise DataError(
                f"{int(dup.sum())} image ids appear in several sources (e.g. {ids}); drop them "
                "from one source, or merge with on_duplicate='keep_first'"
            )
        log.warning(
            "merge: dropped %d images already present in an earlier source (e.g. %s)",
            int(dup.sum()),
            ids,
        )
    return merged.loc[~dup].reset_index(drop=True)
