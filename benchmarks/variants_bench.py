"""Benchmark: one training step of each input-prompt variant vs plain prompt tuning, time and peak memory.

Three arms at about the same trainable budget, as the pre-registered comparison trains them
(reports/2026-12-07-prompt-variants-prereg.md), each built by ``softprompt.training.banks.build_prompted`` from a
``TrainConfig`` and stepped exactly as ``softprompt train`` steps (``joint_backward`` over N prompts, per-prompt
gradient clip, the run's own optimizers from ``TrainConfig.recipes``, zero_grad):

* plain: N prompts of P vectors (Adafactor 0.3);
* residual: the same prompts, each through its own bottleneck MLP with LayerNorm and a skip (``--prompt-reparam
  residual``), *before* folding: the cost while training;
* DePT: prompts of P_dept vectors plus a rank-r update of the first s = ``--length`` input token embeddings
  (``--dept-rank``, its own AdamW), r matched to the plain prompt's budget: r = round((P - P_dept)·d / (s + d)).

Same model, same random batch (N·B rows of ``--length`` input tokens and ``--target-length`` targets). Time: the
arms interleaved (``benchmarks.common.interleaved``), min over rounds, ratio to plain. Peak memory: growth of live
tensor bytes during one warm step (the profiler's timeline on the CPU, ``max_memory_allocated`` on CUDA), ratio to
plain. Targets (issue #44): residual ≤ 1.1 of plain's time before folding; DePT ≤ 1.0 at its shorter prompt. Ends
with one ``RESULT {json}`` line.

    python -m benchmarks.variants_bench                       # t5-small shape, 5 prompts x 16 rows x 128 tokens
    python -m benchmarks.variants_bench --quick               # a smoke run (seconds)
    python -m benchmarks.variants_bench --shape base --device cuda --dtype bfloat16
"""

from __future__ import annotations

import argparse
import math

import torch

from benchmarks.common import (
    add_common_args,
    add_model_args,
    emit_result,
    fmt_s,
    interleaved,
    model_for,
    paired_median_ratio,
    print_table,
    random_ids,
    random_targets,
    ratio,
    setup,
    shape_name,
    step_peak_bytes,
)
from softprompt.model.dept import matched_rank
from softprompt.training.banks import build_prompted
from softprompt.training.config import TrainConfig
from softprompt.training.loop import joint_backward
from softprompt.training.optim import clip_grad_norm_per_prompt, make_bank_optimizer

ARMS = ("plain", "residual", "dept")
TARGETS = {"residual": 1.1, "dept": 1.0}  # time over plain


def arm_config(arm: str, args: argparse.Namespace, d_model: int) -> TrainConfig:
    """The ``TrainConfig`` of one arm (only what ``build_prompted`` and the optimizers read matters here)."""
    common = dict(
        model="benchmark",
        task="rte",
        n_prompts=args.n_prompts,
        init="random-uniform",
        max_source_length=args.length,
    )
    if arm == "residual":
        return TrainConfig(
            **common, prompt_length=args.prompt_length, prompt_reparam="residual", prompt_reparam_hidden=args.hidden
        )
    if arm == "dept":
        return TrainConfig(**common, prompt_length=args.dept_prompt_length, dept_rank=dept_rank(args, d_model))
    return TrainConfig(**common, prompt_length=args.prompt_length)


def dept_rank(args: argparse.Namespace, d_model: int) -> int:
    """The rank whose update makes up for the prompt vectors DePT drops, (P - P_dept)·d."""
    return matched_rank(args.prompt_length - args.dept_prompt_length, args.length, d_model)


class ArmStep:
    """One arm's prompts on the shared frozen model, stepped as ``softprompt.training.loop.train`` steps."""

    def __init__(self, frozen, cfg: TrainConfig, device: torch.device) -> None:
        self.prompted = build_prompted(frozen, cfg).to(device)
        self.params = self.prompted.trainable_parameters()
        recipes = cfg.recipes()
        banks = {
            name: bank
            for name, bank in (
                ("prompts", self.prompted.prompts),
                ("prefixes", self.prompted.prefixes),
                ("dept", self.prompted.dept),
            )
            if bank is not None
        }
        self.optimizer = make_bank_optimizer(
            [(list(bank.parameters()), *recipes[name]) for name, bank in banks.items()], cfg.weight_decay
        )
        self.max_grad_norm = cfg.max_grad_norm
        self.trainable = sum(p.numel() for p in self.params) // cfg.n_prompts  # per prompt, while training

    def __call__(self, input_ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> None:
        losses = joint_backward(self.prompted, input_ids, mask, labels)  # (N,)
        clip_grad_norm_per_prompt(self.params, self.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if not all(map(math.isfinite, losses.float().tolist())):  # the loop's one sync per step
            raise RuntimeError("non-finite loss")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-prompts", type=int, default=5, help="prompts trained jointly (N)")
    parser.add_argument("--batch", type=int, default=16, help="examples per prompt per step (B)")
    parser.add_argument("--length", type=int, default=128, help="input tokens per example (s, DePT's positions)")
    parser.add_argument("--target-length", type=int, default=4)
    parser.add_argument("--prompt-length", type=int, default=20, help="plain and residual prompts (P)")
    parser.add_argument("--hidden", type=int, default=48, help="residual: the MLP's bottleneck size")
    parser.add_argument("--dept-prompt-length", type=int, default=10, help="DePT's shorter prompt (P_dept)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 10; quick 3)")
    add_common_args(parser)
    add_model_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.n_prompts, args.batch, args.length = 2, 2, 16
        args.prompt_length, args.dept_prompt_length, args.hidden = 4, 2, 8
    repeats = args.repeats or (3 if args.quick else 10)
    environment = setup(args)
    frozen = model_for(args)
    device = frozen.model.device
    generator = torch.Generator().manual_seed(args.seed)
    input_ids = random_ids(generator, args.batch, args.length)
    input_ids[:, -1] = 1  # EOS, as the tokenizer ends every source
    labels = random_targets(generator, args.batch, args.target_length)
    batch = (input_ids.to(device), torch.ones_like(input_ids).to(device), labels.to(device))
    steps = {arm: ArmStep(frozen, arm_config(arm, args, frozen.config.d_model), device) for arm in ARMS}

    times = interleaved({arm: (lambda step=step: step(*batch)) for arm, step in steps.items()}, repeats)
    peaks = {arm: step_peak_bytes(lambda step=step: step(*batch), device) for arm, step in steps.items()}

    rank = dept_rank(args, frozen.config.d_model)
    print(
        f"{shape_name(args)}, {environment}; {args.n_prompts} prompts x {args.batch} rows x {args.length} tokens; "
        f"plain/residual P={args.prompt_length} (residual hidden {args.hidden}), DePT P={args.dept_prompt_length} "
        f"r={rank}"
    )
    rows = []
    for arm in ARMS:
        target = TARGETS.get(arm)
        rows.append(
            [
                arm,
                steps[arm].trainable,
                fmt_s(min(times[arm])),
                f"{ratio(times[arm], times['plain']):.3f}",
                f"{paired_median_ratio(times[arm], times['plain']):.3f}",
                f"{peaks[arm] / 2**20:.1f} MiB",
                f"{peaks[arm] / peaks['plain']:.3f}",
                "" if target is None else f"≤ {target}",
            ]
        )
    print_table(
        [
            "arm",
            "trainable / prompt",
            f"step (min of {repeats})",
            "time / plain",
            "paired median",
            "peak tensors",
            "memory / plain",
            "time target",
        ],
        rows,
    )
    result = {
        "shape": shape_name(args),
        "device": str(device),
        "dtype": args.dtype,
        "dept_rank": rank,
        **{f"{arm}_over_plain": round(ratio(times[arm], times["plain"]), 3) for arm in TARGETS},
        **{f"{arm}_mem_over_plain": round(peaks[arm] / peaks["plain"], 3) for arm in TARGETS},
        **{f"{arm}_step_s": round(min(times[arm]), 4) for arm in ARMS},
        **{f"{arm}_trainable_per_prompt": steps[arm].trainable for arm in ARMS},
    }
    result["targets_met"] = all(result[f"{arm}_over_plain"] <= target for arm, target in TARGETS.items())
    emit_result(result)


if __name__ == "__main__":
    main()
