"""N prompts × B examples in one pass: the batched runner behind ensembles and validation.

A pass holds a chunk of examples repeated once per prompt of a prompt group (prompt-major rows:
prompt ids ``[0]*b + [1]*b + ...``), so one forward pass serves several prompts, as in Lester et
al. §6. Passes are planned from the work (``plan_passes``):

* **length-aware**: examples are sorted by token length, longest first, so that a pass pads
  little (and an out-of-memory error shows on the first pass); results return in the original
  order;
* **token budget**: a pass holds at most ``max_tokens`` tokens, counted as rows × padded encoder
  length (input prompt included) × the copies each row makes downstream (K candidates when
  scoring, beams when generating), so peak memory stays flat as inputs grow;
* **every prompt in a pass**: a chunk takes as many examples as fit with all N prompts, so a chunk
  spans few neighbouring lengths and pads less than any layout with more examples per pass (the
  per-prompt loop over the same sorted examples pads each of its wider chunks to their longest).
  At uniform lengths its passes have the loop's shapes (rows × length), so batching never costs
  more than that loop; only an example too long for N copies splits the prompts into groups.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

# Default rows × padded length × copies per pass, by device type. CPU: as fast as any larger budget
# in benchmarks/ensemble_bench.py's sweep, with peak memory near the one-prompt loop's
# (benchmarks/realdata_bench.py). CUDA: keeps t5-xl's cross-attention keys/values of a greedy pass near
# 13 GB in bf16 (beams and scoring candidates share one copy per row, softprompt/model/beam_cache.py and
# attention._fold_candidates, so a beams-th / K-th of that); raise it on large GPUs, lower it on small ones.
TOKEN_BUDGETS = {"cpu": 8_192, "cuda": 65_536}


@dataclass
class Batch:
    """One pass: b examples repeated for n prompts (R = n·b rows, prompt-major)."""

    example_index: torch.Tensor  # (b,) positions in the evaluated list
    prompt_index: torch.Tensor  # (n,) positions in the prompt list
    input_ids: torch.Tensor  # (R, T)
    attention_mask: torch.Tensor  # (R, T)
    prompt_ids: torch.Tensor  # (R,) bank rows


@dataclass(frozen=True)
class PassPlan:
    """Which examples and which prompts (positions) one pass holds."""

    examples: tuple[int, ...]
    prompts: tuple[int, ...]


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise with EOS, pad to the longest, truncate to ``max_length``: (B, T) ids and mask."""
    return pad_ids(tokenizer, tokenize(tokenizer, texts, max_length), device)


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of every text (with EOS, truncated to ``max_length``), unpadded."""
    return tokenizer(list(texts), truncation=True, max_length=max_length).input_ids


def pad_ids(
    tokenizer: PreTrainedTokenizerBase, ids: Sequence[Sequence[int]], device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad token id lists to the longest (the tokenizer's padding side): (B, T) ids and mask."""
    padded = tokenizer.pad({"input_ids": list(ids)}, padding=True, return_tensors="pt")
    return padded.input_ids.to(device), padded.attention_mask.to(device)


def repeat_for_prompts(tensor: torch.Tensor, n_prompts: int) -> torch.Tensor:
    """(B, ...) -> (N·B, ...), prompt-major: rows [0, B) for the first prompt, and so on."""
    return tensor.repeat(n_prompts, *([1] * (tensor.dim() - 1)))


def prompt_rows(bank_ids: Sequence[int], batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-row bank ids for ``batch`` examples repeated for every prompt: (N·B,)."""
    return torch.tensor(list(bank_ids), device=device).repeat_interleave(batch)


def token_budget(device: str | torch.device) -> int:
    """The default tokens per pass on ``device`` (``TOKEN_BUDGETS``; other device types get the CPU's)."""
    return TOKEN_BUDGETS.get(torch.device(device).type, TOKEN_BUDGETS["cpu"])


def plan_passes(lengths: Sequence[int], n_prompts: int, max_tokens: int, copies: int = 1) -> list[PassPlan]:
    """Passes covering every (prompt, example) pair within ``max_tokens``.

    ``lengths`` are the examples' encoder lengths (input prompt included), ``copies`` what each
    row costs on top (candidates or beams). Examples go longest first; a chunk takes examples while
    ``count × n_prompts × longest × copies`` fits, and its passes take as many prompts as fit (all of
    them unless one example is too long for that; at least one example and one prompt per pass,
    whatever the budget).

    >>> [(p.examples, p.prompts) for p in plan_passes([5, 30, 10], n_prompts=2, max_tokens=60)]
    [((1,), (0, 1)), ((2, 0), (0, 1))]
    """
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be positive, got {max_tokens}")
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # stable: ties keep their order
    plans: list[PassPlan] = []
    start = 0
    while start < len(order):
        longest = max(1, lengths[order[start]]) * copies
        count = max(1, min(len(order) - start, max_tokens // (longest * n_prompts)))
        chunk = tuple(order[start : start + count])
        per_pass = max(1, min(n_prompts, max_tokens // (count * longest)))
        for group in range(0, n_prompts, per_pass):
            plans.append(PassPlan(chunk, tuple(range(group, min(group + per_pass, n_prompts)))))
        start += count
    return plans


class Passes:
    """The passes of ``plan_passes`` as tensors, in plan order; each example is tokenised once and
    padded per chunk. ``len()`` is the number of passes (progress bars); ``max_tokens`` defaults to
    ``token_budget(device)``."""

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        sources: Sequence[str],
        bank_ids: Sequence[int],
        max_length: int,
        max_tokens: int | None = None,
        device: str | torch.device = "cpu",
        prompt_length: int = 0,
        copies: int = 1,
    ) -> None:
        self.tokenizer, self.bank_ids, self.device = tokenizer, list(bank_ids), device
        self.ids = tokenize(tokenizer, sources, max_length)
        lengths = [len(row) + prompt_length for row in self.ids]
        self.plans = plan_passes(lengths, len(self.bank_ids), max_tokens or token_budget(device), copies)

    def __len__(self) -> int:
        return len(self.plans)

    def __iter__(self) -> Iterator[Batch]:
        chunk, input_ids, mask = None, None, None
        for plan in self.plans:
            if plan.examples != chunk:  # a chunk's prompt groups follow each other: pad it once
                chunk = plan.examples
                input_ids, mask = pad_ids(self.tokenizer, [self.ids[i] for i in chunk], self.device)  # (b, T)
            group = [self.bank_ids[p] for p in plan.prompts]
            yield Batch(
                example_index=torch.tensor(chunk),
                prompt_index=torch.tensor(plan.prompts),
                input_ids=repeat_for_prompts(input_ids, len(group)),  # (n·b, T)
                attention_mask=repeat_for_prompts(mask, len(group)),
                prompt_ids=prompt_rows(group, len(chunk), self.device),  # (n·b,)
            )
