"""Shared helpers for the softprompt benchmarks: model shapes, synthetic ids, interleaved timing,
the printed table and the final ``RESULT {json}`` line.

Timing discipline (the machine is small and shared): every benchmark times its sides
*interleaved* in one process — one warm-up call per side, then rounds in which each side runs
once, the order alternating between rounds (A B, B A, A B, ...) so a load change hits both sides
alike. A ratio is reported as min(A) / min(B) (the least-disturbed run of each side), next to the
median of the per-round ratios A_i / B_i as a check on it. On CUDA each timed call ends with
``torch.cuda.synchronize()``, so it covers the kernels it queued.

Models: random T5s (``t5_model``) of t5-small shape by default; ``add_model_args`` gives a
benchmark ``--shape tiny|small|base|large``, ``--device`` and ``--dtype``. Utilisation: model
FLOPs (matmuls, 2·m·n·k) of a path over its time, as a fraction of ``matmul_peak`` measured in the
same process on the same device and dtype.
"""

from __future__ import annotations

import gc
import json
import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import torch

from softprompt.cli.allocator import keep_freed_memory
from softprompt.model.loading import FrozenT5, keep_wo_in_fp32
from softprompt.model.random_models import random_t5

ROOT = Path(__file__).resolve().parents[1]  # the repository

# t5-small's shape (60M parameters with the tied 32128-token embedding), and a tiny one for --quick.
T5_SMALL = dict(d_model=512, d_ff=2048, d_kv=64, num_heads=8, num_layers=6)
T5_TINY = dict(d_model=64, d_ff=128, d_kv=16, num_heads=4, num_layers=2)
T5_BASE = dict(d_model=768, d_ff=3072, d_kv=64, num_heads=12, num_layers=12)  # 223M
T5_LARGE = dict(d_model=1024, d_ff=4096, d_kv=64, num_heads=16, num_layers=24)  # 738M
SHAPES = {"tiny": T5_TINY, "small": T5_SMALL, "base": T5_BASE, "large": T5_LARGE}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
LOW_ID, HIGH_ID = 3, 32000  # synthetic token ids: no pad (0), eos (1) or unk (2)
EOS = 1


def t5_model(
    quick: bool = False,
    seed: int = 0,
    shape: str | None = None,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = "float32",
) -> FrozenT5:
    """A frozen random T5 of t5-small shape (tiny with ``quick``, or ``shape``: tiny, small, base,
    large) in ``dtype`` on ``device``; same seed and device, same weights (a CUDA model is
    initialised there, from CUDA's generator). Half precision keeps the
    feed-forward output projections in fp32, as ``softprompt.model.loading.load_frozen_t5`` does."""
    device, dims = torch.device(device), SHAPES[shape or ("tiny" if quick else "small")]
    frozen = None
    if device.type != "cpu":  # initialise on the device: t5-large's CPU init alone takes tens of seconds
        try:
            with device:
                frozen = random_t5(**dims, seed=seed)
        except (RuntimeError, TypeError, NotImplementedError) as error:
            print(f"note: initialising on {device} failed ({str(error).splitlines()[0]}); initialising on the CPU")
    if frozen is None:
        frozen = random_t5(**dims, seed=seed)
    dtype = DTYPES[dtype] if isinstance(dtype, str) else dtype
    if dtype != torch.float32:
        frozen.model.to(dtype)
        keep_wo_in_fp32(frozen.model)
    frozen.model.to(device)
    return frozen


def model_for(args) -> FrozenT5:
    """``t5_model`` for parsed arguments with ``add_model_args``' options."""
    return t5_model(args.quick, args.seed, shape=args.shape, device=args.device, dtype=args.dtype)


def shape_name(args) -> str:
    """The model shape a run uses, for its header line."""
    return args.shape or ("tiny" if args.quick else "small")


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
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="leave glibc's malloc as it is (the softprompt command tunes it: softprompt/cli/allocator.py)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny model and sizes: a smoke run")


def add_model_args(parser) -> None:
    """--shape, --device, --dtype: the random model's shape and where and in what precision it runs."""
    parser.add_argument(
        "--shape", choices=list(SHAPES), default=None, help="random model shape (default small, t5-small; quick: tiny)"
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:1, ...")
    parser.add_argument(
        "--dtype",
        choices=list(DTYPES),
        default="float32",
        help="model dtype (bfloat16 keeps the feed-forward output projections in fp32)",
    )


def setup(args) -> str:
    """Apply --threads and, unless --default-malloc, the allocator tuning the softprompt command
    applies (``softprompt.cli.allocator``); a short description of the run environment."""
    set_threads(args.threads)
    malloc = "default malloc"
    if not getattr(args, "default_malloc", False):
        malloc = (
            "malloc tuned as the CLI does (mmap threshold 1 GiB, no trim)"
            if keep_freed_memory()
            else "default malloc (tuning unavailable)"
        )
    where = ""
    device = torch.device(getattr(args, "device", "cpu") or "cpu")
    if device.type == "cuda":
        where = f", {torch.cuda.get_device_name(device)}"
    if hasattr(args, "dtype"):
        where += f", {args.dtype}"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {malloc}{where}"


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Wall-clock seconds of every function over ``repeats`` interleaved rounds (after ``warmup``
    untimed calls each); the order of the sides alternates between rounds."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    _sync_cuda()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            start = time.perf_counter()
            fns[name]()
            _sync_cuda()
            times[name].append(time.perf_counter() - start)
    return times


def _sync_cuda() -> None:
    """Wait for queued CUDA kernels when this process uses CUDA (timings then cover the kernels)."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


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
        print(
            "  ".join(cell.rjust(width) if i else cell.ljust(width) for i, (cell, width) in enumerate(zip(row, widths)))
        )
        if index == 0:
            print("  ".join("-" * width for width in widths))
    sys.stdout.flush()


def timing_row(label: str, a: Sequence[float], b: Sequence[float], target: float | None = None) -> list[object]:
    """One table row: label, min(a), min(b), min/min ratio, paired-median ratio, target check."""
    r = ratio(a, b)
    check = "" if target is None else ("yes" if r <= target else "NO")
    return [
        label,
        fmt_s(min(a)),
        fmt_s(min(b)),
        f"{r:.3f}",
        f"{paired_median_ratio(a, b):.3f}",
        "" if target is None else f"<= {target:.2f}",
        check,
    ]


TIMING_HEADERS = ["case", "ours (min)", "baseline (min)", "ratio", "paired median", "target", "met"]


def matmul_peak(
    dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu", size: int | None = None, repeats: int = 5
) -> float:
    """The machine's matmul limit: FLOP/s of the best of ``repeats`` large square GEMMs
    (``size``: 2048 on CPU, 8192 on CUDA) in ``dtype`` on ``device``, measured in this process."""
    device = torch.device(device)
    size = size or (8192 if device.type == "cuda" else 2048)
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    best = math.inf
    for _ in range(repeats + 1):  # the first call warms up
        synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def synchronize(device: str | torch.device) -> None:
    """Wait for queued kernels (CUDA); a no-op on CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def cuda_peak_bytes(fn: Callable[[], object], device: str | torch.device = "cuda") -> int:
    """Peak CUDA bytes allocated on ``device`` during ``fn()`` over those allocated before it
    (``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``), in process."""
    gc.collect()
    torch.cuda.synchronize(device)
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - base


def tensor_peak_bytes(step) -> int:
    """Peak growth of live tensor bytes during ``step()`` (profiler memory timeline, CPU allocator)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        step()
    live = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            live += size
        elif action == Action.DESTROY:
            live -= size
        peak = max(peak, live)
    return peak


def step_peak_bytes(step: Callable[[], object], device: torch.device) -> int:
    """Peak growth of tensor bytes during ``step()``: the profiler's timeline on the CPU, CUDA's
    ``max_memory_allocated`` on CUDA."""
    return cuda_peak_bytes(step, device) if device.type == "cuda" else tensor_peak_bytes(step)


def t5_encoder_flops(config, rows: int, length: int) -> float:
    """Matmul FLOPs (2·m·n·k) of T5's encoder over ``rows`` sequences of ``length`` tokens:
    projections, feed-forward and attention scores."""
    inner = config.num_heads * config.d_kv
    ff = 3 if config.is_gated_act else 2  # gated-gelu has two input matrices
    per_token = 4 * config.d_model * inner + ff * config.d_model * config.d_ff
    tokens = rows * length
    return 2 * config.num_layers * (tokens * per_token + 2 * rows * length * length * inner)


def t5_decoder_flops(
    config, rows: int, length: int, encoder_length: int, cross_projection_rows: int | None = None, lm_head: bool = True
) -> float:
    """Matmul FLOPs of T5's decoder over ``rows`` targets of ``length`` tokens reading ``encoder_length``
    encoder states: self-/cross-attention, feed-forward, the cross-attention key/value projections
    of ``cross_projection_rows`` encoder rows (default ``rows``; fewer when they are shared, as in
    ``PromptedT5.score``), and the LM head over the vocabulary."""
    inner = config.num_heads * config.d_kv
    ff = 3 if config.is_gated_act else 2
    layers = config.num_decoder_layers
    tokens = rows * length
    per_token = 6 * config.d_model * inner + ff * config.d_model * config.d_ff  # self q,k,v,o + cross q,o
    projection_rows = rows if cross_projection_rows is None else cross_projection_rows
    flops = layers * (
        tokens * per_token
        + projection_rows * encoder_length * 2 * config.d_model * inner
        + 2 * tokens * (length + encoder_length) * inner
    )
    return 2 * flops + (2 * tokens * config.d_model * config.vocab_size if lm_head else 0)


def scoring_flops(config, rows: int, encoder_length: int, choices: int, target_length: int) -> float:
    """FLOPs of one ``PromptedT5.score`` pass: encoder once per row, cross keys/values projected once
    per row, decoder and LM head over rows × choices targets."""
    return t5_encoder_flops(config, rows, encoder_length) + t5_decoder_flops(
        config, rows * choices, target_length, encoder_length, cross_projection_rows=rows
    )


def t5_generate_flops(config, rows: int, encoder_length: int, new_tokens: int, beams: int = 1) -> float:
    """Matmul FLOPs of cached greedy (``beams`` = 1) or beam-search generation of ``new_tokens``
    tokens for ``rows`` inputs of ``encoder_length`` tokens: the encoder once per row, the
    cross-attention keys/values once per row and beam (as ``generate`` expands the encoder output),
    then per step one decoder token per row and beam: projections, feed-forward, self-attention over
    the step's past (t tokens at step t), cross-attention over the encoder, LM head. Rows that stop
    early at EOS are counted to ``new_tokens`` (their passes still run)."""
    inner = config.num_heads * config.d_kv
    ff = 3 if config.is_gated_act else 2
    layers = config.num_decoder_layers
    sequences = rows * beams
    tokens = sequences * new_tokens
    per_token = 6 * config.d_model * inner + ff * config.d_model * config.d_ff
    past = sequences * new_tokens * (new_tokens + 1) // 2  # Σ_t t positions attended over all steps
    decoder = layers * (
        tokens * per_token
        + sequences * encoder_length * 2 * config.d_model * inner
        + 2 * inner * (past + tokens * encoder_length)
    )
    return (
        t5_encoder_flops(config, rows, encoder_length) + 2 * decoder + 2 * tokens * config.d_model * config.vocab_size
    )


def utilisation_line(name: str, flops: float, seconds: float, peak: float) -> str:
    """A printed line: achieved model FLOP/s and the fraction of the measured matmul peak."""
    return (
        f"utilisation {name}: {flops / 1e9:.2f} GFLOP in {fmt_s(seconds)} = {flops / seconds / 1e9:.1f} GFLOP/s, "
        f"{100 * utilisation(flops, seconds, peak):.1f}% of the measured matmul peak {peak / 1e9:.1f} GFLOP/s"
    )


def utilisation(flops: float, seconds: float, peak: float) -> float:
    """Achieved FLOP/s over the measured matmul peak."""
    return flops / seconds / peak


def emit_result(values: Mapping[str, object]) -> None:
    """The final machine-readable line."""
    clean = {k: (round(v, 4) if isinstance(v, float) and math.isfinite(v) else v) for k, v in values.items()}
    print("RESULT " + json.dumps(clean, sort_keys=False), flush=True)
