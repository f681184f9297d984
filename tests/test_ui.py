"""The web page without a browser: its answers to good and bad files, examples, wiring (app/ui.py)."""

from __future__ import annotations

import pytest
from conftest import write_jpeg
from fixtures.runs import heldout_rows
from fixtures.uploads import CONVERTED, REFUSED, make_bad_file

from skinlib.app import ui as app
from skinlib.app.ui import answer, example_images


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_page_answers_bad_files_with_a_message_then_predicts_again(
    kind, tiny_run, predictor, tmp_path
):
    bad = answer(predictor, make_bad_file(kind, tmp_path))
    assert bad.status.startswith("**Could not use this file.**")
    assert REFUSED[kind] in bad.status
    assert bad.probabilities is None and bad.cam is None and bad.preview is None
    good = answer(predictor, heldout_rows(tiny_run).loc[0, "path"])
    assert good.status.startswith("Prediction for")
    assert good.cam is not None and good.cam.size == (320, 320)
    assert len(good.probabilities) == len(predictor.classes)


@pytest.mark.parametrize("kind", sorted(CONVERTED))
def test_page_notes_conversions(kind, predictor, tmp_path):
    page = answer(predictor, make_bad_file(kind, tmp_path))
    assert page.status.startswith("Prediction for") and CONVERTED[kind] in page.status
    assert page.cam is not None


def test_page_survives_a_failing_model(predictor, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("CUDA error: device-side assert triggered")

    monkeypatch.setattr(predictor, "predict", broken)
    page = answer(predictor, write_jpeg(tmp_path / "lesion.jpg"))
    assert "The model failed on 'lesion.jpg'" in page.status and page.probabilities is None
    monkeypatch.undo()
    assert answer(predictor, tmp_path / "lesion.jpg").status.startswith("Prediction for")


def test_page_limits_upload_size(predictor, tmp_path):
    path = write_jpeg(tmp_path / "lesion.jpg", size=(64, 64))
    page = answer(predictor, path, max_bytes=100)
    assert "above the limit" in page.status


def test_examples_come_from_the_test_split(tiny_run):
    rows = heldout_rows(tiny_run)
    examples = example_images(tiny_run, n=4)
    assert len(examples) == 4
    labels = dict(zip(rows["path"], rows["label"], strict=True))
    assert len({labels[str(p)] for p in examples}) == 4  # one class after another
    assert (
        app.folder_images(examples[0].parent, n=2) == sorted(examples[0].parent.glob("*.jpg"))[:2]
    )


def test_build_app_wires_the_page(predictor, tiny_run):
    demo = app.build_app(predictor, example_images(tiny_run, n=2), max_upload_mb=5)
    ids = {block.elem_id for block in demo.blocks.values()}
    assert {"upload", "status", "probabilities", "cam", "decision", "run-info", "trust"} <= ids
    assert not demo.analytics_enabled


def test_a_metadata_run_asks_for_age_sex_and_site(metadata_run, predictor):
    from skinlib.app.predictor import Predictor
    from skinlib.data.metadata import ImageMetadata

    with_metadata = Predictor(metadata_run)
    demo = app.build_app(with_metadata)
    ids = {block.elem_id for block in demo.blocks.values()}
    assert {"age", "sex", "site"} <= ids
    image_only = {block.elem_id for block in app.build_app(predictor).blocks.values()}
    assert not {"age", "sex", "site"} & image_only
    path = heldout_rows(metadata_run).loc[0, "path"]
    page = answer(with_metadata, path, metadata=ImageMetadata(age=55.0, sex="female"))
    assert page.status.startswith("Prediction for") and "not recorded: site" in page.status
    assert app._page_metadata(None, "", None) == ImageMetadata()
    assert app._page_metadata(40, "male", "back") == ImageMetadata(40.0, "male", "back")
