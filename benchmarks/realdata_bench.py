"""Benchmark: ``ensemble-eval``'s batched N-prompt path on real validation data vs the one-prompt-at-a-time PEFT loop a user would write.

Five random soft prompts (P=20) on a random t5-small-shaped model (``--shape``, or ``--model DIR``
for a local model such as ``softprompt/assets/t5-nano``), evaluated on real data read from
``--data`` (default ``../shared/data``, see its README):

* BoolQ validation, ``--boolq-examples`` (default 1,000) questions, rank classification (False/True);
* MultiRC validation, ``--multirc-examples`` (default 400) answer rows, rank classification;
* XSum test, ``--xsum-examples`` (default 100) documents, greedy generation of ``--new-tokens``
  (default 8) tokens.

Ours: ``softprompt.runner.scoring.score_choices`` / ``generate_texts``, the functions
``ensembles.pipeline.run_ensemble_eval`` (``softprompt ensemble-eval``) calls, over all five prompts
with the default token budget (``--max-tokens``): examples sorted by length, packed into passes of
at most ``max_tokens`` tokens, every pass serving all prompts, the encoder run once per (prompt,
example) and reused for both candidates.

Baseline: what a user writes with Hugging Face PEFT (``get_peft_model`` + ``PromptTuningConfig``,
which concatenates the prompt in front of the input embeddings) on a copy of the same frozen model:
for each prompt in turn (its weights copied into the PEFT prompt), batches of ``--loop-batch``
(default 32) examples in file order, each padded to its longest; rank classification by one full
forward per candidate (labels = the candidate) and the summed token log-likelihood;
``model.generate`` for XSum.

Checks: the scores agree (fp32: atol 2e-3; bf16: atol 0.5, rtol 0.02) and, in fp32, the predicted
class of every (prompt, example) and every generated text are identical on both sides (asserted).
In bf16 the two sides' different batch layouts round differently, so near-ties may flip: the
agreement is reported (``*_agreement``), not asserted; the fp32 run is the exactness check.
Reports wall-time ratios ours/loop (targets: BoolQ <= 0.35, MultiRC <= 0.5, XSum <= 0.5), peak
memory ratios ours/loop (<= 1.5) and our path's utilisation: model FLOPs of the useful work
(unpadded tokens, prompt included; ``common.scoring_flops`` / ``t5_generate_flops``) per second
over the matmul peak measured in this process on the same device and dtype. Also the encoder tokens
(rows × padded length) of both sides and of the unpadded work (``*_padded_tokens_ours_over_loop``,
``*_useful_tokens_over_loop``): the second is a floor for any layout's share of the loop's arithmetic.

Peak memory: on CPU each side runs once per task in a fresh subprocess (``--mem-runs``; ``--mem-jobs``
of them at a time, after the timings), VmHWM after the work minus VmRSS once model and data are
loaded (VmHWM reset through /proc/self/clear_refs); on
CUDA, in process, ``torch.cuda.max_memory_allocated`` over the bytes allocated before the work.
Timings are interleaved (see ``benchmarks/common.py``; the checking run is the warm-up). Ends with
one ``RESULT {json}`` line.

    python -m benchmarks.realdata_bench [--boolq-examples 1000 --multirc-examples 400 --xsum-examples 100]
    python -m benchmarks.realdata_bench --quick
    python -m benchmarks.realdata_bench --model softprompt/assets/t5-nano --tasks boolq
    python -m benchmarks.realdata_bench --device cuda --dtype bfloat16 --shape base
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import resource
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    DTYPES,
    ROOT,
    TIMING_HEADERS,
    add_common_args,
    add_model_args,
    cuda_peak_bytes,
    emit_result,
    interleaved,
    matmul_peak,
    model_for,
    print_table,
    ratio,
    scoring_flops,
    setup,
    shape_name,
    t5_generate_flops,
    timing_row,
    utilisation,
    utilisation_line,
)
from softprompt.data.loading import load_examples
from softprompt.data.tasks import get_task
from softprompt.model.loading import load_frozen_t5
from softprompt.model.losses import sequence_log_probs
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.runner.passes import plan_passes, token_budget
from softprompt.runner.scoring import encode_choices, generate_texts, score_choices

DATA_FILES = {"boolq": "superglue/boolq/val.jsonl", "multirc": "superglue/multirc/val.jsonl", "xsum": "xsum/test.jsonl"}
TARGETS = {"boolq": 0.35, "multirc": 0.5, "xsum": 0.5}
MEMORY_TARGET = 1.5
KEY = {"boolq": "boolq", "multirc": "multirc", "xsum": "xsum_generate"}


# --- the two sides ------------------------------------------------------------------------------------


class Ours:
    """All N prompts in one ``PromptedT5``, evaluated as ``softprompt ensemble-eval`` does."""

    def __init__(self, frozen, bank: PromptBank, args) -> None:
        self.model = PromptedT5(frozen, bank)
        self.ids = list(range(bank.n_prompts))
        self.args = args

    def score(self, examples) -> np.ndarray:
        """(N, M, K) summed candidate log-likelihoods."""
        return score_choices(
            self.model, examples, self.ids, max_length=self.args.max_length, max_tokens=self.args.max_tokens
        ).log_likelihood

    def generate(self, examples) -> list[list[str]]:
        """N × M greedy texts."""
        return generate_texts(
            self.model,
            examples,
            self.ids,
            max_length=self.args.max_length,
            max_tokens=self.args.max_tokens,
            **decoding(self.args),
        ).texts


class PeftLoop:
    """The loop a user writes with HF PEFT prompt tuning: one prompt at a time, file-order batches."""

    def __init__(self, model, tokenizer, bank: PromptBank, args) -> None:
        from peft import PromptTuningConfig, TaskType, get_peft_model

        config = PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=bank.length)
        self.model = get_peft_model(model, config).eval()
        self.tokenizer = tokenizer
        self.prompts = bank.weight.detach()
        self.device = model.get_input_embeddings().weight.device
        self.args = args

    def use_prompt(self, n: int) -> None:
        """Load prompt ``n`` (a user would load its adapter; copying the weights costs the same)."""
        embedding = self.model.prompt_encoder["default"].embedding.weight
        with torch.no_grad():
            embedding[: self.prompts.shape[1]] = self.prompts[n].to(embedding)

    def batches(self, examples):
        for start in range(0, len(examples), self.args.loop_batch):
            chunk = examples[start : start + self.args.loop_batch]
            encoded = self.tokenizer(
                [e.source for e in chunk],
                padding=True,
                truncation=True,
                max_length=self.args.max_length,
                return_tensors="pt",
            ).to(self.device)
            yield chunk, encoded

    @torch.no_grad()
    def score(self, examples) -> np.ndarray:
        k = max(len(e.choices) for e in examples)
        out = np.full((len(self.prompts), len(examples), k), -np.inf)
        for n in range(len(self.prompts)):
            self.use_prompt(n)
            row = 0
            for chunk, encoded in self.batches(examples):
                for c in range(k):  # one full forward per candidate
                    labels = self.tokenizer([e.choices[c] for e in chunk], padding=True, return_tensors="pt").input_ids
                    labels = labels.masked_fill(labels == self.tokenizer.pad_token_id, -100).to(self.device)
                    logits = self.model(
                        input_ids=encoded.input_ids, attention_mask=encoded.attention_mask, labels=labels
                    ).logits
                    out[n, row : row + len(chunk), c] = sequence_log_probs(logits, labels).double().cpu().numpy()
                row += len(chunk)
        return out

    @torch.no_grad()
    def generate(self, examples) -> list[list[str]]:
        texts = []
        for n in range(len(self.prompts)):
            self.use_prompt(n)
            mine = []
            for _, encoded in self.batches(examples):
                sequences = self.model.generate(
                    input_ids=encoded.input_ids,
                    attention_mask=encoded.attention_mask,
                    do_sample=False,
                    **decoding(self.args),
                )
                mine += [text.strip() for text in self.tokenizer.batch_decode(sequences, skip_special_tokens=True)]
            texts.append(mine)
        return texts


def decoding(args) -> dict:
    return dict(max_new_tokens=args.new_tokens, num_beams=1)


# --- set-up -------------------------------------------------------------------------------------------


def build_model(args):
    """The frozen model: ``--model DIR`` or a random one of ``--shape``."""
    if args.model:
        return load_frozen_t5(args.model, dtype=args.dtype, device=args.device)
    return model_for(args)


def build_bank(args, d_model: int) -> PromptBank:
    bank = PromptBank(args.n, args.prompt_length, d_model)
    with torch.no_grad():
        bank.weight.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(args.seed))
    return bank


def load_task(args, name: str):
    limit = {"boolq": args.boolq_examples, "multirc": args.multirc_examples, "xsum": args.xsum_examples}[name]
    task = get_task(name)
    return task, load_examples(
        task, "validation", data_file=str(Path(args.data) / DATA_FILES[name]), limit=limit, seed=args.seed
    )


def build_side(side: str, args, frozen=None, bank=None):
    frozen = frozen if frozen is not None else build_model(args)
    bank = bank if bank is not None else build_bank(args, frozen.config.d_model)
    if side == "ours":
        return Ours(frozen, bank, args)
    return PeftLoop(frozen.model, frozen.tokenizer, bank, args)


def run_side(side_object, task, examples):
    return side_object.generate(examples) if task.kind == "generation" else side_object.score(examples)


def check_data(data: str) -> None:
    missing = [f for f in DATA_FILES.values() if not (Path(data) / f).is_file()]
    if missing:
        raise SystemExit(
            f"realdata_bench: benchmark data not found under {data} (missing {missing[0]}); "
            f"pass --data DIR, the folder described in ../shared/data/README.md"
        )


# --- FLOPs --------------------------------------------------------------------------------------------


def input_lengths(frozen, examples, args) -> list[int]:
    """Each example's encoder tokens as both sides feed them: truncated input plus the prompt."""
    return [
        args.prompt_length + len(ids)
        for ids in frozen.tokenizer([e.source for e in examples], truncation=True, max_length=args.max_length).input_ids
    ]


def useful_flops(frozen, task, examples, args) -> float:
    """Model FLOPs of the work itself: every (prompt, example) row at its own length (prompt
    included, no padding); candidates padded to their longest, as ``encode_choices`` does."""
    lengths, config = input_lengths(frozen, examples, args), frozen.config
    if task.kind == "generation":
        per_example = sum(t5_generate_flops(config, 1, n, args.new_tokens) for n in lengths)
    else:
        choice_ids, _ = encode_choices(frozen.tokenizer, [e.choices for e in examples])
        k, target_length = choice_ids.shape[1:]
        per_example = sum(scoring_flops(config, 1, n, k, target_length) for n in lengths)
    return args.n * per_example


def encoder_tokens(frozen, task, examples, args) -> dict[str, int]:
    """Encoder tokens (rows × padded length) of each side, and of the work itself without padding.
    ``useful / loop`` bounds any layout: no pass can compute fewer tokens than the useful ones."""
    lengths = input_lengths(frozen, examples, args)
    copies = (
        1 if task.kind == "generation" else encode_choices(frozen.tokenizer, [e.choices for e in examples])[0].shape[1]
    )
    plans = plan_passes(lengths, args.n, args.max_tokens, copies)
    batches = [lengths[i : i + args.loop_batch] for i in range(0, len(lengths), args.loop_batch)]
    return {
        "useful": args.n * sum(lengths),
        "ours": sum(len(p.examples) * len(p.prompts) * max(lengths[e] for e in p.examples) for p in plans),
        "loop": args.n * sum(len(b) * max(b) for b in batches),
    }


# --- memory -------------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_child(task_name: str, side: str, args) -> None:
    """In a fresh process: resident-set growth of one side's work on one task."""
    setup(args)
    task, examples = load_task(args, task_name)
    runner = build_side(side, args)
    gc.collect()
    base_rss = _status_kib("VmRSS")
    base_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        hwm_reset = True
    except OSError:
        hwm_reset = False
    run_side(runner, task, examples)
    growth = (
        (_status_kib("VmHWM") - base_rss)
        if hwm_reset
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base_maxrss
    )
    print(
        "MEM " + json.dumps({"task": task_name, "side": side, "growth_kib": growth, "hwm_reset": hwm_reset}), flush=True
    )


def child_memory_mib(task_name: str, side: str, argv: list[str]) -> float:
    command = [sys.executable, "-m", "benchmarks.realdata_bench", *argv, "--mem-child", task_name, side]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    lines = [line for line in done.stdout.splitlines() if line.startswith("MEM ")]
    if done.returncode or not lines:
        raise RuntimeError(f"memory child {task_name}/{side} failed:\n{done.stdout}\n{done.stderr}")
    return json.loads(lines[-1][4:])["growth_kib"] / 1024


def child_argv(args) -> list[str]:
    """The options a memory subprocess needs to rebuild the same model, prompts and data."""
    argv = [
        "--data",
        args.data,
        "--n",
        str(args.n),
        "--prompt-length",
        str(args.prompt_length),
        "--boolq-examples",
        str(args.boolq_examples),
        "--multirc-examples",
        str(args.multirc_examples),
        "--xsum-examples",
        str(args.xsum_examples),
        "--new-tokens",
        str(args.new_tokens),
        "--max-length",
        str(args.max_length),
        "--max-tokens",
        str(args.max_tokens),
        "--loop-batch",
        str(args.loop_batch),
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "--dtype",
        args.dtype,
    ]
    if args.model:
        argv += ["--model", args.model]
    if args.shape:
        argv += ["--shape", args.shape]
    if args.quick:
        argv.append("--quick")
    if args.threads is not None:
        argv += ["--threads", str(args.threads)]
    if args.default_malloc:
        argv.append("--default-malloc")
    return argv


# --- checks -------------------------------------------------------------------------------------------


def check_scores(name: str, ours: np.ndarray, loop: np.ndarray, half: bool) -> dict:
    """Scores close (asserted); predictions identical (asserted in fp32; in bf16 two batch layouts
    round differently, so near-ties may flip: the agreement is reported)."""
    assert ours.shape == loop.shape, (name, ours.shape, loop.shape)
    finite = np.isfinite(loop)
    assert (np.isfinite(ours) == finite).all(), f"{name}: missing candidates differ"
    difference = np.abs(ours[finite] - loop[finite])
    atol, rtol = (0.5, 0.02) if half else (2e-3, 1e-4)
    worst = float(np.max(difference - rtol * np.abs(loop[finite]))) if difference.size else 0.0
    assert worst <= atol, f"{name}: scores differ by up to {difference.max():.4g} (atol {atol}, rtol {rtol})"
    disagree = ours.argmax(-1) != loop.argmax(-1)
    assert half or not disagree.any(), f"{name}: {int(disagree.sum())} of {disagree.size} predictions differ in fp32"
    agreement = 1 - float(disagree.mean())
    max_diff = float(difference.max()) if difference.size else 0.0
    print(
        f"check {name}: {ours.shape[0]}x{ours.shape[1]} (prompt, example) pairs, predictions agree on "
        f"{100 * agreement:.2f}%{' (bf16: not asserted)' if half else ''}, max |score difference| {max_diff:.2e}"
    )
    return {"agreement": agreement, "max_score_diff": max_diff}


def check_texts(name: str, ours: list[list[str]], loop: list[list[str]], half: bool) -> dict:
    """Generated texts identical (asserted in fp32; in bf16 a near-tie that flips one greedy token
    changes the rest of the text: the agreement is reported)."""
    flat_ours = [t for row in ours for t in row]
    flat_loop = [t for row in loop for t in row]
    assert len(flat_ours) == len(flat_loop), (name, len(flat_ours), len(flat_loop))
    agreement = sum(a == b for a, b in zip(flat_ours, flat_loop)) / len(flat_ours)
    print(
        f"check {name}: {len(ours)}x{len(ours[0])} generations, identical texts {100 * agreement:.2f}%"
        f"{' (bf16: not asserted)' if half else ''}"
    )
    if not half:
        first = next((i for i, (a, b) in enumerate(zip(flat_ours, flat_loop)) if a != b), None)
        assert first is None, f"{name}: texts differ, first at {first}: {flat_ours[first]!r} vs {flat_loop[first]!r}"
    return {"agreement": agreement}


# --- main ---------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=str(ROOT.parent / "shared" / "data"), help="benchmark data folder (default ../shared/data)"
    )
    parser.add_argument(
        "--model", default=None, help="a local T5 directory (e.g. softprompt/assets/t5-nano) instead of a random model"
    )
    parser.add_argument("--tasks", default="boolq,multirc,xsum", help="comma-separated subset of boolq,multirc,xsum")
    parser.add_argument("--n", type=int, default=5, help="prompts N")
    parser.add_argument("--prompt-length", type=int, default=20, help="soft prompt length P")
    parser.add_argument(
        "--boolq-examples", type=int, default=None, help="BoolQ validation questions (default 1000; quick 48)"
    )
    parser.add_argument(
        "--multirc-examples", type=int, default=None, help="MultiRC validation answer rows (default 400; quick 40)"
    )
    parser.add_argument("--xsum-examples", type=int, default=None, help="XSum documents (default 100; quick 8)")
    parser.add_argument("--new-tokens", type=int, default=None, help="XSum max_new_tokens (default 8; quick 4)")
    parser.add_argument(
        "--max-length", type=int, default=None, help="input truncation (default 512 as ensemble-eval; quick 128)"
    )
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="our token budget per pass (default: the device's, softprompt.runner.passes.token_budget)",
    )
    parser.add_argument("--loop-batch", type=int, default=32, help="the PEFT loop's batch size")
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed rounds per task after the checking run (default 2; quick 1)"
    )
    parser.add_argument(
        "--mem-runs",
        type=int,
        default=None,
        help="memory subprocesses per side and task on CPU (default 1; 0: no memory measurement, on CUDA too)",
    )
    parser.add_argument(
        "--mem-jobs", type=int, default=2, help="memory subprocesses run at once (memory is per process)"
    )
    parser.add_argument("--mem-child", nargs=2, metavar=("TASK", "SIDE"), help=argparse.SUPPRESS)
    add_common_args(parser)
    add_model_args(parser)
    args = parser.parse_args()
    quick = args.quick
    args.boolq_examples = args.boolq_examples or (48 if quick else 1000)
    args.multirc_examples = args.multirc_examples or (40 if quick else 400)
    args.xsum_examples = args.xsum_examples or (8 if quick else 100)
    args.new_tokens = args.new_tokens or (4 if quick else 8)
    args.max_length = args.max_length or (128 if quick else 512)
    args.max_tokens = args.max_tokens or token_budget(args.device)
    repeats = args.repeats or (1 if quick else 2)
    mem_runs = 1 if args.mem_runs is None else args.mem_runs
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in tasks if t not in DATA_FILES]
    if unknown:
        parser.error(f"unknown --tasks {unknown}; choose from {','.join(DATA_FILES)}")
    check_data(args.data)
    if args.mem_child:
        memory_child(*args.mem_child, args)
        return

    env = setup(args)
    device = torch.device(args.device)
    half = args.dtype != "float32"
    started = time.perf_counter()
    peak = matmul_peak(DTYPES[args.dtype], device)
    frozen = build_model(args)
    model_name = Path(args.model).name if args.model else f"random {shape_name(args)}-shape"
    print(
        f"{env}; model {model_name} on {device}; N={args.n}, P={args.prompt_length}, max_length {args.max_length}, "
        f"our max_tokens {args.max_tokens}, loop batch {args.loop_batch}"
    )
    print(f"matmul peak ({args.dtype}, {device}): {peak / 1e9:.1f} GFLOP/s")
    bank = build_bank(args, frozen.config.d_model)
    loop = build_side("loop", args, copy.deepcopy(frozen), bank)  # a plain copy: PromptedT5 reroutes attention
    ours = build_side("ours", args, frozen, bank)

    results: dict[str, object] = {}
    rows, memory_rows, use_lines = [], [], []
    memory: dict[str, tuple[dict[str, float], str]] = {}
    for name in tasks:
        task, examples = load_task(args, name)
        what = "documents" if task.kind == "generation" else "examples"
        print(f"\n{name}: {len(examples)} {what} x {args.n} prompts ({task.kind})")
        got_ours, got_loop = run_side(ours, task, examples), run_side(loop, task, examples)  # also the warm-up
        check = (check_texts if task.kind == "generation" else check_scores)(name, got_ours, got_loop, half)
        results[f"{KEY[name]}_agreement"] = check["agreement"]
        if "max_score_diff" in check:
            results[f"{KEY[name]}_max_score_diff"] = check["max_score_diff"]
        times = interleaved(
            {"ours": lambda: run_side(ours, task, examples), "loop": lambda: run_side(loop, task, examples)},
            repeats,
            warmup=0,
        )
        key = KEY[name]
        rows.append(
            timing_row(
                f"{name}: {len(examples)} {what} x {args.n} prompts", times["ours"], times["loop"], TARGETS[name]
            )
        )
        results[f"{key}_ours_over_loop"] = ratio(times["ours"], times["loop"])
        flops = useful_flops(frozen, task, examples, args)
        results[f"utilisation_{key}_ours"] = utilisation(flops, min(times["ours"]), peak)
        results[f"utilisation_{key}_loop"] = utilisation(flops, min(times["loop"]), peak)
        use_lines += [
            utilisation_line(f"{name} ours", flops, min(times["ours"]), peak),
            utilisation_line(f"{name} PEFT loop", flops, min(times["loop"]), peak),
        ]
        tokens = encoder_tokens(frozen, task, examples, args)
        results[f"{key}_padded_tokens_ours_over_loop"] = tokens["ours"] / tokens["loop"]
        results[f"{key}_useful_tokens_over_loop"] = tokens["useful"] / tokens["loop"]
        use_lines.append(
            f"encoder tokens {name}: ours {tokens['ours']:,} ({tokens['ours'] / tokens['loop']:.3f} of the loop's "
            f"{tokens['loop']:,}); without any padding {tokens['useful']:,} ({tokens['useful'] / tokens['loop']:.3f})"
        )

        if device.type == "cuda" and mem_runs > 0:
            mem = {
                side: cuda_peak_bytes(lambda runner=runner: run_side(runner, task, examples), device) / 2**20
                for side, runner in (("ours", ours), ("loop", loop))
            }
            memory[name] = (mem, "CUDA max_memory_allocated growth")

    if device.type != "cuda" and mem_runs > 0:  # fresh subprocesses, after the timings (--mem-jobs at a time)
        argv = child_argv(args)
        jobs = [
            (name, side)
            for name in tasks
            for run in range(mem_runs)
            for side in (("ours", "loop") if run % 2 == 0 else ("loop", "ours"))
        ]
        with ThreadPoolExecutor(max_workers=max(1, args.mem_jobs)) as pool:
            growth = list(pool.map(lambda job: child_memory_mib(*job, argv), jobs))
        for name in tasks:
            mem = {
                side: statistics.median([g for (t, s), g in zip(jobs, growth) if t == name and s == side])
                for side in ("ours", "loop")
            }
            memory[name] = (mem, f"VmHWM - VmRSS, median of {mem_runs} subprocess(es)")
    for name, (mem, method) in memory.items():
        mem_ratio = mem["ours"] / max(mem["loop"], 1e-9)
        results[f"{KEY[name]}_mem_over_loop"] = mem_ratio
        results[f"{KEY[name]}_mem_ours_mib"] = mem["ours"]
        results[f"{KEY[name]}_mem_loop_mib"] = mem["loop"]
        memory_rows.append(
            [
                name,
                f"{mem['ours']:.1f}",
                f"{mem['loop']:.1f}",
                f"{mem_ratio:.3f}",
                f"<= {MEMORY_TARGET}",
                "yes" if mem_ratio <= MEMORY_TARGET else "NO",
                method,
            ]
        )

    if rows:
        print_table(
            TIMING_HEADERS, rows, f"wall time: ours (batched, N={args.n}) / PEFT loop (one prompt at a time, baseline)"
        )
    if memory_rows:
        print_table(
            ["task", "ours MiB", "loop MiB", "ratio", "target", "met", "method"], memory_rows, "peak memory growth"
        )
    if use_lines:
        print("\n" + "\n".join(use_lines))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    results.update(
        matmul_peak_gflops=peak / 1e9,
        device=str(device),
        dtype=args.dtype,
        model=model_name,
        max_tokens=args.max_tokens,
        boolq_examples=args.boolq_examples,
        multirc_examples=args.multirc_examples,
        xsum_examples=args.xsum_examples,
        new_tokens=args.new_tokens,
    )
    emit_result(results)


if __name__ == "__main__":
    main()
