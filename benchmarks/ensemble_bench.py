"""Benchmark: batched N-prompt rank-classification scoring vs one prompt per pass; encoder reuse across K choices; max_rows.

(1) Batched: ``ensembles.scoring.score_choices`` scores all N prompts in passes of at most
    ``max_rows`` rows (``iter_batches``: prompt-major rows, N·b rows per pass). Sequential: the same
    B examples, tokenised once, then one ``PromptedT5.score`` pass of B rows per prompt. Both score
    K label choices per example (encoder once per row, decoder per choice) and must agree.
(2) K-choice scoring with encoder reuse (``PromptedT5.score``: encoder once, decoder over B·K rows)
    vs K separate full forward calls (encoder each time), on the same rows; scores must agree.
(3) ``max_rows`` sweep of the batched scoring path at the larger batch sizes, and of batched greedy
    generation (``generate_texts``, which shares the ``MAX_ROWS`` default), to pick ``MAX_ROWS`` in
    ``ensembles/batched.py``.

Synthetic data: sources are random token ids in [3, 32000) decoded to text (longer than the input
length, so every source tokenises to exactly ``--length`` tokens after truncation); label words
are random two-token strings. Timings are interleaved (see ``benchmarks/common.py``). Ends with one
``RESULT {json}`` line.

    python benchmarks/ensemble_bench.py [--n 5 --prompt-length 20 --length 64 --batches 1,8,32,128]
    python benchmarks/ensemble_bench.py --quick
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from common import (  # noqa: E402
    add_common_args,
    setup,
    TIMING_HEADERS,
    emit_result,
    fmt_s,
    interleaved,
    print_table,
    random_ids,
    random_targets,
    ratio,
    t5_model,
    timing_row,
)

from ensembles import batched as batched_module  # noqa: E402
from ensembles.batched import encode_texts, prompt_rows  # noqa: E402
from ensembles.scoring import encode_choices, generate_texts, score_choices  # noqa: E402
from softprompt.prompted import PromptedT5, sequence_log_probs  # noqa: E402
from softprompt.prompts import PromptBank  # noqa: E402
from softprompt.tasks import Example  # noqa: E402


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
    input_ids, mask = encode_texts(prompted.tokenizer, [e.source for e in examples], length)
    choice_ids, choice_mask = encode_choices(prompted.tokenizer, [e.choices for e in examples])
    out = []
    for prompt in range(n):
        prompt_ids = torch.full((len(examples),), prompt, dtype=torch.long)
        out.append(prompted.score(input_ids, mask, prompt_ids, choice_ids, choice_mask))
    return torch.stack(out)


def batched_scores(prompted: PromptedT5, examples, n: int, length: int, max_rows: int):
    return score_choices(prompted, examples, list(range(n)), length, max_rows).log_likelihood


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
    parser.add_argument("--max-rows", type=int, default=None, help=f"rows per pass (default MAX_ROWS={batched_module.MAX_ROWS})")
    parser.add_argument("--sweep", default=None, help="max_rows values to sweep (default 16,32,64,128,256; quick 8,16,32)")
    parser.add_argument("--sweep-batches", default=None, help="B for the sweep (default 32,128; quick 16; none: skip)")
    parser.add_argument("--generate-sweep", default=None,
                        help="B,new_tokens for a generate_texts max_rows sweep (default 16,16; quick 4,4; none: skip)")
    parser.add_argument("--choice-rows", type=int, default=None, help="rows for the K-choice comparison (default 40; quick 8)")
    parser.add_argument("--ks", default="2,3", help="choice counts K for (2) (none: skip)")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default: 15 at B=1 down to 3 at B=128)")
    add_common_args(parser)
    args = parser.parse_args()
    quick = args.quick
    length = args.length or (32 if quick else 64)
    batches = _ints(args.batches or ("1,4,16" if quick else "1,8,32,128"))
    sweep = _ints(args.sweep or ("8,16,32" if quick else "16,32,64,128,256"))
    sweep_batches = _ints(args.sweep_batches or ("16" if quick else "32,128"))
    generate_sweep = _ints(args.generate_sweep or ("4,4" if quick else "16,16"))
    choice_rows = args.choice_rows or (8 if quick else 40)
    max_rows = args.max_rows or batched_module.MAX_ROWS
    env = setup(args)

    def repeats_for(rows: int) -> int:
        if args.repeats:
            return args.repeats
        return 2 if quick else (15 if rows <= 5 else 7 if rows <= 40 else 5 if rows <= 160 else 3)

    started = time.perf_counter()
    print(f"{env}; model {'tiny' if quick else 't5-small shape'}; "
          f"N={args.n}, P={args.prompt_length}, input {length}, max_rows {max_rows}")
    frozen = t5_model(quick, args.seed)
    bank = PromptBank(args.n, args.prompt_length, frozen.config.d_model)
    with torch.no_grad():
        bank.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(args.seed))
    prompted = PromptedT5(frozen, bank)
    generator = torch.Generator().manual_seed(args.seed)
    words = label_words(frozen.tokenizer, generator, 2)
    examples = make_examples(frozen.tokenizer, generator, max(batches + sweep_batches + generate_sweep[:1] + [1]), length, words)
    assert encode_texts(frozen.tokenizer, [e.source for e in examples], length)[0].shape[1] == length

    # (1) batched vs sequential
    results: dict[str, float] = {}
    rows = []
    for batch in batches:
        subset = examples[:batch]
        got = torch.from_numpy(batched_scores(prompted, subset, args.n, length, max_rows)).float()
        want = sequential_scores(prompted, subset, args.n, length)
        torch.testing.assert_close(got, want, atol=1e-3, rtol=1e-4)
        times = interleaved(
            {
                "batched": lambda s=subset: batched_scores(prompted, s, args.n, length, max_rows),
                "sequential": lambda s=subset: sequential_scores(prompted, s, args.n, length),
            },
            repeats_for(args.n * batch),
        )
        target = 0.45 if batch == 1 else 0.95
        rows.append(timing_row(f"B={batch} ({args.n * batch} rows)", times["batched"], times["sequential"], target))
        results[f"batched_over_sequential_B{batch}"] = ratio(times["batched"], times["sequential"])
    if rows:
        print_table(TIMING_HEADERS, rows, f"(1) rank classification, K=2: batched N={args.n} (max_rows {max_rows}) / "
                                      f"one prompt per pass (baseline)")

    # (2) encoder reuse across K choices vs K full passes
    rows = []
    input_ids = random_ids(generator, choice_rows, length)
    input_ids[:, -1] = 1
    mask = torch.ones_like(input_ids)
    prompt_ids = prompt_rows(range(args.n), -(-choice_rows // args.n))[:choice_rows]
    for k in _ints(args.ks):
        choice_ids = random_targets(generator, choice_rows * k, 3).view(choice_rows, k, 3)
        choice_mask = torch.ones_like(choice_ids)
        got = prompted.score(input_ids, mask, prompt_ids, choice_ids, choice_mask)
        torch.testing.assert_close(got, full_pass_scores(prompted, input_ids, mask, prompt_ids, choice_ids), atol=1e-3, rtol=1e-4)
        times = interleaved(
            {
                "reuse": lambda c=choice_ids, m=choice_mask: prompted.score(input_ids, mask, prompt_ids, c, m),
                "full": lambda c=choice_ids: full_pass_scores(prompted, input_ids, mask, prompt_ids, c),
            },
            repeats_for(choice_rows) + 2,
        )
        rows.append(timing_row(f"K={k}, {choice_rows} rows", times["reuse"], times["full"], 1 / k + 0.15))
        results[f"choices_over_full_K{k}"] = ratio(times["reuse"], times["full"])
    if rows:
        print_table(TIMING_HEADERS, rows, "(2) K choices: PromptedT5.score (encoder once) / K full forward calls (baseline)")

    # (3) max_rows sweep
    best_rows = {}
    for batch in sweep_batches if sweep else []:
        subset = examples[:batch]
        fns = {value: (lambda s=subset, v=value: batched_scores(prompted, s, args.n, length, v)) for value in sweep}
        times = interleaved(fns, repeats_for(args.n * batch))
        fastest = min(min(t) for t in times.values())
        reference = min(times[max_rows]) if max_rows in times else fastest
        table = [[value, -(-batch // max(1, value // args.n)), args.n * max(1, value // args.n), fmt_s(min(t)),
                  f"{min(t) / reference:.3f}", "*" if min(t) == fastest else ""] for value, t in times.items()]
        print_table(["max_rows", "passes", "rows/pass", "time (min)", f"vs {max_rows if max_rows in times else 'best'}", "best"], table,
                    f"(3) max_rows sweep, batched scoring of B={batch} x N={args.n}")
        best_rows[batch] = min(times, key=lambda v: min(times[v]))
    best_generate = None
    if generate_sweep and sweep:
        batch, new_tokens = generate_sweep
        subset = examples[:batch]
        decoding = dict(min_new_tokens=new_tokens, max_new_tokens=new_tokens, num_beams=1)
        fns = {value: (lambda s=subset, v=value: generate_texts(prompted, s, list(range(args.n)), length, v, **decoding))
               for value in sweep}
        times = interleaved(fns, repeats_for(args.n * batch))
        fastest = min(min(t) for t in times.values())
        reference = min(times[max_rows]) if max_rows in times else fastest
        table = [[value, -(-batch // max(1, value // args.n)), args.n * max(1, value // args.n), fmt_s(min(t)),
                  f"{min(t) / reference:.3f}", "*" if min(t) == fastest else ""] for value, t in times.items()]
        print_table(["max_rows", "passes", "rows/pass", "time (min)", f"vs {max_rows if max_rows in times else 'best'}", "best"],
                    table, f"(3) max_rows sweep, greedy generate_texts of B={batch} x N={args.n}, {new_tokens} new tokens")
        best_generate = min(times, key=lambda v: min(times[v]))
    print(f"\nbest max_rows by batch: {best_rows}, generation {best_generate}; MAX_ROWS in ensembles/batched.py is {batched_module.MAX_ROWS}")
    print(f"total {time.perf_counter() - started:.0f} s")
    emit_result({**results, **{f"best_max_rows_B{b}": v for b, v in best_rows.items()},
                 **({"best_max_rows_generate": best_generate} if best_generate else {}), "max_rows": max_rows})


def _ints(text: str) -> list[int]:
    return [] if text.strip().lower() == "none" else [int(x) for x in text.split(",")]


if __name__ == "__main__":
    main()
