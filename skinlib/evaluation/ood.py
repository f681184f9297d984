"""Unknown inputs: how well a score separates images of the trained classes from anything else.

Every score here is an *in-distribution* score: higher = more like the training classes.

* ``msp``: the maximum softmax probability (Hendrycks and Gimpel 2017).
* ``energy``: ``T * logsumexp(logits / T)`` (Liu et al. 2020), the negative free energy; it uses
  the logits' scale that softmax throws away.
* ``mahalanobis``: minus the smallest Mahalanobis distance of the penultimate-layer features to a
  class mean, with one covariance shared by all classes (Lee et al. 2018), fitted on all training
  features. The shared covariance is scikit-learn's Ledoit-Wolf estimate: 1,280-dimensional
  EfficientNet features make the plain estimate near-singular, and Ledoit-Wolf picks the
  shrinkage from the data instead of a fixed ridge.

Detection is reported as AUROC (unknown vs known; 0.5 = chance) and as the share of unknown images
accepted when the threshold keeps 95% of known ones (FPR at 95% TPR, knowns as positives, as
Hendrycks and Gimpel report it), each with a bootstrap interval that resamples known lesions and
unknown lesions (each unknown image its own lesion where the source has no lesion ids).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw
from scipy.special import logsumexp
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from skinlib.data.images import load_image
from skinlib.data.synthetic import ImageSpec, _hairs, _smooth_noise, render
from skinlib.evaluation.bootstrap import bootstrap_weights
from skinlib.evaluation.calibration import logits_to_proba

log = logging.getLogger(__name__)

SCORES = ("msp", "energy", "mahalanobis")
KNOWN = "known"  # the input kind of the known (test) images in :func:`detection_table`
VALIDATION = "validation"  # the validation images of the trained classes: choose the score
KEEP_KNOWN = 0.95  # the threshold keeps this share of known (validation) images


@dataclass
class UnknownInputs:
    """One kind of input for :func:`detection_table`: its images, their lesion ids (None: each
    image its own lesion) and, for near unknowns from another dataset, the kind that holds
    known-class images of that same source (their control for dataset shift)."""

    images: list
    groups: Sequence | None = None
    control: str | None = None


def msp(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N,) maximum softmax probability (a binary run's single logit: max(p, 1 - p))."""
    return logits_to_proba(logits, temperature).max(1)


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """(N,) negative free energy ``T * logsumexp(logits / T)``: higher = more in-distribution."""
    return temperature * logsumexp(np.asarray(logits, float) / temperature, axis=1)


class Mahalanobis:
    """Class means and a shared covariance of training features; ``score`` is minus the smallest
    squared distance to a class mean (higher = closer to a known class).

    ``fit(features (N, D), labels (N,))`` learns ``means_`` (C, D) and ``precision_`` (D, D).
    ``shrinkage=None`` (the default) takes the Ledoit-Wolf covariance of the class-centred
    features, well-conditioned even when D is close to or above N; a number adds that share of the
    mean variance to the diagonal of the empirical covariance instead (0: the exact estimate).
    """

    def __init__(self, shrinkage: float | None = None):
        self.shrinkage = shrinkage

    def fit(self, features: np.ndarray, labels: np.ndarray) -> Mahalanobis:
        x, y = np.asarray(features, float), np.asarray(labels, int)
        classes = np.unique(y)
        self.means_ = np.stack([x[y == c].mean(0) for c in classes])
        centred = x - self.means_[np.searchsorted(classes, y)]
        if self.shrinkage is None:
            self.precision_ = LedoitWolf(assume_centered=True).fit(centred).precision_
            return self
        cov = centred.T @ centred / len(x)
        cov += self.shrinkage * np.trace(cov) / len(cov) * np.eye(len(cov))
        self.precision_ = np.linalg.inv(cov)
        return self

    def score(self, features: np.ndarray) -> np.ndarray:
        d = np.asarray(features, float)[:, None, :] - self.means_[None]  # (N, C, D)
        dist = np.einsum("ncd,de,nce->nc", d, self.precision_, d)
        return -dist.min(1)


def threshold_for_known(known_scores: np.ndarray, keep: float = KEEP_KNOWN) -> float:
    """The score above which ``keep`` of the known (validation) images lie: below it, refer."""
    return float(np.quantile(np.asarray(known_scores, float), 1 - keep))


def unknown_rule(val_proba: np.ndarray, keep: float = KEEP_KNOWN) -> dict:
    """What the app stores to flag an input unlike the validation images: the calibrated
    maximum probability (``msp``) below which ``1 - keep`` of them fall.

    Args:
        val_proba: (N, C) calibrated validation probabilities.
    """
    threshold = threshold_for_known(np.asarray(val_proba).max(1), keep)
    return {"score": "msp", "threshold": threshold, "keeps_known": keep}


def unknown_scores(
    logits: np.ndarray, features: np.ndarray, mahalanobis: Mahalanobis, temperature: float
) -> dict[str, np.ndarray]:
    """Every score of :data:`SCORES` for one set of inputs, (N,) each, higher = more like the
    trained classes: MSP and energy of the calibrated logits, Mahalanobis of the features."""
    return {
        "msp": msp(logits, temperature),
        "energy": energy(logits, temperature),
        "mahalanobis": mahalanobis.score(features),
    }


def selection_half(groups: Sequence | None, n: int, seed: int = 0) -> np.ndarray:
    """(n,) True for the images of a random half of the lesions (``groups``; None = each image
    its own): the unknowns that choose the score, kept apart from those that report it."""
    codes = np.arange(n) if groups is None else pd.factorize(pd.Series(np.asarray(groups)))[0]
    order = np.random.default_rng([seed, 7]).permutation(int(codes.max()) + 1 if n else 0)
    return order[codes] % 2 == 0


def detection_table(
    scores: dict[str, dict[str, np.ndarray]],
    known_groups: Sequence | None,
    n_boot: int = 1000,
    groups: dict[str, Sequence | None] | None = None,
    controls: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Each kind of unknown input against the known test images, for every score; and each
    unknown kind that has a control (known-class images from its own source) against that.

    A near unknown from another dataset differs from the test images in class *and* source, so
    its AUROC against test mixes novelty with dataset shift. The control kind's own row (known
    classes, external, against test) measures the shift alone; the unknown's row against the
    control (``reference`` = the control kind) measures novelty alone.

    With a :data:`VALIDATION` kind (validation images of the trained classes), the score is
    chosen without test: each non-reference kind is halved by lesion (:func:`selection_half`),
    ``selection_auroc`` is validation against the first half, and every reported number uses the
    other half of that kind only, so the choice does not inflate what is reported (a control
    kind, as the reference of a novelty row, enters whole: no score was chosen on it there).
    Halving costs interval width; it buys a choice that test never sees, with no second
    unknown dataset needed.

    Args:
        scores: :func:`unknown_scores` by input kind; ``known`` (the test images) is the
            reference, ``validation`` (optional) chooses the score, every other kind is unknown.
        known_groups: lesion ids of the known images (their bootstrap resamples lesions).
        groups: lesion ids by unknown kind (missing or None: each image its own lesion).
        controls: unknown kind -> its control kind (a key of ``scores``).

    Returns:
        One row per kind, reference and score: ``unknown, reference, score, selection_auroc``
        (NaN without validation) and :func:`detection_report`.
    """
    groups, controls = groups or {}, controls or {}
    kinds = [k for k in scores if k not in (KNOWN, VALIDATION)]
    report_half = {
        k: ~selection_half(groups.get(k), len(scores[k][SCORES[0]]))
        if VALIDATION in scores
        else np.ones(len(scores[k][SCORES[0]]), bool)
        for k in kinds
    }

    def selection(kind: str, score: str) -> float:
        if VALIDATION not in scores:
            return np.nan
        held = scores[kind][score][~report_half[kind]]
        return detection_report(scores[VALIDATION][score], held, n_boot=0)["auroc"]

    def row(kind: str, reference: str, score: str) -> dict:
        ref_groups = known_groups if reference == KNOWN else groups.get(reference)
        half = report_half[kind]
        kind_groups = groups.get(kind)
        kind_groups = None if kind_groups is None else np.asarray(kind_groups)[half]
        report = detection_report(
            scores[reference][score],
            scores[kind][score][half],
            ref_groups,
            n_boot,
            unknown_groups=kind_groups,
        )
        name = "test" if reference == KNOWN else reference
        return {
            "unknown": kind,
            "reference": name,
            "score": score,
            "selection_auroc": selection(kind, score),
            **report,
        }

    pairs = [(k, KNOWN) for k in kinds] + [(k, c) for k, c in controls.items()]
    return pd.DataFrame([row(k, ref, s) for k, ref in pairs for s in SCORES])


def unseen_class_rows(
    table: pd.DataFrame, label: str, exclude: Sequence[str], n: int, seed: int = 0
) -> pd.DataFrame:
    """Up to ``n`` rows of class ``label`` whose image id is not in ``exclude`` (the study's own
    images): near-unknown inputs that cannot be images the model trained or was tested on."""
    rows = table[(table["label"] == label) & ~table["image_id"].isin(exclude)]
    return rows.sample(min(n, len(rows)), random_state=seed)


def _weighted_auroc(known: np.ndarray, unknown: np.ndarray, wk: np.ndarray, wu: np.ndarray):
    """AUROC of "unknown" (lower score) for weight rows (B, Nk), (B, Nu): (B,)."""
    s = np.r_[known, unknown]
    order = np.argsort(-s, kind="stable")  # unknown-ness ascending = score descending
    s_sorted = s[order]
    is_unknown = np.r_[np.zeros(len(known)), np.ones(len(unknown))][order].astype(bool)
    w = np.concatenate([wk, wu], axis=1)[:, order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    pos = np.add.reduceat(w * is_unknown, starts, axis=1)
    neg = np.add.reduceat(w * ~is_unknown, starts, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    with np.errstate(invalid="ignore", divide="ignore"):
        return (pos * (below + 0.5 * neg)).sum(1) / (pos.sum(1) * neg.sum(1))


def _weighted_fpr(known, unknown, wk, wu, keep):
    """Share (weighted) of unknowns at or above the score that keeps ``keep`` of knowns: (B,)."""
    out = np.empty(len(wk))
    order = np.argsort(known)
    ks = known[order]
    for b in range(len(wk)):
        cum = np.cumsum(wk[b, order]) / wk[b].sum()
        t = ks[np.searchsorted(cum, 1 - keep, side="left").clip(max=len(ks) - 1)]
        out[b] = (wu[b] * (unknown >= t)).sum() / wu[b].sum()
    return out


def detection_report(
    known: np.ndarray,
    unknown: np.ndarray,
    known_groups: Sequence | None = None,
    n_boot: int = 1000,
    keep: float = KEEP_KNOWN,
    seed: int = 0,
    unknown_groups: Sequence | None = None,
) -> dict[str, float]:
    """AUROC and FPR at ``keep`` TPR of an in-distribution score, with 95% bootstrap intervals.

    Args:
        known: (Nk,) scores of test images of the trained classes.
        unknown: (Nu,) scores of unknown images.
        known_groups: (Nk,) lesion ids of the known images (resampled as lesions).
        unknown_groups: (Nu,) lesion ids of the unknown images (ISIC 2019 has them): resampled
            as lesions too, since views of one lesion are not independent; None = one per image.
        n_boot: 0 gives the point estimates only (intervals NaN).
    """
    k, u = np.asarray(known, float), np.asarray(unknown, float)
    auroc = float(roc_auc_score(np.r_[np.zeros(len(k)), np.ones(len(u))], -np.r_[k, u]))
    ones_k, ones_u = np.ones((1, len(k))), np.ones((1, len(u)))
    fpr = float(_weighted_fpr(k, u, ones_k, ones_u, keep)[0])
    if n_boot == 0:
        nan = float("nan")
        return dict(auroc=auroc, auroc_low=nan, auroc_high=nan, fpr=fpr, fpr_low=nan, fpr_high=nan)
    boot_auc, boot_fpr = [], []
    unknown_draws = bootstrap_weights(unknown_groups, len(u), n_boot, seed + 1)
    wu_all = np.concatenate(list(unknown_draws))
    start = 0
    for wk in bootstrap_weights(known_groups, len(k), n_boot, seed):
        wu = wu_all[start : start + len(wk)]
        start += len(wk)
        boot_auc.append(_weighted_auroc(k, u, wk, wu))
        boot_fpr.append(_weighted_fpr(k, u, wk, wu, keep))
    auc_lo, auc_hi = np.nanquantile(np.concatenate(boot_auc), [0.025, 0.975])
    fpr_lo, fpr_hi = np.nanquantile(np.concatenate(boot_fpr), [0.025, 0.975])
    return {
        "auroc": auroc,
        "auroc_low": float(auc_lo),
        "auroc_high": float(auc_hi),
        "fpr": fpr,
        "fpr_low": float(fpr_lo),
        "fpr_high": float(fpr_hi),
    }


# --- model features and unknown images for the demo ---------------------------------------------


@torch.no_grad()
def logits_and_features(loaded, images: Sequence[Image.Image], batch_size: int = 64):
    """Logits (N, C) and pooled penultimate features (N, D) of PIL images under a loaded run.

    timm models expose ``forward_features`` and ``forward_head(..., pre_logits=True)``; the
    logits come from the same forward pass, so both describe the same input. A metadata model
    (:class:`skinlib.models.metadata.MetadataNet`, the same interface) sees every image here
    with its metadata not recorded: unknown inputs carry none, and a score that told them from
    the known images by their missing metadata would say nothing about the images.
    """
    model = loaded.model
    device = next(model.parameters()).device
    logits, feats = [], []
    for start in range(0, len(images), batch_size):
        x = torch.stack([loaded.transform(im) for im in images[start : start + batch_size]])
        f = model.forward_head(model.forward_features(x.to(device)), pre_logits=True)
        feats.append(f.float().cpu().numpy())
        logits.append(model.get_classifier()(f).float().cpu().numpy())
    return np.concatenate(logits), np.concatenate(feats)


def blank_skin(seed: int, size: int = 96, artefacts: bool = False) -> Image.Image:
    """Far-unknown demo image: skin with the dermoscope's vignette and no lesion; with
    ``artefacts``, also many dark hairs, a ruler bar and air bubbles (what a careless photo gives).

    SynthDerm draws lesions only; these reuse its skin tones, light and hair drawing.
    """
    rng = np.random.default_rng([seed, 99])
    tone = rng.uniform(0, 1)
    skin = (1 - tone) * np.array([0.93, 0.76, 0.66]) + tone * np.array([0.42, 0.28, 0.19])
    lin = np.linspace(-1, 1, size)
    xx, yy = np.meshgrid(lin, lin)
    rgb = skin * (0.9 + 0.2 * _smooth_noise(rng, size, 3))[..., None]
    vignette = np.clip((np.hypot(xx, yy) - rng.uniform(0.95, 1.35)) * 8, 0, 1)
    rgb = rgb * (1 - vignette[..., None] * 0.92)
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    if artefacts:
        draw = ImageDraw.Draw(image)
        _hairs(draw, rng, size, int(rng.integers(15, 30)), dark=0.15)
        y0 = int(rng.uniform(0.7, 0.85) * size)
        draw.rectangle([0, y0, size, y0 + size // 12], fill=(235, 235, 235))
        for tick in range(0, size, max(2, size // 16)):
            draw.line([(tick, y0), (tick, y0 + size // 24)], fill=(20, 20, 20))
        for _ in range(int(rng.integers(3, 8))):
            cx, cy, r = rng.uniform(0, size, 2).tolist() + [rng.uniform(0.03, 0.1) * size]
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], outline=(250, 250, 250), width=1)
    return image


def unseen_class_images(label: str, n: int, size: int = 96, difficulty: float = 0.5, seed: int = 0):
    """Near-unknown demo images: SynthDerm lesions of a class the run was not trained on (e.g.
    ``scc`` for a HAM10000-layout run), one view per lesion."""
    specs = [
        ImageSpec(f"unseen_{label}_{i}", label, (seed, 11, i), (seed, 12, i), size, difficulty)
        for i in range(n)
    ]
    return [render(s)[0] for s in specs]


def unknown_inputs(
    classes: Sequence[str],
    unknown_class: str,
    n: int,
    size: int,
    difficulty: float = 0.5,
    seed: int = 0,
    synthetic: bool = True,
    near: dict[str, UnknownInputs] | None = None,
) -> dict[str, UnknownInputs]:
    """The kinds of unknown input 08 scores: lesions of ``unknown_class``, a class the run never
    saw (near), and blank skin with and without heavy artefacts (far), ``n`` of each.

    Args:
        classes: the run's classes (an unknown class among them gives no near unknowns).
        near: near unknowns read from another dataset (with their control), e.g.
            :func:`skinlib.external.unknowns.near_unknowns`; None: drawn by SynthDerm where the
            study runs on it (``synthetic``), else none.
    """
    name = f"unseen class ({unknown_class})"
    out: dict[str, UnknownInputs] = {}
    if unknown_class in classes:
        log.info("%s is one of the run's classes: no near-unknown inputs", unknown_class)
    elif near is not None:
        out.update(near)
    elif synthetic:
        out[name] = UnknownInputs(unseen_class_images(unknown_class, n, size, difficulty, seed))
    out["blank skin"] = UnknownInputs([blank_skin(i, size) for i in range(n)])
    out["skin with artefacts"] = UnknownInputs(
        [blank_skin(n + i, size, artefacts=True) for i in range(n)]
    )
    return out


def unknown_detection(
    loaded,
    temperature: float,
    rows: dict[str, pd.DataFrame],
    unknown: dict[str, UnknownInputs],
    n_boot: int = 1000,
) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """MSP, energy and Mahalanobis (Ledoit-Wolf, fitted on all training features) on the test
    images against each kind of unknown image, and near unknowns against their known-class
    control: AUROC and FPR at 95% TPR with lesion intervals.

    The validation images are scored too: :func:`detection_table` chooses each kind's score on
    them and a held-out half of that kind's unknown lesions, and reports on test and the other
    half.

    Args:
        loaded: the run's model (:func:`skinlib.models.checkpoint.load_model`).
        temperature: the run's fitted temperature.
        rows: the run's ``train``, ``val`` and ``test`` split rows (``path``, ``label``, ``group``).

    Returns:
        The table and, per input kind (``known`` first), its calibrated probabilities (for the
        conformal sets of unknown inputs).
    """
    train = rows["train"]  # all of them: Ledoit-Wolf needs no subsample to stay invertible
    _, train_feats = logits_and_features(loaded, [load_image(p) for p in train["path"]])
    labels = np.array([loaded.classes.index(c) for c in train["label"]])
    maha = Mahalanobis().fit(train_feats, labels)
    test = rows["test"]
    inputs = {
        VALIDATION: [load_image(p) for p in rows["val"]["path"]],
        KNOWN: [load_image(p) for p in test["path"]],
        **{kind: u.images for kind, u in unknown.items()},
    }
    scores, probas = {}, {}
    for kind, images in inputs.items():
        logits, feats = logits_and_features(loaded, images)
        scores[kind] = unknown_scores(logits, feats, maha, temperature)
        if kind != VALIDATION:
            probas[kind] = logits_to_proba(logits, temperature)
    groups = {kind: u.groups for kind, u in unknown.items()}
    controls = {kind: u.control for kind, u in unknown.items() if u.control}
    table = detection_table(scores, test["group"], n_boot, groups, controls)
    return table, probas
