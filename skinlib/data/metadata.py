"""Age, sex and anatomical site as a model input: one vector per image, encoded on the training split.

The common schema's ``age`` (years), ``sex`` and ``site`` columns (NaN where not recorded) become
``[age standardised, age missing, sex one-hot ..., sex unknown, site one-hot ..., site unknown]``.
The vocabularies and the age mean and standard deviation are learned from the training rows
alone; a value the training split never had, a missing value and a column a set lacks (an
external set without sites) all fall into the "unknown" level, so every table can be encoded.
The learned state is plain lists and numbers (:meth:`MetadataEncoder.state`), which the
checkpoint stores beside the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from skinlib.errors import ConfigError

METADATA_COLUMNS = ("age", "sex", "site")
UNKNOWN = "unknown"  # the level of a missing or never-trained-on sex or site


@dataclass(frozen=True)
class ImageMetadata:
    """What is recorded about one image's patient and lesion (None: not recorded)."""

    age: float | None = None  # years
    sex: str | None = None  # male | female, as the training data spell it
    site: str | None = None  # anatomical site, as the training data spell it ("back", ...)

    def row(self) -> dict:
        """The values as one common-schema row (NaN where not recorded)."""
        return {
            "age": math.nan if self.age is None else float(self.age),
            "sex": self.sex,
            "site": self.site,
        }


def _levels(table: pd.DataFrame, column: str) -> pd.Series:
    """A categorical column as lower-case text, NaN where not recorded (or the column absent)."""
    if column not in table:
        return pd.Series(np.nan, index=table.index, dtype=object)
    values = table[column].astype("string").str.strip().str.lower()
    return values.mask(values.isna() | values.isin(["", UNKNOWN, "nan"])).astype(object)


def _ages(table: pd.DataFrame) -> np.ndarray:
    """Ages in years as floats, NaN where not recorded (or the column absent)."""
    if "age" not in table:
        return np.full(len(table), np.nan)
    return pd.to_numeric(table["age"], errors="coerce").to_numpy(dtype=np.float64)


class MetadataEncoder:
    """Encodes age, sex and site; :meth:`fit` on the training rows, then :meth:`transform` any.

    >>> train = pd.DataFrame({"age": [40, 60, None], "sex": ["male", "female", None],
    ...                       "site": ["back", "face", "back"]})
    >>> enc = MetadataEncoder().fit(train)
    >>> enc.feature_names()
    ['age', 'age_missing', 'sex=female', 'sex=male', 'sex=unknown', 'site=back', 'site=face', 'site=unknown']
    >>> enc.transform(pd.DataFrame({"age": [70], "site": ["scalp"]})).tolist()
    [[2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]]
    """

    def __init__(self):
        pass  # learned state: age_mean_, age_std_, sexes_, sites_ (set by fit or from_state)

    def fit(self, table: pd.DataFrame) -> MetadataEncoder:
        """Learn the vocabularies and the age statistics from ``table`` (the training rows).

        Raises:
            ConfigError: the rows record no age, sex or site at all (nothing to learn from).
        """
        ages = _ages(table)
        known = ages[np.isfinite(ages)]
        self.sexes_ = sorted(set(_levels(table, "sex").dropna()))
        self.sites_ = sorted(set(_levels(table, "site").dropna()))
        if not len(known) and not self.sexes_ and not self.sites_:
            raise ConfigError(
                "model.metadata=true, but the training rows record no age, sex or site; this "
                "dataset format has no metadata: set model.metadata=false"
            )
        self.age_mean_ = float(known.mean()) if len(known) else 0.0
        std = float(known.std()) if len(known) > 1 else 0.0
        self.age_std_ = std if std > 0 else 1.0  # one age (or none): centred, not scaled
        return self

    @property
    def width(self) -> int:
        """Length of the encoded vector."""
        return 2 + len(self.sexes_) + 1 + len(self.sites_) + 1

    def feature_names(self) -> list[str]:
        """One name per entry of the encoded vector, in order."""
        sexes = [f"sex={s}" for s in [*self.sexes_, UNKNOWN]]
        sites = [f"site={s}" for s in [*self.sites_, UNKNOWN]]
        return ["age", "age_missing", *sexes, *sites]

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """(N, width) float32: one row per row of ``table``, in order; a missing column is
        missing in every row."""
        ages = _ages(table)
        missing = ~np.isfinite(ages)
        age = np.where(missing, 0.0, (np.nan_to_num(ages) - self.age_mean_) / self.age_std_)
        parts = [age[:, None], missing[:, None].astype(np.float64)]
        for column, vocabulary in (("sex", self.sexes_), ("site", self.sites_)):
            codes = pd.Categorical(_levels(table, column), categories=vocabulary).codes
            codes = np.where(codes < 0, len(vocabulary), codes)  # missing or unseen: unknown
            parts.append(np.eye(len(vocabulary) + 1)[codes])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def missing_row(self) -> np.ndarray:
        """(width,) the encoding of an image with nothing recorded."""
        return self.transform(pd.DataFrame(index=[0]))[0]

    def encode(self, metadata: ImageMetadata | None = None) -> np.ndarray:
        """(1, width) the encoding of one image's recorded values (None: nothing recorded)."""
        return self.transform(pd.DataFrame([(metadata or ImageMetadata()).row()]))

    def state(self) -> dict:
        """The learned state as plain lists and numbers (a ``weights_only`` checkpoint holds it)."""
        return {
            "columns": list(METADATA_COLUMNS),
            "age_mean": self.age_mean_,
            "age_std": self.age_std_,
            "sexes": list(self.sexes_),
            "sites": list(self.sites_),
        }

    @classmethod
    def from_state(cls, state: dict) -> MetadataEncoder:
        """The encoder :meth:`state` described."""
        enc = cls()
        enc.age_mean_, enc.age_std_ = float(state["age_mean"]), float(state["age_std"])
        enc.sexes_, enc.sites_ = list(state["sexes"]), list(state["sites"])
        return enc
