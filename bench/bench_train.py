"""Training throughput on this machine: images/s of one optimiser step loop per architecture."""

import time

import torch

from skinlib.config import ModelConfig
from skinlib.models import create_model

STEPS, BATCH = 4, 32
for arch in ("resnet18", "efficientnet_b0", "densenet121", "vit_tiny", "swin_tiny"):
    for size in (64, 224):
        model = create_model(ModelConfig(arch=arch), 7, img_size=size).to(
            memory_format=torch.channels_last
        )
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randn(BATCH, 3, size, size).to(memory_format=torch.channels_last)
        y = torch.randint(0, 7, (BATCH,))
        for step in range(STEPS + 1):
            if step == 1:
                start = time.perf_counter()
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        rate = STEPS * BATCH / (time.perf_counter() - start)
        print(
            f"{arch:16s} {size:4d} px  train {rate:7.1f} images/s  (CPU, {torch.get_num_threads()} threads)"
        )
