"""09: label issues, skin tone and errors of the run 08 audits, for an expert to look at.

Every number is computed in :mod:`skinlib.evaluation` (``label_issues``, ``skin_tone``,
``confusion``, and ``subgroups`` for the per-band comparison); the methods here only pass the
run's stored predictions, its split file and the study table to them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skinlib.data.formats.ham10000 import HAM10000_DX_NAMES
from skinlib.data.images import load_image
from skinlib.data.splits import CALIBRATION, split_name
from skinlib.data.transforms import centre_square
from skinlib.evaluation import confusion, label_issues, skin_tone
from skinlib.evaluation.predictions import Predictions
from skinlib.inference.xai import gallery_overlays
from skinlib.models.checkpoint import load_model
from skinlib.study.steps.trust import TrustSteps
from skinlib.thesis import plots

HELD_OUT = ("val", CALIBRATION, "test")  # splits no run trains on
GALLERY_SIDE = 160  # pixels: each image of the audit galleries
ALL_CLASSES = "all classes"  # the row of the counts tables that sums the classes


class AuditSteps(TrustSteps):
    """What 09_audit shows, of the run 08 audits (:meth:`trust_run`)."""

    # --- label issues ------------------------------------------------------------------------

    def held_out(self, run: str) -> tuple[Predictions, np.ndarray]:
        """The run's predictions on every split it did not train on (validation, its calibration
        split where it has one, test; with k folds the held-out fold is its test split) in one
        set, with the split of each image as a second value."""
        parts, splits = [], []
        for split in HELD_OUT:
            if self.folder(run).predictions_file(split).is_file():
                parts.append(self.predictions(run, split))
                splits += [split] * len(parts[-1].labels)
        joined = Predictions(
            np.concatenate([p.image_id for p in parts]),
            np.concatenate([p.group for p in parts]),
            np.concatenate([p.labels for p in parts]),
            np.concatenate([p.logits for p in parts]),
            list(parts[0].classes),
        )
        return joined, np.asarray(splits)

    def _dx_type(self, image_id) -> np.ndarray | None:
        """Each image's ``dx_type`` from the study table, or None where the table has none."""
        table = self.table()
        if "dx_type" not in table:
            return None
        return table.set_index("image_id")["dx_type"].reindex(np.asarray(image_id)).to_numpy()

    def label_issues(self, run: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Confident learning (:mod:`skinlib.evaluation.label_issues`) on the run's held-out
        calibrated probabilities: the flagged images, most doubtful first, and the counts per
        class with the share confirmed by histopathology among the flagged (where the data
        record how diagnoses were confirmed). Splits and confirmations are named in words."""
        preds, splits = self.held_out(run)
        proba = preds.probabilities(self.fitted_temperature(run))
        dx = self._dx_type(preds.image_id)
        issues = label_issues.label_issues(
            preds.image_id,
            preds.labels,
            proba,
            preds.classes,
            [split_name(s) for s in splits],
            preds.group,
            dx,
        )
        counts = label_issues.issue_counts(issues, preds.labels, preds.classes, dx)
        counts = counts.rename(index={"all": ALL_CLASSES})
        if "confirmation" in issues:
            issues["confirmation"] = issues["confirmation"].map(
                lambda d: HAM10000_DX_NAMES.get(d, d)
            )
        return issues, counts

    def _image_paths(self, run: str, image_id) -> list[str]:
        paths = self.folder(run).split_table().set_index("image_id")["path"]
        return paths.loc[np.asarray(image_id)].tolist()

    def label_issue_gallery(self, run: str, issues: pd.DataFrame, k: int = 8):
        """The ``k`` most doubtful labels: each image with its given label and probability,
        and the suggested label and its probability."""
        top = issues.head(k)
        images = [
            np.asarray(centre_square(load_image(p), GALLERY_SIDE))
            for p in self._image_paths(run, top["image_id"])
        ]
        titles = [
            f"{r.image_id}\ngiven {r.given_label}, p {r.label_quality:.2f}\n"
            f"suggested {r.suggested_label}, p {r.suggested_probability:.2f}"
            for r in top.itertuples()
        ]
        return plots.titled_gallery(images, titles)

    # --- skin tone ---------------------------------------------------------------------------

    def skin_tone(self, run: str) -> pd.DataFrame:
        """ITA of every image of the run's split file (:func:`skin_tone.ita_table`: the skin
        outside the lesion mask where there is one, else the border ring), with its split and
        class."""
        rows = self.folder(run).split_table()
        measured = skin_tone.ita_table(rows)
        return measured.assign(split=rows["split"].to_numpy(), label=rows["label"].to_numpy())

    def skin_tone_bands(self, measured: pd.DataFrame) -> pd.DataFrame:
        """Images per ITA band (rows, light to dark) and split, then per class: how much of each
        skin tone the data hold."""
        present = [
            s for s in ("train", "val", CALIBRATION, "test") if (measured["split"] == s).any()
        ]
        by_split = skin_tone.band_counts(measured["band"], measured["split"], present)
        by_split = by_split.rename(
            columns={s: split_name(s) for s in present} | {"all": "all splits"}
        )
        classes = sorted(measured["label"].unique())
        by_class = skin_tone.band_counts(measured["band"], measured["label"], classes)
        ranges = pd.Series(skin_tone.band_ranges(), name="ITA range")
        out = by_split.join(by_class.drop(columns="all"))
        out.insert(0, "ITA range", ranges.reindex(out.index).fillna(""))
        out.index.name = "band"
        return out

    def skin_tone_audit(self, run: str, measured: pd.DataFrame) -> pd.DataFrame:
        """Each band of the test images against the rest on the classes both contain
        (:func:`skin_tone.band_performance`, the subgroup audit's machinery): balanced accuracy,
        difference with a lesion interval, Holm's p, per-class recall and AUC, and the stored
        operating point's sensitivity with its interval."""
        test, tp = self.calibrated(run, "test")
        bands = (
            measured.set_index("image_id")["band"]
            .reindex(test.image_id)
            .fillna(skin_tone.NOT_MEASURABLE)
        )
        return skin_tone.band_performance(
            bands.to_numpy(),
            test.labels,
            tp,
            test.group,
            test.classes,
            self._stored_point(run),
            n_boot=self.evaluation.n_boot,
            min_lesions=self.profile.trust.min_lesions,
        )

    def skin_tone_performance(self, audit: pd.DataFrame) -> pd.DataFrame:
        """The per-band audit as the thesis shows it (:func:`skin_tone.performance_table`)."""
        return skin_tone.performance_table(audit)

    # --- errors ------------------------------------------------------------------------------

    def confused_pairs(self, run: str, top: int = 5) -> pd.DataFrame:
        """The test split's most confused (true, predicted) pairs with lesion intervals of their
        share of the true class (:func:`confusion.confused_pairs`)."""
        test, tp = self.calibrated(run, "test")
        pairs = confusion.confused_pairs(
            test.labels, tp.argmax(1), test.classes, test.group, top, self.evaluation.n_boot
        )
        return pairs.rename(
            columns={
                "true": "true class",
                "predicted": "predicted class",
                "share": "share_of_true_class",
                "share_low": "share_of_true_class_low",
                "share_high": "share_of_true_class_high",
                "error_share": "share_of_errors",
            }
        )

    def top_losses(self, run: str, k: int = 8) -> tuple[pd.DataFrame, object]:
        """The ``k`` test images the model is surest and wrong about
        (:func:`confusion.top_losses`), and their gallery: Grad-CAM of the predicted class
        over each image (:func:`skinlib.inference.xai.gallery_overlays`), titled with the true
        and the predicted class, its probability and the loss."""
        test, tp = self.calibrated(run, "test")
        losses = confusion.top_losses(test.labels, tp, test.classes, test.image_id, k)
        rows = self.folder(run).split_rows("test").set_index("image_id")
        rows = rows.loc[losses["image_id"]].reset_index()
        chosen = losses.assign(kind="top loss", row=np.arange(len(losses)))
        loaded = load_model(self.run_dir(run))
        method = self.evaluation.xai_method
        images = gallery_overlays(loaded, rows, chosen, method, GALLERY_SIDE)
        titles = [
            f"{r.image_id}\ntrue {r.true}, read as {r.predicted}\n"
            f"p {r.predicted_probability:.2f}, loss {r.loss:.1f}"
            for r in losses.itertuples()
        ]
        return losses, plots.titled_gallery(images, titles)
