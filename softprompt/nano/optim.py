"""The optimiser of t5-nano's pre-training (nanoT5's AdamWScale)."""

from __future__ import annotations

import math

import torch


class RMSScaledAdamW(torch.optim.Optimizer):
    """nanoT5's AdamWScale: Adam whose step for each tensor is multiplied by max(1e-3, RMS(tensor)),
    like Adafactor's ``scale_parameter``; bias-corrected, no weight decay."""

    def __init__(self, params, lr: float = 2e-2, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-6) -> None:
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))
        self.steps_taken = 0

    @torch.no_grad()
    def step(self, closure=None):  # noqa: D102 - torch.optim API
        self.steps_taken += 1
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            step_size = group["lr"] * math.sqrt(1 - beta2**self.steps_taken) / (1 - beta1**self.steps_taken)
            for param in group["params"]:
                if param.grad is None:
                    continue
                state = self.state[param]
                if not state:
                    state["exp_avg"], state["exp_avg_sq"] = torch.zeros_like(param), torch.zeros_like(param)
                state["exp_avg"].mul_(beta1).add_(param.grad, alpha=1 - beta1)
                state["exp_avg_sq"].mul_(beta2).addcmul_(param.grad, param.grad, value=1 - beta2)
                scale = param.square().mean().sqrt().clamp(min=1e-3)
                param.sub_(state["exp_avg"] / (state["exp_avg_sq"].sqrt() + group["eps"]) * (step_size * scale))
