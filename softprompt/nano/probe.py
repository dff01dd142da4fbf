"""Prompt-tuning probes of a frozen backbone: what the t5-nano gate and ``benchmarks/quality.py`` share.

A probe trains N soft prompts (or deep prefixes) with softprompt's own training loop on a frozen
model and scores a dev set by rank classification. Run on a pre-trained model and on its randomly
initialised twin (same architecture), it tells whether pre-training gave the prompts anything to
work with.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from ensembles.pool import load_pool
from softprompt.data.loading import load_examples
from softprompt.data.tasks import Example, Task
from softprompt.errors import SoftpromptError
from softprompt.io.store import META, read_meta
from softprompt.model.loading import FrozenT5
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from softprompt.runner.scoring import score_choices
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train


def twin_of(frozen: FrozenT5, seed: int = 0) -> FrozenT5:
    """A frozen, randomly initialised T5 with ``frozen``'s architecture."""
    c = frozen.config
    return random_t5(
        d_model=c.d_model,
        d_ff=c.d_ff,
        d_kv=c.d_kv,
        num_heads=c.num_heads,
        num_layers=c.num_layers,
        vocab_size=c.vocab_size,
        seed=seed,
        feed_forward_proj=c.feed_forward_proj,
    )


def probe_splits(
    task: Task,
    train_file: str | Path,
    dev_file: str | Path,
    train_size: int,
    val_size: int,
    dev_size: int | None,
    seed: int,
) -> tuple[list[Example], list[Example], list[Example]]:
    """(train, model-selection, dev) examples; the first two are disjoint random subsets of ``train_file``."""
    pool = load_examples(task, "train", str(train_file), train_size + val_size, seed)
    random.Random(seed).shuffle(pool)
    dev = load_examples(task, "validation", str(dev_file), dev_size, seed)
    return pool[val_size:], pool[:val_size], dev


def majority_predictions(train_examples: list[Example], dev: list[Example]) -> np.ndarray:
    """The training set's most frequent label, predicted for every dev example: (M,)."""
    return np.full(len(dev), int(np.bincount([e.label for e in train_examples]).argmax()))


def zero_shot_scores(frozen: FrozenT5, dev: list[Example], max_source_length: int) -> np.ndarray:
    """Log-likelihood of every dev example's choices with no prompt at all: (M, K). With inputs worded as
    in pre-training (e.g. the mixture's ``review sentiment: {sentence}``), it asks whether the backbone
    itself has the skill, before any prompt is trained.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> from softprompt.data.tasks import get_task
    >>> dev = get_task("sst2").to_examples([{"sentence": "a gem", "label": 1}])
    >>> zero_shot_scores(load_frozen_t5("t5-nano"), dev, 64).shape  # (M examples, K candidates)
    (1, 2)
    """
    empty = PromptedT5(frozen, PromptBank(1, 0, frozen.config.d_model))
    return score_choices(empty, dev, [0], max_source_length).log_likelihood[0]


def tune_and_score(
    frozen: FrozenT5, cfg: TrainConfig, task: Task, splits: tuple[list[Example], ...], reuse: bool = False
) -> np.ndarray:
    """Train ``cfg.n_prompts`` prompts on ``frozen`` (into ``cfg.output_dir``) and return each one's
    log-likelihood of every dev example's choices: (N, M, K).

    With ``reuse``, a finished run already in ``cfg.output_dir`` with the same training arguments is
    scored instead of retrained (the caller keeps the data splits the same)."""
    train_examples, val_examples, dev = splits
    if not (reuse and finished_run(cfg)):
        train(cfg, frozen, task, train_examples, val_examples, progress=False)
    pool = load_pool([cfg.output_dir], frozen)
    return score_choices(pool.model, dev, list(range(cfg.n_prompts)), cfg.max_source_length).log_likelihood


def finished_run(cfg: TrainConfig) -> bool:
    """Whether ``cfg.output_dir`` holds a finished run of ``cfg``; an error if it holds another run."""
    if not (Path(cfg.output_dir) / META).is_file():
        return False
    differ = cfg.differences(read_meta(cfg.output_dir)["train_args"], ignore={"output_dir"})
    if differ:
        raise SoftpromptError(
            f"{cfg.output_dir} holds a run trained with other settings ({', '.join(differ)}); use another work directory"
        )
    return True
