"""Token cross-entropies of decoder logits, per row and per prompt, always reduced in float32.

Low-precision logits (bf16/fp16) are upcast block by block (``LowPrecisionCrossEntropy``), so a
step never holds a float32 copy of the whole (rows·tokens, vocabulary) matrix: its peak memory stays
that of a plain bf16 cross-entropy (what HF's T5 loss and PEFT do; ``benchmarks/train_bench.py
--dtype bfloat16`` measures it) while the losses and their gradients keep float32 accuracy.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

BLOCK_ELEMENTS = 1 << 24  # at most this many logits upcast at a time (64 MiB of float32)
BLOCKS = (
    8  # and at most an eighth of the rows: a block's float32 copy is a quarter of the size of all the (16-bit) logits
)


class LowPrecisionCrossEntropy(torch.autograd.Function):
    """Per-row cross-entropy of low-precision logits (N, V) against labels (N,) (-100: ignored), in float32.

    Forward and backward walk blocks of rows, each upcast on its own; only the low-precision logits
    are saved for backward, which recomputes the softmax.

    >>> logits, labels = torch.randn(6, 11).bfloat16().requires_grad_(), torch.tensor([1, 2, -100, 4, 5, 6])
    >>> loss = LowPrecisionCrossEntropy.apply(logits, labels)
    >>> torch.allclose(loss, F.cross_entropy(logits.float(), labels, reduction="none"))
    True
    """

    @staticmethod
    def forward(ctx, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(logits, labels)
        losses = torch.empty(labels.shape, dtype=torch.float32, device=logits.device)  # (N,)
        for rows in _row_blocks(logits):
            losses[rows] = F.cross_entropy(logits[rows].float(), labels[rows], ignore_index=-100, reduction="none")
        return losses

    @staticmethod
    def backward(ctx, grad_losses: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        logits, labels = ctx.saved_tensors
        grad_logits = torch.empty_like(logits)  # (N, V), low precision
        for rows in _row_blocks(logits):
            block_labels = labels[rows]
            kept = block_labels != -100
            grad = logits[rows].float()  # d loss / d logits = softmax - one_hot(label), computed in place
            grad -= grad.logsumexp(dim=-1, keepdim=True)
            grad.exp_()
            grad[kept, block_labels[kept]] -= 1
            grad *= (grad_losses[rows] * kept)[:, None]
            grad_logits[rows] = grad.to(logits.dtype)
        return grad_logits, None


def _row_blocks(logits: torch.Tensor) -> list[slice]:
    """Slices of rows of ``logits`` (N, V): at most ``BLOCK_ELEMENTS`` elements and a ``BLOCKS``-th of the rows each."""
    n_rows, vocabulary = logits.shape
    step = max(1, min(BLOCK_ELEMENTS // vocabulary, -(-n_rows // BLOCKS)))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of every target token: logits (R, S, V), labels (R, S) with -100 padding -> (R, S) float32, 0 at padding.

    The logits are flattened to (R·S, V) rows: ``cross_entropy`` over a class dim in the middle
    ((R, V, S) layout) is several times slower on CPU."""
    flat_logits, flat_labels = logits.flatten(0, 1), labels.flatten()
    if logits.dtype == torch.float32:
        losses = F.cross_entropy(flat_logits, flat_labels, ignore_index=-100, reduction="none")
    else:
        losses = LowPrecisionCrossEntropy.apply(flat_logits, flat_labels)
    return losses.view_as(labels)


def sequence_log_probs(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum over target tokens of log p(token): logits (R, S, V), labels (R, S) with -100 padding -> (R,)."""
    return -token_losses(logits, labels).sum(dim=1)


def per_prompt_loss_sums(
    logits: torch.Tensor, labels: torch.Tensor, prompt_ids: torch.Tensor, n_prompts: int
) -> torch.Tensor:
    """Per prompt: the sum of token cross-entropies over its rows, (N,)."""
    token = token_losses(logits, labels)  # (R, S)
    return torch.zeros(n_prompts, device=logits.device).index_add(0, prompt_ids, token.sum(dim=1))


def per_prompt_token_counts(labels: torch.Tensor, prompt_ids: torch.Tensor, n_prompts: int) -> torch.Tensor:
    """Per prompt: the number of target tokens (labels other than -100) over its rows, (N,) float."""
    counts = (labels != -100).sum(dim=1).float()  # (R,)
    return torch.zeros(n_prompts, device=labels.device).index_add(0, prompt_ids, counts)


def per_prompt_loss(
    logits: torch.Tensor, labels: torch.Tensor, prompt_ids: torch.Tensor, n_prompts: int
) -> torch.Tensor:
    """Each prompt's token-mean cross-entropy over its own rows: (N,).

    Summing these gives a joint loss whose gradient for prompt n is exactly the gradient of prompt
    n trained alone on the same examples.
    """
    token_count = per_prompt_token_counts(labels, prompt_ids, n_prompts)
    return per_prompt_loss_sums(logits, labels, prompt_ids, n_prompts) / token_count.clamp(min=1)
