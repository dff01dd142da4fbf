"""N prompts × B examples in one pass: the batched runner behind ensembles and validation.

Each micro-batch of B examples is repeated once per prompt (prompt-major rows: prompt ids
``[0]*B + [1]*B + ...``), so one forward pass serves all N prompts, as in Lester et al. §6.
On CPU a very large batch falls out of cache and gets slower per row, so the number of rows in
one pass is capped (``max_rows``); the default comes from ``benchmarks/ensemble_bench.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import torch
from transformers import PreTrainedTokenizerBase

MAX_ROWS = 128  # rows (prompts × examples) per pass: fastest of 16-256 for generation, within 1 % for scoring (benchmarks/ensemble_bench.py)


@dataclass
class Batch:
    """One pass: B examples repeated for N prompts (R = N·B rows, prompt-major)."""

    example_index: torch.Tensor  # (B,) positions in the evaluated list
    prompt_index: torch.Tensor  # (N,) positions in the prompt list
    input_ids: torch.Tensor  # (R, T)
    attention_mask: torch.Tensor  # (R, T)
    prompt_ids: torch.Tensor  # (R,) bank rows


def encode_texts(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tokenise with EOS, pad to the longest, truncate to ``max_length``: (B, T) ids and mask."""
    encoded = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return encoded.input_ids.to(device), encoded.attention_mask.to(device)


def repeat_for_prompts(tensor: torch.Tensor, n_prompts: int) -> torch.Tensor:
    """(B, ...) -> (N·B, ...), prompt-major: rows [0, B) for the first prompt, and so on."""
    return tensor.repeat(n_prompts, *([1] * (tensor.dim() - 1)))


def prompt_rows(bank_ids: Sequence[int], batch: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Per-row bank ids for ``batch`` examples repeated for every prompt: (N·B,)."""
    return torch.tensor(list(bank_ids), device=device).repeat_interleave(batch)


def iter_batches(
    tokenizer: PreTrainedTokenizerBase,
    sources: Sequence[str],
    bank_ids: Sequence[int],
    max_length: int,
    max_rows: int = MAX_ROWS,
    device: str | torch.device = "cpu",
) -> Iterator[Batch]:
    """Micro-batches covering every (prompt, example) pair, at most ``max_rows`` rows each.

    When all N prompts fit, a pass holds ``max_rows // N`` examples for all prompts; when N alone
    exceeds ``max_rows``, prompts are split into groups and each example batch is run per group.
    """
    n = len(bank_ids)
    prompts_per_pass = min(n, max_rows)
    examples_per_pass = max(1, max_rows // prompts_per_pass)
    for start in range(0, len(sources), examples_per_pass):
        chunk = list(range(start, min(start + examples_per_pass, len(sources))))
        input_ids, mask = encode_texts(tokenizer, [sources[i] for i in chunk], max_length, device)
        for group in range(0, n, prompts_per_pass):
            ids = list(bank_ids[group : group + prompts_per_pass])
            yield Batch(
                example_index=torch.tensor(chunk),
                prompt_index=torch.arange(group, group + len(ids)),
                input_ids=repeat_for_prompts(input_ids, len(ids)),
                attention_mask=repeat_for_prompts(mask, len(ids)),
                prompt_ids=prompt_rows(ids, len(chunk), device),
            )
