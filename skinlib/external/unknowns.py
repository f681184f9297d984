"""Near-unknown inputs from another dataset: lesions of a class the run never saw, behind the
overlap guard, with images of the run's own classes from the same source as their control.

On real data the near unknowns (08) come from ISIC 2019, so they differ from the test images in
source as well as class; the control of known-class images from that source, after the overlap
guard of external sets (:func:`skinlib.external.guard.external_set`), separates the two.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from skinlib.data import load_table
from skinlib.data.images import load_image
from skinlib.errors import DataError
from skinlib.evaluation.ood import UnknownInputs, unseen_class_rows
from skinlib.external.guard import external_set
from skinlib.models.checkpoint import load_model
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)
SOURCE = "isic2019"  # the dataset with classes (scc) a HAM10000 model never saw
CONTROL = "known classes (ISIC 2019)"


def near_unknowns(
    run: RunFolder, root: str | Path, label: str, n: int, study_ids: Sequence[str]
) -> dict[str, UnknownInputs]:
    """Up to ``n`` ISIC 2019 images of ``label`` whose ids are not in ``study_ids`` (the study's
    own table), with their lesion ids, and up to ``n`` ISIC 2019 images of the run's classes that
    pass the overlap guard, as their control (none, with a warning, where the guard leaves none).
    """
    table = load_table(root, SOURCE, skip_missing=True)
    rows = unseen_class_rows(table, label, study_ids, n)
    near = f"unseen class ({label})"
    if rows.empty:
        log.warning("%s: no %s image outside the study", root, near)
        return {}
    try:
        loaded = load_model(run)
        guarded = external_set(
            loaded, root, SOURCE, drop_unmapped=True, progress=False, skip_missing=True
        )
        known = guarded.table
    except DataError as err:
        log.warning("%s: no known-class control for %s (%s)", root, near, err)
        return {near: UnknownInputs([load_image(p) for p in rows["path"]], rows["group"])}
    known = known.sample(min(n, len(known)), random_state=0)
    return {
        near: UnknownInputs([load_image(p) for p in rows["path"]], rows["group"], CONTROL),
        CONTROL: UnknownInputs([load_image(p) for p in known["path"]], known["group"]),
    }
