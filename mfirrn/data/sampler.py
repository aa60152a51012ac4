"""A resumable, DDP-aware sampler and the DataLoader built on it.

:class:`ResumableSampler` shuffles with ``torch.Generator().manual_seed(seed + epoch)`` (a pure function
of seed and epoch), pads to a multiple of the world size, keeps this rank's share, and can skip the first
``start`` samples of the epoch — so a run resumed mid-epoch sees exactly the batches it would have seen.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

__all__ = ["ResumableSampler", "make_loader"]


class ResumableSampler(Sampler[int]):
    """Indices ``0..n-1`` for one rank of ``world_size``; ``set_epoch(epoch, start)`` sets epoch and skip."""

    def __init__(self, n: int, *, shuffle: bool = True, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        self.n, self.shuffle, self.seed = n, shuffle, seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = int(epoch), int(start)

    def _indices(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        per_rank = -(-self.n // self.world_size)
        idx += idx[: per_rank * self.world_size - len(idx)]
        return idx[self.rank::self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self._indices()[self.start:])

    def __len__(self) -> int:
        return max(0, -(-self.n // self.world_size) - self.start)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "start": self.start, "seed": self.seed}


def make_loader(dataset: Dataset, batch_size: int, *, sampler: Sampler, workers: int = 0, pin_memory: bool = False,
                drop_last: bool = True, seed: int = 0) -> DataLoader:
    """A DataLoader with its own seeded generator (so it never draws from the global torch RNG)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers, pin_memory=pin_memory,
                      drop_last=drop_last, generator=torch.Generator().manual_seed(seed),
                      persistent_workers=False)
