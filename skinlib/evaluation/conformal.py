"""Conformal prediction sets: every class the model cannot rule out at a chosen coverage.

Split conformal prediction (Vovk et al. 2005; Angelopoulos and Bates 2021) turns any classifier's
probabilities into sets that contain the true class with probability at least ``1 - alpha``,
provided calibration and test images are exchangeable. The calibration set is the run's
calibration split where it has one (``data.calibration_fraction``), else the validation split:
never seen in training, never the test set. Three scores of how badly a class fits:

* ``lac``: ``1 - p_class`` (Sadinle et al. 2019): the smallest sets on average.
* ``aps``: the probability mass of every class at least as likely as this one (Romano et al.
  2020): sets grow where the model is unsure, so coverage holds better per image.
* ``raps``: APS plus ``lam`` per rank beyond ``k_reg`` (Angelopoulos et al. 2021): fewer
  unlikely classes in the sets.

Sets here are the non-randomised ones (``{k: score_k <= q}``): reproducible and at least as
large as the randomised ones, so the guarantee still holds. ``mondrian=True`` fits one quantile
per true class (Vovk's class-conditional conformal), so rare classes get their own coverage
instead of borrowing nv's.

**Lesions are not exchangeable images.** Images of one lesion resemble each other, so a lesion
photographed twenty times counts twenty times in an image-level quantile. With ``groups`` every
lesion carries weight 1, split evenly over its images, and the quantile is taken on the lesion
scale: the guarantee is then for a new lesion (which is what a patient brings). That pooling is
asymptotically valid; the finite-sample guarantee holds exactly for one image per lesion, which
``calibration="one-image"`` offers (one image drawn per lesion, seeded). Coverage is reported at
the same unit (:func:`coverage_table`: each lesion weighs 1). Mondrian weights count each
(group, class) pair once, so a patient with a melanoma and naevi weighs 1 in each class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from skinlib.data.splits import split_name
from skinlib.evaluation.bootstrap import bootstrap_weights
from skinlib.evaluation.predictions import Predictions
from skinlib.io import read_json, write_json

METHODS = ("lac", "aps", "raps")


def class_scores(proba: np.ndarray, method: str = "lac", lam: float = 0.01, k_reg: int = 1):
    """Non-conformity score of every class for every image: (N, C); higher = fits worse.

    Args:
        proba: (N, C) probabilities.
        method: one of :data:`METHODS`.
        lam: RAPS penalty per rank beyond ``k_reg``.
        k_reg: RAPS: ranks up to this one are not penalised.
    """
    p = np.asarray(proba, dtype=float)
    if method == "lac":
        return 1.0 - p
    if method not in METHODS:
        raise ValueError(f"unknown conformal method {method!r}; choose from {list(METHODS)}")
    order = np.argsort(-p, axis=1, kind="stable")
    sorted_p = np.take_along_axis(p, order, axis=1)
    cum = np.cumsum(sorted_p, axis=1)  # mass of this class and every likelier one
    if method == "raps":
        rank = np.arange(1, p.shape[1] + 1)
        cum = cum + lam * np.maximum(rank - k_reg, 0)
    scores = np.empty_like(p)
    np.put_along_axis(scores, order, cum, axis=1)
    return scores


def group_weights(groups: Sequence | None, n: int) -> np.ndarray:
    """Weight per image so that each group (lesion) weighs 1 in all: (N,); None: all ones."""
    if groups is None:
        return np.ones(n)
    codes = pd.factorize(pd.Series(np.asarray(groups)))[0]
    if len(codes) != n:
        raise ValueError(f"groups has {len(codes)} entries for {n} images")
    return 1.0 / np.bincount(codes)[codes]


def one_image_per_lesion(groups: Sequence, seed: int = 0) -> np.ndarray:
    """Indices of one randomly drawn image per group (seeded): with them the calibration scores
    are exchangeable with a new lesion's, so the finite-sample guarantee holds exactly."""
    codes = pd.factorize(pd.Series(np.asarray(groups)))[0]
    order = np.random.default_rng(seed).permutation(len(codes))
    _, first = np.unique(codes[order], return_index=True)
    return np.sort(order[first])


def class_group_weights(groups: Sequence | None, labels: np.ndarray) -> np.ndarray:
    """Weights so that each (group, class) pair weighs 1: a patient group can hold several
    classes, and each class's Mondrian quantile must count that patient once, not a fraction."""
    y = np.asarray(labels)
    if groups is None:
        return np.ones(len(y))
    pairs = pd.Series(np.asarray(groups)).astype(str) + "\x00" + pd.Series(y).astype(str)
    return group_weights(pairs.to_numpy(), len(y))


def min_lesions(coverage: float) -> int:
    """Fewest calibration lesions giving a finite threshold: ``ceil((n + 1)(1 - a)) <= n``.

    >>> min_lesions(0.9), min_lesions(0.95)
    (9, 19)
    """
    alpha = 1 - coverage
    return math.ceil((1 - alpha) / alpha - 1e-9)


def conformal_quantile(scores: np.ndarray, alpha: float, weights: np.ndarray | None = None):
    """The split-conformal threshold: the ``ceil((n + 1)(1 - alpha))``-th smallest score.

    With weights (lesion weights summing to the number of lesions ``n``), the smallest score whose
    weighted count reaches ``(n + 1)(1 - alpha)``. ``inf`` where ``n`` is too small for the
    coverage (every class then enters the set: the honest answer with too few examples).

    >>> conformal_quantile(np.arange(1, 10) / 10, alpha=0.2)  # ceil(10 * 0.8) = 8th of 9
    0.8
    """
    s = np.asarray(scores, dtype=float)
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=float)
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    n = w.sum()
    need = math.ceil((n + 1) * (1 - alpha) - 1e-9)
    if len(s) == 0 or need > n + 1e-9:
        return math.inf
    order = np.argsort(s, kind="stable")
    reached = np.cumsum(w[order]) >= need - 1e-9
    return float(s[order][np.argmax(reached)])


class ConformalClassifier:
    """Split-conformal sets on top of fixed probabilities (scikit-learn style).

    ``fit`` on calibration probabilities and labels learns ``quantile_`` (per class with
    ``mondrian``, as ``quantiles_`` (C,)); ``predict_sets`` returns a boolean (N, C) mask.

    Args:
        method: ``lac``, ``aps`` or ``raps`` (see the module docstring).
        coverage: target coverage ``1 - alpha``, e.g. 0.9.
        mondrian: one quantile per true class (class-conditional coverage).
        lam, k_reg: RAPS regularisation.
        calibration: ``"lesion-weighted"`` (every image, each lesion weighing 1: asymptotically
            valid) or ``"one-image"`` (one image drawn per lesion with ``seed``: the exact
            finite-sample guarantee); ``calibration_`` records which ran.
    """

    def __init__(
        self,
        method: str = "lac",
        coverage: float = 0.9,
        mondrian: bool = False,
        lam: float = 0.01,
        k_reg: int = 1,
        calibration: str = "lesion-weighted",
        seed: int = 0,
    ):
        if calibration not in ("lesion-weighted", "one-image"):
            raise ValueError(f"unknown calibration {calibration!r}")
        self.calibration = calibration
        self.seed = seed
        self.method = method
        self.coverage = coverage
        self.mondrian = mondrian
        self.lam = lam
        self.k_reg = k_reg

    def _scores(self, proba: np.ndarray) -> np.ndarray:
        return class_scores(proba, self.method, self.lam, self.k_reg)

    def fit(self, proba: np.ndarray, labels: np.ndarray, groups: Sequence | None = None):
        """Calibrate on held-out images; ``groups`` (lesion ids) weighs each lesion once."""
        p, y = np.asarray(proba, dtype=float), np.asarray(labels, dtype=int)
        self.calibration_ = "image-level" if groups is None else self.calibration
        if groups is not None and self.calibration == "one-image":
            keep = one_image_per_lesion(groups, self.seed)
            p, y, groups = p[keep], y[keep], np.asarray(groups)[keep]
        true_scores = self._scores(p)[np.arange(len(y)), y]
        alpha = 1 - self.coverage
        classes = range(p.shape[1])
        if self.mondrian:
            w = class_group_weights(groups, y)
            self.quantiles_ = np.array(
                [conformal_quantile(true_scores[y == c], alpha, w[y == c]) for c in classes]
            )
        else:
            w = group_weights(groups, len(y))
            self.quantiles_ = np.full(p.shape[1], conformal_quantile(true_scores, alpha, w))
        cw = class_group_weights(groups, y)
        self.class_lesions_ = np.array([cw[y == c].sum() for c in classes])
        self.n_calibration_ = int(len(y))
        self.n_groups_ = float(w.sum())
        return self

    def threshold_table(self, classes: Sequence[str]) -> pd.DataFrame:
        """Per class: threshold, calibration lesions, and whether the class enters every set
        because too few lesions calibrate it (an infinite threshold)."""
        return pd.DataFrame(
            {
                "threshold": self.quantiles_,
                "calibration_lesions": np.rint(self.class_lesions_).astype(int),
                "in_every_set": ~np.isfinite(self.quantiles_),
            },
            index=pd.Index(list(classes), name="class"),
        )

    @property
    def quantile_(self) -> float:
        """The single threshold (not for Mondrian sets, which have one per class)."""
        if self.mondrian:
            raise AttributeError("a Mondrian predictor has one threshold per class: quantiles_")
        return float(self.quantiles_[0])

    def predict_sets(self, proba: np.ndarray) -> np.ndarray:
        """(N, C) bool: class k is in image i's set."""
        return self._scores(proba) <= self.quantiles_[None, :]


def coverage_table(
    sets: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    groups: Sequence | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """Coverage and mean set size at the calibrated unit, overall and per true class, with
    lesion-bootstrap 95% intervals.

    Calibration weighs each lesion 1 (the guarantee is per lesion), so coverage is reported the
    same way: each lesion weighs 1, split over its images. Image averages (``image_coverage``,
    ``image_mean_size``) sit beside it, labelled: where hard lesions are photographed more often
    they understate a per-lesion coverage.

    Returns:
        Rows ``all`` then each class: ``coverage, coverage_low, coverage_high, mean_size,
        mean_size_low, mean_size_high, image_coverage, image_mean_size, images, lesions``.
    """
    y = np.asarray(labels, dtype=int)
    hit = sets[np.arange(len(y)), y].astype(float)
    size = sets.sum(1).astype(float)
    rows = []
    for name, keep in [("all", np.ones(len(y), bool))] + [
        (c, y == k) for k, c in enumerate(classes)
    ]:
        if not keep.any():
            continue
        g = None if groups is None else np.asarray(groups)[keep]
        lw = group_weights(g, int(keep.sum()))
        row = {"class": name, "images": int(keep.sum()), "lesions": int(round(lw.sum()))}
        for metric, v in (("coverage", hit[keep]), ("mean_size", size[keep])):
            row[metric] = float(lw @ v / lw.sum())
            row[f"image_{metric}"] = float(v.mean())
            boots = np.concatenate(
                [
                    ((w * lw) @ v) / (w * lw).sum(1)
                    for w in bootstrap_weights(g, len(v), n_boot, seed)
                ]
            )
            row[f"{metric}_low"], row[f"{metric}_high"] = np.nanquantile(boots, [0.025, 0.975])
        rows.append(row)
    return pd.DataFrame(rows).set_index("class")


def setting_name(method: str, coverage: float, mondrian: bool, grouped: bool = True) -> str:
    """How the tables and findings name a setting: ``"aps Mondrian 90%"``, ``"lac 90%
    image-level"``.

    >>> setting_name("aps", 0.9, mondrian=True), setting_name("lac", 0.95, False, grouped=False)
    ('aps Mondrian 90%', 'lac 95% image-level')
    """
    name = f"{method}{' Mondrian' if mondrian else ''} {coverage:.0%}"
    return name + ("" if grouped else " image-level")


def conformal_grid(
    val: Predictions,
    test: Predictions,
    temperature: float,
    coverages: Sequence[float],
    image_level_method: str = "lac",
    n_boot: int = 1000,
    calibration: str = "lesion-weighted",
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Every method x coverage x (marginal, Mondrian), calibrated on the lesions of ``val`` (the
    calibration split, or validation; lesion weights), then on test: coverage and mean set size
    with lesion-bootstrap intervals.
    ``image_level_method`` is also calibrated image by image, to show what ignoring repeated
    lesions changes.

    Args:
        val, test: the run's predictions; probabilities at ``temperature`` (the run's own).
        calibration: of the grouped settings (:class:`ConformalClassifier`), recorded per row.

    Returns:
        The table (one row per setting and class, ``all`` first; columns of
        :func:`coverage_table` plus ``method, mondrian, target, setting, grouped, calibration,
        threshold, calibration_lesions, in_every_set``) and the test
        sets (N, C) by setting name (:func:`setting_name`).
    """
    vp, tp = val.probabilities(temperature), test.probabilities(temperature)
    settings = [
        (m, c, mondrian, True) for m in METHODS for c in coverages for mondrian in (False, True)
    ]
    settings += [(image_level_method, c, False, False) for c in coverages]
    rows, sets = [], {}
    for method, coverage, mondrian, grouped in settings:
        cp = ConformalClassifier(method, coverage, mondrian, calibration=calibration)
        cp.fit(vp, val.labels, val.group if grouped else None)
        key = setting_name(method, coverage, mondrian, grouped)
        sets[key] = cp.predict_sets(tp)
        table = coverage_table(sets[key], test.labels, test.classes, test.group, n_boot)
        table = table.join(cp.threshold_table(test.classes))
        rows.append(
            table.reset_index().assign(
                method=method,
                mondrian=mondrian,
                target=coverage,
                setting=key,
                grouped=grouped,
                calibration=cp.calibration_,
            )
        )
    return pd.concat(rows, ignore_index=True), sets


def set_size_counts(sets: np.ndarray) -> pd.Series:
    """How many images got a set of each size (0 = no class fits at this coverage)."""
    sizes = sets.sum(1)
    return pd.Series(np.bincount(sizes, minlength=sets.shape[1] + 1), name="images").rename_axis(
        "set size"
    )


def mean_set_size(counts: pd.Series) -> float:
    """The mean set size of :func:`set_size_counts`.

    >>> mean_set_size(pd.Series([0, 3, 1], name="images"))
    1.25
    """
    return float((counts.index * counts).sum() / counts.sum())


def describe_set(mask: np.ndarray, classes: Sequence[str], coverage: float) -> str:
    """A set as words, most likely class first if ``classes`` are so ordered:
    ``"mel or nv at 90%"``.

    >>> describe_set(np.array([True, False, True]), ["mel", "bkl", "nv"], 0.9)
    'mel or nv at 90%'
    """
    names = [c for c, m in zip(classes, mask, strict=True) if m]
    what = " or ".join(names) if names else "no class"
    return f"{what} at {coverage:.0%}"


# --- stored with the run (RunFolder.conformal_file): one writer, one reader ----------------------


@dataclass
class StoredConformal:
    """What the app needs to form a run's sets and its unknown flag without the validation data.

    Thresholds apply to probabilities at ``temperature`` (the run's calibration.json value).
    """

    method: str
    coverage: float
    mondrian: bool
    quantiles: list[float]  # per class, in ``classes`` order (all equal unless Mondrian)
    classes: list[str]
    temperature: float
    grouping: str  # how calibration treated repeated lesions
    lam: float = 0.01
    k_reg: int = 1
    fitted_on: str = "val"  # the split the quantiles were calibrated on (val or calibration)
    # unknown-input score and its threshold (validation knowns kept at the stated share)
    unknown: dict = field(default_factory=dict)

    def predictor(self) -> ConformalClassifier:
        cp = ConformalClassifier(self.method, self.coverage, self.mondrian, self.lam, self.k_reg)
        cp.quantiles_ = np.asarray(self.quantiles, dtype=float)
        return cp


def stored_conformal(
    val: Predictions,
    temperature: float,
    method: str,
    coverage: float,
    unknown: dict | None = None,
    calibration: str = "lesion-weighted",
    fitted_on: str = "val",
) -> StoredConformal:
    """The sets a run stores for the app: ``method`` at ``coverage``, marginal, calibrated on the
    probabilities of ``val`` at ``temperature`` with each lesion weighing 1 (the guarantee is for
    a new lesion, which is what a patient brings).

    Args:
        val: the predictions that calibrate the sets: split ``fitted_on``.
        unknown: the unknown-input rule to store beside the sets
            (:func:`skinlib.evaluation.ood.unknown_rule`).
        calibration: :class:`ConformalClassifier`'s; ``grouping`` records which ran.
        fitted_on: ``val`` or ``calibration``, recorded (and named in ``grouping``).
    """
    cp = ConformalClassifier(method, coverage, calibration=calibration).fit(
        val.probabilities(temperature), val.labels, val.group
    )
    split = split_name(fitted_on)
    grouping = {
        "lesion-weighted": f"lesion weights (each {split} lesion weighs 1; asymptotically valid)",
        "one-image": f"one image per {split} lesion, seed 0 (finite-sample guarantee)",
    }[calibration]
    return StoredConformal(
        method=method,
        coverage=coverage,
        mondrian=False,
        quantiles=[float(q) for q in cp.quantiles_],
        classes=list(val.classes),
        temperature=temperature,
        grouping=grouping,
        fitted_on=fitted_on,
        unknown=dict(unknown or {}),
    )


def save_conformal(path: str | Path, stored: StoredConformal) -> Path:
    data = asdict(stored)
    data["quantiles"] = [q if math.isfinite(q) else None for q in stored.quantiles]
    return write_json(path, data)


def load_conformal(path: str | Path) -> StoredConformal | None:
    """The run's stored sets, or None when step 08 has not run for it."""
    path = Path(path)
    if not path.is_file():
        return None
    data = read_json(path)
    data["quantiles"] = [math.inf if q is None else float(q) for q in data["quantiles"]]
    return StoredConformal(**data)
