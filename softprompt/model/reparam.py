"""Residual reparameterisation of input prompts (Razdaibiedina et al., Findings of ACL 2023, "Residual Prompt Tuning").

While training, each prompt's vectors P (P, d) pass through the prompt's own shallow bottleneck MLP with a skip:
``P' = dropout(LN(W2 · relu(W1 · P + b1) + b2)) + P`` (Linear d→m, ReLU, Linear m→d, LayerNorm, dropout, then the
skip, the reference code's order). The N prompts' MLPs are stacked, (N, d, m) and (N, m, d), and run in one batched
matmul (``torch.baddbmm``), so every tensor has the prompt index first and prompts never share a parameter.
``fold()`` computes P' once and returns a plain ``PromptBank``: every consumer of a finished run sees ordinary prompts.

Dropout masks are drawn from each prompt's own seed and the training step (``dropout_step``), not from the global
random state, so a joint run equals its prompts trained alone and a resumed run retraces the straight one bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from softprompt.model.prompts import PromptBank

REPARAMS = ("none", "residual")


class ResidualPromptBank(PromptBank):
    """N prompts, each reparameterised by its own residual bottleneck MLP; ``weight`` holds the raw prompts P.

    >>> bank = ResidualPromptBank(n_prompts=3, length=20, d_model=192, hidden=64)
    >>> bank.init_mlp(seeds=[0, 1, 2])
    >>> bank(torch.tensor([0, 2])).shape  # the rows' reparameterised prompts: (B, P, d)
    torch.Size([2, 20, 192])
    >>> type(bank.fold()).__name__, bank.fold().weight.shape  # after training: the prompts P' themselves
    ('PromptBank', torch.Size([3, 20, 192]))
    """

    def __init__(self, n_prompts: int, length: int, d_model: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__(n_prompts, length, d_model)
        self.dropout = dropout
        self.dropout_seeds: tuple[int, ...] = tuple(range(n_prompts))
        self.dropout_step = 0  # set by the training loop before each step's forward
        self.w1 = nn.Parameter(torch.zeros(n_prompts, d_model, hidden))
        self.b1 = nn.Parameter(torch.zeros(n_prompts, 1, hidden))
        self.w2 = nn.Parameter(torch.zeros(n_prompts, hidden, d_model))
        self.b2 = nn.Parameter(torch.zeros(n_prompts, 1, d_model))
        self.ln_weight = nn.Parameter(torch.ones(n_prompts, 1, d_model))
        self.ln_bias = nn.Parameter(torch.zeros(n_prompts, 1, d_model))

    def init_mlp(self, seeds: Sequence[int]) -> None:
        """Prompt i's MLP from ``seeds[i]``: PyTorch-default linear layers (uniform ±1/sqrt(fan_in)), LayerNorm 1 and
        0; its dropout masks also follow that seed."""
        self.dropout_seeds = tuple(seeds)
        with torch.no_grad():
            for n, seed in enumerate(seeds):
                generator = torch.Generator().manual_seed(seed)
                for weight, bias in ((self.w1, self.b1), (self.w2, self.b2)):
                    bound = weight.shape[1] ** -0.5
                    weight[n] = (torch.rand(weight.shape[1:], generator=generator) * 2 - 1) * bound
                    bias[n] = (torch.rand(bias.shape[1:], generator=generator) * 2 - 1) * bound
            self.ln_weight.fill_(1.0)
            self.ln_bias.zero_()

    def full(self) -> torch.Tensor:
        """Every prompt's reparameterised vectors P': (N, P, d), all N MLPs in one batched op."""
        hidden = torch.relu(torch.baddbmm(self.b1, self.weight, self.w1))  # (N, P, m)
        out = torch.baddbmm(self.b2, hidden, self.w2)  # (N, P, d)
        out = F.layer_norm(out, out.shape[-1:]) * self.ln_weight + self.ln_bias  # per-prompt LayerNorm
        if self.training and self.dropout > 0:
            out = out * self._dropout_mask(out)
        return out + self.weight

    def forward(self, prompt_ids: torch.Tensor) -> torch.Tensor:
        """Gather one reparameterised prompt per row: (B,) ids -> (B, P, d) (``index_select``, as ``PromptBank``)."""
        return self.full().index_select(0, prompt_ids)

    def fold(self) -> PromptBank:
        """A plain bank holding the computed prompts P' (evaluation mode: no dropout); the MLPs are dropped."""
        folded = PromptBank(self.n_prompts, self.length, self.weight.shape[2])
        was_training = self.training
        self.eval()
        with torch.no_grad():
            folded.weight.copy_(self.full())
        self.train(was_training)
        return folded.to(self.weight.device)

    def _dropout_mask(self, like: torch.Tensor) -> torch.Tensor:
        """(N, P, d) inverted-dropout mask, prompt n's drawn from (its seed, the step) on the CPU: reproducible on any
        device and on resume."""
        keep = 1.0 - self.dropout
        masks = []
        for seed in self.dropout_seeds:
            generator = torch.Generator().manual_seed(seed * 1_000_003 + self.dropout_step)
            masks.append((torch.rand(like.shape[1:], generator=generator) < keep).float() / keep)
        return torch.stack(masks).to(like.device, like.dtype)


def fold_prompts(bank: PromptBank | None) -> PromptBank | None:
    """``bank`` as plain prompts: a residual bank folded, any other bank (or None) as it is."""
    return bank.fold() if isinstance(bank, ResidualPromptBank) else bank
