"""The study's trainings as jobs: two at a time through submitit's local executor, a killed job
resubmitted and resumed, and the SLURM submission built without a cluster (a fake ``sbatch``)."""

from __future__ import annotations

import os
import pickle
import signal
import stat
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest
import torch

from skinlib import paths
from skinlib.errors import ConfigError
from skinlib.evaluation.predictions import Predictions
from skinlib.profile import ClusterSettings, load_study_profile
from skinlib.study.jobs import (
    JobBook,
    TrainCall,
    resubmit_command,
    run_jobs,
    slot_gpus,
    study_status,
    train_job,
    training_jobs,
)
from skinlib.study.pipeline import (
    PipelineError,
    build_steps,
    held_and_stale,
    run_pipeline,
)

SMOKE = "params/smoke.yaml"
# The smoke study with two optimiser steps per epoch: the jobs stay seconds long on 2 cores.
SHORT = ["train.epochs=1", "train.max_steps_per_epoch=2"]
# Four short epochs: a job killed after its first one has three left to lose.
KILLED = ["train.epochs=4", "train.max_steps_per_epoch=2"]
PARALLEL = ClusterSettings(executor="local-parallel", jobs=2, time_min=30)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Experiments, figures, tables and cache under tmp_path; one thread per job process."""
    for var, name in [
        ("SKINLIB_EXPERIMENTS", "exp"),
        ("SKINLIB_FIGURES", "fig"),
        ("SKINLIB_THESIS", "thesis"),
        ("SKINLIB_CACHE", "cache"),
    ]:
        monkeypatch.setenv(var, str(tmp_path / name))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # two jobs share the two cores of a CI machine
    monkeypatch.setattr("skinlib.study.jobs.POLL_S", {"local-parallel": 0.05, "slurm": 0.05})
    return tmp_path


def smoke_jobs(overrides=()):
    profile = load_study_profile(SMOKE, list(overrides))
    return profile, training_jobs(profile, SMOKE, list(overrides))


def test_training_jobs_are_the_runs_the_notebooks_train():
    profile, jobs = smoke_jobs()
    assert [j.run for j in jobs] == [
        "imbalance_none",
        "imbalance_focal",
        "imbalance_selection",
        "resnet18",
        "vit_tiny",
    ]
    by_run = {j.run: j for j in jobs}
    assert by_run["imbalance_focal"].config() == profile.strategy_config("focal")
    assert by_run["vit_tiny"].config() == profile.run_config("vit_tiny")
    steps = {s.name: s for s in build_steps(profile, SMOKE, [])}
    assert steps["02_imbalance"].jobs == [
        "imbalance_none",
        "imbalance_focal",
        "imbalance_selection",
    ]
    assert steps["03_train_vit_tiny"].jobs == ["vit_tiny"]
    assert steps["04_calibration"].jobs == []


def test_cluster_section_is_read_and_checked(tmp_path):
    text = Path(SMOKE).read_text()
    good = tmp_path / "good.yaml"
    good.write_text(text + "cluster: {executor: slurm, partition: gpu, gpus_per_job: 4}\n")
    cluster = load_study_profile(good).cluster
    assert (cluster.executor, cluster.partition, cluster.gpus_per_job) == ("slurm", "gpu", 4)
    assert load_study_profile(SMOKE).cluster == ClusterSettings()  # no section: run locally
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "cluster: {executor: kubernetes}\n")
    with pytest.raises(ConfigError, match="cluster.executor='kubernetes'"):
        load_study_profile(bad)
    bad.write_text(text + "cluster: {gpus: 4}\n")
    with pytest.raises(ConfigError, match="'cluster': unknown key"):
        load_study_profile(bad)


def test_each_local_slot_owns_its_gpus():
    assert [slot_gpus(s, 2) for s in range(3)] == [(0, 1), (2, 3), (4, 5)]
    assert slot_gpus(1, 0) == ()


def test_resubmit_command_repeats_what_differs_from_the_defaults():
    settings = ClusterSettings(executor="slurm", partition="gpu", gpus_per_job=4, time_min=600)
    assert resubmit_command("params/ham10000.yaml", ["data.root=/d a"], settings) == (
        "skinlib pipeline --profile params/ham10000.yaml --executor slurm --set 'data.root=/d a' "
        "--gpus-per-job 4 --partition gpu --time 600"
    )


def overlap(records: dict) -> int:
    """The most jobs that were running at one moment (the pipeline's own clock)."""
    events = sorted(
        [(r["started"], 1) for r in records.values()]
        + [(r["finished"], -1) for r in records.values()]
    )
    now = most = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


@pytest.mark.slow
def test_parallel_jobs_give_the_sequential_results(places, monkeypatch):
    profile, jobs = smoke_jobs(SHORT)
    outcome = run_jobs(jobs, PARALLEL)
    assert outcome == {j.run: "trained" for j in jobs}
    records = JobBook("smoke").records
    assert overlap(records) == 2  # two at a time, never more
    assert all(Path(r["log"]).is_file() for r in records.values())

    # The same trainings one after another in this process, as the notebooks train them.
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(places / "sequential"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for job in jobs:
            train_job(job)
    finally:
        torch.set_num_threads(threads)
    for job in jobs:
        a, b = places / "exp" / "smoke" / job.run, places / "sequential" / "smoke" / job.run
        p, q = (
            Predictions.load(a / "predictions_test.csv"),
            Predictions.load(b / "predictions_test.csv"),
        )
        assert (p.image_id == q.image_id).all()
        np.testing.assert_allclose(p.logits, q.logits, rtol=0, atol=1e-5, err_msg=job.run)
        assert (a / "split.csv").read_bytes() == (b / "split.csv").read_bytes()

    # A second submission finds every run complete and submits nothing.
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(places / "exp"))
    assert run_jobs(jobs, PARALLEL) == {j.run: "done" for j in jobs}
    assert JobBook("smoke").records == records


def wait_for(condition, timeout: float = 300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_killed_job_is_resubmitted_alone_and_resumes(places):
    profile, jobs = smoke_jobs(KILLED)
    jobs = [j for j in jobs if j.kind == "architecture"]  # resnet18 and vit_tiny
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(run_jobs(jobs, PARALLEL)))
    runner.start()
    run = places / "exp" / "smoke" / "resnet18"
    wait_for(lambda: (run / "metrics.csv").is_file())
    record = JobBook("smoke").get("resnet18")
    for task in psutil.Process(int(record["job_id"])).children(recursive=True):
        task.send_signal(signal.SIGKILL)  # the training process dies mid-run
    runner.join(600)
    assert outcome == {"resnet18": "failed", "vit_tiny": "trained"}
    before = pd.read_csv(run / "metrics.csv")
    assert 1 <= len(before) < 4 and not (run / "meta.json").exists()

    rows = {r.run: r for r in study_status(profile, SMOKE, KILLED)}
    assert rows["resnet18"].state == "failed" and rows["resnet18"].log == record["log"]
    assert f"{len(before)} of 4 epochs" in rows["resnet18"].detail
    assert rows["vit_tiny"].state == "done" and rows["imbalance_none"].state == "missing"

    vit_meta = places / "exp" / "smoke" / "vit_tiny" / "meta.json"
    stamp = vit_meta.stat().st_mtime_ns
    assert run_jobs(jobs, PARALLEL) == {"resnet18": "trained", "vit_tiny": "done"}
    assert vit_meta.stat().st_mtime_ns == stamp  # not trained again
    after = pd.read_csv(run / "metrics.csv")
    assert len(after) == 4
    # The epochs before the kill are the checkpoint's, times included: resumed, not restarted.
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)
    log = Path(JobBook("smoke").get("resnet18")["log"]).read_text()
    assert f"resuming resnet18 after epoch {len(before)}" in log


@pytest.mark.slow
def test_pipeline_trains_as_jobs_then_notebooks_reuse_the_runs(places):
    outcome = run_pipeline(
        SMOKE,
        SHORT,
        only=["03_train_resnet18"],
        progress=False,
        cluster={"executor": "local-parallel"},
    )
    assert outcome == {"03_train_resnet18": "ran"}
    run = places / "exp" / "smoke" / "resnet18"
    record = JobBook("smoke").get("resnet18")
    assert record["state"] == "done"
    # The notebook found the complete run: meta.json is older than the notebook's start.
    notebook = places / "exp" / "smoke" / "notebooks" / "03_train_resnet18.ipynb"
    assert (run / "meta.json").stat().st_mtime < record["finished"] <= notebook.stat().st_mtime
    assert (places / "thesis" / "generated" / "smoke" / "metrics_resnet18.csv").is_file()


@pytest.mark.slow
def test_failed_job_stops_the_pipeline_with_its_log_and_the_resubmit_command(places, tmp_path):
    broken = [*SHORT, f"data.root={tmp_path / 'no_such_dataset'}"]
    with pytest.raises(PipelineError) as err:
        run_pipeline(
            SMOKE,
            broken,
            only=["03_train_vit_tiny"],
            progress=False,
            cluster={"executor": "local-parallel"},
        )
    record = JobBook("smoke").get("vit_tiny")
    message = str(err.value)
    assert record["state"] == "failed" and record["log"] in message
    assert "no_such_dataset" in Path(record["log"]).read_text()
    assert "steps not run: ['03_train_vit_tiny']" in message
    assert "skinlib pipeline --profile params/smoke.yaml --executor local-parallel" in message
    assert not (places / "exp" / "smoke" / "notebooks").exists()


FAKE_SBATCH = """#!{python}
import json, os, shutil, sys
record = os.environ["FAKE_SBATCH_RECORD"]
calls = json.load(open(record)) if os.path.exists(record) else []
calls.append({{"argv": sys.argv[1:], "script": open(sys.argv[-1]).read()}})
json.dump(calls, open(record, "w"))
print(f"Submitted batch job {{4200 + len(calls)}}")
"""


def test_slurm_submission_without_a_cluster(places, tmp_path, monkeypatch):
    """A fake ``sbatch`` on PATH records what submitit hands it; nothing waits for SLURM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(FAKE_SBATCH.format(python=sys.executable))
    srun = bin_dir / "srun"  # submitit looks for it; the batch script calls it on the cluster
    srun.write_text("#!/bin/sh\nexit 1\n")
    for tool in (sbatch, srun):
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SBATCH_RECORD", str(tmp_path / "calls.json"))
    settings = ClusterSettings(
        executor="slurm",
        partition="gpu",
        time_min=720,
        gpus_per_job=4,
        cpus_per_task=6,
        mem_gb=64,
        setup=["module load cuda/12.4"],
        sbatch={"qos": "normal"},
    )
    profile, jobs = smoke_jobs()
    jobs = [j for j in jobs if j.kind == "architecture"]
    states = run_jobs(jobs, settings, wait=False)
    assert states == {"resnet18": "queued", "vit_tiny": "queued"}

    calls = __import__("json").loads((tmp_path / "calls.json").read_text())
    assert len(calls) == 2
    script = calls[0]["script"]
    for line in [
        "#SBATCH --partition=gpu",
        "#SBATCH --time=720",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --ntasks-per-node=4",  # one process per GPU: torch distributed
        "#SBATCH --cpus-per-task=6",
        "#SBATCH --mem=64GB",
        "#SBATCH --nodes=1",
        "#SBATCH --qos=normal",
        "#SBATCH --job-name=smoke-resnet18",
        "#SBATCH --signal=USR2@90",  # submitit requeues on it (pre-emption, time-out)
        "module load cuda/12.4",
    ]:
        assert line in script, line
    assert "srun --unbuffered" in script and "-m submitit.core._submit" in script
    folder = paths.study_dir("smoke") / "jobs" / "resnet18"
    assert str(folder) in script  # logs beside the study, not in the repository root

    # The pickled call trains the run the notebooks read, resuming it.
    submitted = pickle.loads((folder / "4201_submitted.pkl").read_bytes())
    call = submitted.function
    assert isinstance(call, TrainCall) and call.job.run == "resnet18" and not call.retrain
    assert call.environ["SKINLIB_EXPERIMENTS"] == str(places / "exp")
    requeued = call.checkpoint()  # what submitit requeues on pre-emption
    assert requeued.function.job == call.job and not requeued.function.retrain

    record = JobBook("smoke").get("vit_tiny")
    assert record["job_id"] == "4202" and record["log"].endswith("4202_0_log.err")
    # Without sacct the status says what was recorded rather than guessing.
    rows = {r.run: r for r in study_status(profile, SMOKE)}
    assert rows["resnet18"].state == "queued" and rows["resnet18"].job_id == "4201"


def test_cluster_section_leaves_the_fingerprints_alone(tmp_path):
    text = Path(SMOKE).read_text()
    plain, moved, changed = (tmp_path / f"{n}.yaml" for n in ("plain", "moved", "changed"))
    plain.write_text(text)
    moved.write_text(text + "cluster: {executor: slurm, partition: gpu}\n")
    changed.write_text(text.replace("n_boot: 50", "n_boot: 60"))
    text = [load_study_profile(p).text() for p in (plain, moved, changed)]
    assert text[0] == text[1] != text[2]


def test_notebooks_wait_for_their_jobs_and_rerun_after_a_retraining():
    profile, _ = smoke_jobs()
    steps = build_steps(profile, SMOKE, [])
    states = {
        "imbalance_none": "done",
        "imbalance_focal": "done",
        "imbalance_selection": "done",
        "resnet18": "failed",
        "vit_tiny": "trained",
    }
    held, stale = held_and_stale(steps, states)
    assert set(held) == {
        "03_train_resnet18",
        "04_calibration",
        "05_thresholds",
        "06_xai",
        "07_comparison",
        "08_trust",
        "09_audit",
    }
    assert "03_train_vit_tiny" in stale and "02_imbalance" not in stale
    assert "01_eda" not in held and "02_imbalance" not in held


@pytest.mark.slow
def test_a_job_with_several_tasks_trains_under_torch_distributed(places):
    """What a job with several GPUs does, on CPU: two submitit tasks join one gloo group."""
    import submitit

    _, jobs = smoke_jobs([*SHORT, "train.augment=none"])  # ranks draw no augmentations
    job = next(j for j in jobs if j.run == "vit_tiny")  # no BatchNorm: halves of B act as B
    train_job(job)  # a single-process run to compare with, then the same run again as 2 tasks
    single = pd.read_csv(places / "exp" / "smoke" / "vit_tiny" / "metrics.csv")
    executor = submitit.LocalExecutor(folder=places / "exp" / "smoke" / "jobs" / "vit_tiny")
    executor.update_parameters(timeout_min=30, tasks_per_node=2)
    handle = executor.submit(TrainCall(job, retrain=True))
    assert handle.results()[0].endswith("vit_tiny")
    run = places / "exp" / "smoke" / "vit_tiny"
    assert __import__("json").loads((run / "meta.json").read_text())["world_size"] == 2
    double = pd.read_csv(run / "metrics.csv")
    np.testing.assert_allclose(double["val_loss"], single["val_loss"], rtol=1e-2)
