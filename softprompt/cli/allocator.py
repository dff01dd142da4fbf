"""Keep large freed CPU blocks in glibc's heap, so each training step does not page them in again.

By default glibc serves every block above its mmap threshold (adaptive, at most 32 MiB on 64-bit)
with a fresh ``mmap`` and unmaps it on free. A joint step over N·B rows allocates activations of
hundreds of MiB, so every step page-faults them in again (seen as system time): with 5 prompts at
batch 32 on a t5-small shape, that made the joint step twice as slow as 5 separate steps
(``benchmarks/train_bench.py``). Raising the mmap and trim thresholds makes those blocks reusable.
The ``softprompt`` command does this at start-up; the process then keeps its peak heap instead of
returning it to the OS between steps.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers


def keep_freed_memory() -> bool:
    """Raise glibc's mmap threshold to 1 GiB and disable heap trimming; False where not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return False
