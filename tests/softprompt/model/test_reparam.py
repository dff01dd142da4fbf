"""Residual prompt reparameterisation (softprompt.model.reparam), on a tiny random T5 built in-process: the batched
MLPs equal one reference MLP per prompt, prompts stay independent, and folded prompts give the unfolded model's logits."""

import pytest
import torch
from torch import nn

from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from softprompt.model.reparam import ResidualPromptBank, fold_prompts


def _bank(n=3, length=5, d=32, hidden=8, dropout=0.0, seeds=(0, 1, 2)):
    bank = ResidualPromptBank(n, length, d, hidden, dropout)
    bank.init_mlp(seeds)
    with torch.no_grad():
        bank.weight.copy_(torch.randn(n, length, d, generator=torch.Generator().manual_seed(7)))
        bank.ln_weight.add_(torch.rand(n, 1, d, generator=torch.Generator().manual_seed(8)))  # not the identity
        bank.ln_bias.add_(torch.rand(n, 1, d, generator=torch.Generator().manual_seed(9)))
    return bank


def _reference(bank: ResidualPromptBank, n: int) -> torch.Tensor:
    """Prompt n through torch's own layers: Linear d→m, ReLU, Linear m→d, LayerNorm, plus the skip."""
    d, m = bank.w1.shape[1:]
    first, second, norm = nn.Linear(d, m), nn.Linear(m, d), nn.LayerNorm(d)
    with torch.no_grad():
        first.weight.copy_(bank.w1[n].T)
        first.bias.copy_(bank.b1[n, 0])
        second.weight.copy_(bank.w2[n].T)
        second.bias.copy_(bank.b2[n, 0])
        norm.weight.copy_(bank.ln_weight[n, 0])
        norm.bias.copy_(bank.ln_bias[n, 0])
        return norm(second(torch.relu(first(bank.weight[n])))) + bank.weight[n]


def test_the_batched_mlps_equal_one_reference_mlp_per_prompt():
    bank = _bank()
    full = bank.full().detach()
    for n in range(3):
        assert torch.allclose(full[n], _reference(bank, n), atol=1e-5)
    assert not torch.allclose(full, bank.weight)  # the MLP changes the prompts


def test_each_prompt_depends_only_on_its_own_parameters_and_seed():
    """Prompt 1 of a three-prompt bank, dropout included, equals a one-prompt bank holding its parameters and seed."""
    joint = _bank(dropout=0.3)
    alone = ResidualPromptBank(1, 5, 32, 8, 0.3)
    alone.init_mlp([1])
    alone.load_state_dict({k: v[1:2] for k, v in joint.state_dict().items()})
    for step in (0, 4):
        joint.dropout_step = alone.dropout_step = step
        assert torch.equal(joint.full()[1], alone.full()[0])
    joint.full()[1].sum().backward()
    touched = [name for name, p in joint.named_parameters() if p.grad[[0, 2]].abs().sum() > 0]
    assert touched == []  # no other prompt's parameters get a gradient


def test_dropout_masks_follow_the_step_and_are_off_in_evaluation_and_in_the_fold():
    bank = _bank(dropout=0.5)
    first = bank.full()
    bank.dropout_step = 1
    assert not torch.equal(first, bank.full())  # another step, other masks
    bank.dropout_step = 0
    assert torch.equal(first, bank.full())  # the same step, the same masks (a resumed run retraces them)
    bank.eval()
    evaluated = bank.full()
    bank.train()
    assert torch.equal(bank.fold().weight, evaluated) and bank.training  # the fold leaves the training mode alone


def test_folded_prompts_give_the_unfolded_models_logits():
    frozen = random_t5()
    bank = _bank()
    folded = fold_prompts(bank)
    assert type(folded) is PromptBank and fold_prompts(folded) is folded
    ids = torch.randint(5, 500, (4, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    rows, decoder = torch.tensor([2, 0, 1, 2]), torch.zeros(4, 3, dtype=torch.long)
    with torch.no_grad():
        unfolded = PromptedT5(frozen, bank)(ids, mask, rows, decoder_input_ids=decoder).logits
        plain = PromptedT5(frozen, folded)(ids, mask, rows, decoder_input_ids=decoder).logits
    assert torch.equal(unfolded, plain)


@pytest.mark.parametrize("dropout", [0.0, 0.2])
def test_a_residual_bank_is_an_input_prompt_bank_to_its_model(dropout):
    bank = _bank(dropout=dropout)
    assert bank(torch.tensor([1, 1])).shape == (2, 5, 32) and bank.length == 5 and bank.n_prompts == 3
