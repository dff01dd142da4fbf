"""Prompted forward: equivalence with HF PEFT prompt tuning, per-row prompts, generate().

Models are tiny random T5s built in-process (``random_t5``): same code paths as real checkpoints.
"""

import warnings

import pytest
import torch
from peft import PromptTuningConfig, TaskType, get_peft_model

from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5

P = 6


def _inputs(batch=3, length=9, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 32000, (batch, length), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # a padded row
    return ids, mask


def _bank(n, d=32, seed=0):
    bank = PromptBank(n, P, d)
    with torch.no_grad():
        bank.weight.copy_(torch.randn(n, P, d, generator=torch.Generator().manual_seed(seed)) * 3)
    return bank


@pytest.fixture(scope="module")
def peft_and_ours():
    """PEFT's prompt-tuning model and ours, on two identical copies of one random T5, same prompt."""
    peft = get_peft_model(
        random_t5(seed=3).model, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=P)
    )
    bank = _bank(1)
    with torch.no_grad():
        peft.prompt_encoder.default.embedding.weight[:P] = bank.weight[0]  # the encoder's virtual tokens
    return peft, PromptedT5(random_t5(seed=3), prompts=bank)


def test_logits_equal_peft_prompt_tuning(peft_and_ours):
    peft, ours = peft_and_ours
    ids, mask = _inputs()
    labels = torch.randint(3, 32000, (3, 4))
    theirs = peft(input_ids=ids, attention_mask=mask, labels=labels)
    mine = ours(ids, mask, torch.zeros(3, dtype=torch.long), labels=labels)
    assert torch.allclose(mine.logits, theirs.logits, atol=1e-5)
    assert torch.allclose(mine.loss, theirs.loss, atol=1e-5)


@pytest.mark.parametrize("num_beams", [1, 4])
def test_generate_equals_peft(num_beams, peft_and_ours):
    """Greedy and beam search (ours on softprompt.model.beam_cache's cache, PEFT's on transformers' default)."""
    peft, ours = peft_and_ours
    ids, mask = _inputs(seed=1)
    kwargs = dict(max_new_tokens=8, min_new_tokens=8, do_sample=False, num_beams=num_beams)
    theirs = peft.generate(input_ids=ids, attention_mask=mask, **kwargs)
    mine = ours.generate(ids, mask, torch.zeros(3, dtype=torch.long), **kwargs)
    assert torch.equal(mine, theirs)
    assert len(set(mine[:, 1:].flatten().tolist())) > 1  # not a degenerate constant output


def test_prompts_equal_real_tokens_as_text():
    """A prompt made of token embeddings equals prepending those tokens as real text."""
    frozen = random_t5(seed=5)
    ids, mask = _inputs(batch=2)
    mask[:] = 1
    prefix_ids = torch.randint(3, 32000, (P,))
    bank = PromptBank(1, P, 32)
    with torch.no_grad():
        bank.weight[0] = frozen.model.get_input_embeddings().weight[prefix_ids]
    model = PromptedT5(frozen, prompts=bank)
    decoder = torch.randint(3, 32000, (2, 3))
    ours = model(ids, mask, torch.zeros(2, dtype=torch.long), decoder_input_ids=decoder).logits
    text = torch.cat([prefix_ids.expand(2, -1), ids], dim=1)
    real = frozen.model(input_ids=text, attention_mask=torch.ones_like(text), decoder_input_ids=decoder).logits
    assert torch.allclose(ours, real, atol=1e-5)


def test_mixed_prompts_in_one_batch_match_single_prompt_batches():
    model = PromptedT5(random_t5(), prompts=_bank(3))
    ids, mask = _inputs(batch=4)
    decoder = torch.randint(3, 32000, (4, 3))
    mixed = model(ids, mask, torch.tensor([2, 0, 1, 2]), decoder_input_ids=decoder).logits
    for row, prompt in enumerate([2, 0, 1, 2]):
        alone = model(
            ids[row : row + 1], mask[row : row + 1], torch.tensor([prompt]), decoder_input_ids=decoder[row : row + 1]
        ).logits
        assert torch.allclose(mixed[row], alone[0], atol=1e-5)


def test_score_reuses_encoder_and_equals_full_passes():
    model = PromptedT5(random_t5(), prompts=_bank(2))
    ids, mask = _inputs(batch=2)
    prompt_ids = torch.tensor([1, 0])
    choices = torch.tensor([[[10, 11, 1], [12, 1, 0]], [[13, 1, 0], [14, 15, 1]]])  # (B, K, S), 0 = pad
    choice_mask = (choices != 0).long()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated argument (transformers 5.24 warned of past_key_values)
        scores = model.score(ids, mask, prompt_ids, choices, choice_mask)  # (B, K)
    for b in range(2):
        for k in range(2):
            labels = choices[b, k][choice_mask[b, k].bool()][None]
            out = model(ids[b : b + 1], mask[b : b + 1], prompt_ids[b : b + 1], labels=labels)
            assert scores[b, k].item() == pytest.approx(-out.loss.item() * labels.shape[1], abs=1e-4)


def test_bfloat16_model_keeps_fp32_prompts():
    frozen = random_t5()
    frozen.model.to(torch.bfloat16)
    model = PromptedT5(frozen, prompts=_bank(1))
    ids, mask = _inputs()
    out = model(ids, mask, torch.zeros(3, dtype=torch.long), labels=torch.randint(3, 100, (3, 2)))
    out.loss.backward()
    assert model.prompts.weight.dtype == torch.float32
    assert model.prompts.weight.grad is not None and torch.isfinite(model.prompts.weight.grad).all()
