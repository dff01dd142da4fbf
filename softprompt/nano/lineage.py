"""t5-nano's recipe as code: three sizes, one five-stage pre-training lineage.

The shipped t5-nano was pre-trained in five stages (docs/t5-nano.md): span corruption with a short
LM-adaptation tail from random weights (v1), then four stages of span corruption + prefix LM + the
supervised mixture, each starting from the previous stage's weights with a fresh optimiser and
schedule (v2, pilots 1-4; the word-polarity lexicon joined the mixture at stage 4). ``STAGES`` holds
those stages and ``SIZES`` the architectures, so that ``t5-nano-s`` and ``t5-nano-m`` get exactly
the default's recipe and data and only the width and depth change: the premise of a model-scale curve.

``run_lineage`` runs the stages in ``OUT/stage1`` ... ``OUT/stage5``; finished stages are skipped
and an interrupted one resumes (``softprompt.nano.pretrain`` is bit-exact on resume), so the same
command continues a lineage across sessions. Long: about 2.9 h (t5-nano-s), 4.3 h (t5-nano) and
6.4 h (t5-nano-m) of one quiet CPU thread.

    nice -n 19 python -m softprompt.nano.lineage --size t5-nano-s --corpus nano-corpus --out nano-sizes/s
    python -m softprompt.nano.gate --model nano-sizes/s/stage5/model --json gate.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import transformers

from softprompt.errors import SoftpromptError
from softprompt.nano.pretrain import PretrainConfig, pretrain

DEFAULT = "t5-nano"  # softprompt's default backbone; the other sizes are scale points
SIZES: dict[str, dict[str, int]] = {  # T5 v1.1-style shapes; the vocabulary (32,128 rows) is shared
    "t5-nano-s": dict(
        d_model=128, d_ff=384, d_kv=32, num_heads=4, num_layers=2
    ),  # 5.1 M parameters, 1.0 M outside the embedding
    "t5-nano": dict(d_model=192, d_ff=512, d_kv=48, num_heads=4, num_layers=3),  # 9.3 M, 3.1 M
    "t5-nano-m": dict(d_model=256, d_ff=768, d_kv=64, num_heads=4, num_layers=4),  # 16.1 M, 7.9 M
}

FIRST_SIX_TASKS = "tweet-sentiment,review-sentiment,review-recommended,review-department,headline-sarcasm,news-topic"
_MIXED = dict(lm_fraction=0.0, lm_share=0.5, mixture_share=0.5, warmup=50)  # 50 % mixture, 25 % prefix LM, 25 % span
STAGES: tuple[dict[str, Any], ...] = (
    dict(steps=6000),  # v1: span corruption, prefix LM for the last 20 %; lr 2e-2, warmup 200, seed 0 (the defaults)
    dict(steps=1200, lr=5e-3, seed=1, mixture_tasks=FIRST_SIX_TASKS, **_MIXED),
    dict(steps=3000, lr=3e-3, seed=2, mixture_tasks=FIRST_SIX_TASKS, **_MIXED),
    dict(steps=1500, lr=3e-3, seed=3, **_MIXED),  # every source: word-polarity joins
    dict(steps=1500, lr=3e-3, seed=4, **_MIXED),
)


def size_name(config: Any) -> str | None:
    """The name in ``SIZES`` whose shape a T5 config has (None for any other shape)."""
    return next((name for name, shape in SIZES.items() if all(getattr(config, k) == v for k, v in shape.items())), None)


def stage_configs(
    shape: dict[str, int],
    stages: tuple[dict[str, Any], ...] = STAGES,
    steps_scale: int = 1,
    batch_scale: int | Sequence[int] = 1,
    **common: Any,
) -> list[PretrainConfig]:
    """One ``PretrainConfig`` per stage: ``shape`` (used by the first stage; later ones inherit the
    architecture from their starting weights), the stage's settings with ``steps_scale`` times its steps
    (more pre-training, e.g. on a GPU), and ``common`` (e.g. ``bf16=False``).

    ``batch_scale`` K trades steps for batch size at the same number of tokens, for a GPU, where a step
    costs about the same at 64 rows as at 1,024: K times the batch, 1/K of the steps and of the warmup,
    and the peak learning rate times sqrt(K) (the square-root rule for Adam-type optimisers, Malladi et
    al. 2022); the final learning rate is kept. One K per stage (a sequence) scales each stage on its own, e.g.
    ``(4, 1, 1, 1, 1)``: the span-corruption stage at batch 256, the mixture stages at the recipe's 64.

    >>> from softprompt.nano.lineage import SIZES, stage_configs
    >>> [(c.batch_size, c.steps, c.warmup, round(c.lr, 4)) for c in stage_configs(SIZES["t5-nano"], batch_scale=4)][:2]
    [(256, 1500, 50, 0.04), (256, 300, 13, 0.01)]
    >>> [c.batch_size for c in stage_configs(SIZES["t5-nano"], batch_scale=(4, 1, 1, 1, 1))]
    [256, 64, 64, 64, 64]
    """
    scales = [batch_scale] * len(stages) if isinstance(batch_scale, int) else list(batch_scale)
    if len(scales) != len(stages):
        raise SoftpromptError(f"--batch-scale needs one K, or one per stage ({len(stages)}), got {len(scales)}")
    for name, value in (("--steps-scale", steps_scale), *(("--batch-scale", k) for k in scales)):
        if not (isinstance(value, int) and value >= 1):
            raise SoftpromptError(f"{name} must be a positive integer, got {value}")
    configs = []
    for stage, k in zip(stages, scales):
        cfg = PretrainConfig(**{**shape, **common, **stage})
        configs.append(
            dataclasses.replace(
                cfg,
                steps=math.ceil(cfg.steps * steps_scale / k),
                batch_size=cfg.batch_size * k,
                warmup=math.ceil(cfg.warmup / k),
                lr=cfg.lr * math.sqrt(k),
            )
        )
    return configs


def finished(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a pre-training run that reached the end of its schedule."""
    state_file = run_dir / "model" / "state.json"
    if not state_file.is_file():
        return False
    state = json.loads(state_file.read_text())
    return state["step"] == state["total_steps"]


def run_lineage(
    corpus: str | Path,
    out: str | Path,
    configs: list[PretrainConfig],
    minutes: float | None = None,
    **pretrain_options: Any,
) -> Path | None:
    """Run ``configs`` as consecutive stages in ``out/stage1``, ``out/stage2``, ... (each from the previous
    stage's model), skipping finished ones; stop when ``minutes`` run out. Returns the last stage's model
    directory once every stage is finished, else None.

    >>> from softprompt.nano.lineage import SIZES, run_lineage, stage_configs
    >>> run_lineage("nano-corpus", "nano-sizes/s", stage_configs(SIZES["t5-nano-s"]), minutes=60)  # hours of pre-training  # doctest: +SKIP
    """
    out, started, previous = Path(out), time.monotonic(), None
    for number, cfg in enumerate(configs, 1):
        run_dir = out / f"stage{number}"
        if not finished(run_dir):
            left = None if minutes is None else minutes - (time.monotonic() - started) / 60
            if left is not None and left <= 0:
                return None
            print(f"stage {number} of {len(configs)}: {run_dir}", flush=True)
            pretrain(corpus, run_dir, cfg, left, init_from=previous, **pretrain_options)
            if not finished(run_dir):
                return None
        previous = run_dir / "model"
    return previous


def _scales(text: str) -> int | tuple[int, ...]:
    """``--batch-scale``: one K, or one per stage (``4,1,1,1,1``)."""
    try:
        scales = tuple(int(k) for k in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or K1,K2,... (positive integers), got {text!r}") from None
    return scales[0] if len(scales) == 1 else scales


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", required=True, choices=sorted(SIZES), help="which architecture (SIZES)")
    parser.add_argument("--corpus", required=True, help="directory written by python -m softprompt.nano.corpus")
    parser.add_argument(
        "--out", required=True, help="lineage directory (stage1 ... stage5 inside); resumed when it exists"
    )
    parser.add_argument(
        "--minutes", type=float, help="wall-clock budget of this invocation; default: until the lineage ends"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1 is fastest on a shared 2-core machine)")
    parser.add_argument("--checkpoint-minutes", type=float, default=5.0, help="a killed run loses at most this much")
    parser.add_argument(
        "--steps-scale",
        type=int,
        default=1,
        help="run every stage for this many times its steps (1: the shipped sizes' recipe)",
    )
    parser.add_argument(
        "--batch-scale",
        type=_scales,
        default=1,
        help="K times the batch, 1/K of the steps and warmup, "
        "sqrt(K) times the peak lr: the same tokens in fewer, "
        "larger steps (for a GPU; 1: the recipe); or one K "
        "per stage, e.g. 4,1,1,1,1",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    transformers.utils.logging.disable_progress_bar()
    try:
        final = run_lineage(
            args.corpus,
            args.out,
            stage_configs(SIZES[args.size], steps_scale=args.steps_scale, batch_scale=args.batch_scale),
            args.minutes,
            device=args.device,
            checkpoint_minutes=args.checkpoint_minutes,
        )
    except SoftpromptError as error:
        sys.exit(f"error: {error}")
    if final is None:
        print(f"stopped before the end of the lineage; run the same command again to resume {args.out}")
    else:
        print(f"lineage finished: {final}\nnext: python -m softprompt.nano.gate --model {final} --json GATE.json")


if __name__ == "__main__":
    main()
