"""The local web app: a trained run (or an ensemble of runs) answers uploaded dermoscopic images.

:class:`Predictor` holds the inference and needs no browser, so it is tested directly;
:func:`build_app` lays out the Gradio page around it and :func:`launch` serves it on loopback.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import torch
from PIL import Image

from skinlib.app_inputs import read_upload
from skinlib.conformal import describe_set
from skinlib.errors import DataError, SkinlibError
from skinlib.io import read_json
from skinlib.runs import read_temperature, thresholds_path

if TYPE_CHECKING:
    from skinlib.thresholds import OperatingPoint

log = logging.getLogger(__name__)

DISCLAIMER = (
    "**Research tool, not a medical device.** The answers come from a model trained for a "
    "study; they are not a diagnosis and must not guide the care of any patient."
)
CLASS_NAMES = {
    "akiec": "actinic keratosis / intraepithelial carcinoma",
    "bcc": "basal cell carcinoma",
    "bkl": "benign keratosis",
    "df": "dermatofibroma",
    "mel": "melanoma",
    "nv": "melanocytic nevus",
    "vasc": "vascular lesion",
    "scc": "squamous cell carcinoma",
    "other": "other (not the positive class)",
}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
DISPLAY_SIDE = 320  # pixels: the page shows the upload and the heat map this large


def class_name(code: str) -> str:
    """``"mel"`` -> ``"melanoma (mel)"``; unknown codes are shown as they are."""
    return f"{CLASS_NAMES[code]} ({code})" if code in CLASS_NAMES else code


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
            90%"); None without ``conformal.json``.
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


# --- reading a run folder ---------------------------------------------------------------------


def ensemble_members(run_dir: Path) -> tuple[list[Path], list[float]]:
    """The run folders that answer, and their weights.

    A plain run answers alone. An ensemble folder holds ``ensemble.json``: either a list of run
    folders or ``{"members": [...], "weights": [...]}`` (weights optional); relative folders are
    read from the ensemble folder.
    """
    spec = run_dir / "ensemble.json"
    if not spec.is_file():
        return [run_dir], [1.0]
    try:
        data = read_json(spec)
    except ValueError as err:
        raise DataError(f"{spec}: not valid JSON ({err})") from None
    members = data.get("members") if isinstance(data, dict) else data
    if not isinstance(members, list) or not members:
        raise DataError(f"{spec}: expected a list of run folders (or {{'members': [...]}})")
    folders = [(run_dir / str(m)).resolve() for m in members]
    missing = [str(f) for f in folders if not (f / "checkpoints").is_dir()]
    if missing:
        raise DataError(f"{spec}: member run folders without checkpoints: {missing}")
    weights = data.get("weights") if isinstance(data, dict) else None
    try:
        weights = [1.0] * len(folders) if weights is None else [float(w) for w in weights]
    except (TypeError, ValueError):
        weights = []
    if len(weights) != len(folders) or min(weights) < 0 or sum(weights) <= 0:
        raise DataError(f"{spec}: weights must be non-negative numbers, one per member")
    return folders, weights


def _calibrated(logits: np.ndarray, classes: list[str], temperature: float | None) -> np.ndarray:
    """(C,) probabilities of one image's logits at a temperature, by the predictions file's rule."""
    from skinlib.predictions import Predictions

    one = Predictions(["upload"], ["upload"], [0], np.reshape(logits, (1, -1)), classes)
    return one.probabilities(temperature or 1.0)[0]


def read_operating_point(run_dir: Path, tta: bool = False) -> OperatingPoint | None:
    """The first operating point of ``thresholds.json`` (:func:`skinlib.thresholds.save_thresholds`)
    or None when the study stored none for this run."""
    from skinlib.thresholds import load_thresholds

    path = thresholds_path(run_dir, tta)
    if not path.is_file():
        return None
    try:
        points = load_thresholds(path)
    except (KeyError, TypeError, ValueError) as err:
        raise DataError(
            f"{path}: not a thresholds file ({err}); re-run the thresholds step"
        ) from None
    return points[0] if points else None


def _criterion_words(point: OperatingPoint) -> str:
    if point.criterion == "youden":
        return "chosen on validation to maximise sensitivity + specificity (Youden)"
    return f"chosen for {point.target:.0%} {point.criterion} on validation"


def describe_decision(
    proba: np.ndarray, classes: Sequence[str], point: OperatingPoint | None
) -> str:
    """The answer at the stored operating point, in words.

    >>> from skinlib.thresholds import OperatingPoint
    >>> point = OperatingPoint(["mel"], "specificity", 0.95, 0.27, 1.0, 0.8, 0.95)
    >>> describe_decision(np.array([0.59, 0.41]), ["nv", "mel"], point)
    'melanoma probability 0.41 is above the threshold 0.27 chosen for 95% specificity on validation: refer.'
    """
    if point is None:
        return "No operating point is stored for this run (no thresholds.json), so no decision."
    from skinlib.thresholds import positive_score

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
        f"{_criterion_words(point)}: {verdict}."
    )


def _member_line(loaded, temperature: float | None) -> str:
    meta_path = loaded.run_dir / "meta.json"
    meta = read_json(meta_path) if meta_path.is_file() else {}
    epoch = f", epoch {meta['best_epoch']} of {meta['epochs_run']}" if "best_epoch" in meta else ""
    calibration = (
        f"temperature {temperature:.3g} (fitted on validation)"
        if temperature is not None
        else "**uncalibrated** (no calibration.json)"
    )
    return (
        f"run `{loaded.run_dir}` · architecture **{loaded.config.model.arch}** · checkpoint "
        f"`checkpoints/{loaded.checkpoint}.pt`{epoch} · {calibration}"
    )


def _central_square(image: Image.Image, side: int) -> Image.Image:
    """What the evaluation transform keeps (shorter side resized, centre-cropped), at ``side``."""
    short = min(image.size)
    left, top = (image.width - short) // 2, (image.height - short) // 2
    square = image.crop((left, top, left + short, top + short))
    return square.resize((side, side), Image.Resampling.BICUBIC)


class Predictor:
    """Calibrated class probabilities, a decision and a Grad-CAM map, one image at a time.

    Uses the run's own evaluation preprocessing (``LoadedRun.transform``) and the temperature
    fitted for it. An ensemble folder (``ensemble.json``, as ``Study.build_ensemble`` writes it)
    averages its members' calibrated probabilities with their weights, applies the ensemble's own
    temperature when it has one, and explains with the first member's Grad-CAM.

    Args:
        run_dir: a trained run folder ``experiments/<study>/<run>`` or an ensemble folder.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        tta: average over flips and right-angle rotations (``skinlib.evaluation.TTA_VIEWS``).
            With TTA the run's TTA temperature and threshold apply (``*_tta.json``, fitted
            on the TTA predictions of the validation split by 07); without them it is
            uncalibrated and makes no decision.
    """

    def __init__(self, run_dir: str | Path, device: str = "cpu", tta: bool = False):
        from skinlib.runs import load_model

        self.run_dir = Path(run_dir)
        self.device = torch.device(device)
        self.tta = tta
        folders, self.weights = ensemble_members(self.run_dir)
        self.members = [load_model(f, device=self.device) for f in folders]
        self.temperatures = [read_temperature(f, tta) for f in folders]
        self.is_ensemble = folders != [self.run_dir]
        # an ensemble folder's own temperature is fitted on the averaged output (Study.calibrate)
        self.ensemble_temperature = (
            read_temperature(self.run_dir, tta) if self.is_ensemble else None
        )
        self.classes = list(self.members[0].classes)
        for member in self.members[1:]:
            if list(member.classes) != self.classes:
                raise DataError(
                    f"ensemble members disagree on classes: {self.classes} vs {member.classes}"
                )
        self.binary = self.members[0].config.data.task == "binary"
        self.operating_point = read_operating_point(self.run_dir, tta)
        self.conformal = read_conformal(self.run_dir, self.classes)

    @property
    def calibrated(self) -> bool:
        return all(t is not None for t in self.temperatures)

    def _threshold_mismatch(self) -> str | None:
        """A warning when thresholds.json was chosen at another temperature than the one in use
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
        lines = [_member_line(m, t) for m, t in zip(self.members, self.temperatures, strict=True)]
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

    @torch.no_grad()
    def _logits(self, loaded, image: Image.Image) -> np.ndarray:
        from skinlib.evaluation import TTA_VIEWS, _proba, _view, probabilities_to_logits

        x = loaded.transform(image).unsqueeze(0).to(self.device)
        if not self.tta:
            return loaded.model(x).float().cpu().numpy()
        # average probabilities over views, as skinlib.evaluation.predict_table does
        batch = torch.cat([_view(x, v) for v in TTA_VIEWS])
        proba = _proba(loaded.model(batch), self.binary).mean(0, keepdim=True)
        return probabilities_to_logits(proba.cpu().numpy(), self.binary)

    def probabilities(self, image: Image.Image) -> np.ndarray:
        """Calibrated probabilities (C,) of an RGB image (ensembles: their weighted mean)."""
        members = zip(self.members, self.temperatures, self.weights, strict=True)
        proba = sum(w * _calibrated(self._logits(m, image), self.classes, t) for m, t, w in members)
        proba = proba / sum(self.weights)
        if self.ensemble_temperature is None:
            return proba
        from skinlib.evaluation import probabilities_to_logits

        logits = probabilities_to_logits(proba[None], self.binary)
        return _calibrated(logits, self.classes, self.ensemble_temperature)

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

    def cam_overlay(self, image: Image.Image, target: int, side: int = 320) -> np.ndarray:
        """(side, side, 3) uint8 Grad-CAM of class ``target`` over the part the model sees."""
        from skinlib.xai import compute_cams, overlay

        loaded = self.members[0]
        x = loaded.transform(image).unsqueeze(0).to(self.device)
        cam = compute_cams(loaded.model, x, targets=[target])[0]
        return overlay(np.asarray(_central_square(image, side)), cam)

    def predict(self, image: Image.Image, notes: Sequence[str] = ()) -> PredictionResult:
        """Everything the page shows for one RGB image (see :class:`PredictionResult`)."""
        proba = self.probabilities(image)
        order = np.argsort(-proba, kind="stable")
        notes = list(notes)
        if not self.calibrated:
            notes.append(
                "Uncalibrated: no temperature was fitted for this run (calibration.json "
                "missing), so these are the model's raw probabilities."
            )
        if mismatch := self._threshold_mismatch():
            notes.append(mismatch)
        prediction_set, refer = self.trust(proba)
        return PredictionResult(
            probabilities={c: float(p) for c, p in zip(self.classes, proba, strict=True)},
            top3=[(self.classes[i], float(proba[i])) for i in order[:3]],
            decision=describe_decision(proba, self.classes, self.operating_point),
            cam_overlay=self.cam_overlay(image, int(order[0])),
            cam_class=self.classes[order[0]],
            run_info=self.describe(),
            notes=notes,
            prediction_set=prediction_set,
            refer=refer,
        )

    def predict_file(
        self, path: str | Path, name: str | None = None, max_bytes: int | None = None
    ) -> PredictionResult:
        """Validate an uploaded file (:func:`skinlib.app_inputs.read_upload`), then predict.

        Raises:
            UploadError: with a message for the page when the file cannot be used.
        """
        upload = read_upload(path, name, max_bytes=max_bytes)
        return self.predict(upload.image, upload.notes)


# --- the page --------------------------------------------------------------------------------

CSS = "#disclaimer { background: #fef3c7; border-radius: 6px; padding: 0.5em 1em; }"


def example_images(run_dir: Path, n: int = 6) -> list[Path]:
    """A few test-split images of the run (one per class in turn), from its ``split.csv``."""
    path = run_dir / "split.csv"
    if not path.is_file():
        return []
    table = pd.read_csv(path, usecols=lambda c: c in ("label", "split", "path"))
    test = table[(table["split"] == "test") & table["path"].map(lambda p: Path(p).is_file())]
    by_class = [list(rows["path"]) for _, rows in test.groupby("label", sort=True)]
    picked = []
    for i in range(max((len(paths) for paths in by_class), default=0)):
        picked += [paths[i] for paths in by_class if i < len(paths)]
    return [Path(p) for p in picked[:n]]


def folder_images(folder: Path, n: int = 12) -> list[Path]:
    """The first ``n`` image files of a folder (``--examples DIR``), by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:n]


def _resized(image: Image.Image, side: int) -> Image.Image:
    """A copy whose longer side is ``side`` pixels (display only; the model sees the original)."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


def read_conformal(run_dir: Path, classes: Sequence[str]):
    """The run's conformal sets and unknown threshold (step 08), or None; a file written for
    other classes is refused with a warning rather than applied to the wrong columns."""
    from skinlib.conformal import FILE_NAME, load_conformal

    stored = load_conformal(run_dir / FILE_NAME)
    if stored is not None and list(stored.classes) != list(classes):
        log.warning("%s: classes %s differ from the run's %s; ignored", run_dir / FILE_NAME,
                    stored.classes, list(classes))  # fmt: skip
        return None
    return stored


def _format_trust(result: PredictionResult) -> str:
    if result.prediction_set is None:
        return "No prediction set: the trust step (08) has not stored one for this run."
    text = f"**Prediction set:** {result.prediction_set}."
    if result.refer:
        reasons = "; ".join(result.refer)
        text += f"\n\n**Unsure: refer.** {reasons[0].upper()}{reasons[1:]}."
    return text


def _format_result(result: PredictionResult, name: str) -> tuple[str, str, str]:
    top, p = result.top3[0]
    status = f"Prediction for **{name}**: **{class_name(top)}**, probability {p:.2f}."
    status += "".join(f"\n- {note}" for note in result.notes)
    top3 = "**Top three**\n\n" + "\n".join(
        f"{rank}. {class_name(c)}: {q:.3f}" for rank, (c, q) in enumerate(result.top3, 1)
    )
    return status, top3, f"**Decision.** {result.decision}"


class PageAnswer(NamedTuple):
    """The page's outputs, in the order :func:`build_app` wires them."""

    status: str  # markdown: what was predicted, or why the file was refused
    preview: Image.Image | None = None  # the upload as decoded
    probabilities: dict[str, float] | None = None  # display name -> calibrated probability
    top3: str = ""
    decision: str = ""
    cam: Image.Image | None = None  # Grad-CAM overlay, enlarged for the page
    trust: str = ""  # markdown: the conformal set and the refer flag


def answer(
    predictor: Predictor,
    path: str | Path | None,
    name: str | None = None,
    max_bytes: int | None = None,
) -> PageAnswer:
    """What the page shows for one file.

    Never raises: a refused file or a failing model becomes a message in the status box, so the
    page is never left waiting and the server keeps answering.
    """
    if path is None:
        return PageAnswer("Upload an image or pick an example.")
    name = name or Path(path).name
    try:
        upload = read_upload(path, name, max_bytes=max_bytes)
        result = predictor.predict(upload.image, upload.notes)
    except SkinlibError as err:
        return PageAnswer(f"**Could not use this file.** {err}")
    except Exception:  # a bug or an exotic image must not take the page down
        log.exception("prediction failed for %s", name)
        return PageAnswer(
            f"**Could not use this file.** The model failed on '{name}' (details in the server "
            "log). Try another image."
        )
    status, top3, decision = _format_result(result, name)
    return PageAnswer(
        status=status,
        preview=_resized(upload.image, DISPLAY_SIDE),
        probabilities={class_name(c): p for c, p in result.probabilities.items()},
        top3=top3,
        decision=decision,
        cam=_resized(Image.fromarray(result.cam_overlay), DISPLAY_SIDE),
        trust=_format_trust(result),
    )


def _example_gallery(paths: Sequence[Path]) -> tuple[list[Path], list[tuple[Image.Image, str]]]:
    """Thumbnails of the example images that can be read (others are skipped with a warning)."""
    kept, thumbnails = [], []
    for path in paths:
        try:
            image = read_upload(path).image
        except SkinlibError as err:
            log.warning("example skipped: %s", err)
            continue
        kept.append(path)
        thumbnails.append((_resized(image, 160), path.name))
    return kept, thumbnails


def _theme():
    import gradio as gr

    # System fonts only: the page must not fetch anything from the internet (offline, private).
    return gr.themes.Default(
        font=["ui-sans-serif", "system-ui", "sans-serif"],
        font_mono=["ui-monospace", "Consolas", "monospace"],
    )


def build_app(predictor: Predictor, examples: Sequence[str | Path] = (), max_upload_mb: float = 20):
    """The Gradio page around a predictor: upload or example in, answer and Grad-CAM out.

    Args:
        predictor: answers the images.
        examples: image files offered as examples (shown as thumbnails; picked by index, so the
            browser never names a file on the server).
        max_upload_mb: shown on the page and checked again on every file.
    """
    import gradio as gr

    examples, thumbnails = _example_gallery([Path(p) for p in examples])
    max_bytes = int(max_upload_mb * 2**20)
    with gr.Blocks(
        title="skinlib: lesion classifier",
        analytics_enabled=False,
        delete_cache=(3600, 3600),  # hourly, drop uploads older than an hour: they may be patients'
    ) as demo:
        gr.Markdown("# skinlib: dermoscopic lesion classifier")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Row():
            with gr.Column():
                upload = gr.File(
                    label=f"Upload a dermoscopic image (at most {max_upload_mb:g} MB)",
                    file_count="single",
                    type="filepath",
                    elem_id="upload",
                )
                preview = gr.Image(label="Image", interactive=False, elem_id="preview", height=280)
                gallery = gr.Gallery(
                    thumbnails,
                    label="Or pick an example",
                    columns=3,
                    rows=2,
                    allow_preview=False,
                    interactive=False,
                    visible=bool(examples),
                    elem_id="examples",
                )
            with gr.Column():
                status = gr.Markdown("Upload an image or pick an example.", elem_id="status")
                probs = gr.Label(
                    label="Calibrated probabilities"
                    if predictor.calibrated
                    else "Probabilities (uncalibrated)",
                    num_top_classes=len(predictor.classes),
                    elem_id="probabilities",
                )
                top3 = gr.Markdown(elem_id="top3")
                decision = gr.Markdown(elem_id="decision")
                trust = gr.Markdown(elem_id="trust")
                cam = gr.Image(
                    label="Grad-CAM of the top class", interactive=False, elem_id="cam", height=280
                )
        gr.Markdown(predictor.describe(), elem_id="run-info")
        outputs = [status, preview, probs, top3, decision, cam, trust]

        def on_upload(path):
            # the file box is emptied again so that the next image can be dropped straight in
            return None, *answer(predictor, path, max_bytes=max_bytes)

        def on_example(evt):
            path = examples[evt.index]  # by index: the browser never names a server file
            return answer(predictor, path, name=f"example {path.name}")

        # Gradio passes the selection to a parameter annotated gr.SelectData; a real class here,
        # because this module's string annotations cannot see the locally imported ``gr``.
        on_example.__annotations__["evt"] = gr.SelectData
        upload.upload(on_upload, upload, [upload, *outputs])
        gallery.select(on_example, None, outputs)
    return demo


def launch(
    demo,
    host: str = "127.0.0.1",
    port: int = 7860,
    max_upload_mb: float = 20,
    block: bool = True,
):
    """Serve the page on ``host:port`` (loopback unless asked otherwise), never sharing it.

    Returns:
        The URL of the running page (after the server stops, when ``block``).
    """
    demo.queue(default_concurrency_limit=1)  # one image at a time: inference holds the CPU/GPU
    _, url, _ = demo.launch(
        server_name=host,
        server_port=port,
        share=False,
        max_file_size=int(max_upload_mb * 2**20),  # refused by Gradio before the app sees it
        prevent_thread_lock=not block,
        footer_links=[],
        enable_monitoring=False,
        mcp_server=False,
        ssr_mode=False,
        run_history=False,
        theme=_theme(),
        css=CSS,
    )
    return url
