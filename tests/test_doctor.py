"""``skinlib doctor``: each check's verdict and next step, on this machine and on fixture folders."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import make_ham10000_folder, make_isic2019_folder

from skinlib import paths
from skinlib.cli import main
from skinlib.config import Config, apply_overrides
from skinlib.profile import load_study_profile
from skinlib.study import doctor

HAM_PROFILE = "params/ham10000.yaml"
# the real images in ../shared beside the repository (or beside the worktrees' folder)
REAL_HAM = next(
    (
        d / "shared" / "data" / "HAM10000_200x150"
        for d in (paths.PROJECT_ROOT.parent, paths.PROJECT_ROOT.parent.parent)
        if (d / "shared" / "data" / "HAM10000_200x150").is_dir()
    ),
    paths.PROJECT_ROOT.parent / "shared" / "data" / "HAM10000_200x150",
)


def _doctor(capsys, *args: str) -> tuple[int, dict[str, str]]:
    """Run the CLI offline; the exit code and each check's printed lines by name."""
    code = main(["doctor", "--offline", *args])
    out = capsys.readouterr().out
    blocks: dict[str, str] = {}
    name = None
    for line in out.splitlines()[1:-1]:
        if line[:1].strip():  # a verdict line starts in column 0
            name = line.split()[1]
            blocks[name] = line
        elif name:
            blocks[name] += "\n" + line
    # wrapped lines joined, so that a phrase can be looked for whatever the terminal width
    return code, {k: " ".join(v.split()) for k, v in blocks.items()}


def _ham(*overrides: str) -> Config:
    return load_study_profile(HAM_PROFILE, list(overrides)).config


# --- compute -------------------------------------------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this test is about a machine without CUDA")
def test_no_cuda_on_this_machine_says_so_and_what_it_means():
    (ham,) = doctor.cuda_checks(_ham())
    assert ham.verdict == "warn"
    assert "no CUDA GPU" in ham.detail and "384 px" in ham.detail
    assert "NVIDIA GPU" in ham.advice and "params/demo.yaml" in ham.advice
    (demo,) = doctor.cuda_checks(load_study_profile("params/demo.yaml").config)
    assert demo.verdict == "ok" and "48 px" in demo.detail
    (forced,) = doctor.cuda_checks(_ham("train.device=cuda"))
    assert forced.verdict == "fail" and "train.device=auto" in forced.advice


def test_cpu_only_torch_build_gets_the_install_command():
    check = doctor._no_cuda(_ham(), "2.14.1+cpu", None)
    assert "CPU-only build" in check.detail
    assert "download.pytorch.org/whl" in check.advice


def test_gpu_line_names_the_precision_used():
    cfg = Config()
    assert "bf16" in doctor._gpu_check(cfg, "cuda:0 H100", bf16=True).detail
    assert "fp16 + grad scaler" in doctor._gpu_check(cfg, "cuda:0 T4", bf16=False).detail
    forced = doctor._gpu_check(apply_overrides(cfg, ["train.amp=bf16"]), "cuda:0 T4", False)
    assert forced.verdict == "warn" and "train.amp=auto" in forced.advice


def test_more_workers_than_cores_is_a_warning(monkeypatch):
    monkeypatch.setattr(doctor.os, "sched_getaffinity", lambda _: {0, 1})
    (check,) = doctor.cpu_checks(_ham("data.num_workers=8"))
    assert check.verdict == "warn" and "data.num_workers=1" in check.advice
    (check,) = doctor.cpu_checks(_ham("data.num_workers=2"))
    assert "2 cores" in check.detail and "GiB RAM" in check.detail


# --- packages, tools -----------------------------------------------------------------------------


def test_packages_missing_or_out_of_range():
    installed = {"netcal": None, "gradio": None, "numpy": "1.0.0"}
    checks = {c.name: c for c in doctor.package_checks(lambda n: installed.get(n, "99.0"))}
    assert checks["netcal"].verdict == "fail" and "pip install" in checks["netcal"].advice
    assert checks["gradio"].verdict == "warn"  # only the web app needs it
    assert checks["python"].verdict == "ok"
    if doctor._requirements():  # skinlib installed: its declared ranges are checked
        assert checks["numpy"].verdict == "fail" and "outside" in checks["numpy"].detail


def test_missing_tools_only_warn():
    checks = doctor.tool_checks(which=lambda _: None)
    assert [c.verdict for c in checks] == ["warn", "warn"]
    assert "apt-get install chromium" in checks[0].advice
    assert "latexmk" in checks[1].detail and "texlive" in checks[1].advice


# --- disk ----------------------------------------------------------------------------------------


def test_cache_estimate_known_answer():
    # one 4:3 image at shorter side 300 px: 300 * 400 px * 0.25 B/px
    assert doctor.cache_bytes(1, [300]) == 30_000
    assert doctor.cache_bytes(10, [300, 300]) == 600_000


def test_checkpoint_estimate_known_answer():
    # float32: best.pt holds the weights (+ EMA), last.pt those and the optimiser's moments
    # (two for AdamW, SGD's momentum one)
    adamw_ema = apply_overrides(Config(), ["train.ema=true"]).train
    sgd = apply_overrides(Config(), ["train.optimizer=sgd", "train.ema=false"]).train
    assert doctor.checkpoint_bytes(1000, adamw_ema) == 4 * 1000 * (2 + 4)
    assert doctor.checkpoint_bytes(1000, sgd) == 4 * 1000 * (1 + 2)
    assert doctor.parameter_count("resnet18", 64) == 11_180_103  # 7-class head, on meta


def _free_bytes(monkeypatch, free: int) -> None:
    usage = type(doctor.shutil.disk_usage("/"))
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _: usage(10**13, 10**13 - free, free))


def test_disk_short_of_the_estimate_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "experiments"))
    profile = load_study_profile(HAM_PROFILE)
    # three cache sides: ResNet crop 0.95 -> 405 px, ViT/Swin 0.9 -> 427, EfficientNet 0.875 -> 439
    assert doctor.cache_sides(profile) == [405, 427, 439]
    # 10 runs (5 architectures, 5 imbalance strategies) of 1M parameters, with EMA and AdamW:
    # 10 * 4 B * 1M * (2 weights in best.pt + 4 in last.pt) = 240 MB
    params = lambda arch, size: 10**6  # noqa: E731
    _free_bytes(monkeypatch, 10**8)
    (check,) = doctor.disk_checks(profile, 10_015, "full ham10000", params)
    assert check.verdict == "fail" and "SKINLIB_CACHE" in check.advice
    assert "cache needs about 1.68 GiB" in check.detail and "of 10 runs" in check.detail
    assert "0.22 GiB" in check.detail and str(tmp_path / "cache") in check.detail
    _free_bytes(monkeypatch, 10**11)
    assert [c.verdict for c in doctor.disk_checks(profile, 10_015, "", params)] == ["ok"]


def test_cache_and_runs_on_two_disks_are_checked_apart(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "_device", lambda path: hash(str(path)))
    _free_bytes(monkeypatch, 3 * 2**30)  # enough for the cache (1.68 GiB), not for 3.6 GiB of runs
    profile = load_study_profile(HAM_PROFILE)
    cache, runs = doctor.disk_checks(profile, 10_015, "", lambda arch, size: 16 * 10**6)
    assert (cache.name, cache.verdict) == ("disk cache", "ok")
    assert (runs.name, runs.verdict) == ("disk runs", "fail")
    assert "SKINLIB_EXPERIMENTS" in runs.advice


# --- weights -------------------------------------------------------------------------------------


def _fake_hub_cache(folder: Path, hub_id: str) -> Path:
    """The Hugging Face cache layout timm reads: refs/main -> snapshots/<rev>/model.safetensors."""
    repo = folder / f"models--{hub_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    weights = repo / "snapshots" / "abc123" / "model.safetensors"
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"not really weights")
    return weights


def test_weights_offline_and_not_cached_fail_with_the_way_out(monkeypatch):
    monkeypatch.setattr(doctor, "hub_cached", lambda *a, **k: None)
    probes = []
    checks = doctor.weights_checks(load_study_profile(HAM_PROFILE), lambda: probes.append(1))
    assert len(checks) == 5 and len(probes) == 1  # the hub is probed once, not per model
    assert {c.verdict for c in checks} == {"fail"}
    assert "resnet50.a1_in1k" in checks[0].advice and "model.weights=" in checks[0].advice
    online = doctor.weights_checks(load_study_profile(HAM_PROFILE), lambda: True)
    assert {c.verdict for c in online} == {"ok"} and "reachable" in online[0].detail


def test_weights_from_a_cache_folder_or_a_file(tmp_path):
    _fake_hub_cache(tmp_path / "hub", "timm/resnet50.a1_in1k")
    folder = load_study_profile(HAM_PROFILE, [f"model.weights={tmp_path / 'hub'}"])
    checks = {c.name: c for c in doctor.weights_checks(folder, lambda: False)}
    assert checks["weights resnet50"].verdict == "ok"
    assert checks["weights efficientnet_b3"].verdict == "fail"  # not in that folder
    assert "holds no weights" in checks["weights efficientnet_b3"].detail

    file = tmp_path / "resnet18.safetensors"
    file.write_bytes(b"x")
    one = load_study_profile("params/demo.yaml", ["model.pretrained=true", f"model.weights={file}"])
    shared = doctor.weights_checks(one, lambda: False)
    assert {c.verdict for c in shared} == {"fail"}  # one file for five architectures
    assert "recipes" in shared[0].advice
    missing = doctor._local_weights_check("weights x", tmp_path / "nope.pth", None)
    assert missing.verdict == "fail" and "no such file" in missing.detail


def test_pretrained_false_needs_no_weights():
    profile = load_study_profile(HAM_PROFILE, ["model.pretrained=false"])
    assert [c.verdict for c in doctor.weights_checks(profile, lambda: 1 / 0)] == ["ok"]


# --- data (through the command line) -------------------------------------------------------------


def test_missing_data_folder_fails_with_the_next_step(capsys, tmp_path):
    code, lines = _doctor(
        capsys,
        "--profile",
        HAM_PROFILE,
        "--set",
        f"data.root={tmp_path / 'nowhere'}",
        "--set",
        "model.pretrained=false",
    )
    assert code == 1
    assert lines["data"].startswith("fail") and "does not exist" in lines["data"]
    assert "next: point data.root at the folder holding HAM10000_metadata.csv" in lines["data"]


def test_isic_folder_given_as_ham10000_names_the_format(capsys, tmp_path):
    root = make_isic2019_folder(tmp_path / "isic")
    code, lines = _doctor(
        capsys,
        "--profile",
        HAM_PROFILE,
        "--set",
        f"data.root={root}",
        "--set",
        "model.pretrained=false",
    )
    assert code == 1 and lines["data"].startswith("fail")
    assert "holds isic2019 data" in lines["data"]
    assert "data.format=isic2019" in lines["data"] and "params/isic2019.yaml" in lines["data"]


def test_labelled_dataset_given_as_class_folders_names_the_format(tmp_path):
    root = make_ham10000_folder(tmp_path / "ham", 5)
    check, _ = doctor.dataset_check(_ham(f"data.root={root}", "data.format=folder"))
    assert check.verdict == "fail" and "holds ham10000 data" in check.detail
    assert "data.format=ham10000" in check.advice


def test_empty_folder_fails(tmp_path):
    (tmp_path / "empty").mkdir()
    check, n = doctor.dataset_check(_ham(f"data.root={tmp_path / 'empty'}"))
    assert check.verdict == "fail" and "is empty" in check.detail and n is None


def test_ham10000_fixture_is_ok_with_counts(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "experiments"))
    root = make_ham10000_folder(tmp_path / "ham", 50)
    code, lines = _doctor(
        capsys,
        "--profile",
        HAM_PROFILE,
        "--set",
        f"data.root={root}",
        "--set",
        "model.pretrained=false",
        "--set",
        "data.num_workers=1",
    )
    assert lines["data"].startswith("ok") and "50 images" in lines["data"]
    assert "16 sampled images decode" in lines["data"]
    assert "50 images, counted" in lines["disk"]
    assert code == 0  # no CUDA and no Chromium are warnings: the run would not stop
    if not torch.cuda.is_available():
        assert lines["cuda"].startswith("warn") and "no CUDA GPU visible" in lines["cuda"]
        assert "next: run this profile on a machine with an NVIDIA GPU" in lines["cuda"]


def test_missing_and_corrupt_images_fail_unless_skipped(tmp_path):
    root = make_ham10000_folder(tmp_path / "ham", 20)
    next(root.glob("HAM10000_images_part_1/*.jpg")).unlink()
    check, _ = doctor.dataset_check(_ham(f"data.root={root}"))
    assert check.verdict == "fail" and "1 images missing" in check.detail
    assert "data.skip_bad=true" in check.advice and "skinlib validate" in check.advice
    skipped, _ = doctor.dataset_check(_ham(f"data.root={root}", "data.skip_bad=true"))
    assert skipped.verdict == "warn"

    root = make_ham10000_folder(tmp_path / "ham2", 20)
    next(root.glob("HAM10000_images_part_2/*.jpg")).write_bytes(b"\xff\xd8 truncated")
    check, _ = doctor.dataset_check(_ham(f"data.root={root}"), sample=20)
    assert check.verdict == "fail" and "1 of 20 sampled images unreadable" in check.detail


def test_images_in_the_wrong_place_point_at_the_layout(tmp_path):
    root = make_ham10000_folder(tmp_path / "ham", 10, one_folder="somewhere/else")
    check, _ = doctor.dataset_check(_ham(f"data.root={root}"))
    assert check.verdict == "fail" and "none of the 10 images" in check.detail
    assert "HAM10000_images_part_1" in check.advice


@pytest.mark.skipif(not REAL_HAM.is_dir(), reason=f"real HAM10000 images not at {REAL_HAM}")
def test_real_ham10000_images():
    check, n = doctor.dataset_check(_ham(f"data.root={REAL_HAM}"))
    assert check.verdict == "ok", check
    assert n == 10_015 and "7,470 groups" in check.detail and "nv 6,705" in check.detail


def test_synthderm_profile_needs_no_data():
    check, n = doctor.dataset_check(load_study_profile("params/demo.yaml").config)
    assert check.verdict == "ok" and "SynthDerm" in check.detail and n == 1200


def test_exit_code_and_check_verdicts():
    assert doctor.exit_code([doctor.Check("a", "ok", ""), doctor.Check("b", "warn", "")]) == 0
    assert doctor.exit_code([doctor.Check("a", "fail", "")]) == 1
    with pytest.raises(ValueError, match="verdict"):
        doctor.Check("a", "maybe", "")


def test_unknown_architecture_fails_and_other_checks_skip_it(tmp_path):
    (tmp_path / "p.yaml").write_text(
        "architectures: [resnet18, resnet_fifty]\nconfig:\n  model: {pretrained: true}\n"
    )
    profile = load_study_profile(tmp_path / "p.yaml")
    check = doctor.architecture_check(profile)
    assert check.verdict == "fail" and "resnet_fifty" in check.detail
    assert "architectures:" in check.advice
    assert [c.name for c in doctor.weights_checks(profile, lambda: True)] == ["weights resnet18"]
    assert [c.model.arch for c in doctor.study_runs(profile)] == ["resnet18"] * 6
