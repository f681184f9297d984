"""One trained run tested on one external set: predictions, metrics and the report on disk.

The set passes the overlap guard first (:mod:`skinlib.external.guard`); the report says what the
set can say (:mod:`skinlib.external.describe`); the files are named by
:class:`~skinlib.external.folder.EvaluationFolder`.
"""

from __future__ import annotations

from pathlib import Path

from skinlib.evaluation.bootstrap import bootstrap_ci
from skinlib.evaluation.metrics import classification_report
from skinlib.evaluation.thresholds import positive_score, positive_truth, sens_spec
from skinlib.external.describe import describe_external
from skinlib.external.folder import EvaluationFolder
from skinlib.external.guard import OVERLAP_COLUMNS, external_set
from skinlib.inference.scoring import predict_table
from skinlib.io import write_json
from skinlib.models.checkpoint import load_model
from skinlib.runs import ledger
from skinlib.runs.folder import RunFolder


def evaluate_external(
    run_dir: str | Path,
    root: str | Path,
    format: str,
    out_dir: str | Path,
    tta: bool = False,
    drop_unmapped: bool = False,
    n_boot: int = 1000,
    skip_missing: bool = False,
    set_name: str | None = None,
) -> dict:
    """Test a trained run on another dataset: predictions file and full metrics report.

    Scores only images the run never saw (:func:`external_set`); ``excluded.csv`` lists the
    others with the reason, and ``report.json``'s ``overlap`` counts them. Uses the run's own
    preprocessing and, when stored, its temperature and operating point (the TTA ones with
    ``tta``: fitted on the TTA predictions of the validation split); without them the report
    says "not calibrated" and has no operating point. ``report.json`` also holds what the set
    can say (``external``: class counts, missing classes, melanoma vs rest and a caveat; see
    :func:`skinlib.external.describe.describe_external`).

    The scoring is a look in the study's test-look ledger (:mod:`skinlib.runs.ledger`), as
    ``external:<set_name>`` (default: the data folder's name).
    """
    run_dir, out = Path(run_dir), EvaluationFolder(out_dir)
    run = RunFolder(run_dir)
    loaded = load_model(run)
    found = external_set(loaded, root, format, drop_unmapped, skip_missing=skip_missing)
    preds = predict_table(loaded, found.table, tta=tta)
    out.path.mkdir(parents=True, exist_ok=True)
    preds.save(out.file(out.PREDICTIONS))
    run.record_test_look(ledger.external(set_name or Path(root).name), tta)
    excluded = found.overlap.excluded
    excluded[["image_id", "label", "path", *OVERLAP_COLUMNS]].to_csv(
        out.file(out.EXCLUDED), index=False
    )
    temperature = run.temperature(tta)  # None: not calibrated, raw probabilities
    proba = preds.probabilities(temperature or 1.0)
    report = classification_report(preds.labels, proba, preds.classes)
    ci = bootstrap_ci(preds.labels, proba, preds.group, n_boot=n_boot)
    ci.to_csv(out.file(out.METRICS), index=False)
    report.per_class.to_csv(out.file(out.PER_CLASS))
    report.confusion.to_csv(out.file(out.CONFUSION))
    summary = {
        "run": str(run_dir),
        "data": str(root),
        "format": format,
        "images": len(preds.labels),
        "overlap": found.overlap.summary(),  # images dropped as the run's own, and why
        "tta": bool(tta),
        "temperature": temperature,
        "calibrated": temperature is not None,
        **report.summary,
    }
    if points := run.operating_points(tta):
        point = points[0]
        truth = positive_truth(preds.labels, preds.classes, point.positive)
        score = positive_score(proba, preds.classes, point.positive)
        sens, spec = sens_spec(truth, score, point.threshold)
        summary["operating_point"] = {
            "positive": point.positive,
            "threshold": point.threshold,
            "criterion": point.criterion,
            "target": point.target,
            "sensitivity": sens,
            "specificity": spec,
        }
    summary["skipped_missing"] = int(found.table.attrs.get("skipped_missing", 0))
    summary["external"] = describe_external(preds, proba, run_dir, format, n_boot, tta)
    write_json(out.file(out.REPORT), summary)
    return summary
