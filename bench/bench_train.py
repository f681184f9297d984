"""Training throughput on this machine: images/s of optimiser steps (forward, backward, AdamW) per
architecture at 64 and 224 px, channels-last, and for ResNet-18 also the default memory format."""

import time

import torch

from skinlib.config import ModelConfig
from skinlib.models.architectures import create_model

STEPS, BATCH = 4, 32


def images_per_s(arch: str, size: int, channels_last: bool = True) -> float:
    """Mean rate over STEPS steps after one warm-up step, on random images."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = create_model(ModelConfig(arch=arch), 7, img_size=size).to(memory_format=fmt)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 3, size, size).to(memory_format=fmt)
    y = torch.randint(0, 7, (BATCH,))
    for step in range(STEPS + 1):
        if step == 1:
            start = time.perf_counter()
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return STEPS * BATCH / (time.perf_counter() - start)


print(f"CPU, {torch.get_num_threads()} threads, batch {BATCH}, {STEPS} timed steps")
for arch in ("resnet18", "efficientnet_b0", "densenet121", "vit_tiny", "swin_tiny"):
    for size in (64, 224):
        line = f"{arch:16s} {size:4d} px  channels-last {images_per_s(arch, size):7.1f} images/s"
        if arch == "resnet18":
            line += f"   contiguous {images_per_s(arch, size, channels_last=False):7.1f} images/s"
        print(line, flush=True)
