"""What the data look like before a model sees them (notebook 01), as functions of the table.

Every function takes the common-schema table (``image_id, group, label, path`` and, where the
source has them, ``age, sex, site`` and a ``split`` column) of any format, so the same EDA runs
on SynthDerm, HAM10000 or ISIC 2019 and is testable on a ten-row DataFrame.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from PIL import Image

from skinlib.data.splits import SPLITS, audit_split, shared_groups


def class_counts(table: pd.DataFrame) -> pd.DataFrame:
    """Images, lesions and share of images per class, largest class first."""
    counts = table["label"].value_counts()
    out = pd.DataFrame({"images": counts, "lesions": table.groupby("label")["group"].nunique()})
    out["share"] = out["images"] / out["images"].sum()
    out.index.name = "class"
    return out.sort_values("images", ascending=False)


def imbalance_ratio(counts: pd.DataFrame) -> float:
    """Largest class over smallest (what plain accuracy lets a model ignore)."""
    return float(counts["images"].max() / counts["images"].min())


def metadata_by_class(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and SD of age, share of men and the most common site per class (NaN where absent)."""
    frame = table.assign(
        **{c: table.get(c, pd.Series(np.nan, index=table.index)) for c in ("age", "sex", "site")}
    )
    out = frame.groupby("label").agg(
        age_mean=("age", "mean"),
        age_sd=("age", "std"),
        male=("sex", lambda s: float((s == "male").mean()) if s.notna().any() else np.nan),
        top_site=("site", lambda s: s.mode().iloc[0] if s.notna().any() else "--"),
    )
    out.index.name = "class"
    return out


def images_per_lesion(table: pd.DataFrame) -> pd.DataFrame:
    """How many lesions have 1, 2, 3 ... images (near-duplicates a split must keep together)."""
    per = table.groupby("group").size().value_counts().sort_index()
    return per.rename_axis("images of the lesion").rename("lesions").to_frame()


def image_sizes(table: pd.DataFrame, n: int = 200, seed: int = 0) -> pd.DataFrame:
    """Width x height of a random sample of ``n`` images (headers only, no decoding)."""
    rows = table.sample(min(n, len(table)), random_state=seed)
    sizes = []
    for path in rows["path"]:
        with Image.open(path) as im:
            sizes.append(im.size)
    frame = pd.DataFrame(sizes, columns=["width", "height"])
    return frame.value_counts().rename("images").reset_index()


def split_audit(table: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The split actually used against a naive image-level split of the same images.

    Returns:
        ``counts``: images per class and split with the largest deviation (percentage points)
        of a class's share in any split from its overall share; ``leakage``: lesions found in
        two splits, for the grouped split and for an image-level random split with the same
        fractions.
    """
    audit = audit_split(table)
    counts = audit.counts.copy()
    counts["max deviation (points)"] = (audit.max_deviation * 100).round(2)
    counts.index.name = "class"
    shares = table["split"].value_counts(normalize=True)
    shares = shares.reindex([s for s in SPLITS if s in shares.index])
    rng = np.random.default_rng(seed)
    naive = table.assign(split=rng.choice(shares.index, len(table), p=shares.to_numpy()))
    leakage = pd.DataFrame(
        {
            "split": ["grouped by lesion (used)", "image-level random"],
            "lesions in two splits": [audit.shared_groups, len(shared_groups(naive))],
        }
    )
    return counts, leakage


def sample_grid(table: pd.DataFrame, per_class: int = 6, seed: int = 0, classes=None):
    """A grid of random images, one row per class (any format: reads the table's paths)."""
    # matplotlib only when a grid is drawn: the data layer stays light for the CLI
    import matplotlib.pyplot as plt

    names = list(classes or sorted(table["label"].unique()))
    fig, axes = plt.subplots(
        len(names), per_class, figsize=(per_class * 0.9, len(names) * 0.95), squeeze=False
    )
    rng = np.random.default_rng(seed)
    for i, name in enumerate(names):
        rows = table[table["label"] == name]
        picks = rows.iloc[rng.permutation(len(rows))[:per_class]]
        for j in range(per_class):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if j < len(picks):
                with Image.open(picks["path"].iloc[j]) as im:
                    ax.imshow(im.convert("RGB"))
        axes[i, 0].set_ylabel(name, rotation=0, ha="right", va="center", fontsize=9)
    fig.subplots_adjust(wspace=0.04, hspace=0.04, left=0.12, right=0.99, top=0.99, bottom=0.01)
    return fig
