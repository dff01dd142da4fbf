"""Token cross-entropies: per-prompt means, and float32 accuracy for low-precision logits without a float32 copy of them."""

import pytest
import torch
from torch.nn import functional as F

from softprompt.model import losses
from softprompt.model.losses import LowPrecisionCrossEntropy, per_prompt_loss, token_losses


def test_per_prompt_loss_is_each_prompts_token_mean():
    logits = torch.randn(4, 3, 10)
    labels = torch.tensor([[1, 2, -100], [3, -100, -100], [4, 5, 6], [7, 8, -100]])
    prompt_ids = torch.tensor([0, 0, 1, 1])
    losses = per_prompt_loss(logits, labels, prompt_ids, 2)
    for n in range(2):
        rows = prompt_ids == n
        expected = torch.nn.functional.cross_entropy(logits[rows].transpose(1, 2), labels[rows], ignore_index=-100)
        assert losses[n].item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_logits_give_float32_losses_and_gradients_block_by_block(dtype, monkeypatch):
    monkeypatch.setattr(losses, "BLOCK_ELEMENTS", 3 * 50)  # 3 rows per block: 7 rows take three blocks
    logits = (torch.randn(1, 7, 50, generator=torch.Generator().manual_seed(0)) * 4).to(dtype).requires_grad_()
    labels = torch.tensor([[1, 49, -100, 3, 0, -100, 17]])
    weights = torch.arange(7.0).view(1, 7)  # a different upstream gradient for every token

    ours = token_losses(logits, labels)
    (ours * weights).sum().backward()
    reference_logits = logits.detach().float().requires_grad_()  # the computation it replaces: a whole float32 copy
    reference = F.cross_entropy(reference_logits[0], labels[0], ignore_index=-100, reduction="none").view(1, 7)
    (reference * weights).sum().backward()

    assert ours.dtype == torch.float32 and ours[0, 2] == 0 and ours[0, 5] == 0
    torch.testing.assert_close(ours, reference, rtol=1e-6, atol=1e-6)
    assert logits.grad.dtype == dtype
    torch.testing.assert_close(
        logits.grad.float(), reference_logits.grad.float(), rtol=torch.finfo(dtype).eps, atol=1e-6
    )  # one rounding


def test_low_precision_cross_entropy_saves_only_its_low_precision_input():
    logits = torch.randn(16, 1000).bfloat16().requires_grad_()
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        LowPrecisionCrossEntropy.apply(logits, torch.randint(0, 1000, (16,)))
    assert saved and all(t.dtype != torch.float32 or t.numel() < logits.numel() for t in saved)
