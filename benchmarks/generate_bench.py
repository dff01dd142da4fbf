"""Benchmark: batched N-prompt greedy generation (one generate over N·B rows) vs N sequential generate calls of B rows; beam search's cache.

Both sides call ``PromptedT5.generate`` (encoder once, then ``model.generate`` with the cached
decoder) on the same B examples with greedy decoding and exactly ``--new-tokens`` new tokens
(``min_new_tokens = max_new_tokens``), so both produce the same number of decoder steps. Batched:
one call over N·B rows, prompt-major per-row prompt ids; sequential: one call of B rows per
prompt. The token agreement between the two is printed. Timings are interleaved (see
``benchmarks/common.py``). The utilisation of each side (model FLOPs of cached greedy decoding,
``common.t5_generate_flops``, over its time and the matmul peak measured in this process on the
same device and dtype) is printed.
(2) Beam search (``--beams``, default 4; 1: skip) over the batched side's N·B rows: ``PromptedT5.generate`` on
``softprompt.model.beam_cache``'s cache (one row of cross-attention keys/values per input, projected once, never
reordered) vs the same call on transformers' default ``EncoderDecoderCache`` (a row per beam, copied at every
step); the outputs must be equal. Also the peak tensor memory of one call on each cache (``common.step_peak_bytes``).
Ends with one ``RESULT {json}`` line.

    python -m benchmarks.generate_bench [--n 5 --batch 8 --length 64 --new-tokens 32 --beams 4]
    python -m benchmarks.generate_bench --n 1 --batch 8 --length 512 --new-tokens 24 --beams 4   # long inputs
    python -m benchmarks.generate_bench --quick
    python -m benchmarks.generate_bench --device cuda --dtype bfloat16 --shape large --batch 64
"""

from __future__ import annotations

import argparse
import time

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

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
    ratio,
    setup,
    shape_name,
    step_peak_bytes,
    t5_generate_flops,
    timing_row,
    utilisation,
    utilisation_line,
)
from softprompt.model.beam_cache import CACHE_ARGUMENT
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.runner.passes import prompt_rows, repeat_for_prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="prompts N")
    parser.add_argument("--batch", type=int, default=None, help="examples B (default 8; quick 4)")
    parser.add_argument("--length", type=int, default=None, help="input tokens (default 64; quick 16)")
    parser.add_argument("--prompt-length", type=int, default=20, help="soft prompt length P")
    parser.add_argument("--new-tokens", type=int, default=None, help="generated tokens, exactly (default 32; quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7; quick 2)")
    parser.add_argument("--beams", type=int, default=4, help="beams for (2): our beam cache vs the default (1: skip)")
    add_common_args(parser)
    add_model_args(parser)
    args = parser.parse_args()
    quick = args.quick
    batch, length = args.batch or (4 if quick else 8), args.length or (16 if quick else 64)
    new_tokens, repeats = args.new_tokens or (8 if quick else 32), args.repeats or (2 if quick else 7)
    env = setup(args)
    started = time.perf_counter()
    device = torch.device(args.device)
    print(
        f"{env}; model {shape_name(args)} shape on {device}; "
        f"N={args.n}, B={batch}, input {length}, P={args.prompt_length}, {new_tokens} new tokens, greedy"
    )
    peak = matmul_peak(DTYPES[args.dtype], device)
    print(f"matmul peak ({args.dtype}, {device}): {peak / 1e9:.1f} GFLOP/s")

    frozen = model_for(args)
    bank = PromptBank(args.n, args.prompt_length, frozen.config.d_model)
    with torch.no_grad():
        bank.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(args.seed))
    prompted = PromptedT5(frozen, bank)
    generator = torch.Generator().manual_seed(args.seed)
    input_ids = random_ids(generator, batch, length)
    input_ids[:, -1] = 1
    input_ids = input_ids.to(device)
    mask = torch.ones_like(input_ids)
    decoding = dict(do_sample=False, num_beams=1, min_new_tokens=new_tokens, max_new_tokens=new_tokens)
    all_ids, all_mask = repeat_for_prompts(input_ids, args.n), repeat_for_prompts(mask, args.n)
    all_prompts = prompt_rows(range(args.n), batch, device)

    def batched():
        return prompted.generate(all_ids, all_mask, all_prompts, **decoding)

    def sequential():
        return [
            prompted.generate(input_ids, mask, torch.full((batch,), p, dtype=torch.long, device=device), **decoding)
            for p in range(args.n)
        ]

    one, many = batched(), torch.cat(sequential())
    assert one.shape == many.shape == (args.n * batch, new_tokens + 1), (one.shape, many.shape)
    agreement = (one == many).float().mean().item()
    print(
        f"check: {tuple(one.shape)} tokens each side; batched and sequential agree on {100 * agreement:.1f}% of tokens"
    )

    times = interleaved({"batched": batched, "sequential": sequential}, repeats)
    rows = [
        timing_row(
            f"N={args.n}, B={batch}: 1 call of {args.n * batch} rows / {args.n} calls of {batch}",
            times["batched"],
            times["sequential"],
            0.8,
        )
    ]
    print_table(TIMING_HEADERS, rows, "greedy generation, batched (ours) / sequential (baseline)")
    flops = t5_generate_flops(frozen.config, args.n * batch, args.prompt_length + length, new_tokens)
    for side in ("batched", "sequential"):
        print(utilisation_line(side, flops, min(times[side]), peak))
    beams = (
        beam_search_cache_ratio(prompted, all_ids, all_mask, all_prompts, dict(decoding, num_beams=args.beams), repeats)
        if args.beams > 1
        else {}
    )
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    emit_result(
        {
            **beams,
            "batched_over_sequential_generate": ratio(times["batched"], times["sequential"]),
            "token_agreement": agreement,
            "utilisation_batched_generate": utilisation(flops, min(times["batched"]), peak),
            "utilisation_sequential_generate": utilisation(flops, min(times["sequential"]), peak),
            "matmul_peak_gflops": peak / 1e9,
            "device": str(device),
            "dtype": args.dtype,
            "shape": shape_name(args),
        }
    )


def beam_search_cache_ratio(
    prompted: PromptedT5, ids: torch.Tensor, mask: torch.Tensor, prompt_ids: torch.Tensor, decoding: dict, repeats: int
) -> dict[str, float]:
    """(2): beam search on our cache (one row of cross-attention keys/values per input, projected once, never
    reordered) / on transformers' default cache; the generated ids must be equal."""

    def ours():
        return prompted.generate(ids, mask, prompt_ids, **decoding)

    def default():
        return prompted.generate(
            ids, mask, prompt_ids, **decoding, **{CACHE_ARGUMENT: EncoderDecoderCache(DynamicCache(), DynamicCache())}
        )

    assert torch.equal(ours(), default()), "beam search on our cache generated other tokens than on the default cache"
    times = interleaved({"ours": ours, "default": default}, repeats)
    rows = [
        timing_row(
            f"{len(ids)} rows, {decoding['num_beams']} beams: our cache / transformers' default",
            times["ours"],
            times["default"],
        )
    ]
    print_table(
        TIMING_HEADERS,
        rows,
        "beam search: cross-attention keys/values once per input / once per beam, "
        "reordered every step (identical tokens)",
    )
    peak = {side: step_peak_bytes(fn, ids.device) for side, fn in (("ours", ours), ("default", default))}
    print(
        f"peak tensor memory of a call: ours {peak['ours'] / 2**20:.1f} MiB, default {peak['default'] / 2**20:.1f} MiB"
    )
    return {
        "beam_cache_over_default": ratio(times["ours"], times["default"]),
        "beam_cache_mem_over_default": round(peak["ours"] / peak["default"], 4),
    }


if __name__ == "__main__":
    main()
