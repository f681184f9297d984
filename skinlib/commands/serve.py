"""``skinlib serve --run experiments/<study>/<run>``: the local web app for one trained run."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="web app: upload an image, see what a trained run answers")
    p.add_argument("--run", required=True, help="run folder (or an ensemble folder of the study)")
    p.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default loopback: this machine only)"
    )
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--max-upload-mb", type=float, default=20, help="largest upload accepted")
    p.add_argument(
        "--examples", help="folder of example images (default: a few of the run's test images)"
    )
    p.add_argument("--device", default="auto", help="auto (GPU when there is one) | cpu | cuda:N")
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="test-time augmentation (off by default: thresholds were chosen without it)",
    )
    p.set_defaults(func=run)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    # Offline and private: no usage statistics, no version check against the internet.
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    # here, not at the top: the CLI imports every command to list it, and `skinlib --help` stays light (torch, gradio)
    import torch

    from skinlib.app.predictor import Predictor
    from skinlib.app.ui import build_app, example_images, folder_images, launch
    from skinlib.errors import ConfigError

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise ConfigError(f"--run {run_dir}: no such folder; pass experiments/<study>/<run>")
    if args.examples and not Path(args.examples).is_dir():
        raise ConfigError(f"--examples {args.examples}: no such folder")
    if args.max_upload_mb <= 0:
        raise ConfigError("--max-upload-mb must be positive")
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    predictor = Predictor(run_dir, device=device, tta=args.tta)
    if args.examples:
        examples = folder_images(Path(args.examples))
    else:  # an ensemble folder may lack a split file; its first member has one
        examples = example_images(run_dir) or example_images(predictor.members[0].run_dir)
    demo = build_app(predictor, examples, args.max_upload_mb)
    if not _is_loopback(args.host):
        log.warning("listening on %s: anyone who can reach this machine can use the app", args.host)
    try:
        launch(demo, args.host, args.port, args.max_upload_mb)
    except OSError as err:  # Gradio's "Cannot find empty port", or an address not on this host
        raise ConfigError(
            f"cannot listen on {args.host}:{args.port} ({err}); pass another --port"
        ) from None
    return 0
