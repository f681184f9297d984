"""The app's Predictor on a tiny trained run: the study's preprocessing, temperature, threshold,
ensembles, TTA and conformal sets (app/predictor.py)."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch
from fixtures.runs import build_tiny_run, heldout_rows, uncalibrated_copy, with_conformal
from PIL import Image

from skinlib.app import predictor as inference
from skinlib.app import ui as app
from skinlib.app.predictor import Predictor
from skinlib.data.images import load_image
from skinlib.errors import DataError
from skinlib.io import write_json
from skinlib.runs.folder import RunFolder


def test_probabilities_match_the_training_runs_own_test_predictions(tiny_run, predictor):
    """Same preprocessing and temperature as evaluation: the app reproduces predictions_test.csv."""
    temperature = RunFolder(tiny_run).temperature()
    assert temperature is not None and predictor.calibrated
    stored = RunFolder(tiny_run).predictions("test")
    expected = stored.probabilities(temperature)
    rows = heldout_rows(tiny_run)
    for i in range(3):
        assert stored.image_id[i] == rows.loc[i, "image_id"]
        got = predictor.probabilities(load_image(rows.loc[i, "path"]))
        np.testing.assert_allclose(got, expected[i], atol=1e-5)
        assert got.sum() == pytest.approx(1.0)


def test_prediction_result_is_complete(tiny_run, predictor):
    image = load_image(heldout_rows(tiny_run).loc[0, "path"])
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
    image = load_image(heldout_rows(tiny_run).loc[0, "path"])
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
    image = load_image(heldout_rows(tiny_run).loc[1, "path"])
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

    image = load_image(heldout_rows(tiny_run).loc[0, "path"])
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
    result = binary.predict(load_image(heldout_rows(run).loc[0, "path"]))
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
    result = Predictor(folder.path).predict(load_image(heldout_rows(tiny_run).loc[0, "path"]))
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
    decision = predictor.predict(load_image(heldout_rows(tiny_run).loc[0, "path"])).decision
    assert decision.endswith(
        "90% specificity on the calibration split: refer."
    ) or decision.endswith("90% specificity on the calibration split: not flagged.")
    assert "(fitted on validation)" in Predictor(tiny_run).describe()


# --- 08 trust: the prediction set and the refer flag ------------------------------------------


def test_prediction_set_and_refer_flag(tiny_run, predictor, tmp_path):
    image = load_image(heldout_rows(tiny_run).loc[0, "path"])
    proba = predictor.probabilities(image)
    top = predictor.classes[int(proba.argmax())]
    # threshold 1 - p_max: only the top class fits; unknown threshold below p_max: sure
    sure = Predictor(with_conformal(tiny_run, tmp_path / "a", 1 - proba.max(), 0.0))
    result = sure.predict(image)
    assert result.prediction_set == f"{top} at 90%" and result.refer == []
    assert "Unsure" not in app._format_trust(result)
    # every class fits, and the top probability is below the validation threshold: refer twice
    unsure = Predictor(with_conformal(tiny_run, tmp_path / "b", 1.0, proba.max() + 0.01))
    result = unsure.predict(image)
    assert result.prediction_set.startswith(f"{top} or ") and " at 90%" in result.prediction_set
    assert len(result.refer) == 2 and "holds 7 classes" in result.refer[0]
    assert "unlike the validation images" in result.refer[1]
    assert "**Unsure: refer.**" in app.answer(unsure, heldout_rows(tiny_run).loc[0, "path"]).trust


def test_no_conformal_file_means_no_set(tiny_run, tmp_path):
    result = Predictor(uncalibrated_copy(tiny_run, tmp_path / "c")).predict(
        load_image(heldout_rows(tiny_run).loc[0, "path"])
    )
    assert result.prediction_set is None and result.refer == []
    assert "has not stored one" in app._format_trust(result)


def test_a_metadata_model_reads_the_metadata_given_and_missing_otherwise(metadata_run, predictor):
    """Optional age, sex and site: given, the model reads them as its evaluation does; not
    given (or a field not given), they count as not recorded; an image-only model ignores them."""
    from skinlib.data.metadata import ImageMetadata

    with_metadata = Predictor(metadata_run)
    assert with_metadata.uses_metadata and not predictor.uses_metadata
    assert "inputs: image, age, sex and site" in with_metadata.describe()
    rows = heldout_rows(metadata_run)
    row = rows.iloc[0]
    image = load_image(row["path"])
    given = ImageMetadata(age=row["age"], sex=row["sex"], site=row["site"])
    # what 03 stored for that test image, at the run's temperature
    stored = RunFolder(metadata_run).predictions("test")
    t = RunFolder(metadata_run).temperature()
    np.testing.assert_allclose(
        with_metadata.probabilities(image, given), stored.probabilities(t)[0], atol=1e-5
    )
    loaded = with_metadata.members[0]
    x = loaded.transform(image).unsqueeze(0)
    with torch.no_grad():
        blind = torch.softmax(loaded.model(x) / t, 1)[0].numpy()  # nothing recorded
    np.testing.assert_allclose(with_metadata.probabilities(image), blind, atol=1e-5)
    assert not np.allclose(with_metadata.probabilities(image, given), blind, atol=1e-4)
    result = with_metadata.predict(image)
    assert any("none were given" in note for note in result.notes)
    assert result.cam_overlay.shape == (320, 320, 3)
    partial = with_metadata.predict(image, metadata=ImageMetadata(age=50))
    assert any("not recorded: sex, site" in note for note in partial.notes)
    plain = predictor.predict(image, metadata=given)
    assert any("not inputs of this model" in note for note in plain.notes)
    np.testing.assert_array_equal(
        predictor.probabilities(image, given), predictor.probabilities(image)
    )
