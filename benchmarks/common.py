"""Shared helpers for the softprompt benchmarks: model shapes, synthetic ids, interleaved timing,
the printed table and the final ``RESULT {json}`` line.

Timing discipline (the machine is small and shared): every benchmark times its sides
*interleaved* in one process — one warm-up call per side, then rounds in which each side runs
once, the order alternating between rounds (A B, B A, A B, ...) so a load change hits both sides
alike. A ratio is reported as min(A) / min(B) (the least-disturbed run of each side), next to the
median of the per-round ratios A_i / B_i as a check on it.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing

import torch  # noqa: E402

from softprompt.allocator import keep_freed_memory  # noqa: E402
from softprompt.models import FrozenT5, random_t5  # noqa: E402

# t5-small's shape (60M parameters with the tied 32128-token embedding), and a tiny one for --quick.
T5_SMALL = dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6)
T5_TINY = dict(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2)
LOW_ID, HIGH_ID = 3, 32000  # synthetic token ids: no pad (0), eos (1) or unk (2)
EOS = 1


def t5_model(quick: bool = False, seed: int = 0) -> FrozenT5:
    """A frozen random T5 of t5-small shape (tiny with ``quick``); same seed, same weights."""
    return random_t5(**(T5_TINY if quick else T5_SMALL), seed=seed)


def random_ids(generator: torch.Generator, rows: int, length: int) -> torch.Tensor:
    """(rows, length) random token ids in [3, 32000)."""
    return torch.randint(LOW_ID, HIGH_ID, (rows, length), generator=generator)


def random_targets(generator: torch.Generator, rows: int, length: int) -> torch.Tensor:
    """(rows, length) targets: ``length - 1`` random ids then EOS, as the tokenizer writes them."""
    ids = random_ids(generator, rows, length)
    ids[:, -1] = EOS
    return ids


def set_threads(threads: int | None) -> None:
    """Use ``threads`` intra-op threads when given; otherwise torch's default."""
    if threads is not None:
        torch.set_num_threads(threads)


def add_common_args(parser) -> None:
    """--seed, --threads, --default-malloc, --quick."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--default-malloc", action="store_true",
                        help="leave glibc's malloc as it is (the softprompt command tunes it: softprompt/allocator.py)")
    parser.add_argument("--quick", action="store_true", help="tiny model and sizes: a smoke run")


def setup(args) -> str:
    """Apply --threads and, unless --default-malloc, the allocator tuning the softprompt command
    applies (``softprompt.allocator``); a short description of the run environment."""
    set_threads(args.threads)
    malloc = "default malloc"
    if not getattr(args, "default_malloc", False):
        malloc = "malloc tuned as the CLI does (mmap threshold 1 GiB, no trim)" if keep_freed_memory() else "default malloc (tuning unavailable)"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {malloc}"


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall-clock seconds of every function over ``repeats`` interleaved rounds (after ``warmup``
    untimed calls each); the order of the sides alternates between rounds."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """min(a) / min(b): the headline ratio of two interleaved timing lists."""
    return min(a) / min(b)


def paired_median_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """Median of the per-round ratios a_i / b_i (each pair ran back to back, under the same load)."""
    return statistics.median(x / y for x, y in zip(a, b))


def fmt_s(seconds: float) -> str:
    """Seconds for the table: ms below one second."""
    return f"{seconds * 1e3:.1f} ms" if seconds < 1 else f"{seconds:.2f} s"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    """A plain fixed-width table."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    if title:
        print(f"\n{title}")
    for index, row in enumerate(cells):
        print("  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths))))
        if index == 0:
            print("  ".join("-" * width for width in widths))
    sys.stdout.flush()


def timing_row(label: str, a: Sequence[float], b: Sequence[float], target: float | None = None) -> list[object]:
    """One table row: label, min(a), min(b), min/min ratio, paired-median ratio, target check."""
    r = ratio(a, b)
    check = "" if target is None else ("yes" if r <= target else "NO")
    return [label, fmt_s(min(a)), fmt_s(min(b)), f"{r:.3f}", f"{paired_median_ratio(a, b):.3f}",
            "" if target is None else f"<= {target:.2f}", check]


TIMING_HEADERS = ["case", "ours (min)", "baseline (min)", "ratio", "paired median", "target", "met"]


def emit_result(values: Mapping[str, object]) -> None:
    """The final machine-readable line."""
    clean = {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in values.items()}
    print("RESULT " + json.dumps(clean, sort_keys=False), flush=True)
