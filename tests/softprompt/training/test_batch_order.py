"""The training data order: epoch-wise permutations, and grouping by length (--group-by-length)."""

import pytest
import torch

from softprompt.data.loading import load_examples
from softprompt.data.tasks import get_task
from softprompt.model.random_models import random_t5
from softprompt.runner.passes import encode_texts
from softprompt.training import batch_order as batching
from softprompt.training.batch_order import MEGA_BATCHES, BatchOrder, group_by_length, source_lengths
from tests.conftest import TEST_DATA


def _mixed_lengths(n: int, seed: int = 0) -> list[int]:
    """Long-tailed token lengths in 16..256, like natural-text inputs."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, generator=generator) * 0.6 + 4.2).exp().clamp(16, 256).long().tolist()


def _stream(order: BatchOrder, steps: int) -> list[int]:
    return [i for step in range(steps) for i in order.batch(step)]


def _pad_share(order: BatchOrder, lengths: list[int], steps: int) -> float:
    """Padding tokens over all token slots when every batch pads to its longest example."""
    slots = real = 0
    for step in range(steps):
        batch = [lengths[i] for i in order.batch(step)]
        slots, real = slots + max(batch) * len(batch), real + sum(batch)
    return 1 - real / slots


def test_plain_order_depends_only_on_seed_and_step():
    steps = [BatchOrder(10, 4, seed=7).batch(step) for step in range(5)]  # 20 draws = 2 epochs of 10
    assert steps == [BatchOrder(10, 4, seed=7).batch(step) for step in range(5)]
    first_epoch = steps[0] + steps[1] + steps[2][:2]
    assert sorted(first_epoch) == list(range(10))  # each epoch is a permutation
    assert BatchOrder(10, 4, 7).batch(0) != BatchOrder(10, 4, 8).batch(0)
    # the order runs written before --group-by-length drew, so they resume unchanged
    assert (
        BatchOrder(10, 4, 7).epoch(1)
        == torch.randperm(10, generator=torch.Generator().manual_seed(7 * 100003 + 1)).tolist()
    )


def test_group_by_length_sorts_within_spans_on_the_stream_grid_longest_first():
    lengths = [1, 5, 2, 9, 3, 3, 7, 4, 8, 6, 0, 2]
    # spans of 4 draws; ties (examples 4 and 5) keep their shuffled order
    assert group_by_length(list(range(12)), lengths, start=0, window=4) == [3, 1, 2, 0, 6, 7, 4, 5, 8, 9, 11, 10]
    # an epoch starting at stream draw 2: spans cut at draws 4, 8, 12 (local 2, 6, 10); the longest (3) moved first
    assert group_by_length(list(range(12)), lengths, start=2, window=4) == [3, 0, 1, 4, 5, 2, 8, 6, 9, 7, 11, 10]


@pytest.mark.parametrize("n_examples", [1000, 1003])  # whole batches per epoch, and batches that span two epochs
def test_grouped_order_yields_every_example_once_per_epoch(n_examples):
    lengths = _mixed_lengths(n_examples)
    stream = _stream(BatchOrder(n_examples, 8, seed=3, lengths=lengths), steps=3 * n_examples // 8 + 1)
    for epoch in range(3):
        assert sorted(stream[epoch * n_examples : (epoch + 1) * n_examples]) == list(range(n_examples))


def test_grouped_batches_are_sorted_within_mega_batches_and_pad_less():
    n, batch_size = 5 * MEGA_BATCHES * 8, 8  # five mega-batches per epoch
    lengths = _mixed_lengths(n)
    order = BatchOrder(n, batch_size, seed=0, lengths=lengths)
    epoch = order.epoch(0)
    assert lengths[epoch[0]] == max(lengths)  # the longest example leads: an out-of-memory batch shows at step 1
    window = MEGA_BATCHES * batch_size
    for start in range(0, n, window):
        span = [lengths[i] for i in epoch[start : start + window]]
        assert span[1:] == sorted(span[1:], reverse=True), f"mega-batch at {start} not sorted"
    plain = BatchOrder(n, batch_size, seed=0)
    plain_epoch = plain.epoch(0)
    moved = {epoch[0], max(plain_epoch[:window], key=lambda i: lengths[i])}  # the longest swapped with the first's
    for start in range(0, n, window):  # mega-batches are drawn from the shuffled order, not the whole epoch
        assert set(epoch[start : start + window]) - moved == set(plain_epoch[start : start + window]) - moved
    grouped, off = _pad_share(order, lengths, n // batch_size), _pad_share(plain, lengths, n // batch_size)
    assert off > 0.4 and grouped < off / 5, (grouped, off)


def test_grouped_order_is_deterministic_per_seed():
    lengths = _mixed_lengths(500)
    first = _stream(BatchOrder(500, 8, seed=1, lengths=lengths), 200)
    assert first == _stream(BatchOrder(500, 8, seed=1, lengths=lengths), 200)
    assert first != _stream(BatchOrder(500, 8, seed=2, lengths=lengths), 200)
    assert first != _stream(BatchOrder(500, 8, seed=1), 200)  # grouping changes the order


def test_resumed_order_draws_the_batches_of_an_uninterrupted_run():
    lengths = _mixed_lengths(501)
    uninterrupted = BatchOrder(501, 8, seed=0, lengths=lengths)
    expected = [uninterrupted.batch(step) for step in range(150)]  # about 2.4 epochs
    for resume_at in (37, 62, 125):  # mid-epoch, at the step spanning epochs 0 and 1, in epoch 1
        resumed = BatchOrder(501, 8, seed=0, lengths=lengths)  # a fresh process: nothing cached
        assert [resumed.batch(step) for step in range(resume_at, 150)] == expected[resume_at:]


def test_source_lengths_are_the_token_counts_training_encodes(monkeypatch):
    monkeypatch.setattr(batching, "TOKENIZE_CHUNK", 5)  # chunks of 5, 5 and 2 texts
    examples = load_examples(get_task("rte"), "train", str(TEST_DATA / "superglue" / "rte" / "train.jsonl"), limit=12)
    tokenizer = random_t5().tokenizer
    lengths = source_lengths(tokenizer, examples, max_length=32)
    _, mask = encode_texts(tokenizer, [e.source for e in examples], 32)
    assert lengths == mask.sum(-1).tolist()
    assert max(source_lengths(tokenizer, examples, max_length=1000)) > 32  # some inputs were truncated above
