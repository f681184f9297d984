"""The web app without a browser: upload validation, the Predictor on a tiny trained run, the page."""

from __future__ import annotations

import doctest
import socket
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_jpeg
from fixtures.runs import build_tiny_run
from PIL import Image

from skinlib.app import predictor as inference
from skinlib.app import ui as app
from skinlib.app.inputs import UploadError, read_upload
from skinlib.app.predictor import Predictor
from skinlib.app.ui import answer, example_images
from skinlib.cli import main
from skinlib.data.images import load_image
from skinlib.errors import DataError
from skinlib.io import write_json
from skinlib.runs.folder import RunFolder


@pytest.fixture(scope="session")
def predictor(tiny_run) -> Predictor:
    return Predictor(tiny_run)


def uncalibrated_copy(run: Path, folder: Path) -> Path:
    """The same run without temperature and operating points (checkpoints linked, not copied)."""
    source, copy = RunFolder(run), RunFolder(folder)
    folder.mkdir(parents=True)
    checkpoints = source.checkpoint().parent
    (folder / checkpoints.name).symlink_to(checkpoints, target_is_directory=True)
    for file in (source.meta_file, source.config_file, source.split_file):
        (copy.path / file.name).write_bytes(file.read_bytes())
    return folder


# --- files a browser can send ---------------------------------------------------------------


def png_declaring(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims ``width`` x ``height`` but holds almost no data (a 'bomb')."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def _frames(n: int, size=(24, 24)) -> list[Image.Image]:
    return [Image.new("RGB", size, (40 * i, 80, 120)) for i in range(n)]


def make_bad_file(kind: str, folder: Path) -> Path:
    """One file per way an upload can be wrong (or merely unusual)."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "text":
        path = folder / "notes.txt"
        path.write_text("this is not an image\n")
    elif kind == "text_named_jpg":
        path = folder / "lesion.jpg"
        path.write_text("<html>not an image either</html>")
    elif kind == "empty":
        path = folder / "empty.png"
        path.write_bytes(b"")
    elif kind == "huge":
        path = png_declaring(folder / "huge.png", 8000, 8000)  # 64 megapixels
    elif kind == "bomb":
        path = png_declaring(folder / "bomb.png", 30000, 30000)  # 900 megapixels
    elif kind == "gif":
        path = folder / "animated.gif"
        first, *rest = _frames(3)
        first.save(path, save_all=True, append_images=rest, duration=100, loop=0)
    elif kind == "tiff_pages":
        path = folder / "pages.tif"
        first, *rest = _frames(2)
        first.save(path, save_all=True, append_images=rest)
    elif kind == "truncated":
        whole = write_jpeg(folder / "whole.jpg", size=(64, 64))
        path = folder / "truncated.jpg"
        path.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    elif kind == "grey16":
        path = folder / "grey16.png"
        ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
        Image.fromarray(ramp).save(path)
    elif kind == "cmyk":
        path = folder / "cmyk.jpg"
        Image.new("CMYK", (32, 32), (0, 200, 200, 0)).save(path)
    else:
        raise ValueError(kind)
    return path


REFUSED = {
    "text": "not an image",
    "text_named_jpg": "not an image",
    "empty": "empty (0 bytes)",
    "huge": "above the limit of 50 megapixels",
    "bomb": "decompression bomb",
    "gif": "3 frames",
    "tiff_pages": "2 frames",
    "truncated": "truncated or corrupt",
}
CONVERTED = {"grey16": "16-bit", "cmyk": "CMYK"}


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_bad_uploads_are_refused_with_a_message(kind, tmp_path):
    path = make_bad_file(kind, tmp_path)
    with pytest.raises(UploadError) as err:
        read_upload(path)
    message = str(err.value)
    assert REFUSED[kind] in message
    assert path.name in message  # names the file the user chose
    assert str(tmp_path) not in message  # but not the server's temporary folder


@pytest.mark.parametrize("kind", sorted(CONVERTED))
def test_unusual_images_are_converted_with_a_note(kind, tmp_path):
    upload = read_upload(make_bad_file(kind, tmp_path))
    assert upload.image.mode == "RGB"
    assert upload.image.size == (32, 32)
    assert any(CONVERTED[kind] in note for note in upload.notes)


def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path):
    pixels = np.asarray(read_upload(make_bad_file("grey16", tmp_path)).image)
    # the ramp covers 0..65535, so the 8-bit copy must cover 0..255 (clipping would give 255s)
    assert pixels.min() == 0 and pixels.max() == 255
    assert np.mean(pixels == 255) < 0.01


def test_ordinary_image_and_file_size_limit(tmp_path):
    path = write_jpeg(tmp_path / "lesion.jpg", size=(40, 30))
    upload = read_upload(path)
    assert upload.image.size == (40, 30) and upload.notes == [] and upload.name == "lesion.jpg"
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (3 * 2**20 // 2))  # 1.5 MB, refused before it is even opened
    with pytest.raises(UploadError, match="is 1.5 MB, above the limit of 1 MB"):
        read_upload(big, max_bytes=2**20)


def test_pixel_limit_is_adjustable(tmp_path):
    path = write_jpeg(tmp_path / "lesion.jpg", size=(40, 30))
    with pytest.raises(UploadError, match="40x30 pixels"):
        read_upload(path, max_pixels=1000)


# --- the Predictor on a trained run ---------------------------------------------------------


def _test_rows(run: Path):
    return RunFolder(run).split_rows("test")


def test_probabilities_match_the_training_runs_own_test_predictions(tiny_run, predictor):
    """Same preprocessing and temperature as evaluation: the app reproduces predictions_test.csv."""
    temperature = RunFolder(tiny_run).temperature()
    assert temperature is not None and predictor.calibrated
    stored = RunFolder(tiny_run).predictions("test")
    expected = stored.probabilities(temperature)
    rows = _test_rows(tiny_run)
    for i in range(3):
        assert stored.image_id[i] == rows.loc[i, "image_id"]
        got = predictor.probabilities(load_image(rows.loc[i, "path"]))
        np.testing.assert_allclose(got, expected[i], atol=1e-5)
        assert got.sum() == pytest.approx(1.0)


def test_prediction_result_is_complete(tiny_run, predictor):
    image = load_image(_test_rows(tiny_run).loc[0, "path"])
    result = predictor.predict(image)
    proba = np.array(list(result.probabilities.values()))
    assert list(result.probabilities) == predictor.classes
    assert [c for c, _ in result.top3] == [predictor.classes[i] for i in np.argsort(-proba)[:3]]
    assert result.top_class == result.cam_class
    assert result.cam_overlay.dtype == np.uint8 and result.cam_overlay.shape == (320, 320, 3)
    assert result.cam_overlay.std() > 0  # a heat map, not a blank image
    assert "resnet18" in result.run_info and "checkpoints/best.pt" in result.run_info
    assert "temperature" in result.run_info and not result.notes
    # the decision compares the calibrated melanoma probability with the stored threshold
    point = RunFolder(tiny_run).operating_points()[0]
    mel = result.probabilities["mel"]
    side = "above" if mel >= point.threshold else "below"
    assert f"melanoma probability {mel:.2f} is {side} the threshold {point.threshold:.2f}" in (
        result.decision
    )
    assert "90% specificity on validation" in result.decision


def test_decision_text_and_doctest():
    from skinlib.evaluation.thresholds import OperatingPoint

    point = OperatingPoint(["mel", "bcc"], "sensitivity", 0.95, 0.5, 1.0, 0.95, 0.6)
    classes = ["bcc", "mel", "nv"]
    text = inference.describe_decision(np.array([0.3, 0.25, 0.45]), classes, point)
    assert text.startswith("melanoma + basal cell carcinoma probability 0.55 is above")
    assert text.endswith("chosen for 95% sensitivity on validation: refer.")
    assert "below" in inference.describe_decision(np.array([0.1, 0.2, 0.7]), classes, point)
    assert "no thresholds.json" in inference.describe_decision(np.array([1.0, 0, 0]), classes, None)
    point.positive = ["scc"]
    assert "does not predict" in inference.describe_decision(
        np.array([0.3, 0.25, 0.45]), classes, point
    )
    assert doctest.testmod(inference).failed == 0


def test_uncalibrated_run_says_so(tiny_run, tmp_path):
    plain = Predictor(uncalibrated_copy(tiny_run, tmp_path / "plain"))
    image = load_image(_test_rows(tiny_run).loc[0, "path"])
    result = plain.predict(image)
    raw = RunFolder(tiny_run).predictions("test").probabilities(1.0)[0]
    np.testing.assert_allclose(list(result.probabilities.values()), raw, atol=1e-5)
    assert any("Uncalibrated" in note for note in result.notes)
    assert "uncalibrated" in result.run_info
    assert result.decision.startswith("No operating point is stored")


def test_ensemble_averages_calibrated_members_with_weights(tiny_run, predictor, tmp_path):
    plain = uncalibrated_copy(tiny_run, tmp_path / "plain")
    calibrated_run = uncalibrated_copy(tiny_run, tmp_path / "calibrated")
    RunFolder(calibrated_run).write_temperature(RunFolder(tiny_run).temperature())
    # members by run name, siblings in the study folder (as Study.build_ensemble writes them)
    folder = RunFolder(tmp_path / "ensemble")
    folder.write_ensemble(["calibrated", "plain"], [1, 3], "mean of calibrated probabilities")
    ensemble = Predictor(folder.path)
    image = load_image(_test_rows(tiny_run).loc[1, "path"])
    calibrated = predictor.probabilities(image)
    raw = Predictor(plain).probabilities(image)
    np.testing.assert_allclose(ensemble.probabilities(image), (calibrated + 3 * raw) / 4, atol=1e-6)
    assert not ensemble.calibrated  # one member has no temperature
    assert "Ensemble" in ensemble.describe() and ensemble.describe().count("run `") == 2
    # older ensemble files: absolute folders, or folders relative to the ensemble folder
    old = tmp_path / "old"
    write_json(
        RunFolder(old).ensemble_file, {"members": [str(tiny_run), "../plain"], "weights": [1, 3]}
    )
    np.testing.assert_allclose(
        Predictor(old).probabilities(image), (calibrated + 3 * raw) / 4, atol=1e-6
    )
    # the ensemble's own temperature (fitted by the study on the averaged output) comes last
    folder.write_temperature(2.0)
    mean = (calibrated + 3 * raw) / 4
    expected = np.sqrt(mean) / np.sqrt(mean).sum()  # softmax(log(p) / 2)
    np.testing.assert_allclose(Predictor(folder.path).probabilities(image), expected, atol=1e-5)


def test_tta_averages_over_flips_and_rotations(tiny_run, predictor):
    from skinlib.inference.scoring import TTA_VIEWS

    image = load_image(_test_rows(tiny_run).loc[0, "path"])
    views = [
        image,
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        image.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
        image.transpose(Image.Transpose.ROTATE_90),
        image.transpose(Image.Transpose.ROTATE_180),
        image.transpose(Image.Transpose.ROTATE_270),
    ]
    assert len(views) == len(TTA_VIEWS)
    loaded = predictor.members[0]
    with torch.no_grad():
        raw = [torch.softmax(loaded.model(loaded.transform(v)[None]), 1)[0] for v in views]
    mean = torch.stack(raw).mean(0).numpy()
    # the single-view temperature does not apply to averaged views: uncalibrated until 07 fits
    # the TTA one (calibration_tta.json), then that one
    tta = Predictor(tiny_run, tta=True)
    assert not tta.calibrated and tta.operating_point is None
    # PIL transposes before resizing vs tensor flips after: equal up to float rounding
    got = tta.probabilities(image)
    np.testing.assert_allclose(got, mean, atol=1e-4)
    RunFolder(tiny_run).write_temperature(2.0, tta=True)
    try:
        expected = mean ** (1 / 2.0) / (mean ** (1 / 2.0)).sum()
        np.testing.assert_allclose(
            Predictor(tiny_run, tta=True).probabilities(image), expected, atol=1e-4
        )
    finally:
        RunFolder(tiny_run).calibration_file(tta=True).unlink()
    assert np.abs(got - predictor.probabilities(image)).max() > 5e-4  # TTA did change something
    assert "test-time augmentation on" in tta.describe()


@pytest.mark.slow
def test_binary_run(tmp_path_factory):
    run = build_tiny_run(tmp_path_factory.getbasetemp() / "app", task="binary")
    binary = Predictor(run)
    assert binary.binary and binary.classes == ["other", "mel"]
    result = binary.predict(load_image(_test_rows(run).loc[0, "path"]))
    assert len(result.top3) == 2 and sum(result.probabilities.values()) == pytest.approx(1.0)
    assert result.cam_overlay.shape == (320, 320, 3)
    assert "melanoma probability" in result.decision


def test_broken_run_files_give_messages(tiny_run, tmp_path):
    folder = RunFolder(uncalibrated_copy(tiny_run, tmp_path / "broken"))
    folder.calibration_file().write_text('{"temp": 1.5}')  # not what write_temperature writes
    with pytest.raises(DataError, match="no usable 'temperature'"):
        Predictor(folder.path)
    folder.write_temperature(1.5)  # not the temperature the operating point was chosen at
    folder.write_operating_points(RunFolder(tiny_run).operating_points())
    result = Predictor(folder.path).predict(load_image(_test_rows(tiny_run).loc[0, "path"]))
    assert any("re-run the thresholds step" in note for note in result.notes)
    RunFolder(tmp_path / "ens").write_ensemble(["nowhere"], None, "mean")
    with pytest.raises(DataError, match="without checkpoints"):
        Predictor(tmp_path / "ens")


def test_the_page_names_the_split_the_temperature_and_threshold_were_fitted_on(tiny_run, tmp_path):
    folder = RunFolder(uncalibrated_copy(tiny_run, tmp_path / "cal"))
    source = RunFolder(tiny_run)
    folder.write_temperature(source.temperature(), fitted_on="calibration")
    folder.write_operating_points(source.operating_points(), chosen_on="calibration")
    predictor = Predictor(folder.path)
    assert "(fitted on calibration)" in predictor.describe()
    decision = predictor.predict(load_image(_test_rows(tiny_run).loc[0, "path"])).decision
    assert decision.endswith(
        "90% specificity on the calibration split: refer."
    ) or decision.endswith("90% specificity on the calibration split: not flagged.")
    assert "(fitted on validation)" in Predictor(tiny_run).describe()


# --- the page's answers (what the browser shows), bad input first ---------------------------


@pytest.mark.parametrize("kind", sorted(REFUSED))
def test_page_answers_bad_files_with_a_message_then_predicts_again(
    kind, tiny_run, predictor, tmp_path
):
    bad = answer(predictor, make_bad_file(kind, tmp_path))
    assert bad.status.startswith("**Could not use this file.**")
    assert REFUSED[kind] in bad.status
    assert bad.probabilities is None and bad.cam is None and bad.preview is None
    good = answer(predictor, _test_rows(tiny_run).loc[0, "path"])
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
    rows = _test_rows(tiny_run)
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


def test_serve_refuses_a_missing_run(tmp_path, capsys):
    assert main(["serve", "--run", str(tmp_path / "nowhere")]) == 2
    assert "no such folder" in capsys.readouterr().err


def test_serve_reports_a_busy_port(tiny_run, capsys, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--run", str(tiny_run), "--port", str(port), "--device", "cpu"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("localhost", True), ("::1", True), ("0.0.0.0", False)],
)
def test_loopback_detection(host, loopback):
    from skinlib.commands.serve import _is_loopback

    assert _is_loopback(host) is loopback


# --- 08 trust: the prediction set and the refer flag ------------------------------------------


def _with_conformal(run: Path, folder: Path, quantile: float, unknown: float) -> Path:
    """A copy of the run whose conformal sets have one LAC threshold and an unknown threshold."""
    from skinlib.evaluation.conformal import StoredConformal

    copy = RunFolder(uncalibrated_copy(run, folder))
    copy.write_temperature(RunFolder(run).temperature())
    stored = RunFolder(run).conformal()
    stored.quantiles = [quantile] * len(stored.classes)
    stored.unknown = {"score": "msp", "threshold": unknown, "keeps_known": 0.95}
    copy.write_conformal(StoredConformal(**vars(stored)))
    return copy.path


def test_prediction_set_and_refer_flag(tiny_run, predictor, tmp_path):
    image = load_image(_test_rows(tiny_run).loc[0, "path"])
    proba = predictor.probabilities(image)
    top = predictor.classes[int(proba.argmax())]
    # threshold 1 - p_max: only the top class fits; unknown threshold below p_max: sure
    sure = Predictor(_with_conformal(tiny_run, tmp_path / "a", 1 - proba.max(), 0.0))
    result = sure.predict(image)
    assert result.prediction_set == f"{top} at 90%" and result.refer == []
    assert "Unsure" not in app._format_trust(result)
    # every class fits, and the top probability is below the validation threshold: refer twice
    unsure = Predictor(_with_conformal(tiny_run, tmp_path / "b", 1.0, proba.max() + 0.01))
    result = unsure.predict(image)
    assert result.prediction_set.startswith(f"{top} or ") and " at 90%" in result.prediction_set
    assert len(result.refer) == 2 and "holds 7 classes" in result.refer[0]
    assert "unlike the validation images" in result.refer[1]
    assert "**Unsure: refer.**" in app.answer(unsure, _test_rows(tiny_run).loc[0, "path"]).trust


def test_no_conformal_file_means_no_set(tiny_run, tmp_path):
    result = Predictor(uncalibrated_copy(tiny_run, tmp_path / "c")).predict(
        load_image(_test_rows(tiny_run).loc[0, "path"])
    )
    assert result.prediction_set is None and result.refer == []
    assert "has not stored one" in app._format_trust(result)
