"""Data parallelism under ``accelerate launch`` (or torchrun): a few collective helpers.

The frozen model is replicated on every process; each process runs its shard of every batch, the
banks' gradients are summed across processes, and only the main process writes files. Without a
launcher everything here is a no-op, so single-process code pays nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch

T = TypeVar("T")


@lru_cache(maxsize=1)
def _state():
    """accelerate's process state; it initialises torch.distributed when launched with several processes."""
    from accelerate import PartialState

    return PartialState()


def world_size() -> int:
    """Number of processes (1 without a launcher)."""
    return _state().num_processes


def rank() -> int:
    """This process's index."""
    return _state().process_index


def is_main() -> bool:
    """Whether this process writes files and prints results."""
    return _state().is_main_process


def default_device() -> torch.device:
    """This process's device: its GPU under a launcher on a GPU machine, else the CPU."""
    return _state().device


def barrier() -> None:
    """Wait for every process (no-op alone)."""
    if world_size() > 1:
        _state().wait_for_everyone()


def shard(items: Sequence[T]) -> list[T]:
    """This process's share of ``items``: every world_size-th item from its rank."""
    return list(items[rank() :: world_size()])


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over processes (in place, returned)."""
    if world_size() > 1:
        torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
    return tensor


def all_reduce_grads(params: Sequence[torch.Tensor]) -> None:
    """Sum every parameter's gradient over processes."""
    if world_size() > 1:
        for param in params:
            if param.grad is not None:
                all_reduce_sum(param.grad)


def gather_examples(local: np.ndarray, total: int) -> np.ndarray:
    """Reassemble per-process results along axis 1 (examples) in the original order of ``shard``.

    ``local`` is (N, M_local, ...) for the examples ``shard`` gave this process; returns (N, M, ...).
    """
    if world_size() == 1:
        return local
    parts: list[np.ndarray] = [None] * world_size()  # type: ignore[list-item]
    torch.distributed.all_gather_object(parts, local)
    out = np.empty((local.shape[0], total, *local.shape[2:]), dtype=local.dtype)
    for r, part in enumerate(parts):
        out[:, r :: world_size()] = part
    return out
