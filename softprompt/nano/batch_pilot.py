"""Which batch size pre-trains t5-nano best for the same GPU time? (issue #19, docs/t5-nano.md section 5)

On a GPU a t5-nano step costs about as much at 64 rows as at 1,024 (it is bound by kernel launches),
while on the CPU the recipe's batch of 64 was the more token-efficient. This pilot settles it where it
matters: stage 1 of the lineage (``softprompt.nano.lineage.STAGES[0]``, from random weights) once per
batch size, each arm with ``lineage.stage_configs``'s batch scaling (K times the batch, 1/K of the
warmup, sqrt(K) times the peak lr) and a schedule sized to end after the same number of training
seconds (``--seconds`` times the arm's measured steps per second, ``--rates``). Every arm is scored on
the same 1,024 validation windows, and the summary compares the losses at fixed training seconds
(an arm that runs faster than its rate ends early) and at the end of each schedule.

    python -m softprompt.nano.batch_pilot --corpus DIR --out DIR --seconds 80 --device cuda   # ~4.5 min on an H200

Run once (reports/gpu/2026-11-30-h200-2): batch 256 beat the recipe's 64 on both objectives in less time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.nano.lineage import SIZES, STAGES, stage_configs
from softprompt.nano.pretrain import PretrainConfig, pretrain

RECIPE_BATCH = 64  # stage 1's batch; every arm's batch is a multiple of it
VALIDATION_ROWS = 1024  # the same windows for every arm
EVALS = 8  # validation points per arm
H200_RATES = {64: 22.2, 256: 19.6, 1024: 9.8}  # t5-nano steps/s on one H200 (reports/gpu/2026-11-30-h200-2)


def arm_config(size: str, batch: int, seconds: float, steps_per_second: float) -> PretrainConfig:
    """Stage 1 of ``size``'s lineage at ``batch`` rows, its schedule sized to ``seconds`` of training."""
    if batch % RECIPE_BATCH:
        raise SoftpromptError(f"batch sizes must be multiples of {RECIPE_BATCH}, got {batch}")
    cfg = stage_configs(SIZES[size], (STAGES[0],), batch_scale=batch // RECIPE_BATCH)[0]
    return dataclasses.replace(cfg, steps=max(cfg.warmup + 1, round(seconds * steps_per_second)))


def run_arm(corpus: str | Path, out: Path, cfg: PretrainConfig, seconds: float, device: str) -> dict[str, Any]:
    """Train one arm in ``out`` (stopped at 1.3 × ``seconds`` of wall time if its rate was overestimated)."""
    every = max(1, cfg.steps // EVALS)
    return pretrain(
        corpus,
        out,
        cfg,
        minutes=1.3 * seconds / 60,
        device=device,
        log_every=every,
        eval_every=every,
        eval_batches=max(1, VALIDATION_ROWS // cfg.batch_size),
        checkpoint_minutes=1e9,
    )


def curve(run_dir: Path) -> list[dict[str, float]]:
    """Validation points of a run: training seconds, input tokens, span and prefix-LM validation loss."""
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    logged = {r["step"]: r for r in records if "elapsed_s" in r}
    return [
        {
            "step": r["step"],
            "seconds": logged[r["step"]]["elapsed_s"],
            "tokens": logged[r["step"]]["input_tokens"],
            "span": r["eval"]["span"]["loss"],
            "lm": r["eval"]["lm"]["loss"],
        }
        for r in records
        if "eval" in r
    ]


def at_seconds(points: list[dict[str, float]], key: str, seconds: float) -> float | None:
    """``key`` linearly interpolated at ``seconds`` of training (None outside the run)."""
    times = [p["seconds"] for p in points]
    if not points or not times[0] <= seconds <= times[-1]:
        return None
    return float(np.interp(seconds, times, [p[key] for p in points]))


def summary(out: Path, arms: dict[int, PretrainConfig], seconds: float, device: str) -> str:
    """A Markdown table: each arm's span loss at a quarter, half and three quarters of the time (the
    span-corruption phase), and both losses at the end of its schedule (after the prefix-LM tail)."""
    marks = (0.25, 0.5, 0.75)
    header = " / ".join(f"{m * seconds:.0f} s" for m in marks)
    lines = [
        f"# stage 1 at equal training time ({seconds:g} s per arm, {device})",
        "",
        f"| batch | lr | steps (done / planned) | input tokens | s/step | span loss at {header} | end: span / prefix LM |",
        "|---:|---:|---|---:|---:|---|---|",
    ]
    for batch, cfg in arms.items():
        points = curve(out / f"b{batch}")
        state = json.loads((out / f"b{batch}" / "model" / "state.json").read_text())
        spans = " / ".join("—" if (v := at_seconds(points, "span", m * seconds)) is None else f"{v:.3f}" for m in marks)
        end = f"{points[-1]['span']:.3f} / {points[-1]['lm']:.3f}" if points else "no validation point"
        lines.append(
            f"| {batch} | {cfg.lr:.3g} | {state['step']} / {cfg.steps} | {state['input_tokens'] / 1e6:.2f} M | "
            f"{state['train_seconds'] / max(1, state['step']):.4f} | {spans} | {end} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, help="directory written by python -m softprompt.nano.corpus")
    parser.add_argument(
        "--out", required=True, help="pilot folder: one run folder per arm (b64, b256, ...) and summary.md"
    )
    parser.add_argument("--size", default="t5-nano", choices=sorted(SIZES))
    parser.add_argument("--seconds", type=float, default=80.0, help="training seconds per arm")
    parser.add_argument("--batches", default="64,256,1024", help="comma-separated batch sizes (multiples of 64)")
    parser.add_argument("--rates", help="steps/s of each batch size, comma-separated; default: t5-nano's on an H200")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    transformers.utils.logging.disable_progress_bar()
    try:
        batches = [int(b) for b in args.batches.split(",")]
        rates = [float(r) for r in args.rates.split(",")] if args.rates else [H200_RATES[b] for b in batches]
        if len(rates) != len(batches):
            raise SoftpromptError("give one --rates value per --batches value")
        arms = {b: arm_config(args.size, b, args.seconds, r) for b, r in zip(batches, rates)}
    except (ValueError, KeyError) as error:
        sys.exit(f"error: bad --batches/--rates ({error}); e.g. --batches 64,256 --rates 17,12.5")
    except SoftpromptError as error:
        sys.exit(f"error: {error}")
    out = Path(args.out)
    for batch, cfg in arms.items():
        print(f"arm: batch {batch}, lr {cfg.lr:.3g}, warmup {cfg.warmup}, {cfg.steps} steps", flush=True)
        run_arm(args.corpus, out / f"b{batch}", cfg, args.seconds, args.device)
    table = summary(out, arms, args.seconds, args.device)
    atomic_write_text(out / "summary.md", table)
    print(table)


if __name__ == "__main__":
    main()
