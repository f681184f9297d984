"""The study's trainings as independent jobs: several at once on one machine, or on SLURM.

A training job is one run of the profile (an architecture, or an imbalance strategy) trained
exactly as the notebooks would train it, into the same folder ``experiments/<study>/<run>``, so
the notebooks that follow find a complete run and do not train again. Jobs go through submitit
(the launcher of fairseq and detectron2): ``local-parallel`` runs N of them at once on this
machine, each with its own ``CUDA_VISIBLE_DEVICES``; ``slurm`` submits each with ``sbatch``.
A job with several GPUs starts one process per GPU and trains under torch distributed, as
torchrun does. A pre-empted or timed-out SLURM job is requeued by submitit's checkpoint hook and
resumes from the run's last checkpoint; a resubmission trains only the runs that are not complete.

What was submitted, where its log is and how it ended is kept in
``experiments/<study>/jobs/jobs.json`` (read by ``skinlib status``).
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skinlib import paths
from skinlib.config import Config
from skinlib.data.prepare import data_root
from skinlib.errors import ConfigError
from skinlib.io import read_json, write_json
from skinlib.profile import ClusterSettings, StudyProfile, load_study_profile
from skinlib.runs.folder import RunFolder

log = logging.getLogger(__name__)

ENV_VARS = ("SKINLIB_EXPERIMENTS", "SKINLIB_FIGURES", "SKINLIB_THESIS", "SKINLIB_CACHE")
POLL_S = {"local-parallel": 0.5, "slurm": 30.0}  # how often the pipeline looks at its jobs
ACTIVE = ("queued", "running")


@dataclass(frozen=True)
class TrainingJob:
    """One training of the study, resolved the way the notebooks resolve it."""

    study: str
    run: str  # the run folder experiments/<study>/<run>
    kind: str  # "architecture" (03_train) or "strategy" (02_imbalance)
    name: str  # the architecture or the imbalance strategy
    profile: str  # the profile path, as the pipeline gives it to the notebooks
    overrides: tuple[str, ...] = ()

    def config(self, profile: StudyProfile | None = None) -> Config:
        """The run's config, from the same profile functions the notebooks call."""
        profile = profile or load_study_profile(self.profile, list(self.overrides))
        if self.kind == "strategy":
            return profile.strategy_config(self.name)
        return profile.run_config(self.name)


def training_jobs(
    profile: StudyProfile, profile_arg: str, overrides: list[str] | tuple[str, ...] = ()
) -> list[TrainingJob]:
    """Every training of the study: the imbalance strategies (02), then the architectures (03)."""
    common = {"study": profile.study, "profile": profile_arg, "overrides": tuple(overrides)}
    jobs = [
        TrainingJob(
            run=profile.strategy_config(name).run_name, kind="strategy", name=name, **common
        )
        for name in profile.imbalance.strategies
    ]
    jobs += [
        TrainingJob(run=arch, kind="architecture", name=arch, **common)
        for arch in profile.architectures
    ]
    return jobs


def train_job(job: TrainingJob, resume: bool = True, progress: bool = False) -> Path:
    """Train one job in this process, exactly as :meth:`skinlib.study.front.Study.train` would."""
    from skinlib.training import train  # torch: only the process that trains imports it

    profile = load_study_profile(job.profile, list(job.overrides))
    # the table of the job's own config (its recipe or strategy may change the data settings)
    return train(job.config(profile), resume=resume, progress=progress)


class TrainCall:
    """What a submitit job runs: one training, with submitit's checkpoint hook for requeues.

    Args:
        job: the training.
        retrain: start afresh even where a complete or partial run exists (``--force``).
        environ: the ``SKINLIB_*`` locations of the submitting process, so that a job writes
            where the pipeline reads whatever the cluster passes on.
    """

    def __init__(self, job: TrainingJob, retrain: bool = False, environ: dict | None = None):
        self.job, self.retrain = job, retrain
        self.environ = dict(environ if environ is not None else _skinlib_environ())

    def __call__(self) -> str:
        os.environ.update(self.environ)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        _join_process_group()
        return str(train_job(self.job, resume=not self.retrain))

    def checkpoint(self) -> Any:
        """Pre-empted or out of time: requeue the same training; it resumes from ``last.pt``.

        The engine writes ``checkpoints/last.pt`` after every epoch, so nothing needs saving here.
        """
        # submitit only where jobs are submitted: the pipeline and `status` import this module
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(TrainCall(self.job, retrain=False, environ=self.environ))


def _skinlib_environ() -> dict[str, str]:
    return {k: os.environ[k] for k in ENV_VARS if k in os.environ}


def _join_process_group() -> None:
    """Several tasks in one job: export torchrun's variables; the engine joins the group."""
    # submitit only where jobs are submitted: the pipeline and `status` import this module
    import submitit

    env = submitit.JobEnvironment()
    if env.num_tasks > 1:
        # Each task keeps the job's CUDA_VISIBLE_DEVICES and takes cuda:LOCAL_RANK among them.
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


# --- the record of submitted jobs ----------------------------------------------------------------


def jobs_dir(study: str) -> Path:
    """``experiments/<study>/jobs``: submitit's folders (logs, pickles) and ``jobs.json``."""
    return paths.study_dir(study) / "jobs"


class JobBook:
    """``jobs.json``: run -> executor, job id, state (queued, running, done, failed), log path."""

    def __init__(self, study: str):
        self.file = jobs_dir(study) / "jobs.json"
        self.records: dict[str, dict] = read_json(self.file) if self.file.is_file() else {}

    def get(self, run: str) -> dict | None:
        return self.records.get(run)

    def update(self, run: str, **values: Any) -> None:
        self.records[run] = {**self.records.get(run, {}), **values}
        write_json(self.file, self.records)


def run_state(job: TrainingJob, profile: StudyProfile | None = None) -> tuple[str, str]:
    """``("done" | "partial" | "missing", detail)`` from the run folder alone."""
    cfg = job.config(profile)
    folder = RunFolder.of(cfg.study, cfg.run_name)
    if folder.is_complete(cfg):
        return "done", str(folder.path)
    last = folder.checkpoint("last")
    if last.is_file():
        resumes = last.relative_to(folder.path)
        # with a time budget the run planned its epochs, train.epochs the cap
        of = f"at most {cfg.train.epochs}" if cfg.train.budget_min else cfg.train.epochs
        return "partial", f"{folder.epochs_done()} of {of} epochs; resumes from {resumes}"
    return "missing", ""


# --- running jobs -----------------------------------------------------------------------------


def run_jobs(
    jobs: list[TrainingJob],
    settings: ClusterSettings,
    retrain: bool = False,
    wait: bool = True,
) -> dict[str, str]:
    """Train the jobs that are not complete through ``settings.executor``.

    Args:
        jobs: the trainings the chosen pipeline steps need.
        settings: executor and resources (profile ``cluster:`` section and command line).
        retrain: train every job afresh (``--force``).
        wait: wait for the jobs to end; otherwise return once they are submitted (SLURM).

    Returns:
        ``{run: state}``: ``done`` (complete before), ``trained``, ``failed``, or ``queued`` /
        ``running`` (not waited for).
    """
    if settings.executor not in ("local-parallel", "slurm"):
        raise ConfigError(
            f"run_jobs needs executor local-parallel or slurm, not {settings.executor}"
        )
    if not jobs:
        return {}
    book = JobBook(jobs[0].study)
    outcome: dict[str, str] = {}
    todo: list[TrainingJob] = []
    adopted: dict[str, Any] = {}
    for job in jobs:
        if not retrain and run_state(job)[0] == "done":
            outcome[job.run] = "done"
        elif not retrain and (handle := _still_active(book.get(job.run), settings)) is not None:
            adopted[job.run] = handle  # submitted before and still queued or running: no duplicate
        else:
            todo.append(job)
    if todo:
        _prepare_data(todo[0])
    if settings.executor == "slurm":
        outcome.update(_run_slurm(todo, adopted, settings, book, retrain, wait))
    else:
        outcome.update(_run_local_parallel(todo, settings, book, retrain))
    return outcome


def _prepare_data(job: TrainingJob) -> None:
    """Generate SynthDerm (when the profile uses it) here, once, before jobs that would race."""
    data_root(load_study_profile(job.profile, list(job.overrides)).config, progress=False)


def _submitter(settings: ClusterSettings, folder: Path, gpus: tuple[int, ...] = ()):
    """A submitit executor configured for one job's resources."""
    # submitit only where jobs are submitted: the pipeline and `status` import this module
    import submitit

    tasks = max(1, settings.gpus_per_job)  # one process per GPU
    if settings.executor == "local-parallel":
        ex = submitit.LocalExecutor(folder=folder)
        ex.update_parameters(
            timeout_min=settings.time_min,
            gpus_per_node=settings.gpus_per_job,
            tasks_per_node=tasks,
            visible_gpus=gpus,
        )
        return ex
    if shutil.which("srun") is None:
        raise ConfigError(
            "--executor slurm: no srun on PATH; submit from a SLURM login node, or use "
            "--executor local-parallel on this machine"
        )
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    slurm: dict[str, Any] = {"slurm_setup": list(settings.setup)}
    if settings.partition:
        slurm["slurm_partition"] = settings.partition
    if settings.account:
        slurm["slurm_account"] = settings.account
    if settings.sbatch:
        slurm["slurm_additional_parameters"] = dict(settings.sbatch)
    ex.update_parameters(
        timeout_min=settings.time_min,
        nodes=1,
        gpus_per_node=settings.gpus_per_job,
        tasks_per_node=tasks,
        cpus_per_task=settings.cpus_per_task,
        mem_gb=settings.mem_gb,
        **slurm,
    )
    return ex


def slot_gpus(slot: int, gpus_per_job: int) -> tuple[int, ...]:
    """The GPUs of local slot ``slot``: slot 0 gets 0..g-1, slot 1 gets g..2g-1, and so on.

    >>> slot_gpus(1, 2)
    (2, 3)
    """
    return tuple(range(slot * gpus_per_job, (slot + 1) * gpus_per_job))


def _check_local_gpus(settings: ClusterSettings) -> None:
    if not settings.gpus_per_job:
        return
    # torch only to count local GPUs: `skinlib status` and the pipeline stay light
    import torch

    have, need = torch.cuda.device_count(), settings.jobs * settings.gpus_per_job
    if have < need:
        raise ConfigError(
            f"cluster.jobs={settings.jobs} x cluster.gpus_per_job={settings.gpus_per_job} needs "
            f"{need} GPUs; this machine has {have}. Lower --jobs or --gpus-per-job."
        )


def _submit(job: TrainingJob, settings: ClusterSettings, book: JobBook, retrain: bool, gpus=()):
    ex = _submitter(settings, jobs_dir(job.study) / job.run, gpus)
    if settings.executor == "slurm":
        ex.update_parameters(name=f"{job.study}-{job.run}")
    handle = ex.submit(TrainCall(job, retrain=retrain))
    book.update(
        job.run,
        executor=settings.executor,
        job_id=str(handle.job_id),
        state="queued" if settings.executor == "slurm" else "running",
        log=str(handle.paths.stderr),
        submitted=time.strftime("%Y-%m-%d %H:%M:%S"),
        started=time.time(),
        finished=None,
        error="",
        gpus=list(gpus),
    )
    log.info("%s: submitted as %s job %s", job.run, settings.executor, handle.job_id)
    return handle


def _finish(run: str, handle, book: JobBook) -> str:
    """Record how a job ended: ``trained`` or ``failed`` (with the tail of its error)."""
    try:
        handle.result()
    except Exception as err:  # the job's own exception, or submitit's "job died" error
        book.update(run, state="failed", finished=time.time(), error=str(err)[-2000:])
        log.error("%s: job %s failed; log: %s", run, handle.job_id, handle.paths.stderr)
        return "failed"
    book.update(run, state="done", finished=time.time())
    log.info("%s: trained (job %s)", run, handle.job_id)
    return "trained"


def _run_local_parallel(
    todo: list[TrainingJob], settings: ClusterSettings, book: JobBook, retrain: bool
) -> dict[str, str]:
    """At most ``settings.jobs`` at once; each slot owns its own GPUs."""
    _check_local_gpus(settings)
    pending, running, outcome = list(todo), {}, {}
    free = list(range(settings.jobs))
    try:
        while pending or running:
            while pending and free:
                slot, job = free.pop(0), pending.pop(0)
                gpus = slot_gpus(slot, settings.gpus_per_job)
                running[job.run] = (slot, _submit(job, settings, book, retrain, gpus))
            time.sleep(POLL_S["local-parallel"])
            for run, (slot, handle) in list(running.items()):
                if handle.done():
                    outcome[run] = _finish(run, handle, book)
                    free.append(slot)
                    del running[run]
    finally:  # interrupted: local jobs would outlive the pipeline; stop them (they resume later)
        for _, handle in running.values():
            handle.cancel()
    return outcome


def _run_slurm(
    todo: list[TrainingJob],
    adopted: dict[str, Any],
    settings: ClusterSettings,
    book: JobBook,
    retrain: bool,
    wait: bool,
) -> dict[str, str]:
    """Submit every job at once (SLURM queues them); wait for them unless told not to."""
    handles = dict(adopted)
    for job in todo:
        handles[job.run] = _submit(job, settings, book, retrain)
    if not wait:
        return {run: book.get(run)["state"] for run in handles}
    outcome: dict[str, str] = {}
    while handles:
        for run, handle in list(handles.items()):
            if handle.done():
                outcome[run] = _finish(run, handle, book)
                del handles[run]
        if handles:
            time.sleep(POLL_S["slurm"])
    return outcome


def _still_active(record: dict | None, settings: ClusterSettings):
    """A submitit handle on a recorded SLURM job that is still queued or running, else None."""
    if not record or record.get("state") not in ACTIVE or record.get("executor") != "slurm":
        return None
    if settings.executor != "slurm":
        return None
    state = _slurm_state(record)
    if state not in ("PENDING", "RUNNING", "REQUEUED", "CONFIGURING", "COMPLETING"):
        return None
    # submitit only where jobs are submitted: the pipeline and `status` import this module
    import submitit

    return submitit.SlurmJob(folder=Path(record["log"]).parent, job_id=record["job_id"])


def _slurm_state(record: dict) -> str:
    """SLURM's state of a recorded job (``UNKNOWN`` where sacct cannot tell)."""
    # submitit only where jobs are submitted: the pipeline and `status` import this module
    import submitit

    try:
        return submitit.SlurmJob(folder=Path(record["log"]).parent, job_id=record["job_id"]).state
    except Exception:  # sacct missing or failing: say so rather than guess
        return "UNKNOWN"


# --- status --------------------------------------------------------------------------------------

SLURM_STATES = {"PENDING": "queued", "REQUEUED": "queued", "RUNNING": "running"}


@dataclass
class JobStatus:
    """One line of ``skinlib status``."""

    run: str
    state: str  # done | running | queued | failed | partial | missing
    detail: str  # the run folder, the epochs done, or the failure
    log: str  # the job's log ("" where the notebooks train)
    job_id: str


def study_status(profile: StudyProfile, profile_arg: str, overrides=()) -> list[JobStatus]:
    """Where every training of the study stands: run folders first, then the job record."""
    book = JobBook(profile.study)
    rows = []
    for job in training_jobs(profile, profile_arg, overrides):
        state, detail = run_state(job, profile)
        record = book.get(job.run) or {}
        if state != "done" and record:
            state, detail = _recorded_state(record, state, detail)
        rows.append(
            JobStatus(job.run, state, detail, record.get("log", ""), record.get("job_id", ""))
        )
    return rows


def _recorded_state(record: dict, state: str, detail: str) -> tuple[str, str]:
    """A run that is not complete, told from its last job: still going, or failed and why."""
    recorded = record.get("state", "")
    if recorded == "done":  # trained then, but the run folder no longer matches the profile
        return state, detail
    if recorded in ACTIVE and record.get("executor") == "slurm":
        slurm = _slurm_state(record)
        recorded = SLURM_STATES.get(slurm, "failed" if slurm != "UNKNOWN" else recorded)
        if recorded == "failed":
            return "failed", f"SLURM state {slurm}; {detail}".strip("; ")
    elif recorded in ACTIVE and not _pid_alive(record.get("job_id", "")):
        return "failed", f"the local job stopped without a result (pipeline killed?); {detail}"
    if recorded == "failed":
        error = (record.get("error") or "").strip().splitlines()
        return "failed", (error[-1] if error else "failed") + (f"; {detail}" if detail else "")
    return (recorded or state), detail


def _pid_alive(job_id: str) -> bool:
    try:
        os.kill(int(job_id), 0)
    except (ValueError, OSError):
        return False
    return True


def resubmit_command(profile_arg: str, overrides, settings: ClusterSettings) -> str:
    """The pipeline command that trains what is missing (and resumes partial runs)."""
    args = ["skinlib", "pipeline", "--profile", profile_arg, "--executor", settings.executor]
    for item in overrides:
        args += ["--set", item]
    defaults = ClusterSettings()
    flags = {
        "jobs": "--jobs",
        "gpus_per_job": "--gpus-per-job",
        "partition": "--partition",
        "time_min": "--time",
        "cpus_per_task": "--cpus",
        "mem_gb": "--mem-gb",
    }
    if settings.executor != "local-parallel":
        del flags["jobs"]
    for name, flag in flags.items():
        value = getattr(settings, name)
        if value != getattr(defaults, name):
            args += [flag, str(value)]
    return shlex.join(args)
