"""One image at a time: what a trained run (or an ensemble of runs) answers, without a browser.

:class:`Predictor` gives calibrated probabilities, the decision at the stored operating point,
the conformal set and a Grad-CAM map; :mod:`skinlib.app.ui` lays the page out around it. TTA,
ensemble averaging and the temperature are :mod:`skinlib.inference`'s and
:mod:`skinlib.evaluation.predictions`' own functions, so an image is answered as the study scores it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from skinlib.app.inputs import read_upload
from skinlib.data.classes import CLASS_NAMES
from skinlib.data.metadata import ImageMetadata
from skinlib.data.splits import on_split, split_name
from skinlib.data.transforms import centre_square
from skinlib.errors import DataError
from skinlib.evaluation.calibration import logits_to_proba
from skinlib.evaluation.conformal import StoredConformal, describe_set
from skinlib.evaluation.predictions import probabilities_to_logits
from skinlib.evaluation.thresholds import OperatingPoint, positive_score
from skinlib.inference.ensemble import average_probabilities
from skinlib.inference.scoring import tta_logits, tta_views
from skinlib.inference.xai import compute_cams, overlay
from skinlib.models.checkpoint import LoadedRun, load_model
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)


@dataclass
class PredictionResult:
    """What the page shows for one image.

    Attributes:
        probabilities: class code -> calibrated probability, in the model's class order.
        top3: the three most probable (class code, probability), most probable first.
        decision: the answer at the stored operating point, in words.
        cam_overlay: (H, W, 3) uint8 Grad-CAM heat map of the top class over the input.
        cam_class: the class the heat map explains.
        run_info: markdown naming the run(s), architecture, checkpoint and temperature.
        notes: conversions applied to the upload and caveats (uncalibrated, ...).
        prediction_set: the conformal set at the run's stored coverage in words ("mel or nv at
            90%"); None without stored conformal sets.
        refer: why the answer should go to a doctor (set of several classes, or an input unlike
            the validation images); empty when the model is sure.
    """

    probabilities: dict[str, float]
    top3: list[tuple[str, float]]
    decision: str
    cam_overlay: np.ndarray
    cam_class: str
    run_info: str
    notes: list[str] = field(default_factory=list)
    prediction_set: str | None = None
    refer: list[str] = field(default_factory=list)

    @property
    def top_class(self) -> str:
        return self.top3[0][0]


def _criterion_words(point: OperatingPoint, chosen_on: str = "val") -> str:
    on = on_split(chosen_on)
    if point.criterion == "youden":
        return f"chosen on {on} to maximise sensitivity + specificity (Youden)"
    return f"chosen for {point.target:.0%} {point.criterion} on {on}"


def describe_decision(
    proba: np.ndarray,
    classes: Sequence[str],
    point: OperatingPoint | None,
    chosen_on: str = "val",
) -> str:
    """The answer at the stored operating point, in words (``chosen_on``: the split the
    threshold was chosen on, :meth:`skinlib.runs.folder.RunFolder.thresholds_chosen_on`).

    >>> from skinlib.evaluation.thresholds import OperatingPoint
    >>> point = OperatingPoint(["mel"], "specificity", 0.95, 0.27, 1.0, 0.8, 0.95)
    >>> describe_decision(np.array([0.59, 0.41]), ["nv", "mel"], point)
    'melanoma probability 0.41 is above the threshold 0.27 chosen for 95% specificity on validation: refer.'
    """
    if point is None:
        return (
            f"No operating point is stored for this run (no {RunFolder.THRESHOLDS}), so no "
            "decision."
        )
    try:
        score = float(positive_score(np.asarray(proba)[None], classes, point.positive)[0])
    except ValueError:
        return (
            f"The stored operating point is for {point.positive}, which this model does not "
            "predict; re-run the thresholds step for this run. No decision."
        )
    what = " + ".join(CLASS_NAMES.get(c, c) for c in point.positive)
    side, verdict = ("above", "refer") if score >= point.threshold else ("below", "not flagged")
    return (
        f"{what} probability {score:.2f} is {side} the threshold {point.threshold:.2f} "
        f"{_criterion_words(point, chosen_on)}: {verdict}."
    )


def _member_line(loaded: LoadedRun, temperature: float | None, tta: bool = False) -> str:
    folder = RunFolder(loaded.run_dir)
    meta = folder.meta() if folder.meta_file.is_file() else {}
    epoch = f", epoch {meta['best_epoch']} of {meta['epochs_run']}" if "best_epoch" in meta else ""
    # calibration.json's fitted_on: "val", "calibration", or either with " (TTA predictions)"
    fitted_on = str((folder.calibration(tta) or {}).get("fitted_on", "val")).split(" ")[0]
    calibration = (
        f"temperature {temperature:.3g} (fitted on {split_name(fitted_on)})"
        if temperature is not None
        else f"**uncalibrated** (no {RunFolder.CALIBRATION})"
    )
    checkpoint = folder.checkpoint(loaded.checkpoint).relative_to(folder.path).as_posix()
    inputs = " · inputs: image, age, sex and site" if loaded.metadata is not None else ""
    return (
        f"run `{loaded.run_dir}` · architecture **{loaded.config.model.arch}** · checkpoint "
        f"`{checkpoint}`{epoch} · {calibration}{inputs}"
    )


def _conformal_for(folder: RunFolder, classes: Sequence[str]) -> StoredConformal | None:
    """The run's conformal sets and unknown threshold (step 08), or None; a file written for
    other classes is refused with a warning rather than applied to the wrong columns."""
    stored = folder.conformal()
    if stored is not None and list(stored.classes) != list(classes):
        log.warning("%s: classes %s differ from the run's %s; ignored", folder.conformal_file,
                    stored.classes, list(classes))  # fmt: skip
        return None
    return stored


class Predictor:
    """Calibrated class probabilities, a decision and a Grad-CAM map, one image at a time.

    Uses the run's own evaluation preprocessing (``LoadedRun.transform``) and the temperature
    fitted for it. An ensemble folder (as ``Study.build_ensemble`` writes it) averages its
    members' calibrated probabilities with their weights
    (:func:`skinlib.inference.ensemble.average_probabilities`), applies the ensemble's own temperature
    when it has one, and explains with the first member's Grad-CAM.

    Args:
        run_dir: a trained run folder ``experiments/<study>/<run>`` or an ensemble folder.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        tta: average over flips and right-angle rotations (``skinlib.inference.scoring.TTA_VIEWS``).
            With TTA the run's TTA temperature and threshold apply (``*_tta.json``, fitted
            on the TTA predictions of the post-hoc split by 07); without them it is
            uncalibrated and makes no decision.
    """

    def __init__(self, run_dir: str | Path, device: str = "cpu", tta: bool = False):
        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.tta = tta
        folder = RunFolder(self.run_dir)
        runs, self.weights = folder.ensemble_members()
        self.members = [load_model(run, device=self.device) for run in runs]
        self.temperatures = [run.temperature(tta) for run in runs]
        self.is_ensemble = folder.is_ensemble
        # an ensemble folder's own temperature is fitted on the averaged output (Study.calibrate)
        self.ensemble_temperature = folder.temperature(tta) if self.is_ensemble else None
        self.classes = list(self.members[0].classes)
        for member in self.members[1:]:
            if list(member.classes) != self.classes:
                raise DataError(
                    f"ensemble members disagree on classes: {self.classes} vs {member.classes}"
                )
        self.binary = self.members[0].config.data.task == "binary"
        points = folder.operating_points(tta)
        self.operating_point = points[0] if points else None
        self.chosen_on = folder.thresholds_chosen_on(tta) or "val"
        self.conformal = _conformal_for(folder, self.classes)

    @property
    def calibrated(self) -> bool:
        return all(t is not None for t in self.temperatures)

    def _threshold_mismatch(self) -> str | None:
        """A warning when the threshold was chosen at another temperature than the one in use
        (calibration re-run without re-running the thresholds step)."""
        point = self.operating_point
        used = (self.ensemble_temperature if self.is_ensemble else self.temperatures[0]) or 1.0
        if point is None or math.isclose(point.temperature, used, rel_tol=1e-6):
            return None
        return (
            f"The stored threshold was chosen at temperature {point.temperature:.3g}, but the run "
            f"is now calibrated at {used:.3g}: re-run the thresholds step before trusting it."
        )

    def describe(self) -> str:
        """Markdown naming what answers: run(s), architecture, checkpoint, temperature."""
        pairs = zip(self.members, self.temperatures, strict=True)
        lines = [_member_line(m, t, self.tta) for m, t in pairs]
        head = "**Answering:**"
        if self.is_ensemble:
            head = f"**Ensemble** `{self.run_dir}` of {len(lines)} runs (Grad-CAM from the first):"
            if self.ensemble_temperature is not None:
                lines.append(f"ensemble temperature {self.ensemble_temperature:.3g}")
        lines.append(
            f"classes {', '.join(self.classes)} · device {self.device} · "
            f"test-time augmentation {'on' if self.tta else 'off'}"
        )
        return "\n".join([head, *(f"- {line}" for line in lines)])

    @property
    def uses_metadata(self) -> bool:
        """Some member reads age, sex and site beside the image (``model.metadata``)."""
        return any(m.metadata is not None for m in self.members)

    def metadata_levels(self) -> dict[str, list[str]]:
        """The sexes and sites the metadata members trained on (what a page can offer)."""
        encoders = [m.metadata for m in self.members if m.metadata is not None]
        return {
            "sex": sorted({s for e in encoders for s in e.sexes_}),
            "site": sorted({s for e in encoders for s in e.sites_}),
        }

    def _metadata(self, loaded: LoadedRun, metadata: ImageMetadata | None) -> torch.Tensor | None:
        """(1, D) a metadata member's encoding of the values given (missing where not given)."""
        if loaded.metadata is None:
            return None
        return torch.from_numpy(loaded.metadata.encode(metadata)).to(self.device)

    def _logits(
        self, loaded: LoadedRun, image: Image.Image, metadata: ImageMetadata | None = None
    ) -> np.ndarray:
        """(1, C) logits of one image, by the evaluation's own TTA rule when ``tta``."""
        x = loaded.transform(image).unsqueeze(0).to(self.device)
        meta = self._metadata(loaded, metadata)
        return tta_logits(loaded.model, x, tta_views(self.tta), self.binary, meta)

    def probabilities(
        self, image: Image.Image, metadata: ImageMetadata | None = None
    ) -> np.ndarray:
        """Calibrated probabilities (C,) of an RGB image (ensembles: their weighted mean).

        Args:
            metadata: age, sex and site for a metadata model (None or a field None: not
                recorded); an image-only model ignores them.
        """
        members = zip(self.members, self.temperatures, strict=True)
        calibrated = [
            logits_to_proba(self._logits(m, image, metadata), t or 1.0)[0] for m, t in members
        ]
        proba = average_probabilities(calibrated, self.weights)
        if self.ensemble_temperature is None:
            return proba
        logits = probabilities_to_logits(proba[None], self.binary)
        return logits_to_proba(logits, self.ensemble_temperature)[0]

    def trust(self, proba: np.ndarray) -> tuple[str | None, list[str]]:
        """The conformal set at the stored coverage, in words, and the reasons to refer."""
        stored = self.conformal
        if stored is None:
            return None, []
        mask = stored.predictor().predict_sets(proba[None])[0]
        order = np.argsort(-proba, kind="stable")
        words = describe_set(mask[order], [self.classes[i] for i in order], stored.coverage)
        refer = []
        if mask.sum() != 1:
            refer.append(f"the {stored.coverage:.0%} set holds {int(mask.sum())} classes, not one")
        limit = stored.unknown.get("threshold")
        if limit is not None and proba.max() < limit:
            refer.append(
                f"unlike the validation images: top probability {proba.max():.2f} is below "
                f"{limit:.2f}, which {stored.unknown.get('keeps_known', 0.95):.0%} of them reach"
            )
        return words, refer

    def cam_overlay(
        self,
        image: Image.Image,
        target: int,
        side: int = 320,
        metadata: ImageMetadata | None = None,
    ) -> np.ndarray:
        """(side, side, 3) uint8 Grad-CAM of class ``target`` over the part the model sees (a
        metadata model's with the metadata given bound)."""
        loaded = self.members[0]
        x = loaded.transform(image).unsqueeze(0).to(self.device)
        meta = self._metadata(loaded, metadata)
        cam = compute_cams(loaded.model, x, targets=[target], metadata=meta)[0]
        seen = centre_square(image, side)
        return overlay(np.asarray(seen), cam)

    def _metadata_note(self, metadata: ImageMetadata | None) -> str | None:
        """What the answer made of the age, sex and site (given or not)."""
        given = metadata is not None and metadata != ImageMetadata()
        if not self.uses_metadata:
            return "Age, sex and site are not inputs of this model; ignored." if given else None
        if not given:
            return (
                "This model also reads age, sex and site; none were given, so each counts as "
                "not recorded."
            )
        missing = [k for k, v in vars(metadata).items() if v is None]
        return f"Not given, so counted as not recorded: {', '.join(missing)}." if missing else None

    def predict(
        self,
        image: Image.Image,
        notes: Sequence[str] = (),
        metadata: ImageMetadata | None = None,
    ) -> PredictionResult:
        """Everything the page shows for one RGB image (see :class:`PredictionResult`);
        ``metadata``: the optional age, sex and site a metadata model reads."""
        proba = self.probabilities(image, metadata)
        order = np.argsort(-proba, kind="stable")
        notes = list(notes)
        if note := self._metadata_note(metadata):
            notes.append(note)
        if not self.calibrated:
            notes.append(
                f"Uncalibrated: no temperature was fitted for this run ({RunFolder.CALIBRATION} "
                "missing), so these are the model's raw probabilities."
            )
        if mismatch := self._threshold_mismatch():
            notes.append(mismatch)
        prediction_set, refer = self.trust(proba)
        return PredictionResult(
            probabilities={c: float(p) for c, p in zip(self.classes, proba, strict=True)},
            top3=[(self.classes[i], float(proba[i])) for i in order[:3]],
            decision=describe_decision(proba, self.classes, self.operating_point, self.chosen_on),
            cam_overlay=self.cam_overlay(image, int(order[0]), metadata=metadata),
            cam_class=self.classes[order[0]],
            run_info=self.describe(),
            notes=notes,
            prediction_set=prediction_set,
            refer=refer,
        )

    def predict_file(
        self,
        path: str | Path,
        name: str | None = None,
        max_bytes: int | None = None,
        metadata: ImageMetadata | None = None,
    ) -> PredictionResult:
        """Validate an uploaded file (:func:`skinlib.app.inputs.read_upload`), then predict.

        Raises:
            UploadError: with a message for the page when the file cannot be used.
        """
        upload = read_upload(path, name, max_bytes=max_bytes)
        return self.predict(upload.image, upload.notes, metadata)
