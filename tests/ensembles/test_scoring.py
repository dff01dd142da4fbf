"""Batched scoring and generation of N prompts equal per-prompt sequential runs.

Models are tiny random T5s built in-process (``random_t5``), with a deep prefix bank too, so the
per-row prefix routing is covered by the same checks.
"""

import numpy as np
import pytest
import torch

from ensembles.batched import iter_batches
from ensembles.scoring import encode_choices, generate_texts, score_choices
from softprompt.models import random_t5
from softprompt.prefixes import PrefixBank, PrefixShape
from softprompt.prompted import PromptedT5
from softprompt.prompts import PromptBank
from softprompt.tasks import Example

N = 4


@pytest.fixture(scope="module")
def model():
    frozen = random_t5(seed=2)
    prompts = PromptBank(N, 3, 32)
    with torch.no_grad():
        prompts.weight.normal_(0, 2, generator=torch.Generator().manual_seed(0))
    prefixes = PrefixBank(N, PrefixShape.for_config(frozen.config, 2))
    prefixes.init_random(range(N), std=1.0)
    return PromptedT5(frozen, prompts, prefixes)


def _examples(m=7, per_example_choices=False):
    words = ["alpha beta", "gamma", "delta epsilon zeta"]
    out = []
    for i in range(m):
        choices = tuple(words[: 2 + i % 2]) if per_example_choices else ("yes", "no")
        out.append(Example(source=f"question {i}: is {' '.join(['x'] * i)} true?", target=choices[0], choices=choices, label=0))
    return out


@pytest.mark.parametrize("max_rows", [1, 4, 64])
def test_batched_scores_equal_one_prompt_at_a_time(model, max_rows):
    examples = _examples()
    batched = score_choices(model, examples, list(range(N)), max_rows=max_rows).log_likelihood
    for n in range(N):
        alone = score_choices(model, examples, [n], max_rows=1).log_likelihood[0]
        np.testing.assert_allclose(batched[n], alone, atol=1e-5)


def test_variable_choice_counts_pad_with_minus_inf(model):
    examples = _examples(per_example_choices=True)
    scores = score_choices(model, examples, [0, 2])
    assert scores.log_likelihood.shape == (2, 7, 3)
    assert np.isneginf(scores.log_likelihood[:, 0, 2]).all() and np.isfinite(scores.log_likelihood[:, 1, 2]).all()
    assert (scores.lengths[0] == [len(model.tokenizer(w).input_ids) for w in ("alpha beta", "gamma")] + [0]).all()
    np.testing.assert_allclose(scores.normalised()[:, 1], scores.log_likelihood[:, 1] / scores.lengths[1])


def test_scores_are_log_likelihoods_of_the_targets(model):
    examples = _examples(2)
    scores = score_choices(model, examples, [1]).log_likelihood[0]
    for m, example in enumerate(examples):
        enc = model.tokenizer([example.source], return_tensors="pt")
        for k, choice in enumerate(example.choices):
            labels = model.tokenizer([choice], return_tensors="pt").input_ids
            loss = model(enc.input_ids, enc.attention_mask, torch.tensor([1]), labels=labels).loss
            assert scores[m, k] == pytest.approx(-loss.item() * labels.shape[1], abs=1e-4)


def test_batched_generation_equals_per_prompt_generation(model):
    examples = _examples(5)
    decoding = dict(max_new_tokens=6, min_new_tokens=6)
    batched = generate_texts(model, examples, list(range(N)), **decoding)
    for n in range(N):
        alone = generate_texts(model, examples, [n], max_rows=1, **decoding)
        assert batched.texts[n] == alone.texts[0]
        np.testing.assert_allclose(batched.scores[n], alone.scores[0], atol=1e-5)
    assert len({t for texts in batched.texts for t in texts}) > 1


def test_beam_search_runs_per_row(model):
    out = generate_texts(model, _examples(3), [0, 1], max_new_tokens=4, num_beams=3)
    assert len(out.texts) == 2 and all(len(t) == 3 for t in out.texts)
    assert np.isfinite(out.scores).all()


def test_iter_batches_cover_every_pair_once(model):
    sources = [e.source for e in _examples(9)]
    seen = []
    for batch in iter_batches(model.tokenizer, sources, [3, 1, 0], max_length=32, max_rows=4):
        assert batch.input_ids.shape[0] <= 4
        rows = batch.prompt_ids.view(len(batch.prompt_index), -1)
        for p, bank_id in zip(batch.prompt_index.tolist(), rows[:, 0].tolist()):
            assert bank_id == [3, 1, 0][p]
            seen += [(p, e) for e in batch.example_index.tolist()]
    assert sorted(seen) == [(p, e) for p in range(3) for e in range(9)]


def test_encode_choices_masks_missing_candidates(model):
    ids, mask = encode_choices(model.tokenizer, [("a",), ("b", "c d")])
    assert ids.shape[:2] == (2, 2) and mask[0, 1].sum() == 0 and mask[1, 1].sum() > 0
