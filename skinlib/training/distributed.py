"""Several processes (torchrun): which rank am I, how are samples shared, how are results joined.

One sampler serves one process and many alike: each epoch draws one global order from (seed,
epoch) and rank r takes every world-th index from r. A global batch of B therefore holds the same
images whether one process takes B or each of N processes takes B / N.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def setup() -> tuple[int, int, int]:
    """Join the process group when launched by torchrun; returns (rank, world, local rank)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend)
    rank, size = world()
    return rank, size, int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return world()[0] == 0


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()


class EpochSampler(Sampler[int]):
    """Shuffled (or class-weighted, with replacement) order per epoch, shared out by rank."""

    def __init__(
        self, n: int, seed: int, weights: torch.Tensor | None = None, shuffle: bool = True
    ):
        self.n, self.seed, self.weights, self.shuffle = n, seed, weights, shuffle
        self.epoch = 0
        self.rank, self.size = world()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def generator(self) -> torch.Generator:
        """The generator of this epoch's draw, seeded from (seed, epoch) alone."""
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

    def _global_order(self) -> torch.Tensor:
        g = self.generator()
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, replacement=True, generator=g)
        return torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)

    def __iter__(self):
        order = self._global_order()
        usable = len(order) - len(order) % self.size
        return iter(order[self.rank : usable : self.size].tolist())

    def __len__(self) -> int:
        return self.n // self.size


def shard(n: int) -> np.ndarray:
    """Contiguous slice of range(n) this rank evaluates (no padding, no duplicates)."""
    rank, size = world()
    return np.array_split(np.arange(n), size)[rank]


def gather_rows(indices: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Join every rank's (indices, rows) back into one array in the original order."""
    rank, size = world()
    if size == 1:
        return rows
    parts: list = [None] * size
    dist.all_gather_object(parts, (indices, rows))
    idx = np.concatenate([p[0] for p in parts])
    out = np.concatenate([p[1] for p in parts])
    return out[np.argsort(idx)]


def all_reduce_mean(value: float) -> float:
    if world()[1] == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world()[1]
