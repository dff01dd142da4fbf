"""The order in which training draws its examples: epoch-wise permutations, optionally grouped by length.

Training reads one endless stream of example indices: epoch e is a permutation drawn from
(seed, e), and step s takes draws s·B .. s·B+B-1 of the stream, so the data order depends only on
(seed, step) and a resumed run draws exactly the batches an uninterrupted one would.

With grouping by length (``softprompt train --group-by-length``, as transformers'
``LengthGroupedSampler``) each epoch's permutation is cut into mega-batches of ``MEGA_BATCHES``·B
draws and sorted longest first inside each, so a batch holds examples of similar length and pads
little; the epoch's longest example comes first (an out-of-memory batch shows at once, not hours
in). The mega-batches lie on the stream's batch grid, so only a batch that spans two epochs mixes
sorted runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from softprompt.data.tasks import Example
from softprompt.runner.passes import tokenize

MEGA_BATCHES = 50  # batches per mega-batch, as transformers' LengthGroupedSampler
TOKENIZE_CHUNK = 4096  # texts tokenised at once by source_lengths: bounds the token id lists held in memory


class BatchOrder:
    """Example indices of every training step, a function of (seed, step) alone.

    ``lengths`` (one per example, e.g. ``source_lengths``) groups each mega-batch by length; None
    keeps the plain shuffled order.
    """

    def __init__(self, n_examples: int, batch_size: int, seed: int, lengths: Sequence[int] | None = None) -> None:
        if lengths is not None and len(lengths) != n_examples:
            raise ValueError(f"{len(lengths)} lengths for {n_examples} examples")
        self.n_examples, self.batch_size, self.seed = n_examples, batch_size, seed
        self.lengths = lengths
        self._cached: tuple[int, list[int]] = (-1, [])  # (epoch, its order): consecutive steps share an epoch

    def batch(self, step: int) -> list[int]:
        """The ``batch_size`` example indices of training step ``step`` (draws step·B onwards)."""
        out: list[int] = []
        position = step * self.batch_size
        while len(out) < self.batch_size:
            epoch, offset = divmod(position, self.n_examples)
            take = min(self.batch_size - len(out), self.n_examples - offset)
            out.extend(self.epoch(epoch)[offset : offset + take])
            position += take
        return out

    def epoch(self, epoch: int) -> list[int]:
        """Epoch ``epoch``'s order of all example indices (each exactly once)."""
        if self._cached[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed * 100003 + epoch)
            order = torch.randperm(self.n_examples, generator=generator).tolist()
            if self.lengths is not None:
                order = group_by_length(order, self.lengths, epoch * self.n_examples, MEGA_BATCHES * self.batch_size)
            self._cached = (epoch, order)
        return self._cached[1]


def group_by_length(order: Sequence[int], lengths: Sequence[int], start: int, window: int) -> list[int]:
    """``order`` (the stream's draws ``start`` onwards) sorted longest first within each span of
    ``window`` stream draws (spans start at multiples of ``window``), then its longest index moved
    to the front. Ties keep their order in ``order``."""
    cuts = [0, *range(-start % window or window, len(order), window), len(order)]
    grouped = [i for a, b in zip(cuts, cuts[1:]) for i in sorted(order[a:b], key=lambda i: -lengths[i])]
    longest = max(range(len(grouped)), key=lambda k: lengths[grouped[k]])  # first of the longest
    grouped[0], grouped[longest] = grouped[longest], grouped[0]
    return grouped


def source_lengths(tokenizer: PreTrainedTokenizerBase, examples: Sequence[Example], max_length: int) -> list[int]:
    """Each example's input length in tokens (EOS included, truncated to ``max_length``), as training encodes it."""
    return [
        len(ids)
        for start in range(0, len(examples), TOKENIZE_CHUNK)
        for ids in tokenize(tokenizer, [e.source for e in examples[start : start + TOKENIZE_CHUNK]], max_length)
    ]
