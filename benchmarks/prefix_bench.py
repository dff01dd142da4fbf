"""Benchmark: forward+backward cost of deep prefixes (Li & Liang) vs an input prompt of the same length and vs the raw model.

All sides run one training forward+backward (no optimizer step) of the same batch on the same
frozen weights, with gradients flowing to what would be trained:

* prefix: ``PromptedT5`` with a direct ``PrefixBank`` (Pp tokens at all three sites: encoder
  self-, decoder self- and cross-attention, every layer), no input prompt;
* plain (the key's baseline): the same ``PromptedT5`` code path with an input ``PromptBank`` of
  length Pp instead of prefixes (no prefix is injected, gradients flow to the input prompt);
* raw: the frozen ``T5ForConditionalGeneration`` itself (a separate copy, plain ``sdpa``
  attention, no softprompt code), no prompt, gradients flowing to its input embeddings;
* prefix-reparam (information only): the reparameterised bank (MLP k=512 -> 512 -> prefixes).

``--family t5gemma`` runs the same sides on a random T5Gemma of the shape's width and depth (``T5GEMMA_SHAPES``:
grouped-query heads, alternating sliding-window and full layers with a window of half the default input, soft-capping;
eager attention, T5Gemma's only kernel, for the raw side too). Its prefixes hold the sites' key/value heads.
``--family t5gemma2``: a random T5Gemma 2 of the same shapes (sdpa, query/key norms, the decoder's merged attention,
which holds the decoder and the cross prefix: 2·Pp prefix columns there). The FLOP model is T5's, so utilisation is
reported for the T5 family only.

Loss: ``per_prompt_loss(...).sum()`` for the PromptedT5 sides, the model's own loss for raw.
Timings are interleaved (see ``benchmarks/common.py``). Utilisation of each side: model FLOPs of
its forward (``common.t5_encoder_flops`` / ``t5_decoder_flops``; the prefix side's Pp extra keys
at every attention site added) times 2 for the backward (the frozen weights get no gradient, so the
backward is one input-gradient matmul per forward matmul; the attention products' second operand
gradient is not counted), over its time and the matmul peak measured in this process on the same
device and dtype. Ends with one ``RESULT {json}`` line.

    python -m benchmarks.prefix_bench [--batch 32 --length 128 --prefix-length 10]
    python -m benchmarks.prefix_bench --quick
    python -m benchmarks.prefix_bench --device cuda --dtype bfloat16 --shape base
    python -m benchmarks.prefix_bench --family t5gemma [--quick]
    python -m benchmarks.prefix_bench --family t5gemma2 [--quick]
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from benchmarks.common import (
    DTYPES,
    TIMING_HEADERS,
    add_common_args,
    add_model_args,
    emit_result,
    interleaved,
    matmul_peak,
    model_for,
    print_table,
    random_ids,
    random_targets,
    ratio,
    setup,
    shape_name,
    t5_decoder_flops,
    t5_encoder_flops,
    timing_row,
    utilisation,
    utilisation_line,
)
from softprompt.model.loading import FrozenT5
from softprompt.model.losses import per_prompt_loss
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5gemma

# T5Gemma of each T5 shape's width and depth: query heads over half as many key/value heads, head size d / heads
T5GEMMA_SHAPES = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_attention_heads=4, head_dim=16, num_layers=2),
    "small": dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, head_dim=64, num_layers=6),
    "base": dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, head_dim=64, num_layers=12),
    "large": dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, head_dim=64, num_layers=24),
}
T5GEMMA_WINDOW = 64  # sliding window: half the default input, so the sliding layers' masks bite


def t5gemma_model(args) -> FrozenT5:
    """A random T5Gemma (or T5Gemma 2) of ``T5GEMMA_SHAPES[shape]`` on ``args.device`` in ``args.dtype``."""
    dims = T5GEMMA_SHAPES[shape_name(args)]
    frozen = random_t5gemma(
        **dims,
        family=args.family,
        num_key_value_heads=dims["num_attention_heads"] // 2,
        sliding_window=T5GEMMA_WINDOW,
        seed=args.seed,
    )
    frozen.model.to(torch.device(args.device), DTYPES[args.dtype])
    return frozen


def prompted_step(prompted: PromptedT5, input_ids, mask, labels) -> None:
    prompt_ids = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
    logits = prompted(input_ids, mask, prompt_ids, labels=labels).logits
    per_prompt_loss(logits, labels, prompt_ids, prompted.n_prompts).sum().backward()
    for param in prompted.trainable_parameters():
        param.grad = None


def raw_step(model, input_ids, mask, labels) -> None:
    embeds = model.get_input_embeddings()(input_ids).detach().requires_grad_(True)
    model(inputs_embeds=embeds, attention_mask=mask, labels=labels, use_cache=False).loss.backward()


def train_step_flops(
    config, rows: int, length: int, target_length: int, prompt_length: int = 0, prefix_length: int = 0
) -> float:
    """Model FLOPs of one forward+backward (2 × forward, see the module docstring): ``prompt_length``
    tokens in front of the input, ``prefix_length`` extra keys at every attention site."""
    encoder_length = prompt_length + length
    forward = t5_encoder_flops(config, rows, encoder_length) + t5_decoder_flops(
        config, rows, target_length, encoder_length
    )
    inner = config.num_heads * config.d_kv
    sites = (
        config.num_layers * encoder_length + config.num_decoder_layers * 2 * target_length
    )  # queries per row reading prefixes
    forward += 2 * 2 * rows * sites * prefix_length * inner  # scores and weighted values over the Pp prefix keys
    return 2 * forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=None, help="rows (default 32; quick 8)")
    parser.add_argument("--length", type=int, default=None, help="input tokens (default 128; quick 32)")
    parser.add_argument("--target-length", type=int, default=4, help="target tokens, EOS included")
    parser.add_argument(
        "--prefix-length", type=int, default=10, help="prefix length Pp (and the plain side's prompt length)"
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 11; quick 2)")
    parser.add_argument("--no-reparam", action="store_true", help="skip the information-only reparameterised side")
    parser.add_argument(
        "--family", choices=("t5", "t5gemma", "t5gemma2"), default="t5", help="model family (default t5)"
    )
    add_common_args(parser)
    add_model_args(parser)
    args = parser.parse_args()
    quick = args.quick
    batch, length = args.batch or (8 if quick else 32), args.length or (32 if quick else 128)
    repeats = args.repeats or (2 if quick else 11)
    env = setup(args)
    started = time.perf_counter()
    device = torch.device(args.device)
    print(
        f"{env}; {args.family} model of {shape_name(args)} shape on {device}; "
        f"batch {batch}, input {length}, target {args.target_length}, Pp={args.prefix_length}"
    )
    peak = matmul_peak(DTYPES[args.dtype], device)
    print(f"matmul peak ({args.dtype}, {device}): {peak / 1e9:.1f} GFLOP/s")

    frozen = model_for(args) if args.family == "t5" else t5gemma_model(args)
    raw = copy.deepcopy(frozen.model)  # before PromptedT5 reroutes attention: its own kernel, no softprompt code
    config, pp = frozen.config, args.prefix_length
    prefixes = PrefixBank(1, PrefixShape.for_config(config, pp))
    prefixes.init_random([args.seed])
    prefix = PromptedT5(frozen, prefixes=prefixes)
    prompts = PromptBank(1, pp, frozen.geometry.d_model)
    with torch.no_grad():
        prompts.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(args.seed))
    plain = PromptedT5(frozen, prompts=prompts)  # shares the frozen model; select() clears the prefix per call
    sides = {
        "prefix": lambda: prompted_step(prefix, *data),
        "plain": lambda: prompted_step(plain, *data),
        "raw": lambda: raw_step(raw, *data),
    }
    if not args.no_reparam:
        reparam_bank = PrefixBank(1, PrefixShape.for_config(config, pp), reparam_dim=512)
        reparam_bank.init_random([args.seed])
        reparam = PromptedT5(frozen, prefixes=reparam_bank)
        sides["prefix-reparam"] = lambda: prompted_step(reparam, *data)

    generator = torch.Generator().manual_seed(args.seed)
    input_ids = random_ids(generator, batch, length)
    input_ids[:, -1] = 1
    input_ids = input_ids.to(device)
    data = (input_ids, torch.ones_like(input_ids), random_targets(generator, batch, args.target_length).to(device))

    # sanity: the prefix and the input prompt each change the loss
    with torch.no_grad():
        zeros = torch.zeros(batch, dtype=torch.long, device=device)
        out_prefix = prefix(*data[:2], zeros, labels=data[2])
        out_plain = plain(*data[:2], zeros, labels=data[2])
        out_raw = raw(input_ids=data[0], attention_mask=data[1], labels=data[2], use_cache=False)
    loss_prefix, loss_plain, loss_raw = (out.loss.item() for out in (out_prefix, out_plain, out_raw))
    print(f"check: loss prefix {loss_prefix:.5f}, plain (input prompt) {loss_plain:.5f}, raw {loss_raw:.5f}")
    # logits, not the loss: a bf16 loss is too coarse to tell the sides apart
    if torch.equal(out_prefix.logits, out_raw.logits) or torch.equal(out_plain.logits, out_raw.logits):
        raise SystemExit("a prompted side computed the raw model's loss: its prefix or prompt was not applied")

    times = interleaved(sides, repeats)
    rows = [
        timing_row("prefix / plain (input prompt, same length)", times["prefix"], times["plain"], 1.15),
        timing_row("prefix / raw model (no prompt)", times["prefix"], times["raw"]),
        timing_row("plain / raw model (no prompt)", times["plain"], times["raw"]),
    ]
    if "prefix-reparam" in times:
        rows.append(timing_row("prefix-reparam / plain", times["prefix-reparam"], times["plain"]))
    print_table(TIMING_HEADERS, rows, f"forward+backward, batch {batch}, input {length}, Pp={pp} (all sites)")
    flops = {}
    if args.family == "t5":  # T5's FLOP model
        flops = {
            "prefix": train_step_flops(config, batch, length, args.target_length, prefix_length=pp),
            "plain": train_step_flops(config, batch, length, args.target_length, prompt_length=pp),
            "raw": train_step_flops(config, batch, length, args.target_length),
        }
    for side, count in flops.items():
        print(utilisation_line(side, count, min(times[side]), peak))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    result = {
        "prefix_over_plain": ratio(times["prefix"], times["plain"]),
        "prefix_over_raw": ratio(times["prefix"], times["raw"]),
        "plain_over_raw": ratio(times["plain"], times["raw"]),
    }
    if "prefix-reparam" in times:
        result["reparam_over_plain"] = ratio(times["prefix-reparam"], times["plain"])
    for side, count in flops.items():
        result[f"utilisation_{side}"] = utilisation(count, min(times[side]), peak)
    result.update(
        matmul_peak_gflops=peak / 1e9, device=str(device), dtype=args.dtype, shape=shape_name(args), family=args.family
    )
    emit_result(result)


if __name__ == "__main__":
    main()
