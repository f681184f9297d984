"""What a run records about itself: code version, packages, hardware, resources."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata

import torch

from skinlib import paths

PACKAGES = (
    "skinlib",
    "torch",
    "torchvision",
    "timm",
    "numpy",
    "pandas",
    "scikit-learn",
    "grad-cam",
    "netcal",
)


def git_commit() -> dict:
    """Commit and whether the tree had uncommitted changes (``unknown`` outside git)."""

    def run(*args: str) -> str:
        out = subprocess.run(
            # The notebooks' nbstripout clean filter would run once per notebook whose index
            # entry is stale (every one, in a fresh clone): seconds per training, for a flag.
            # Without it a notebook saved with outputs reads as a change, which it is on disk.
            ["git", "-c", "filter.nbstripout.clean=cat", *args],
            cwd=paths.PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return out.stdout.strip() if out.returncode == 0 else ""

    try:
        commit = run("rev-parse", "HEAD") or "unknown"
        dirty = bool(run("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        commit, dirty = "unknown", False
    return {"commit": commit, "dirty": dirty}


def versions() -> dict:
    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def hardware(device: torch.device) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": __import__("os").cpu_count(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["gpu_count"] = torch.cuda.device_count()
    return info


def resources(device: torch.device) -> dict:
    """CPU and memory use now; GPU memory and utilisation where a GPU is used."""
    # psutil only when resources are logged (train.log_resources)
    import psutil

    proc = psutil.Process()
    out = {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "rss_gb": proc.memory_info().rss / 2**30,
    }
    if device.type == "cuda":
        out["gpu_mem_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
        try:
            # nvidia-ml-py is the optional `gpu` extra
            import pynvml

            pynvml.nvmlInit()
            handle = pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)
            out["gpu_util"] = pynvml.nvmlDeviceGetUtilizationRates(handle).gpu
        except Exception:  # nvidia-ml-py missing or no permission: memory is still logged
            pass
    return out
