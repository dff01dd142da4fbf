"""Benchmark: batched N-prompt rank-classification scoring vs one prompt per pass; encoder reuse across K choices; max_tokens.

(1) Batched: ``softprompt.runner.scoring.score_choices`` scores all N prompts in passes of at most
    ``max_tokens`` tokens (rows × padded length × choices; examples sorted by length, every prompt
    in a pass over as many examples as fit). Sequential: the same B examples, tokenised once, then one
    ``PromptedT5.score`` pass of B rows per prompt. Both score K label choices per example (encoder
    once per row, decoder per choice) and must agree. The batched side's utilisation (model FLOP/s
    over the matmul peak measured in this process, same device and dtype) is printed per B.
(2) K-choice scoring with encoder reuse (``PromptedT5.score``: encoder once, decoder over B·K rows)
    vs K separate full forward calls (encoder each time), on the same rows; scores must agree. Also
    the peak tensor memory of each side (``common.step_peak_bytes``; one K/V copy per row vs per call).
(3) ``max_tokens`` sweep of the batched scoring path at the larger batch sizes, and of batched
    greedy generation (``generate_texts``, which shares the default), to pick the device's default
    in ``TOKEN_BUDGETS`` (``softprompt/runner/passes.py``).

Synthetic data: sources are random token ids in [3, 32000) decoded to text (longer than the input
length, so every source tokenises to exactly ``--length`` tokens after truncation); label words
are random two-token strings. Timings are interleaved (see ``benchmarks/common.py``). Ends with one
``RESULT {json}`` line.

    python -m benchmarks.ensemble_bench [--n 5 --prompt-length 20 --length 64 --batches 1,8,32,128]
    python -m benchmarks.ensemble_bench --quick
    python -m benchmarks.ensemble_bench --device cuda --dtype bfloat16 --shape base
"""

from __future__ import annotations

import argparse
import time

import torch

from benchmarks.common import (
    DTYPES,
    TIMING_HEADERS,
    add_common_args,
    add_model_args,
    emit_result,
    fmt_s,
    interleaved,
    matmul_peak,
    model_for,
    print_table,
    random_ids,
    random_targets,
    ratio,
    scoring_flops,
    setup,
    shape_name,
    step_peak_bytes,
    t5_generate_flops,
    timing_row,
    utilisation,
    utilisation_line,
)
from softprompt.data.tasks import Example
from softprompt.model.losses import sequence_log_probs
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.runner import passes as batched_module
from softprompt.runner.passes import encode_texts, prompt_rows
from softprompt.runner.scoring import encode_choices, generate_texts, score_choices


def make_examples(tokenizer, generator: torch.Generator, count: int, length: int, label_words: tuple[str, ...]):
    """``count`` examples whose sources tokenise to at least ``length`` tokens."""
    ids = random_ids(generator, count, 2 * length)
    sources = tokenizer.batch_decode(ids, skip_special_tokens=True)
    return [Example(source=s, target=label_words[0], choices=label_words, label=0) for s in sources]


def label_words(tokenizer, generator: torch.Generator, k: int) -> tuple[str, ...]:
    words = tokenizer.batch_decode(random_ids(generator, k, 2), skip_special_tokens=True)
    return tuple(w.strip() or f"w{i}" for i, w in enumerate(words))


def sequential_scores(prompted: PromptedT5, examples, n: int, length: int) -> torch.Tensor:
    """One prompt per pass over the same B examples: (N, B, K)."""
    device = prompted.model.get_input_embeddings().weight.device
    input_ids, mask = encode_texts(prompted.tokenizer, [e.source for e in examples], length, device)
    choice_ids, choice_mask = (t.to(device) for t in encode_choices(prompted.tokenizer, [e.choices for e in examples]))
    out = []
    for prompt in range(n):
        prompt_ids = torch.full((len(examples),), prompt, dtype=torch.long, device=device)
        out.append(prompted.score(input_ids, mask, prompt_ids, choice_ids, choice_mask))
    return torch.stack(out).float().cpu()


def batched_scores(prompted: PromptedT5, examples, n: int, length: int, max_tokens: int):
    return score_choices(prompted, examples, list(range(n)), max_length=length, max_tokens=max_tokens).log_likelihood


@torch.no_grad()
def full_pass_scores(prompted: PromptedT5, input_ids, mask, prompt_ids, choice_ids) -> torch.Tensor:
    """K separate full forward calls (encoder each time): (R, K)."""
    out = []
    for k in range(choice_ids.shape[1]):
        labels = choice_ids[:, k].contiguous()
        out.append(sequence_log_probs(prompted(input_ids, mask, prompt_ids, labels=labels).logits, labels))
    return torch.stack(out, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5, help="prompts in the ensemble N")
    parser.add_argument("--prompt-length", type=int, default=20, help="soft prompt length P")
    parser.add_argument("--length", type=int, default=None, help="input tokens (default 64; quick 32)")
    parser.add_argument("--batches", default=None, help="examples per call B (default 1,8,32,128; quick 1,4,16)")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="tokens per pass (default: the device's, softprompt.runner.passes.token_budget)",
    )
    parser.add_argument(
        "--sweep",
        default=None,
        help="max_tokens values to sweep (default 2048,4096,8192,16384,32768,65536; quick 512,1024,4096; none: skip)",
    )
    parser.add_argument("--sweep-batches", default=None, help="B for the sweep (default 32,128; quick 16; none: skip)")
    parser.add_argument(
        "--generate-sweep",
        default=None,
        help="B,new_tokens for a generate_texts max_tokens sweep (default 16,16; quick 4,4; none: skip)",
    )
    parser.add_argument(
        "--choice-rows", type=int, default=None, help="rows for the K-choice comparison (default 40; quick 8)"
    )
    parser.add_argument("--ks", default="2,3", help="choice counts K for (2) (none: skip)")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds (default: 15 at B=1 down to 3 at B=128)"
    )
    add_common_args(parser)
    add_model_args(parser)
    args = parser.parse_args()
    quick = args.quick
    length = args.length or (32 if quick else 64)
    batches = _ints(args.batches or ("1,4,16" if quick else "1,8,32,128"))
    sweep = _ints(args.sweep or ("512,1024,4096" if quick else "2048,4096,8192,16384,32768,65536"))
    sweep_batches = _ints(args.sweep_batches or ("16" if quick else "32,128"))
    generate_sweep = _ints(args.generate_sweep or ("4,4" if quick else "16,16"))
    choice_rows = args.choice_rows or (8 if quick else 40)
    max_tokens = args.max_tokens or batched_module.token_budget(args.device)
    env = setup(args)
    device = torch.device(args.device)
    half = args.dtype != "float32"
    atol, rtol = (0.25, 0.02) if half else (1e-3, 1e-4)  # bf16: different row groupings round differently

    def repeats_for(rows: int) -> int:
        if args.repeats:
            return args.repeats
        return 2 if quick else (15 if rows <= 5 else 7 if rows <= 40 else 5 if rows <= 160 else 3)

    started = time.perf_counter()
    print(
        f"{env}; model {shape_name(args)} shape on {device}; "
        f"N={args.n}, P={args.prompt_length}, input {length}, max_tokens {max_tokens}"
    )
    peak = matmul_peak(DTYPES[args.dtype], device)
    print(f"matmul peak ({args.dtype}, {device}): {peak / 1e9:.1f} GFLOP/s")
    frozen = model_for(args)
    config = frozen.config
    bank = PromptBank(args.n, args.prompt_length, config.d_model)
    with torch.no_grad():
        bank.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(args.seed))
    prompted = PromptedT5(frozen, bank)
    generator = torch.Generator().manual_seed(args.seed)
    words = label_words(frozen.tokenizer, generator, 2)
    examples = make_examples(
        frozen.tokenizer, generator, max(batches + sweep_batches + generate_sweep[:1] + [1]), length, words
    )
    assert encode_texts(frozen.tokenizer, [e.source for e in examples], length)[0].shape[1] == length
    target_length = encode_choices(frozen.tokenizer, [words])[0].shape[-1]

    # (1) batched vs sequential
    results: dict[str, float] = {}
    rows, use_rows = [], []
    targets = {1: 0.45, 8: 0.85, 32: 0.95, 128: 1.0}
    for batch in batches:
        subset = examples[:batch]
        got = torch.from_numpy(batched_scores(prompted, subset, args.n, length, max_tokens)).float()
        want = sequential_scores(prompted, subset, args.n, length)
        torch.testing.assert_close(got, want, atol=atol, rtol=rtol)
        times = interleaved(
            {
                "batched": lambda s=subset: batched_scores(prompted, s, args.n, length, max_tokens),
                "sequential": lambda s=subset: sequential_scores(prompted, s, args.n, length),
            },
            repeats_for(args.n * batch),
        )
        target = targets.get(batch, 0.95 if batch > 1 else 0.45)
        rows.append(timing_row(f"B={batch} ({args.n * batch} rows)", times["batched"], times["sequential"], target))
        results[f"batched_over_sequential_B{batch}"] = ratio(times["batched"], times["sequential"])
        flops = scoring_flops(config, args.n * batch, args.prompt_length + length, len(words), target_length)
        results[f"utilisation_batched_B{batch}"] = utilisation(flops, min(times["batched"]), peak)
        use_rows.append(utilisation_line(f"batched scoring B={batch}", flops, min(times["batched"]), peak))
    if rows:
        print_table(
            TIMING_HEADERS,
            rows,
            f"(1) rank classification, K=2: batched N={args.n} (max_tokens {max_tokens}) / "
            f"one prompt per pass (baseline)",
        )
        print("\n".join(use_rows))

    # (2) encoder reuse across K choices vs K full passes
    rows, memory_lines = [], []
    input_ids = random_ids(generator, choice_rows, length)
    input_ids[:, -1] = 1
    input_ids = input_ids.to(device)
    mask = torch.ones_like(input_ids)
    prompt_ids = prompt_rows(range(args.n), -(-choice_rows // args.n))[:choice_rows].to(device)
    for k in _ints(args.ks):
        choice_ids = random_targets(generator, choice_rows * k, 3).view(choice_rows, k, 3).to(device)
        choice_mask = torch.ones_like(choice_ids)
        got = prompted.score(input_ids, mask, prompt_ids, choice_ids, choice_mask)
        torch.testing.assert_close(
            got.float(),
            full_pass_scores(prompted, input_ids, mask, prompt_ids, choice_ids).float(),
            atol=atol,
            rtol=rtol,
        )
        times = interleaved(
            {
                "reuse": lambda c=choice_ids, m=choice_mask: prompted.score(input_ids, mask, prompt_ids, c, m),
                "full": lambda c=choice_ids: full_pass_scores(prompted, input_ids, mask, prompt_ids, c),
            },
            repeats_for(choice_rows) + 2,
        )
        rows.append(timing_row(f"K={k}, {choice_rows} rows", times["reuse"], times["full"], 1 / k + 0.15))
        results[f"choices_over_full_K{k}"] = ratio(times["reuse"], times["full"])
        peak_bytes = {
            side: step_peak_bytes(fn, device)
            for side, fn in (
                ("reuse", lambda c=choice_ids, m=choice_mask: prompted.score(input_ids, mask, prompt_ids, c, m)),
                ("full", lambda c=choice_ids: full_pass_scores(prompted, input_ids, mask, prompt_ids, c)),
            )
        }
        results[f"choices_mem_over_full_K{k}"] = round(peak_bytes["reuse"] / peak_bytes["full"], 4)
        memory_lines.append(
            f"K={k}: peak tensor memory {peak_bytes['reuse'] / 2**20:.1f} MiB / {peak_bytes['full'] / 2**20:.1f} MiB "
            f"= {results[f'choices_mem_over_full_K{k}']:.3f}"
        )
    if rows:
        print_table(
            TIMING_HEADERS, rows, "(2) K choices: PromptedT5.score (encoder once) / K full forward calls (baseline)"
        )
        print("\n".join(memory_lines))

    # (3) max_tokens sweep
    best_tokens = {}
    for batch in sweep_batches if sweep else []:
        subset = examples[:batch]
        fns = {value: (lambda s=subset, v=value: batched_scores(prompted, s, args.n, length, v)) for value in sweep}
        times = interleaved(fns, repeats_for(args.n * batch))
        flops = scoring_flops(config, args.n * batch, args.prompt_length + length, len(words), target_length)
        print_sweep(times, max_tokens, flops, peak, f"(3) max_tokens sweep, batched scoring of B={batch} x N={args.n}")
        best_tokens[batch] = min(times, key=lambda v: min(times[v]))
        results[f"utilisation_sweep_best_B{batch}"] = utilisation(flops, min(times[best_tokens[batch]]), peak)
    best_generate = None
    if generate_sweep and sweep:
        batch, new_tokens = generate_sweep
        subset = examples[:batch]
        decoding = dict(min_new_tokens=new_tokens, max_new_tokens=new_tokens, num_beams=1)
        fns = {
            value: (
                lambda s=subset, v=value: generate_texts(
                    prompted, s, list(range(args.n)), max_length=length, max_tokens=v, **decoding
                )
            )
            for value in sweep
        }
        times = interleaved(fns, repeats_for(args.n * batch))
        flops = t5_generate_flops(config, args.n * batch, args.prompt_length + length, new_tokens)
        print_sweep(
            times,
            max_tokens,
            flops,
            peak,
            f"(3) max_tokens sweep, greedy generate_texts of B={batch} x N={args.n}, {new_tokens} new tokens",
        )
        best_generate = min(times, key=lambda v: min(times[v]))
        results["utilisation_generate_best"] = utilisation(flops, min(times[best_generate]), peak)
    print(
        f"\nbest max_tokens by batch: {best_tokens}, generation {best_generate}; "
        f"the default for {args.device} in softprompt/runner/passes.py is {batched_module.token_budget(args.device)}"
    )
    print(f"total {time.perf_counter() - started:.0f} s")
    emit_result(
        {
            **results,
            **{f"best_max_tokens_B{b}": v for b, v in best_tokens.items()},
            **({"best_max_tokens_generate": best_generate} if best_generate else {}),
            "max_tokens": max_tokens,
            "matmul_peak_gflops": peak / 1e9,
            "device": str(device),
            "dtype": args.dtype,
            "shape": shape_name(args),
        }
    )


def print_sweep(times: dict[int, list[float]], reference_value: int, flops: float, peak: float, title: str) -> None:
    """The sweep table: time per max_tokens value, relative to the default, and utilisation."""
    fastest = min(min(t) for t in times.values())
    reference = min(times[reference_value]) if reference_value in times else fastest
    table = [
        [
            value,
            fmt_s(min(t)),
            f"{min(t) / reference:.3f}",
            f"{100 * utilisation(flops, min(t), peak):.1f}%",
            "*" if min(t) == fastest else "",
        ]
        for value, t in times.items()
    ]
    print_table(
        [
            "max_tokens",
            "time (min)",
            f"vs {reference_value if reference_value in times else 'best'}",
            "utilisation",
            "best",
        ],
        table,
        title,
    )


def _ints(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else [int(x) for x in text.split(",")]


if __name__ == "__main__":
    main()
