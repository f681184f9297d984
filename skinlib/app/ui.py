"""The local web app: the Gradio page around a :class:`~skinlib.app.predictor.Predictor`.

:func:`build_app` lays out the page (upload or example in; answer, decision, conformal set and
Grad-CAM out), :func:`answer` is what it shows for one file, and :func:`launch` serves it on
loopback. The inference itself lives in :mod:`skinlib.app.predictor` and needs no browser.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from PIL import Image

from skinlib.app.inputs import UPLOAD_SUFFIXES, read_upload
from skinlib.app.predictor import PredictionResult, Predictor
from skinlib.data.classes import class_name
from skinlib.data.metadata import ImageMetadata
from skinlib.errors import SkinlibError
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)
# gradio is imported where the page is built, not here: it takes seconds to import, and the
# CLI and the tests use the rest of this module without it.

DISCLAIMER = (
    "**Research tool, not a medical device.** The answers come from a model trained for a "
    "study; they are not a diagnosis and must not guide the care of any patient."
)
DISPLAY_SIDE = 320  # pixels: the page shows the upload and the heat map this large
CSS = "#disclaimer { background: #fef3c7; border-radius: 6px; padding: 0.5em 1em; }"


def example_images(run_dir: Path, n: int = 6) -> list[Path]:
    """A few test-split images of the run (one per class in turn), from its split file."""
    folder = RunFolder(run_dir)
    if not folder.split_file.is_file():
        return []
    table = folder.split_table()
    test = table[(table["split"] == "test") & table["path"].map(lambda p: Path(p).is_file())]
    by_class = [list(rows["path"]) for _, rows in test.groupby("label", sort=True)]
    picked = []
    for i in range(max((len(paths) for paths in by_class), default=0)):
        picked += [paths[i] for paths in by_class if i < len(paths)]
    return [Path(p) for p in picked[:n]]


def folder_images(folder: Path, n: int = 12) -> list[Path]:
    """The first ``n`` image files of a folder (``--examples DIR``), by name."""
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in UPLOAD_SUFFIXES)[:n]


def _resized(image: Image.Image, side: int) -> Image.Image:
    """A copy whose longer side is ``side`` pixels (display only; the model sees the original)."""
    scale = side / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)


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
    metadata: ImageMetadata | None = None,
) -> PageAnswer:
    """What the page shows for one file (``metadata``: the optional age, sex and site a
    metadata model reads).

    Never raises: a refused file or a failing model becomes a message in the status box, so the
    page is never left waiting and the server keeps answering.
    """
    if path is None:
        return PageAnswer("Upload an image or pick an example.")
    name = name or Path(path).name
    try:
        upload = read_upload(path, name, max_bytes=max_bytes)
        result = predictor.predict(upload.image, upload.notes, metadata)
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


def _page_metadata(age, sex, site) -> ImageMetadata:
    """The page's optional fields as metadata: an empty field is not recorded."""
    return ImageMetadata(
        age=None if age is None or age == "" else float(age), sex=sex or None, site=site or None
    )


def _metadata_inputs(predictor: Predictor) -> list:
    """Age, sex and site fields, for a run that reads them (none for an image-only run)."""
    # gradio takes seconds to import: only when the page is built
    import gradio as gr

    if not predictor.uses_metadata:
        return []
    levels = predictor.metadata_levels()
    return [
        gr.Number(label="Age in years (optional)", value=None, minimum=0, elem_id="age"),
        gr.Dropdown(levels["sex"], value=None, label="Sex (optional)", elem_id="sex"),
        gr.Dropdown(levels["site"], value=None, label="Body site (optional)", elem_id="site"),
    ]


def _theme():
    # gradio takes seconds to import: only when the page is built
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
    # gradio takes seconds to import: only when the page is built
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
                fields = _metadata_inputs(predictor)  # read with the next image
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

        def on_upload(path, *values):
            # the file box is emptied again so that the next image can be dropped straight in
            meta = _page_metadata(*values) if values else None
            return None, *answer(predictor, path, max_bytes=max_bytes, metadata=meta)

        def on_example(evt, *values):
            path = examples[evt.index]  # by index: the browser never names a server file
            meta = _page_metadata(*values) if values else None
            return answer(predictor, path, name=f"example {path.name}", metadata=meta)

        # Gradio passes the selection to a parameter annotated gr.SelectData; a real class here,
        # because this module's string annotations cannot see the locally imported ``gr``.
        on_example.__annotations__["evt"] = gr.SelectData
        upload.upload(on_upload, [upload, *fields], [upload, *outputs])
        gallery.select(on_example, fields or None, outputs)
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
