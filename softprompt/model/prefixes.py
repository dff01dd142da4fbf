"""The prefix bank: N deep key/value prefixes (Li & Liang 2021) for every attention site.

Each prompt n owns, per site s in (encoder, decoder, cross) and layer l, keys and values of shape
(Hkv, Pp, d) — the site's key/value heads and head size (``layouts.SiteGeometry``: T5's ``num_heads`` of ``d_kv``,
never d_model / heads; T5Gemma's ``num_key_value_heads`` of ``head_dim``, its encoder's and decoder's own). Two
parameterisations:

* direct: the prefixes themselves are parameters;
* reparameterised (training): ``kv = anchor + W2 · tanh(W1 · P' + b1) + b2`` with a small matrix
  ``P'`` (Pp, k) and a per-prompt MLP (k -> hidden -> sum_s L_s·2·H_s·d_s). ``anchor`` is a fixed
  buffer: zero for random init, the real-word activations for text init (then W2, b2 start at
  zero so the initial prefix equals those activations exactly). ``fold()`` computes the prefixes
  once and drops the MLP.

Every tensor has the prompt index as its leading dimension, so prompts never share a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from softprompt.model.families import geometry_of
from softprompt.model.layouts import SITES


@dataclass(frozen=True)
class PrefixShape:
    """What a prefix bank must match in a model: sites, layers per site, key/value heads and head size (one for every
    site, or one per site: T5Gemma's encoder and decoder may differ), length. Stored one per site.

    >>> PrefixShape(("encoder", "cross"), (2, 2), heads=4, d_kv=8, length=3).site_shape(1)  # (L, 2, Hkv, Pp, d)
    (2, 2, 4, 3, 8)
    """

    sites: tuple[str, ...]
    layers: tuple[int, ...]  # one count per site
    heads: tuple[int, ...]  # one per site (an int is every site's)
    d_kv: tuple[int, ...]  # one per site (an int is every site's)
    length: int

    def __post_init__(self) -> None:
        for name in ("heads", "d_kv"):
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) * len(self.sites) if isinstance(value, int) else tuple(value))

    @classmethod
    def for_config(cls, config, length: int, sites: Sequence[str] = SITES) -> PrefixShape:
        """The prefix shape of a supported model's config (``families.geometry_of``)."""
        geometry = [geometry_of(config).sites[site] for site in sites]
        return cls(
            tuple(sites),
            tuple(g.layers for g in geometry),
            tuple(g.heads for g in geometry),
            tuple(g.head_dim for g in geometry),
            length,
        )

    def site_shape(self, index: int) -> tuple[int, ...]:
        """Per-prompt shape of one site's prefix: (L, 2, Hkv, Pp, d)."""
        return (self.layers[index], 2, self.heads[index], self.length, self.d_kv[index])

    def site_width(self, index: int) -> int:
        """Number of values one prefix position carries for one site: L·2·Hkv·d."""
        return self.layers[index] * 2 * self.heads[index] * self.d_kv[index]


class PrefixBank(nn.Module):
    """N deep prefixes, direct or reparameterised; ``forward(prompt_ids)`` gives per-row prefixes.

    >>> from softprompt.model.random_models import random_t5
    >>> shape = PrefixShape.for_config(random_t5(num_layers=2).config, length=10)  # every site, 10 positions
    >>> bank = PrefixBank(3, shape, reparam_dim=16)  # reparameterised by a per-prompt MLP while training
    >>> bank.init_random(seeds=[0, 1, 2])
    >>> bank(torch.tensor([2]))["encoder"].shape  # (B, L, 2, H, Pp, d_kv)
    torch.Size([1, 2, 2, 4, 10, 8])
    >>> bank.fold().reparameterised  # after training: the prefixes themselves, the MLP dropped
    False
    """

    def __init__(self, n_prompts: int, shape: PrefixShape, reparam_dim: int = 0, reparam_hidden: int = 512) -> None:
        super().__init__()
        self.n_prompts = n_prompts
        self.shape = shape
        if reparam_dim > 0:
            width = sum(shape.site_width(i) for i in range(len(shape.sites)))
            self.embedding = nn.Parameter(torch.zeros(n_prompts, shape.length, reparam_dim))  # P'
            self.w1 = nn.Parameter(torch.zeros(n_prompts, reparam_dim, reparam_hidden))
            self.b1 = nn.Parameter(torch.zeros(n_prompts, 1, reparam_hidden))
            self.w2 = nn.Parameter(torch.zeros(n_prompts, reparam_hidden, width))
            self.b2 = nn.Parameter(torch.zeros(n_prompts, 1, width))
            self.register_buffer("anchor", torch.zeros(n_prompts, shape.length, width))
        else:
            self.kv = nn.ParameterDict(
                {site: nn.Parameter(torch.zeros(n_prompts, *shape.site_shape(i))) for i, site in enumerate(shape.sites)}
            )

    @property
    def reparameterised(self) -> bool:
        return not hasattr(self, "kv")

    def full(self) -> dict[str, torch.Tensor]:
        """Every prompt's prefixes: site -> (N, L, 2, H, Pp, d_kv)."""
        if not self.reparameterised:
            return dict(self.kv)
        hidden = torch.tanh(self.embedding @ self.w1 + self.b1)  # (N, Pp, hidden)
        flat = self.anchor + hidden @ self.w2 + self.b2  # (N, Pp, width)
        return self._split_sites(flat)

    def forward(self, prompt_ids: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-row prefixes: (B,) ids -> site -> (B, L, 2, H, Pp, d_kv). ``index_select`` keeps the backward
        deterministic on the CPU (see ``PromptBank.forward``): rows of one prompt add up in a fixed order."""
        return {site: kv.index_select(0, prompt_ids) for site, kv in self.full().items()}

    def fold(self) -> PrefixBank:
        """A direct bank holding the computed prefixes (the MLP is dropped)."""
        folded = PrefixBank(self.n_prompts, self.shape)
        with torch.no_grad():
            for site, kv in self.full().items():
                folded.kv[site].copy_(kv)
        return folded.to(next(self.parameters()).device)

    def init_random(self, seeds: Sequence[int], std: float = 0.02) -> None:
        """Prompt i from ``seeds[i]``: direct prefixes ~ N(0, std); reparam P' ~ N(0, 1) and
        PyTorch-default (uniform ±1/sqrt(fan_in)) MLP weights, zero anchor."""
        with torch.no_grad():
            for n, seed in enumerate(seeds):
                generator = torch.Generator().manual_seed(seed)
                if not self.reparameterised:
                    for tensor in self.kv.values():
                        tensor[n] = torch.randn(tensor.shape[1:], generator=generator) * std
                    continue
                self.embedding[n] = torch.randn(self.embedding.shape[1:], generator=generator)
                for weight, bias in ((self.w1, self.b1), (self.w2, self.b2)):
                    bound = weight.shape[1] ** -0.5
                    weight[n] = (torch.rand(weight.shape[1:], generator=generator) * 2 - 1) * bound
                    bias[n] = (torch.rand(bias.shape[1:], generator=generator) * 2 - 1) * bound
                self.anchor[n] = 0

    def init_values(self, values: dict[str, torch.Tensor], seeds: Sequence[int]) -> None:
        """Start the prompts at the given prefixes, site -> (L, 2, H, Pp, d_kv) shared by every prompt
        (e.g. real-word activations) or (N, L, 2, H, Pp, d_kv), one per prompt (e.g. another run's).
        Reparameterised banks keep them in ``anchor`` and start W2 = b2 = 0."""
        with torch.no_grad():
            if not self.reparameterised:
                for site, tensor in self.kv.items():
                    tensor.copy_(values[site].expand_as(tensor))
                return
            self.init_random(seeds)
            n, length = self.n_prompts, self.shape.length
            flat = torch.cat(
                [
                    values[site].expand(n, *self.shape.site_shape(i)).permute(0, 4, 1, 2, 3, 5).reshape(n, length, -1)
                    for i, site in enumerate(self.shape.sites)
                ],
                dim=-1,
            )  # (N, Pp, width)
            self.anchor.copy_(flat)
            self.w2.zero_()
            self.b2.zero_()

    def _split_sites(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        # flat (N, Pp, width) -> site -> (N, L, 2, H, Pp, d_kv)
        out, start = {}, 0
        n, length = flat.shape[:2]
        for i, site in enumerate(self.shape.sites):
            width = self.shape.site_width(i)
            layers, _, heads, _, d_kv = self.shape.site_shape(i)
            chunk = flat[..., start : start + width].reshape(n, length, layers, 2, heads, d_kv)
            out[site] = chunk.permute(0, 2, 3, 4, 1, 5)
            start += width
        return out
