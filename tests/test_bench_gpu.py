"""bench/bench_gpu.py without a GPU: its arguments, its run config, the skip, a CPU smoke run."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from conftest import make_ham10000_folder

from skinlib import paths


def _bench():
    spec = importlib.util.spec_from_file_location(
        "bench_gpu", paths.PROJECT_ROOT / "bench" / "bench_gpu.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = _bench()


def test_arguments():
    args = bench.parse_args([])
    assert args.arch_sizes == [("resnet50", 224), ("efficientnet_b3", 300)]
    assert args.workers == 8 and args.data == ""
    args = bench.parse_args(
        ["--archs", "resnet18:64", "--workers", "2", "--set", "train.ema=false"]
    )
    assert args.arch_sizes == [("resnet18", 64)] and args.overrides == ["train.ema=false"]
    with pytest.raises(SystemExit, match="arch:size"):
        bench.parse_args(["--archs", "resnet50"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "0"])


def test_run_config_is_the_profiles_with_the_bench_settings():
    args = bench.parse_args(["--workers", "6", "--set", "train.deterministic=false"])
    cfg = bench.bench_config(args, "efficientnet_b3", 300)
    assert cfg.model.arch == "efficientnet_b3" and cfg.data.image_size == 300
    assert cfg.data.cache and cfg.data.num_workers == 6 and cfg.data.root == ""
    assert cfg.data.synth.size == 450 and not cfg.model.pretrained
    # what the real profile trains with: mixed precision chosen per GPU, channels-last, EMA
    assert cfg.train.amp == "auto" and cfg.train.channels_last and cfg.train.ema
    assert cfg.train.augment == "strong" and not cfg.train.deterministic


@pytest.mark.skipif(torch.cuda.is_available(), reason="this test is about a machine without CUDA")
def test_without_cuda_it_says_why_and_exits_0(capsys):
    assert bench.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("bench_gpu: skipped: no CUDA GPU visible")
    assert "NVIDIA GPU" in out
    assert bench.skip_reason("cpu") is None


@pytest.mark.slow
def test_cpu_smoke_run_through_the_engine(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SKINLIB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SKINLIB_EXPERIMENTS", str(tmp_path / "experiments"))
    root = make_ham10000_folder(tmp_path / "ham", 40)
    argv = ["--device", "cpu", "--data", str(root), "--archs", "resnet18:32", "--workers", "0"]
    argv += ["--batch-size", "4", "--warmup", "0", "--steps", "1", "--set", "train.ema=false"]
    assert bench.main(argv) == 0
    out = capsys.readouterr().out
    assert "CPU" in out and "AMP off" in out
    line = next(line for line in out.splitlines() if line.startswith("resnet18"))
    assert "end-to-end" in line and "compute-only" in line and "ratio" in line
    assert list((tmp_path / "cache" / "images").iterdir())  # fed from the pre-resized cache
    assert not (tmp_path / "experiments").exists()  # a benchmark writes no run
