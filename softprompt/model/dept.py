"""DePT's low-rank positional update of the input token embeddings (Shi & Lipani, ICLR 2024).

Each prompt n owns A_n (s, r) and B_n (r, d); a row that reads prompt n gets ``A_n @ B_n`` (s, d) added to its first s
input token embeddings, position by position (the prompt vectors in front are not touched; positions past s get
nothing). A starts small and random, B at zero, so the update starts at exactly zero. Every tensor has the prompt index
first, so rows of one batch may read different prompts' updates (a gather, like the prompt table).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class DeptBank(nn.Module):
    """N low-rank positional updates of rank r over s input positions, d wide.

    >>> bank = DeptBank(n_prompts=3, positions=64, rank=8, d_model=192)
    >>> bank.init_random(seeds=[0, 1, 2])
    >>> bank(torch.tensor([0, 2]), length=10).abs().max().item()  # B starts at zero: no update yet
    0.0
    >>> bank(torch.tensor([0, 2]), length=80).shape  # (B, T, d); positions past s get nothing
    torch.Size([2, 80, 192])
    """

    def __init__(self, n_prompts: int, positions: int, rank: int, d_model: int) -> None:
        super().__init__()
        self.a = nn.Parameter(torch.zeros(n_prompts, positions, rank))
        self.b = nn.Parameter(torch.zeros(n_prompts, rank, d_model))

    @property
    def n_prompts(self) -> int:
        return self.a.shape[0]

    @property
    def positions(self) -> int:
        return self.a.shape[1]

    @property
    def rank(self) -> int:
        return self.a.shape[2]

    def init_random(self, seeds: Sequence[int]) -> None:
        """Prompt i's A from ``seeds[i]``, uniform ±1/sqrt(r) (small: B, at zero, scales it); B = 0."""
        with torch.no_grad():
            for n, seed in enumerate(seeds):
                generator = torch.Generator().manual_seed(seed)
                self.a[n] = (torch.rand(self.a.shape[1:], generator=generator) * 2 - 1) * self.rank**-0.5
            self.b.zero_()

    def forward(self, prompt_ids: torch.Tensor, length: int) -> torch.Tensor:
        """The rows' updates of their first ``length`` input positions: (B,) ids -> (B, length, d), zero past s.
        ``index_select`` keeps the backward deterministic on the CPU (see ``PromptBank.forward``)."""
        used = min(length, self.positions)
        a = self.a.index_select(0, prompt_ids)[:, :used]  # (B, used, r)
        update = torch.bmm(a, self.b.index_select(0, prompt_ids))  # (B, used, d)
        if used < length:
            update = torch.cat([update, update.new_zeros(update.shape[0], length - used, update.shape[2])], dim=1)
        return update

    def parameter_count(self) -> int:
        """Trainable values per prompt: s·r + r·d."""
        return self.positions * self.rank + self.rank * self.b.shape[2]


def matched_rank(dropped_vectors: int, positions: int, d_model: int) -> int:
    """The rank whose update (s·r + r·d values) makes up for ``dropped_vectors`` prompt vectors of width d: a DePT run
    with a prompt that much shorter trains about as many values as the plain prompt (Shi & Lipani's matching).

    >>> matched_rank(dropped_vectors=10, positions=64, d_model=192)  # P 20 -> 10 on t5-nano: 1,920 values
    8
    """
    return max(1, round(dropped_vectors * d_model / (positions + d_model)))


def concat_dept(banks: Sequence[DeptBank | None], n_prompts: Sequence[int], d_model: int) -> DeptBank | None:
    """One bank of every run's updates, in run order (a run without one: zero rows). Ranks and position counts may
    differ: the smaller ones are padded with zeros, which leave every product A @ B as it was. None if no run has one.

    >>> one = DeptBank(2, positions=8, rank=2, d_model=4)
    >>> concat_dept([one, None], [2, 3], d_model=4).a.shape  # 2 + 3 prompts
    torch.Size([5, 8, 2])
    """
    present = [bank for bank in banks if bank is not None]
    if not present:
        return None
    positions, rank = max(b.positions for b in present), max(b.rank for b in present)
    pooled = DeptBank(sum(n_prompts), positions, rank, d_model)
    start = 0
    with torch.no_grad():
        for bank, n in zip(banks, n_prompts):
            if bank is not None:
                pooled.a[start : start + n, : bank.positions, : bank.rank] = bank.a
                pooled.b[start : start + n, : bank.rank] = bank.b
            start += n
    return pooled
