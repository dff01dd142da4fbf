"""Per-prompt optimisation: Adafactor statistics and gradient clipping never couple prompts."""

import torch
from torch.optim import AdamW
from transformers.optimization import Adafactor

from softprompt.training.optim import BankOptimizer, PerPromptAdafactor, clip_grad_norm_per_prompt


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
    reference = Adafactor(
        [theirs], scale_parameter=False, relative_step=False, warmup_init=False, decay_rate=-0.8, **settings
    )
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


def _banks(seed):
    torch.manual_seed(seed)
    return torch.nn.Parameter(torch.randn(2, 3, 4)), torch.nn.Parameter(torch.randn(2, 5))


def _bank_optimizer(prompts, prefixes):
    return BankOptimizer([PerPromptAdafactor([prompts], lr=0.3), AdamW([prefixes], lr=3e-4, weight_decay=1e-5)])


def _step(optimizer, params, grads):
    for param, grad in zip(params, grads):
        param.grad = grad.clone()
    optimizer.step()


def test_bank_optimizer_steps_each_bank_with_its_own_recipe():
    grads = [(torch.randn(2, 3, 4), torch.randn(2, 5)) for _ in range(3)]
    joint = _banks(0)
    optimizer = _bank_optimizer(*joint)
    assert [type(p).__name__ for p in optimizer.parts] == ["PerPromptAdafactor", "AdamW"]
    assert [g["lr"] for g in optimizer.param_groups] == [0.3, 3e-4]
    alone = _banks(0)
    separate = [PerPromptAdafactor([alone[0]], lr=0.3), AdamW([alone[1]], lr=3e-4, weight_decay=1e-5)]
    for step in grads:
        _step(optimizer, joint, step)
        for opt, param, grad in zip(separate, alone, step):
            _step(opt, [param], [grad])
    assert torch.equal(joint[0], alone[0]) and torch.equal(joint[1], alone[1])
    assert (joint[1] - _banks(0)[1]).abs().max() < 3 * 3e-4 + 1e-6  # AdamW moves ~lr per step; Adafactor 0.3 far more
    assert (joint[0] - _banks(0)[0]).abs().max() > 0.1


def test_bank_optimizer_state_round_trips_bit_identically():
    grads = [(torch.randn(2, 3, 4), torch.randn(2, 5)) for _ in range(4)]
    full = _banks(1)
    full_opt = _bank_optimizer(*full)
    for step in grads:
        _step(full_opt, full, step)
    part = _banks(1)
    first = _bank_optimizer(*part)
    for step in grads[:2]:
        _step(first, part, step)
    saved = {
        "state": {
            k: {n: v.clone() if torch.is_tensor(v) else v for n, v in s.items()}
            for k, s in first.state_dict()["state"].items()
        }
    }
    assert sorted(saved["state"]) == [0, 1] and set(saved["state"][0]) == {
        "step",
        "row",
        "col",
    }  # one flat state, both banks
    resumed = tuple(torch.nn.Parameter(p.detach().clone()) for p in part)
    second = _bank_optimizer(*resumed)
    second.load_state_dict({"state": saved["state"], "param_groups": second.state_dict()["param_groups"]})
    for step in grads[2:]:
        _step(second, resumed, step)
    assert torch.equal(full[0], resumed[0]) and torch.equal(full[1], resumed[1])
    assert second.parts[0].param_groups[0] is second.param_groups[0]  # lr changes still reach the parts after loading
