"""DePT's low-rank positional updates (softprompt.model.dept), on a tiny random T5 built in-process: an update of zero
is the plain prompt, rows read their own prompt's update, positions past s get none, and pooling pads exactly."""

import torch

from softprompt.model.dept import DeptBank, concat_dept
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5

IDS = torch.randint(5, 500, (3, 9), generator=torch.Generator().manual_seed(1))
MASK = torch.ones_like(IDS)
DECODER = torch.zeros(3, 2, dtype=torch.long)


def _prompts(n=3):
    bank = PromptBank(n, 4, 32)
    with torch.no_grad():
        bank.weight.copy_(torch.randn(n, 4, 32, generator=torch.Generator().manual_seed(2)))
    return bank


def _dept(n=3, positions=6, rank=2, trained=True):
    dept = DeptBank(n, positions, rank, 32)
    dept.init_random(range(n))
    if trained:
        with torch.no_grad():
            dept.b.copy_(torch.randn(n, rank, 32, generator=torch.Generator().manual_seed(3)))
    return dept


def _logits(frozen, prompts, dept, rows):
    with torch.no_grad():
        return PromptedT5(frozen, prompts, dept=dept)(IDS, MASK, torch.tensor(rows), decoder_input_ids=DECODER).logits


def test_a_dept_update_of_zero_equals_the_plain_prompt():
    frozen, prompts = random_t5(), _prompts()
    fresh = _dept(trained=False)  # B starts at zero
    assert fresh.a.abs().sum() > 0 and fresh.b.abs().sum() == 0
    assert torch.equal(_logits(frozen, prompts, fresh, [0, 1, 2]), _logits(frozen, prompts, None, [0, 1, 2]))


def test_each_row_reads_its_own_prompts_update_and_positions_past_s_get_none():
    dept = _dept()
    update = dept(torch.tensor([2, 0]), length=9)  # (B, T, d), s = 6
    assert torch.allclose(update[0, :6], dept.a[2] @ dept.b[2]) and torch.allclose(update[1, :6], dept.a[0] @ dept.b[0])
    assert update[:, 6:].abs().sum() == 0
    frozen, prompts = random_t5(), _prompts()
    mixed = _logits(frozen, prompts, dept, [2, 0, 1])
    for row, prompt in enumerate([2, 0, 1]):  # a mixed batch equals each prompt on its own row
        alone = _logits(frozen, prompts, dept, [prompt] * 3)[row]
        assert torch.allclose(mixed[row], alone, atol=1e-5)
    assert not torch.allclose(mixed, _logits(frozen, prompts, None, [2, 0, 1]))


def test_the_first_gradient_reaches_b_only_and_only_the_rows_prompts():
    frozen, prompts, dept = random_t5(), _prompts(), _dept(trained=False)
    model = PromptedT5(frozen, prompts, dept=dept)
    assert {id(p) for p in dept.parameters()} <= {id(p) for p in model.trainable_parameters()}
    model(IDS, MASK, torch.tensor([0, 0, 2]), decoder_input_ids=DECODER).logits.sum().backward()
    assert dept.a.grad.abs().sum() == 0  # B = 0: nothing flows to A yet
    assert dept.b.grad.abs().sum(dim=(1, 2)).ne(0).tolist() == [True, False, True]


def test_pooling_pads_ranks_and_positions_with_zeros_that_change_nothing():
    small, large = _dept(n=2, positions=4, rank=1), _dept(n=1, positions=6, rank=3)
    pooled = concat_dept([small, None, large], [2, 2, 1], d_model=32)
    assert pooled.a.shape == (5, 6, 3) and pooled.b.shape == (5, 3, 32)
    rows = pooled(torch.arange(5), length=8)
    assert torch.allclose(rows[:2], small(torch.arange(2), length=8), atol=1e-6)
    assert rows[2:4].abs().sum() == 0  # a run without DePT: no update
    assert torch.allclose(rows[4:], large(torch.tensor([0]), length=8), atol=1e-6)
    assert concat_dept([None, None], [1, 1], d_model=32) is None
