"""What this machine can run: packages, GPUs, cores, disk, pretrained weights, tools and data.

Each check is a pure function returning :class:`Check` results (a verdict and, when not ok, the
next step), so ``skinlib doctor`` only prints them and tests call them directly. ``fail`` is kept
for what would stop the profile's run; what only slows it or disables an extra is ``warn``.
Nothing here downloads or writes: the hub is probed with one short request, datasets are read
like ``skinlib validate`` reads them, but only a sample of images is decoded.
"""

from __future__ import annotations

import functools
import math
import os
import platform
import shutil
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

from skinlib import paths
from skinlib.config import Config, ModelConfig, TrainConfig
from skinlib.data.formats import FORMATS, get_format, read_source
from skinlib.data.synthetic import COMPLETE_MARKER, dataset_name
from skinlib.data.validate import check_image
from skinlib.errors import DataError
from skinlib.profile import StudyProfile

VERDICTS = ("ok", "warn", "fail")
# (distribution, what stops without it): a package the profile's run needs is a fail when missing.
PACKAGES = {
    "torch": "training",
    "torchvision": "training",
    "timm": "training",
    "numpy": "everything",
    "scikit-learn": "the metrics",
    "netcal": "the calibration notebook",
    "grad-cam": "the Grad-CAM notebook",
    "papermill": "the notebook pipeline",
    "gradio": "",  # only `skinlib serve`, not the study
}
# Cached JPEGs (quality 95) of HAM10000 images measured 0.17-0.23 bytes per pixel; 0.25 leaves room.
CACHE_BYTES_PER_PIXEL = 0.25
CACHE_ASPECT = 4 / 3  # dermoscopic images are mostly 4:3 (HAM10000 600x450)
SAMPLE_IMAGES = 16  # images decoded to check a dataset (`skinlib validate` decodes all)
PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class Check:
    """One line of the report: what was looked at, the verdict, what was found, what to do."""

    name: str
    verdict: str  # ok | warn | fail
    detail: str
    advice: str = ""  # the next step, when the verdict is not ok

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict must be one of {VERDICTS}, got {self.verdict!r}")


def exit_code(checks: list[Check]) -> int:
    """1 when any check would stop the profile's run, else 0."""
    return int(any(c.verdict == "fail" for c in checks))


# --- packages ------------------------------------------------------------------------------------


def _requirements() -> dict[str, object]:
    """skinlib's own requirement per distribution name (empty when skinlib is not installed)."""
    try:
        declared = metadata.requires("skinlib") or []
    except metadata.PackageNotFoundError:
        return {}
    reqs = (Requirement(r) for r in declared)
    return {r.name.lower(): r for r in reqs if r.marker is None}


def package_checks(
    versions: Callable[[str], str | None] | None = None,
) -> list[Check]:
    """The Python version and one line per package the study uses, against pyproject's ranges.

    Args:
        versions: distribution name -> installed version or None (default: importlib.metadata).
    """
    versions = versions or _installed_version
    wanted = _requirements()
    checks = [Check("python", "ok", platform.python_version())]
    for name, needed_by in PACKAGES.items():
        version = versions(name)
        bad = "fail" if needed_by else "warn"
        what = needed_by or "`skinlib serve` (the web app)"
        req = wanted.get(name)
        if version is None:
            advice = f"pip install -e . (installs {req or name}); {what} needs it"
            checks.append(Check(name, bad, "not installed", advice))
        elif req is not None and not req.specifier.contains(version, prereleases=True):
            advice = f"pip install '{req}' (or pip install -e .); skinlib is tested in that range"
            checks.append(Check(name, bad, f"{version}, outside {req.specifier}", advice))
        else:
            checks.append(Check(name, "ok", version))
    return checks


def _installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# --- compute -------------------------------------------------------------------------------------


def train_size(cfg: Config) -> int:
    """The side in px a run of ``cfg`` trains at (the model's native one when asked for)."""
    if cfg.model.native_resolution or not cfg.data.image_size:
        from skinlib.models.architectures import native_size  # imports timm: only when needed

        return native_size(cfg.model.arch)
    return cfg.data.image_size


def cuda_checks(cfg: Config) -> list[Check]:
    """One line per visible GPU (name, memory, bf16), or what having none means for ``cfg``."""
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    import torch

    if not torch.cuda.is_available():
        return [_no_cuda(cfg, torch.__version__, torch.version.cuda)]
    checks = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        bf16 = props.major >= 8  # Ampere and later
        detail = (
            f"cuda:{i} {props.name}, {props.total_memory / 2**30:.1f} GiB, compute "
            f"{props.major}.{props.minor}, bf16 {'yes' if bf16 else 'no'}"
        )
        checks.append(_gpu_check(cfg, detail, bf16))
    return checks


def _gpu_check(cfg: Config, detail: str, bf16: bool) -> Check:
    amp = cfg.train.amp
    if amp == "bf16" and not bf16:
        return Check(
            "cuda",
            "warn",
            f"{detail}; train.amp=bf16 is emulated (slow) on this GPU",
            "set train.amp=auto (fp16 with a grad scaler on this GPU)",
        )
    mode = {"auto": "bf16" if bf16 else "fp16 + grad scaler", "off": "fp32"}.get(amp, amp)
    return Check("cuda", "ok", f"{detail}; training uses {mode} (train.amp={amp})")


def _no_cuda(cfg: Config, torch_version: str, cuda_build: str | None) -> Check:
    """No GPU: a fail when the config demands one, a warn when its image size needs one."""
    build = "" if cuda_build else f"; torch {torch_version} is a CPU-only build"
    install = (
        ""
        if cuda_build
        else " with a CUDA build of torch (pip install torch --index-url "
        "https://download.pytorch.org/whl/cu124)"
    )
    detail = f"no CUDA GPU visible{build}: training runs on the CPU, mixed precision off"
    if cfg.train.device.startswith("cuda"):
        return Check(
            "cuda",
            "fail",
            f"{detail}, but train.device={cfg.train.device}",
            f"run on a machine with an NVIDIA GPU{install}, or set train.device=auto",
        )
    size = train_size(cfg)
    if size >= 224:
        return Check(
            "cuda",
            "warn",
            f"{detail}; at {size} px that is hours per epoch on a few cores",
            f"run this profile on a machine with an NVIDIA GPU{install}; on this one use "
            "params/demo.yaml",
        )
    return Check("cuda", "ok", f"{detail}; fine for {size} px images")


def cpu_checks(cfg: Config) -> list[Check]:
    """Cores against ``data.num_workers``, and memory."""
    # psutil only for this check: doctor's other checks run without it
    import psutil

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    mem = psutil.virtual_memory()
    workers = cfg.data.num_workers
    detail = (
        f"{cores} cores, {mem.total / 2**30:.1f} GiB RAM ({mem.available / 2**30:.1f} GiB free); "
        f"data.num_workers={workers}"
    )
    if workers > cores:
        advice = (
            f"set data.num_workers={max(cores - 1, 0)}: more loader processes than cores slow it"
        )
        return [Check("cpu", "warn", detail, advice)]
    if mem.available < 4 * 2**30:
        advice = "close other programs or lower data.num_workers and train.batch_size"
        return [Check("cpu", "warn", f"{detail}; under 4 GiB free", advice)]
    return [Check("cpu", "ok", detail)]


# --- architectures and disk ----------------------------------------------------------------------


def study_archs(profile: StudyProfile) -> list[str]:
    """Every architecture the study trains: its list and the imbalance study's."""
    return list(dict.fromkeys([*profile.architectures, profile.imbalance.arch]))


def _known(arch: str) -> bool:
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from skinlib.models.architectures import ArchitectureError, resolve_arch

    try:
        resolve_arch(arch)
    except ArchitectureError:
        return False
    return True


def architecture_check(profile: StudyProfile) -> Check:
    """Unknown architecture names stop the study at its first run; later checks skip them."""
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from skinlib.models.architectures import ArchitectureError, resolve_arch

    for arch in study_archs(profile):
        try:
            resolve_arch(arch)
        except ArchitectureError as err:
            advice = "correct the name under architectures: (or imbalance.arch) in the profile"
            return Check("architectures", "fail", str(err), advice)
    return Check("architectures", "ok", ", ".join(study_archs(profile)))


def study_runs(profile: StudyProfile) -> list[Config]:
    """The config of every run the pipeline trains: one per architecture and per strategy."""
    runs = [profile.run_config(a) for a in profile.architectures]
    runs += [profile.strategy_config(s) for s in profile.imbalance.strategies]
    return [c for c in runs if _known(c.model.arch)]


def cache_sides(profile: StudyProfile) -> list[int]:
    """The cache's shorter sides the study's runs build (one per distinct size and crop)."""
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    import timm

    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from skinlib.models.architectures import resolve_arch

    sides = set()
    for cfg in study_runs(profile):
        if not cfg.data.cache:
            continue
        crop = timm.models.get_pretrained_cfg(resolve_arch(cfg.model.arch)[0]).crop_pct or 0.875
        sides.add(math.ceil(train_size(cfg) / crop))  # as Trainer._cached computes it
    return sorted(sides)


def cache_bytes(n_images: int, sides: list[int]) -> int:
    """Estimated bytes of the pre-resized cache: every image once per side."""
    per_image = sum(s * s * CACHE_ASPECT * CACHE_BYTES_PER_PIXEL for s in sides)
    return int(n_images * per_image)


@functools.cache
def parameter_count(arch: str, img_size: int) -> int:
    """Parameters of ``arch`` with a 7-class head, built on the meta device (no memory used)."""
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    import torch

    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from skinlib.models.architectures import count_parameters, create_model

    with torch.device("meta"):
        return count_parameters(create_model(ModelConfig(arch=arch), 7, img_size))


def checkpoint_bytes(n_params: int, train: TrainConfig) -> int:
    """``best.pt`` (float32 weights and EMA weights) + ``last.pt`` (those and the optimiser
    moments, to resume)."""
    weights = 1 + int(train.ema)
    moments = 2 if train.optimizer == "adamw" else 1
    return 4 * n_params * (2 * weights + moments)


def dataset_images(cfg: Config, counted: int | None = None) -> tuple[int | None, str]:
    """How many images the study reads, and where that number comes from."""
    if not cfg.data.root:
        return cfg.data.synth.n, "SynthDerm"
    if counted is not None:
        return counted, "counted"
    n = FORMATS[cfg.data.format].known_size if cfg.data.format in FORMATS else None
    return n, f"full {cfg.data.format}" if n else "unknown"


def disk_checks(
    profile: StudyProfile,
    n_images: int | None,
    source: str,
    n_params: Callable[[str, int], int] = parameter_count,
) -> list[Check]:
    """Free space for the image cache and for the runs' checkpoints (one disk or two).

    Args:
        n_images: images in the dataset (None: unknown, the cache is not estimated).
        source: where ``n_images`` comes from, for the message.
        n_params: (arch, image side) -> parameter count.
    """
    cache, runs = paths.cache_dir(), paths.experiments_dir()
    cache_need, sides = 0, cache_sides(profile)
    if n_images is not None:
        cache_need = cache_bytes(n_images, sides)
        synth = profile.config.data.synth
        if not profile.config.data.root:  # SynthDerm's own JPEGs and PNG masks
            cache_need += int(synth.n * synth.size**2 * (CACHE_BYTES_PER_PIXEL + 0.05))
    configs = study_runs(profile)
    runs_need = sum(
        checkpoint_bytes(n_params(c.model.arch, train_size(c)), c.train) for c in configs
    )
    shared = _device(cache) == _device(runs)
    size = f"{n_images:,} images, {source}" if n_images is not None else "dataset size unknown"
    cache_what = f"cache needs about {_gib(cache_need)} ({size}; at {_px(sides)})"
    runs_what = (
        f"checkpoints need about {_gib(runs_need)} (best.pt + last.pt of {len(configs)} runs)"
    )
    cache_advice = "free space there or move the cache: export SKINLIB_CACHE=/bigger/disk/skinlib"
    runs_advice = "free space there or move the runs: export SKINLIB_EXPERIMENTS=/bigger/disk/exp"
    if shared:
        what = f"{cache_what}; {runs_what}; both on this disk"
        return [
            _space("disk", cache, cache_need + runs_need, what, f"{cache_advice}; or {runs_advice}")
        ]
    return [
        _space("disk cache", cache, cache_need, cache_what, cache_advice),
        _space("disk runs", runs, runs_need, runs_what, runs_advice),
    ]


def _space(name: str, where: Path, need: int, what: str, advice: str) -> Check:
    """fail below ``need`` bytes free, warn below 1.5x (logs, figures, a second cache size)."""
    free = shutil.disk_usage(_existing_parent(where)).free
    detail = f"{free / 2**30:.1f} GiB free at {where}; {what}"
    if free < need:
        return Check(name, "fail", detail, advice)
    if free < 1.5 * need:
        return Check(name, "warn", detail, f"the margin is thin: {advice}")
    return Check(name, "ok", detail)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"


def _px(sides: list[int]) -> str:
    return ", ".join(f"{s} px" for s in sides) or "no cache (data.cache=false)"


def _device(path: Path) -> int:
    return os.stat(_existing_parent(path)).st_dev


def _existing_parent(path: Path) -> Path:
    """The path itself or its nearest existing parent (the cache may not be made yet)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


# --- pretrained weights --------------------------------------------------------------------------

HUB_FILES = ("model.safetensors", "pytorch_model.bin")  # what timm fetches from a hub repo


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """One HEAD request to the Hugging Face hub; False offline or when HF_HUB_OFFLINE is set."""
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    try:
        request = urllib.request.Request(constants.ENDPOINT, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except OSError:  # URLError, timeouts and refused connections are all OSErrors
        return False


def hub_cached(hub_id: str, cache_dir: str | Path | None = None) -> Path | None:
    """The cached weights file of a hub repo (``timm/<name>.<tag>``), if one is there."""
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from huggingface_hub import try_to_load_from_cache

    repo, _, revision = hub_id.partition("@")
    for name in HUB_FILES:
        found = try_to_load_from_cache(repo, name, cache_dir=cache_dir, revision=revision or None)
        if isinstance(found, str):
            return Path(found)
    return None


def weights_checks(
    profile: StudyProfile, reachable: Callable[[], bool] = hub_reachable
) -> list[Check]:
    """Whether each architecture's ImageNet weights can be loaded without a download failing.

    Args:
        reachable: the network probe, called at most once (tests pass ``lambda: False``).
    """
    archs = [a for a in study_archs(profile) if _known(a)]
    configs = {a: profile.run_config(a).model for a in archs}
    wanted = {a: m for a, m in configs.items() if m.pretrained}
    if not wanted:
        return [Check("weights", "ok", "not needed (model.pretrained=false)")]
    online: list[bool] = []  # probe lazily, once

    def is_online() -> bool:
        if not online:
            online.append(reachable())
        return online[0]

    files = [m.weights for m in wanted.values() if m.weights and Path(m.weights).is_file()]
    checks = []
    for arch, model in wanted.items():
        if model.weights in files and files.count(model.weights) > 1:
            checks.append(_shared_file(arch, model.weights, files.count(model.weights)))
        else:
            checks.append(_weights_check(arch, model.weights, is_online))
    return checks


def _shared_file(arch: str, weights: str, n: int) -> Check:
    """One weights file fits one architecture; the study would load it into several."""
    return Check(
        f"weights {arch}",
        "fail",
        f"model.weights={weights} is one file for {n} architectures",
        "point model.weights at a hub cache folder holding every architecture, or give each "
        "architecture its own file under the profile's recipes (model.weights: ...)",
    )


def _weights_check(arch: str, weights: str, is_online: Callable[[], bool]) -> Check:
    # here: doctor reports a missing or broken torch/timm instead of failing to start
    import timm

    # here: doctor reports a missing or broken torch/timm instead of failing to start
    from skinlib.models.architectures import resolve_arch

    cfg = timm.models.get_pretrained_cfg(resolve_arch(arch)[0])
    hub_id, name = cfg.hf_hub_id, f"weights {arch}"
    if weights:
        return _local_weights_check(name, Path(weights).expanduser(), hub_id)
    if hub_id and (found := hub_cached(hub_id)):
        return Check(name, "ok", f"cached: {found}")
    if hub_id and is_online():
        return Check(name, "ok", f"{hub_id} reachable on the hub; downloaded at the first run")
    return Check(
        name,
        "fail",
        f"{hub_id or arch} not cached and the hub is not reachable",
        'where the hub is reachable: python -c "import timm; timm.create_model('
        f"'{hub_id.removeprefix('timm/') if hub_id else arch}', pretrained=True)\"; copy that "
        "~/.cache/huggingface/hub here and set model.weights=<the copy> (or a .safetensors "
        "file); or model.pretrained=false",
    )


def _local_weights_check(name: str, path: Path, hub_id: str | None) -> Check:
    """``model.weights``: a weights file, or a hub cache folder holding this architecture."""
    if path.is_file():
        return Check(name, "ok", f"model.weights={path}")
    if path.is_dir():
        if hub_id and (found := hub_cached(hub_id, cache_dir=path)):
            return Check(name, "ok", f"model.weights cache folder holds {found.name} of {hub_id}")
        return Check(
            name,
            "fail",
            f"model.weights={path} holds no weights of {hub_id}",
            f"fill it where the hub is reachable (timm.create_model(..., pretrained=True, "
            f"cache_dir='{path}')) or point model.weights at this architecture's file",
        )
    return Check(
        name,
        "fail",
        f"model.weights={path}: no such file or folder",
        "put the weights file at that path or correct model.weights",
    )


# --- tools ---------------------------------------------------------------------------------------


def tool_checks(which: Callable[[str], str | None] = shutil.which) -> list[Check]:
    """Chromium for the browser test and latexmk/pdflatex for the thesis: extras, never fails."""
    checks = []
    if path := which("chromium"):
        checks.append(Check("chromium", "ok", path))
    else:
        checks.append(
            Check(
                "chromium",
                "warn",
                "not found: tests/test_app_browser.py is skipped",
                "apt-get install chromium chromium-driver (.ci/run does this as root)",
            )
        )
    missing = [t for t in ("latexmk", "pdflatex") if not which(t)]
    if missing:
        checks.append(
            Check(
                "latex",
                "warn",
                f"{' and '.join(missing)} not found: `make thesis` cannot build the PDF",
                "apt-get install latexmk texlive-latex-extra",
            )
        )
    else:
        checks.append(Check("latex", "ok", f"{which('latexmk')}, {which('pdflatex')}"))
    return checks


# --- data ----------------------------------------------------------------------------------------


def _layout(fmt: str) -> str:
    """What a folder of format ``fmt`` holds (the name itself for an unknown format)."""
    return FORMATS[fmt].layout if fmt in FORMATS else fmt


def detect_formats(root: Path) -> list[str]:
    """The dataset formats whose label file sits in ``root`` (the layout, not the content)."""
    if not root.is_dir():
        return []
    return [f.name for f in FORMATS.values() if f.label_file and (root / f.label_file).is_file()]


def dataset_check(cfg: Config, sample: int = SAMPLE_IMAGES) -> tuple[Check, int | None]:
    """Whether ``data.root`` holds a readable dataset of ``data.format``; and its image count.

    Reads the label file and lists the image folders as training would, then decodes ``sample``
    images spread over the table (``skinlib validate`` decodes every one).
    """
    data = cfg.data
    if not data.root:
        return _synthderm_check(cfg), data.synth.n
    root = Path(data.root).expanduser()
    layout = _layout(data.format)
    if not root.exists():
        advice = f"point data.root at the folder holding {layout}: --set data.root=/path/to/it"
        return Check("data", "fail", f"data.root={root} does not exist", advice), None
    if root.is_dir() and not any(root.iterdir()):
        advice = f"copy the dataset there ({layout}) or point data.root at it"
        return Check("data", "fail", f"data.root={root} is empty", advice), None
    if data.format == "folder" and (found := detect_formats(root)):
        # read_folder would take the image folders for classes
        return _unreadable(root, data.format, DataError(f"{root} holds {found[0]} data")), None
    try:
        table, problems = read_source(root, data.format)
    except DataError as err:
        return _unreadable(root, data.format, err), None
    return _table_check(cfg, root, table, problems, sample), len(table)


def _synthderm_check(cfg: Config) -> Check:
    synth = cfg.data.synth
    folder = paths.synthetic_data_dir(dataset_name(synth))
    state = "generated" if (folder / COMPLETE_MARKER).is_file() else "generated at the first run"
    return Check(
        "data", "ok", f"data.root empty: SynthDerm, {synth.n} images of {synth.size} px, {state}"
    )


def _unreadable(root: Path, fmt: str, err: DataError) -> Check:
    """The label file of ``fmt`` is missing or malformed: name the format the folder holds."""
    others = [f for f in detect_formats(root) if f != fmt]
    if others:
        found = others[0]
        profile = paths.params_dir() / f"{found}.yaml"
        use = f" (or use {profile.relative_to(paths.PROJECT_ROOT)})" if profile.is_file() else ""
        return Check(
            "data",
            "fail",
            f"{root} holds {found} data ({get_format(found).label_file}), not {fmt}",
            f"set data.format={found}{use}, or point data.root at a {fmt} folder",
        )
    return Check("data", "fail", str(err), f"expected {_layout(fmt)}; check data.root/data.format")


def _table_check(cfg: Config, root: Path, table, problems: list, sample: int) -> Check:
    """Counts, the first problem that would stop training, and a decoded sample of images."""
    fmt, n = cfg.data.format, len(table)
    validate = f"skinlib validate {root} --format {fmt} lists every problem"
    missing = [p for p in problems if p.problem == "missing_image"]
    other = [p for p in problems if p.problem != "missing_image"]
    if other:
        return Check("data", "fail", f"{n:,} rows; {other[0].message()}", validate)
    if len(missing) == n:
        advice = f"put the images where {fmt} keeps them ({_layout(fmt)})"
        return Check("data", "fail", f"none of the {n:,} images listed was found", advice)
    counts = _counts(table)
    if missing and not cfg.data.skip_bad:
        detail = f"{counts}; {len(missing):,} images missing (first: {missing[0].message()})"
        return Check("data", "fail", detail, f"restore them or set data.skip_bad=true; {validate}")
    bad = _sample_problems(table, sample)
    taken = min(sample, n - len(missing))
    if bad and not cfg.data.skip_bad:
        detail = f"{counts}; {len(bad)} of {taken} sampled images unreadable ({bad[0]})"
        return Check("data", "fail", detail, f"{validate}; data.skip_bad=true skips them")
    if missing or bad:
        detail = f"{counts}; {len(missing)} missing, {len(bad)} of {taken} sampled unreadable"
        return Check("data", "warn", detail, f"data.skip_bad=true skips them; {validate}")
    return Check("data", "ok", f"{counts}; {taken} sampled images decode")


def _counts(table) -> str:
    labels = table["label"].value_counts()
    classes = ", ".join(f"{k} {v:,}" for k, v in labels.items())
    return f"{len(table):,} images, {table['group'].nunique():,} groups, {len(labels)} classes ({classes})"


def _sample_problems(table, sample: int) -> list[str]:
    """Fully decode ``sample`` images spread evenly over the table; their problems."""
    listed = table["path"].dropna().tolist()
    if not listed:
        return []
    step = max(1, len(listed) // max(sample, 1))
    checks = (check_image(p) for p in listed[::step][:sample])
    return [f"{c.path}: {c.detail}" for c in checks if c.problem]


# --- everything ----------------------------------------------------------------------------------


def run_checks(
    profile: StudyProfile,
    reachable: Callable[[], bool] = hub_reachable,
    sample: int = SAMPLE_IMAGES,
) -> list[Check]:
    """Every check for ``profile`` on this machine, in report order."""
    cfg = profile.config
    data, counted = dataset_check(cfg, sample)
    n_images, source = dataset_images(cfg, counted)
    return [
        *package_checks(),
        *cuda_checks(cfg),
        *cpu_checks(cfg),
        architecture_check(profile),
        *disk_checks(profile, n_images, source),
        *weights_checks(profile, reachable),
        *tool_checks(),
        data,
    ]
