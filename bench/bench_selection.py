"""What adaptive sample selection saves per step: a plain step vs a selection step at rate 0.25.

Same model (ResNet-18, 64 px, channels-last), same batch of 64 and AdamW. The selection step is
the engine's own (``skinlib.training.selection.selected_loss``): a gradient-free scoring forward of
the whole batch, then forward, backward and step on the chosen quarter. Steps of the two kinds
alternate and the median is kept, so load from other processes hits both alike; the time is
the process's CPU time, which a busy machine inflates far less than wall-clock time (but with
several threads it counts their spin-waiting: on a shared machine run it with OMP_NUM_THREADS=1).
Run: ``python bench/bench_selection.py``.
"""

from __future__ import annotations

import statistics
import time

import torch
from torch.nn import functional as F

from skinlib.config import ModelConfig
from skinlib.models.architectures import create_model
from skinlib.training.selection import SelectionController, selected_loss

ARCH, SIZE, BATCH, RATE = "resnet18", 64, 64, 0.25
STEPS = 8  # timed steps of each kind, after two warm-up steps


def main() -> None:
    torch.manual_seed(0)
    model = create_model(ModelConfig(arch=ARCH), 7, img_size=SIZE)
    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randn(BATCH, 3, SIZE, SIZE).to(memory_format=torch.channels_last)
    y = torch.randint(0, 7, (BATCH,))
    selector = SelectionController(RATE)

    def losses(images, targets):
        return F.cross_entropy(model(images), targets, reduction="none")

    def plain() -> None:
        losses(x, y).mean().backward()

    def selective() -> None:
        # restart the controller at the batch quantile each step, so the rate is the target's
        # from the first step on (a controller needs tens of steps to settle)
        selector.log_threshold = None
        selected_loss(losses, model, x, y, selector)[0].backward()

    times: dict[str, list[float]] = {"plain": [], "selection": []}
    for step in range(STEPS + 2):
        for name, fn in (("plain", plain), ("selection", selective)):
            start = time.process_time()
            opt.zero_grad(set_to_none=True)
            fn()
            opt.step()
            if step >= 2:
                times[name].append(time.process_time() - start)
    full, sel = (statistics.median(times[k]) for k in ("plain", "selection"))
    rate = selector.epoch_rate()
    print(f"{ARCH} {SIZE} px, batch {BATCH}, CPU {torch.get_num_threads()} threads, {STEPS} steps")
    print(f"plain step (forward + backward + AdamW)    : {full * 1000:7.1f} ms CPU")
    print(f"selection step (rate {RATE}, achieved {rate:.2f}) : {sel * 1000:7.1f} ms CPU")
    print(f"time saved per step                       : {1 - sel / full:7.1%}")
    print(f"backward share skipped (1 - rate)         : {1 - rate:7.1%}")


if __name__ == "__main__":
    main()
