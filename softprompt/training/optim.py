"""Optimisers and clipping that keep N prompts independent.

Every trainable tensor of softprompt has the prompt index as its leading dimension. Adafactor's
update-RMS clipping and a global-norm gradient clip would normally look at a whole tensor (or all
tensors) and so couple the prompts; here they are computed per prompt (per leading index), so
training N prompts jointly gives each the same result as training it alone.

When input prompts and deep prefixes train together, each bank keeps its own recipe
(``BankOptimizer``: Adafactor 0.3 for input prompts as Lester et al., AdamW 3e-4 for prefixes as
Li & Liang, by default), still one step per batch and one flat, checkpointable state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch.optim import AdamW, Optimizer

OPTIMIZERS = ("adafactor", "adamw")


class PerPromptAdafactor(Optimizer):
    """Adafactor (Shazeer & Stern 2018) without momentum, as in Lester et al.: constant lr,
    no parameter scaling, second-moment decay ``1 - t^decay_rate``, factored over the last two
    dimensions, update RMS clipped per prompt, decoupled weight decay."""

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 0.3,
        decay_rate: float = -0.8,
        weight_decay: float = 1e-5,
        clip_threshold: float = 1.0,
        eps: float = 1e-30,
    ) -> None:
        super().__init__(
            params,
            dict(lr=lr, decay_rate=decay_rate, weight_decay=weight_decay, clip_threshold=clip_threshold, eps=eps),
        )

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim API
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, group)

    def _update(self, param: torch.Tensor, group: dict) -> None:
        grad = param.grad.float()
        state = self.state[param]
        factored = grad.dim() >= 3  # (N, ..., rows, cols)
        if not state:
            state["step"] = 0
            if factored:
                state["row"] = torch.zeros(grad.shape[:-1], device=grad.device)
                state["col"] = torch.zeros(grad.shape[:-2] + grad.shape[-1:], device=grad.device)
            else:
                state["sq"] = torch.zeros_like(grad)
        state["step"] += 1
        beta2 = 1.0 - state["step"] ** group["decay_rate"]
        squared = grad.square() + group["eps"]
        if factored:
            state["row"].mul_(beta2).add_(squared.mean(dim=-1), alpha=1 - beta2)
            state["col"].mul_(beta2).add_(squared.mean(dim=-2), alpha=1 - beta2)
            row = (state["row"] / state["row"].mean(dim=-1, keepdim=True)).rsqrt().unsqueeze(-1)
            update = row * state["col"].unsqueeze(-2).rsqrt() * grad
        else:
            state["sq"].mul_(beta2).add_(squared, alpha=1 - beta2)
            update = state["sq"].rsqrt() * grad
        rms = update.flatten(1).square().mean(dim=1).sqrt()  # (N,) one RMS per prompt
        update = update / _per_row((rms / group["clip_threshold"]).clamp(min=1.0), update)
        if group["weight_decay"]:
            param.mul_(1 - group["weight_decay"] * group["lr"])
        param.add_(update.to(param.dtype), alpha=-group["lr"])


def make_optimizer(name: str, params: list[torch.Tensor], lr: float, weight_decay: float) -> Optimizer:
    """``adafactor`` (the paper's default) or ``adamw`` (elementwise, so independent per prompt)."""
    if name == "adafactor":
        return PerPromptAdafactor(params, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use one of {OPTIMIZERS}")


class BankOptimizer(Optimizer):
    """Several optimisers (one per bank) stepped as one. ``param_groups`` is the parts' groups in order
    and every part shares this optimiser's ``state``, so ``state_dict()`` / ``load_state_dict()`` (and
    checkpoints) see one flat optimiser, while each part updates only its own parameters.

    >>> prompts, prefixes = torch.nn.Parameter(torch.zeros(2, 3, 4)), torch.nn.Parameter(torch.zeros(2, 5))
    >>> opt = BankOptimizer([PerPromptAdafactor([prompts], lr=0.3), AdamW([prefixes], lr=3e-4)])
    >>> [group["lr"] for group in opt.param_groups]
    [0.3, 0.0003]
    """

    def __init__(self, parts: Sequence[Optimizer]) -> None:
        self.parts = list(parts)
        super().__init__([p for part in self.parts for group in part.param_groups for p in group["params"]], {})
        self.param_groups = [group for part in self.parts for group in part.param_groups]
        self._share()

    def _share(self) -> None:
        """Point every part at its slice of ``param_groups`` and at the shared ``state``."""
        start = 0
        for part in self.parts:
            part.param_groups = self.param_groups[start : start + len(part.param_groups)]
            part.state = self.state
            start += len(part.param_groups)

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim API
        for part in self.parts:
            part.step()

    def load_state_dict(self, state_dict: dict) -> None:  # noqa: D102 - torch.optim API
        super().load_state_dict(state_dict)  # replaces param_groups and state with new objects
        self._share()


def make_bank_optimizer(recipes: Sequence[tuple[list[torch.Tensor], str, float]], weight_decay: float) -> BankOptimizer:
    """One ``BankOptimizer`` over banks given as (parameters, optimizer name, lr), e.g. input prompts and prefixes."""
    return BankOptimizer([make_optimizer(name, params, lr, weight_decay) for params, name, lr in recipes])


@torch.no_grad()
def clip_grad_norm_per_prompt(params: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each prompt's global gradient norm (over all tensors) to ``max_norm``; returns (N,) norms."""
    grads = [p.grad for p in params if p.grad is not None]
    norms = torch.stack([g.float().flatten(1).square().sum(dim=1) for g in grads]).sum(dim=0).sqrt()  # (N,)
    scale = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for grad in grads:
        grad.mul_(_per_row(scale, grad).to(grad.dtype))
    return norms


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(N,) -> (N, 1, ..., 1) broadcastable against ``like``."""
    return values.view(-1, *([1] * (like.dim() - 1)))
