"""SynthDerm: a deterministic, procedural dataset of dermoscopy-like images, written in the exact
HAM10000 layout (or ISIC 2019's) so that adapters, splits, notebooks and the app run on it unchanged.

It is not dermoscopy. It exists so that the whole study runs offline, on a CPU, in minutes, and
still has something to find: imbalance, lesions photographed more than once, overlapping classes,
calibration errors and ground-truth masks against which Grad-CAM maps can be scored.

Class signatures (after the dermoscopic descriptions they imitate):

* ``nv`` (melanocytic nevus): symmetric and round, uniform brown, regular pigment network.
* ``mel`` (melanoma): asymmetric, irregular border, several colours incl. blue-grey and black,
  irregular network.
* ``bcc`` (basal cell carcinoma): pinkish, branching red (arborising) vessels, blue-grey blobs.
* ``bkl`` (benign keratosis): light brown, sharp border, white (milia-like) dots.
* ``akiec`` (actinic keratosis / Bowen's): reddish, scaly white surface.
* ``df`` (dermatofibroma): small brown ring around a white centre.
* ``vasc`` (vascular lesion): red-purple round lacunae.
* ``scc`` (squamous cell carcinoma): pink with a white keratin centre.

Nuisances of real images: skin tones from very light to dark, the dermoscope's dark circular
vignette, hairs, uneven light, blur, colour casts, and lesion scale, position and rotation.
Several images of one lesion share its shape and colours and differ in view, light and zoom.

**Difficulty** (0 to 1) blends each image's signature toward a confuser class (nv with mel, mel
with nv or bkl, bkl with mel, akiec with bcc, bcc with akiec, scc with akiec, df with nv, vasc with
bcc) by ``difficulty * u`` with ``u ~ U(0, 1)``, and strengthens the nuisances. Measured with the
small CNN of ``tests/test_synthetic.py`` (three conv layers; balanced classes, 900 images at 48 px,
8 epochs, CPU; test-split balanced accuracy, chance = 0.14):

===========  ===================  ====================================================
difficulty   balanced accuracy    reading
===========  ===================  ====================================================
0.0          0.80                 classes mostly separable by colour and pattern
0.5          0.62                 default: clearly above chance, clearly below perfect
0.8          0.50                 heavy overlap (mel/nv, akiec/bcc) dominates
===========  ===================  ====================================================

ImageNet-style models trained longer at higher resolution do better (the demo profile's numbers
are in the README).

The default (0.5) keeps a small model in the 0.6-0.9 band that the study needs: errors to
analyse, probabilities to calibrate, operating points that trade sensitivity for specificity.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw, ImageFilter

from skinlib import paths
from skinlib.data.classes import HAM10000_CLASSES, ISIC2019_CLASSES, ISIC2019_COLUMNS
from skinlib.data.formats.ham10000 import (
    HAM10000_COLUMNS,
    HAM10000_CSV,
    HAM10000_IMAGE_DIRS,
    HAM10000_MASK_DIR,
)
from skinlib.data.formats.isic2019 import ISIC2019_CSV, ISIC2019_IMAGE_DIR, ISIC2019_META
from skinlib.progress import tqdm

HAM10000_SHARES = {
    "nv": 0.67,
    "mel": 0.111,
    "bkl": 0.11,
    "bcc": 0.051,
    "akiec": 0.033,
    "vasc": 0.014,
    "df": 0.011,
}
ISIC2019_SHARES = {
    "nv": 12875,
    "mel": 4522,
    "bcc": 3323,
    "bkl": 2624,
    "akiec": 867,
    "scc": 628,
    "vasc": 253,
    "df": 239,
}
CONFUSER = {
    "nv": "mel",
    "mel": "nv",
    "bkl": "mel",
    "akiec": "bcc",
    "bcc": "akiec",
    "scc": "akiec",
    "df": "nv",
    "vasc": "bcc",
}
IMAGES_PER_LESION = 10015 / 7470  # HAM10000's ratio
MIN_LESIONS_PER_CLASS = 3
JPEG_QUALITY = 92
COMPLETE_MARKER = ".complete.json"

# Colours (RGB in 0..1) each class draws from: base, secondary, accents.
PALETTE = {
    "nv": [(0.45, 0.28, 0.16), (0.36, 0.22, 0.12)],
    "mel": [(0.30, 0.17, 0.10), (0.12, 0.08, 0.07), (0.40, 0.45, 0.55), (0.52, 0.33, 0.22)],
    "bcc": [(0.86, 0.58, 0.58), (0.45, 0.50, 0.60)],
    "bkl": [(0.66, 0.50, 0.34), (0.58, 0.42, 0.28)],
    "akiec": [(0.80, 0.42, 0.38), (0.92, 0.86, 0.82)],
    "df": [(0.50, 0.33, 0.22), (0.93, 0.88, 0.85)],
    "vasc": [(0.62, 0.12, 0.25), (0.45, 0.10, 0.35)],
    "scc": [(0.88, 0.60, 0.58), (0.96, 0.94, 0.88)],
}
IRREGULARITY = {
    "nv": 0.04,
    "mel": 0.22,
    "bcc": 0.12,
    "bkl": 0.08,
    "akiec": 0.14,
    "df": 0.05,
    "vasc": 0.06,
    "scc": 0.14,
}
RADIUS = {
    "nv": 0.42,
    "mel": 0.5,
    "bcc": 0.42,
    "bkl": 0.48,
    "akiec": 0.44,
    "df": 0.3,
    "vasc": 0.34,
    "scc": 0.4,
}

SITES = [
    "back",
    "lower extremity",
    "trunk",
    "upper extremity",
    "abdomen",
    "face",
    "chest",
    "foot",
    "unknown",
    "neck",
    "scalp",
    "hand",
    "ear",
    "genital",
    "acral",
]
SITE_BIAS = {
    "nv": {"back": 3, "lower extremity": 2, "trunk": 2},
    "mel": {"back": 3, "upper extremity": 2},
    "bcc": {"face": 4, "back": 2},
    "bkl": {"face": 3, "trunk": 2},
    "akiec": {"face": 5, "scalp": 2},
    "df": {"lower extremity": 6},
    "vasc": {"trunk": 2, "lower extremity": 2},
    "scc": {"face": 4, "hand": 2},
}
AGE = {
    "nv": (40, 15),
    "mel": (60, 14),
    "bcc": (66, 12),
    "bkl": (60, 13),
    "akiec": (67, 11),
    "df": (45, 14),
    "vasc": (50, 20),
    "scc": (70, 11),
}
MALE = {
    "nv": 0.5,
    "mel": 0.58,
    "bcc": 0.6,
    "bkl": 0.55,
    "akiec": 0.68,
    "df": 0.46,
    "vasc": 0.5,
    "scc": 0.6,
}
DX_TYPE = {
    "nv": {"follow_up": 0.5, "histo": 0.3, "consensus": 0.15, "confocal": 0.05},
    "mel": {"histo": 1.0},
    "bcc": {"histo": 1.0},
    "bkl": {"histo": 0.5, "consensus": 0.3, "confocal": 0.2},
    "akiec": {"histo": 1.0},
    "df": {"histo": 0.5, "consensus": 0.5},
    "vasc": {"histo": 0.3, "consensus": 0.7},
    "scc": {"histo": 1.0},
}


@dataclass
class ImageSpec:
    """Everything needed to draw one image, independent of any other (parallel-safe)."""

    image_id: str
    label: str
    lesion_seed: tuple[int, ...]
    view_seed: tuple[int, ...]
    size: int
    difficulty: float


# --- drawing --------------------------------------------------------------------------------


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Low-frequency noise in [0, 1]: a small random grid upsampled bicubically."""
    grid = (rng.random((cells, cells)) * 255).astype(np.uint8)
    up = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 255.0


def _spots(rng, xx, yy, n, radius, inside) -> np.ndarray:
    """Union of ``n`` soft round spots placed where ``inside`` holds."""
    out = np.zeros_like(xx)
    ys, xs = np.nonzero(inside)
    if len(xs) == 0:
        return out
    size = xx.shape[0]
    for k in rng.integers(0, len(xs), n):
        cx, cy = xx[ys[k], xs[k]], yy[ys[k], xs[k]]
        r = radius * rng.uniform(0.6, 1.4)
        out = np.maximum(out, np.clip(1 - ((xx - cx) ** 2 + (yy - cy) ** 2) / r**2, 0, 1))
    del size
    return out


def _signature(label: str, rng, xx, yy, rho, theta, edge) -> tuple[np.ndarray, np.ndarray]:
    """Colour field (H, W, 3) and radius profile modifier of one class inside the lesion."""
    pal = [np.array(c, np.float32) for c in PALETTE[label]]
    size = xx.shape[0]
    n1, n2 = _smooth_noise(rng, size, 4), _smooth_noise(rng, size, 7)
    inside = edge > 0.3
    colour = np.broadcast_to(pal[0], xx.shape + (3,)).copy()
    if label == "nv":
        net = 0.5 + 0.5 * np.sin(xx * 40) * np.sin(yy * 40)
        colour = colour * (0.85 + 0.25 * net[..., None])
    elif label == "mel":
        weights = np.stack([n1, 1 - n1, n2 * (n2 > 0.55), (1 - n2) * 0.5], -1) ** 2
        weights /= weights.sum(-1, keepdims=True)
        colour = sum(weights[..., i : i + 1] * pal[i] for i in range(4))
        net = 0.5 + 0.5 * np.sin(xx * (30 + 20 * n1)) * np.sin(yy * (30 + 20 * n2))
        colour = colour * (0.8 + 0.35 * net[..., None])
    elif label == "bcc":
        blobs = _spots(rng, xx, yy, 4, 0.08, inside)
        colour = colour * (1 - blobs[..., None]) + pal[1] * blobs[..., None]
    elif label == "bkl":
        dots = _spots(rng, xx, yy, 10, 0.025, inside)
        colour = colour * (1 - dots[..., None]) + np.float32(0.95) * dots[..., None]
    elif label == "akiec":
        scale = np.clip((_smooth_noise(rng, size, 24) - 0.55) * 4, 0, 1) * n1
        colour = colour * (1 - scale[..., None]) + pal[1] * scale[..., None]
    elif label in ("df", "scc"):
        centre = np.clip(1 - rho / (0.45 * RADIUS[label]), 0, 1) ** 0.7
        colour = colour * (1 - centre[..., None]) + pal[1] * centre[..., None]
    elif label == "vasc":
        lac = _spots(rng, xx, yy, 9, 0.07, inside)
        colour = colour * (1 - lac[..., None]) + pal[1] * lac[..., None]
    return colour, n1


def _vessels(
    draw: ImageDraw.ImageDraw,
    rng,
    spec_size: int,
    cx: float,
    cy: float,
    r: float,
    n: int,
    colour=(170, 30, 40),
) -> None:
    """Branching red lines (arborising vessels) drawn as random walks that split."""
    for _ in range(n):
        x = (cx + rng.uniform(-0.5, 0.5) * r) * spec_size
        y = (cy + rng.uniform(-0.5, 0.5) * r) * spec_size
        angle = rng.uniform(0, 2 * np.pi)
        width = max(1, round(spec_size / 110))
        for _step in range(int(rng.integers(6, 12))):
            angle += rng.normal(0, 0.5)
            nx, ny = x + np.cos(angle) * spec_size * 0.03, y + np.sin(angle) * spec_size * 0.03
            draw.line([(x, y), (nx, ny)], fill=colour, width=width)
            x, y = nx, ny


def _hairs(draw: ImageDraw.ImageDraw, rng, size: int, n: int, dark: float) -> None:
    for _ in range(n):
        x, y = rng.uniform(0, size, 2)
        angle = rng.uniform(0, 2 * np.pi)
        pts = [(x, y)]
        for _step in range(8):
            angle += rng.normal(0, 0.15)
            x, y = x + np.cos(angle) * size / 10, y + np.sin(angle) * size / 10
            pts.append((x, y))
        shade = int(255 * dark * rng.uniform(0.5, 1.0))
        draw.line(
            pts, fill=(shade, int(shade / 1.2), int(shade / 1.4)), width=max(1, round(size / 180))
        )


def render(spec: ImageSpec) -> tuple[Image.Image, Image.Image]:
    """Draw one image and its lesion mask."""
    size, label, d = spec.size, spec.label, spec.difficulty
    lesion = np.random.default_rng(spec.lesion_seed)
    view = np.random.default_rng(spec.view_seed)
    confuser = CONFUSER[label]
    t = d * lesion.uniform(0, 1)  # how far this lesion drifts toward its confuser

    # geometry: lesion shape from the lesion seed, view (rotation, shift, zoom) from the view seed
    harmonics = lesion.normal(0, 1, (5, 2))
    irregular = (1 - t) * IRREGULARITY[label] + t * IRREGULARITY[confuser]
    radius = ((1 - t) * RADIUS[label] + t * RADIUS[confuser]) * lesion.uniform(0.8, 1.15)
    zoom = view.uniform(0.85, 1.2)
    rot = view.uniform(0, 2 * np.pi)
    cx, cy = view.normal(0, 0.08, 2)
    lin = np.linspace(-1, 1, size, dtype=np.float32)
    xx, yy = np.meshgrid(lin, lin)
    dx, dy = (xx - cx) / zoom, (yy - cy) / zoom
    rho, theta = np.hypot(dx, dy), np.arctan2(dy, dx) + rot
    profile = 1 + sum(
        irregular * harmonics[k, 0] / (k + 1) ** 0.5 * np.cos((k + 2) * theta + harmonics[k, 1])
        for k in range(5)
    )
    border = radius * profile
    sharp = 40 if label in ("bkl", "df") else 18 if label == "nv" else 10
    edge = np.clip((border - rho) * sharp / radius, 0, 1).astype(np.float32)
    mask = rho < border

    # colours: own signature blended toward the confuser's
    own, noise = _signature(
        label, np.random.default_rng(spec.lesion_seed + (1,)), dx, dy, rho, theta, edge
    )
    other, _ = _signature(
        confuser, np.random.default_rng(spec.lesion_seed + (2,)), dx, dy, rho, theta, edge
    )
    colour = (1 - t) * own + t * other
    tone = lesion.uniform(0, 1)
    skin = (1 - tone) * np.array([0.93, 0.76, 0.66], np.float32) + tone * np.array(
        [0.42, 0.28, 0.19], np.float32
    )
    skin = skin * (0.95 + 0.1 * _smooth_noise(view, size, 3))[..., None]
    alpha = edge[..., None] * (0.75 + 0.25 * noise[..., None])
    rgb = skin * (1 - alpha) + colour * alpha

    # nuisances: uneven light, colour cast, vignette
    gx, gy = view.normal(0, 0.12 + 0.1 * d, 2)
    rgb = rgb * (1 + gx * xx + gy * yy)[..., None]
    rgb = rgb * view.normal(1, 0.04 + 0.04 * d, 3).astype(np.float32)
    r_vig = view.uniform(0.95, 1.35)
    vignette = np.clip((np.hypot(xx, yy) - r_vig) * 8, 0, 1)
    rgb = rgb * (1 - vignette[..., None] * 0.92)
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))

    draw = ImageDraw.Draw(image)
    vessels = {"bcc": 1.0, "akiec": 0.3, "scc": 0.3}
    strength = (1 - t) * vessels.get(label, 0) + t * vessels.get(confuser, 0)
    n_vessels = int(round(strength * lesion.integers(3, 7)))
    _vessels(draw, view, size, (cx + 1) / 2, (cy + 1) / 2, radius * zoom, n_vessels)
    if view.random() < 0.45:
        _hairs(draw, view, size, int(view.integers(1, 9)), dark=0.25)
    blur = view.uniform(0, 0.6 + 1.2 * d) * size / 224
    if blur > 0.2:
        image = image.filter(ImageFilter.GaussianBlur(blur))
    mask_image = Image.fromarray((mask * 255).astype(np.uint8), mode="L")
    return image, mask_image


# --- dataset plan and writing ----------------------------------------------------------------


def _shares(classes: str, balanced: bool) -> dict[str, float]:
    names = HAM10000_CLASSES if classes == "ham10000" else ISIC2019_CLASSES
    if classes not in ("ham10000", "isic2019"):
        raise ValueError(f"classes must be 'ham10000' or 'isic2019', got {classes!r}")
    raw = HAM10000_SHARES if classes == "ham10000" else ISIC2019_SHARES
    shares = {c: 1.0 if balanced else float(raw[c]) for c in names}
    total = sum(shares.values())
    return {c: v / total for c, v in shares.items()}


def _weighted_choice(rng, options: dict[str, float]) -> str:
    keys = list(options)
    p = np.array([options[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def plan(
    n: int,
    seed: int = 0,
    size: int = 224,
    classes: str = "ham10000",
    difficulty: float = 0.5,
    balanced: bool = False,
) -> pd.DataFrame:
    """The metadata table (one row per image) and the seeds that draw each image."""
    if n < 10:
        raise ValueError(f"n must be at least 10, got {n}")
    rng = np.random.default_rng([seed, 7])
    shares = _shares(classes, balanced)
    n_lesions = max(len(shares) * MIN_LESIONS_PER_CLASS, round(n / IMAGES_PER_LESION))
    counts = {c: max(MIN_LESIONS_PER_CLASS, int(round(s * n_lesions))) for c, s in shares.items()}
    labels = [c for c, k in counts.items() for _ in range(k)]
    rng.shuffle(labels)
    extra = max(0, n - len(labels))
    per_lesion = np.ones(len(labels), dtype=int)
    np.add.at(per_lesion, rng.integers(0, len(labels), extra), 1)
    rows = []
    for lesion, (label, k) in enumerate(zip(labels, per_lesion, strict=True)):
        age = np.clip(round(rng.normal(*AGE[label]) / 5) * 5, 5, 85)
        sex = "male" if rng.random() < MALE[label] else "female"
        site = _weighted_choice(rng, {s: SITE_BIAS[label].get(s, 0.4) for s in SITES})
        dx_type = _weighted_choice(rng, DX_TYPE[label])
        for view in range(k):
            rows.append(
                {
                    "lesion_id": f"HAM_{lesion:07d}",
                    "dx": label,
                    "dx_type": dx_type,
                    "age": np.nan if rng.random() < 0.006 else float(age),
                    "sex": "unknown" if rng.random() < 0.005 else sex,
                    "localization": site,
                    "_lesion": lesion,
                    "_view": view,
                }
            )
    df = pd.DataFrame(rows[:n]) if len(rows) >= n else pd.DataFrame(rows)
    df.insert(1, "image_id", [f"ISIC_{24306 + i:07d}" for i in range(len(df))])
    df["_size"], df["_difficulty"], df["_seed"] = size, difficulty, seed
    return df


def _spec(row: dict) -> ImageSpec:
    return ImageSpec(
        row["image_id"],
        row["dx"],
        (row["_seed"], 1, row["_lesion"]),
        (row["_seed"], 2, row["_lesion"], row["_view"]),
        row["_size"],
        row["_difficulty"],
    )


def _write_one(job: tuple[dict, str, str]) -> None:
    row, image_path, mask_path = job
    image, mask = render(_spec(row))
    image.save(image_path, format="JPEG", quality=JPEG_QUALITY)
    mask.save(mask_path, format="PNG")


def generate(
    out_dir: str | Path,
    n: int = 2000,
    seed: int = 0,
    size: int = 224,
    classes: str = "ham10000",
    difficulty: float = 0.5,
    balanced: bool = False,
    workers: int = 2,
    progress: bool = True,
    layout: str = "ham10000",
) -> Path:
    """Write a SynthDerm dataset in the HAM10000 (or ISIC 2019) layout; returns ``out_dir``."""
    out = Path(out_dir)
    table = plan(n, seed, size, classes, difficulty, balanced)
    if layout == "ham10000":
        half = (len(table) + 1) // 2
        dirs = [out / d for d in HAM10000_IMAGE_DIRS[:2]]
        image_dirs = [dirs[0] if i < half else dirs[1] for i in range(len(table))]
        mask_dir = out / HAM10000_MASK_DIR
    elif layout == "isic2019":
        image_dirs = [out / ISIC2019_IMAGE_DIR] * len(table)
        mask_dir = out / "masks"
    else:
        raise ValueError(f"layout must be 'ham10000' or 'isic2019', got {layout!r}")
    for d in {*image_dirs, mask_dir}:
        d.mkdir(parents=True, exist_ok=True)
    records = table.to_dict("records")
    jobs = [
        (r, str(d / f"{r['image_id']}.jpg"), str(mask_dir / f"{r['image_id']}_segmentation.png"))
        for r, d in zip(records, image_dirs, strict=True)
    ]
    bar = tqdm(total=len(jobs), desc="SynthDerm", unit="img", disable=not progress)
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for _ in pool.map(_write_one, jobs, chunksize=32):
                bar.update()
    else:
        for job in jobs:
            _write_one(job)
            bar.update()
    bar.close()
    _write_labels(table, out, layout)
    return out


def _write_labels(table: pd.DataFrame, out: Path, layout: str) -> None:
    if layout == "ham10000":
        (out / HAM10000_CSV).write_text(
            table[HAM10000_COLUMNS].to_csv(index=False, lineterminator="\n")
        )
        return
    truth = pd.DataFrame({"image": table["image_id"]})
    for col, code in [*ISIC2019_COLUMNS.items(), ("UNK", None)]:
        truth[col] = (table["dx"] == code).astype(float)
    (out / ISIC2019_CSV).write_text(truth.to_csv(index=False, lineterminator="\n"))
    meta = pd.DataFrame(
        {
            "image": table["image_id"],
            "age_approx": table["age"],
            "anatom_site_general": table["localization"],
            "lesion_id": table["lesion_id"],
            "sex": table["sex"],
        }
    )
    (out / ISIC2019_META).write_text(meta.to_csv(index=False, lineterminator="\n"))


def dataset_name(cfg) -> str:
    """Folder name that encodes every generation setting (a changed setting is a new dataset)."""
    bal = "_balanced" if cfg.balanced else ""
    return f"synthderm_{cfg.classes}_n{cfg.n}_s{cfg.size}_seed{cfg.seed}_d{cfg.difficulty:g}{bal}"


def ensure_synthderm(synth_cfg, progress: bool = True, workers: int = 2) -> Path:
    """Generate SynthDerm into the cache unless a complete copy with these settings is there."""
    out = paths.synthetic_data_dir(dataset_name(synth_cfg))
    marker = out / COMPLETE_MARKER
    settings = {
        k: getattr(synth_cfg, k) for k in ("n", "size", "seed", "classes", "difficulty", "balanced")
    }
    if marker.is_file() and json.loads(marker.read_text()) == settings:
        return out
    generate(out, workers=workers, progress=progress, **settings)
    marker.write_text(json.dumps(settings))  # written last: an interrupted run is redone
    return out
