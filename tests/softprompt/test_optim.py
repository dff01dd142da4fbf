"""Per-prompt optimisation: Adafactor statistics and gradient clipping never couple prompts."""

import torch
from transformers.optimization import Adafactor

from softprompt.optim import PerPromptAdafactor, clip_grad_norm_per_prompt


def _run(param, grads, optimizer):
    for grad in grads:
        param.grad = grad.clone()
        optimizer.step()
    return param.detach()


def test_one_prompt_matches_transformers_adafactor():
    torch.manual_seed(0)
    start = torch.randn(4, 6)
    grads = [torch.randn(4, 6) for _ in range(4)]
    ours = torch.nn.Parameter(start.clone()[None])
    theirs = torch.nn.Parameter(start.clone())
    settings = dict(lr=0.3, weight_decay=1e-5)
    _run(ours, [g[None] for g in grads], PerPromptAdafactor([ours], **settings))
    reference = Adafactor([theirs], scale_parameter=False, relative_step=False, warmup_init=False, decay_rate=-0.8, **settings)
    _run(theirs, grads, reference)
    assert torch.allclose(ours[0], theirs, atol=1e-6)


def test_prompts_update_as_if_alone():
    torch.manual_seed(1)
    start = torch.randn(3, 4, 6)
    grads = [torch.randn(3, 4, 6) * torch.tensor([1.0, 100.0, 0.01]).view(3, 1, 1) for _ in range(3)]
    bank = torch.nn.Parameter(start.clone())
    joint = _run(bank, grads, PerPromptAdafactor([bank]))  # gradient scales differ 10^4 between prompts
    for n in range(3):
        alone = torch.nn.Parameter(start[n : n + 1].clone())
        _run(alone, [g[n : n + 1] for g in grads], PerPromptAdafactor([alone]))
        assert torch.allclose(joint[n], alone[0], atol=1e-6)


def test_clip_is_per_prompt():
    a = torch.nn.Parameter(torch.zeros(2, 3))
    b = torch.nn.Parameter(torch.zeros(2, 2, 2))
    a.grad = torch.tensor([[3.0, 0.0, 0.0], [0.1, 0.0, 0.0]])
    b.grad = torch.zeros(2, 2, 2)
    b.grad[0, 0, 0] = 4.0
    norms = clip_grad_norm_per_prompt([a, b], max_norm=1.0)
    assert torch.allclose(norms, torch.tensor([5.0, 0.1]))
    assert torch.allclose(a.grad[0], torch.tensor([0.6, 0.0, 0.0]), atol=1e-5)  # prompt 0 scaled by 1/5
    assert torch.allclose(a.grad[1], torch.tensor([0.1, 0.0, 0.0]))  # prompt 1 untouched
