"""Shared pieces of the training tests: slices of the real RTE fixture and a tiny-model training config."""

from pathlib import Path

from softprompt.data.loading import load_examples
from softprompt.data.tasks import get_task
from softprompt.training.config import TrainConfig
from tests.conftest import TEST_DATA

RTE = TEST_DATA / "superglue" / "rte"

TINY_RUN = dict(  # 3 prompts of 4 tokens on the tiny random T5 ("tiny", built in-process), a few steps
    model="tiny",
    task="rte",
    n_prompts=3,
    prompt_length=4,
    init="sampled-vocab",
    steps=6,
    batch_size=4,
    eval_every=3,
    checkpoint_every=3,
    max_source_length=64,
    lr=0.3,
)


def rte_examples(n_train: int, n_val: int):
    """(task, the first ``n_train`` training examples, the first ``n_val`` validation examples) of RTE."""
    task = get_task("rte")
    return (
        task,
        load_examples(task, "train", str(RTE / "train.jsonl"), limit=n_train, seed=0),
        load_examples(task, "validation", str(RTE / "val.jsonl"), limit=n_val, seed=0),
    )


def tiny_config(output_dir: Path | str, **overrides) -> TrainConfig:
    """``TINY_RUN`` writing to ``output_dir``, with ``overrides``."""
    return TrainConfig(**(TINY_RUN | {"output_dir": str(output_dir)} | overrides))
