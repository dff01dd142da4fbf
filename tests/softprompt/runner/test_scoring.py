"""Batched scoring and generation of N prompts equal per-prompt sequential runs.

Models are tiny random T5s built in-process (``random_t5``), with a deep prefix bank too, so the
per-row prefix routing is covered by the same checks.
"""

import random

import numpy as np
import pytest
import torch

from softprompt.data.tasks import Example
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from softprompt.runner.passes import Passes, plan_passes
from softprompt.runner.scoring import encode_choices, generate_texts, score_choices

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
        out.append(
            Example(source=f"question {i}: is {' '.join(['x'] * i)} true?", target=choices[0], choices=choices, label=0)
        )
    return out


@pytest.mark.parametrize("max_tokens", [1, 100, 10_000])  # one row per pass, a few, everything in one
def test_batched_scores_equal_one_prompt_at_a_time(model, max_tokens):
    examples = _examples()
    batched = score_choices(model, examples, list(range(N)), max_tokens=max_tokens).log_likelihood
    for n in range(N):
        alone = score_choices(model, examples, [n], max_tokens=1).log_likelihood[0]
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
        alone = generate_texts(model, examples, [n], max_tokens=1, **decoding)
        assert batched.texts[n] == alone.texts[0]
        np.testing.assert_allclose(batched.scores[n], alone.scores[0], atol=1e-5)
    assert len({t for texts in batched.texts for t in texts}) > 1


def test_beam_search_runs_per_row(model):
    out = generate_texts(model, _examples(3), [0, 1], max_new_tokens=4, num_beams=3)
    assert len(out.texts) == 2 and all(len(t) == 3 for t in out.texts)
    assert np.isfinite(out.scores).all()


def test_passes_cover_every_pair_once_within_the_token_budget(model):
    sources = [e.source for e in _examples(9)]
    seen = []
    for batch in Passes(model.tokenizer, sources, [3, 1, 0], max_length=32, max_tokens=60, prompt_length=3, copies=2):
        assert (
            batch.input_ids.shape[0] * (batch.input_ids.shape[1] + 3) * 2 <= 60
            or len(batch.prompt_index) * len(batch.example_index) == 1
        )
        assert (
            batch.attention_mask.sum(dim=1).max() == batch.input_ids.shape[1]
        )  # padded to the pass's longest, no further
        rows = batch.prompt_ids.view(len(batch.prompt_index), -1)
        for p, bank_id in zip(batch.prompt_index.tolist(), rows[:, 0].tolist()):
            assert bank_id == [3, 1, 0][p]
            seen += [(p, e) for e in batch.example_index.tolist()]
    assert sorted(seen) == [(p, e) for p in range(3) for e in range(9)]


def test_every_prompt_shares_a_pass_and_long_examples_split_the_prompts():
    """Passes hold all N prompts over a chunk of examples; at uniform lengths they have the shapes of
    the per-prompt loop's passes (here 100 rows of 10 tokens); an example too long for N copies
    splits the prompts into groups that fit."""
    many = plan_passes([10] * 100, n_prompts=5, max_tokens=1000)
    assert all(p.prompts == tuple(range(5)) and len(p.examples) == 20 for p in many) and len(many) == 5
    few = plan_passes([10] * 8, n_prompts=5, max_tokens=1000)
    assert len(few) == 1 and few[0].prompts == tuple(range(5)) and len(few[0].examples) == 8
    split = plan_passes([300], n_prompts=5, max_tokens=1000)  # one example leaves room for 3 prompts
    assert [p.prompts for p in split] == [(0, 1, 2), (3, 4)]


def test_plans_sort_by_length_and_respect_the_budget():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(200)]
    plans = plan_passes(lengths, n_prompts=3, max_tokens=2000, copies=2)
    pairs = sorted((p, e) for plan in plans for p in plan.prompts for e in plan.examples)
    assert pairs == [(p, e) for p in range(3) for e in range(200)]
    for plan in plans:
        assert len(plan.examples) * len(plan.prompts) * max(lengths[e] for e in plan.examples) * 2 <= 2000
    firsts = [lengths[plan.examples[0]] for plan in plans]
    assert firsts == sorted(firsts, reverse=True)  # longest first
    padded = sum(len(p.examples) * len(p.prompts) * max(lengths[e] for e in p.examples) for p in plans)
    in_file_order = sum(3 * 6 * max(lengths[i : i + 6]) for i in range(0, 200, 6))  # a loop of 6-example batches
    assert padded < 0.75 * in_file_order and padded >= 3 * sum(lengths)
    assert padded < 1.02 * 3 * sum(lengths)  # narrow chunks of neighbouring lengths: little padding


def test_an_example_longer_than_the_budget_still_gets_a_pass():
    plans = plan_passes([50, 3], n_prompts=2, max_tokens=10)
    assert [(p.examples, p.prompts) for p in plans] == [((0,), (0,)), ((0,), (1,)), ((1,), (0, 1))]
    with pytest.raises(ValueError, match="max_tokens must be positive"):
        plan_passes([3], 1, max_tokens=0)


def test_encode_choices_masks_missing_candidates(model):
    ids, mask = encode_choices(model.tokenizer, [("a",), ("b", "c d")])
    assert ids.shape[:2] == (2, 2) and mask[0, 1].sum() == 0 and mask[1, 1].sum() > 0


@pytest.mark.parametrize(
    "examples, bank_ids, message",
    [
        ([], [0], "no examples given"),
        (None, [], "no prompts given"),
        (None, [0, N], rf"bank_ids \[{N}\] are outside the bank's prompts 0..{N - 1}"),
        (None, [-1], r"bank_ids \[-1\] are outside"),  # would silently be the last prompt
    ],
)
def test_misuse_of_the_python_api_is_one_clear_error(model, examples, bank_ids, message):
    from softprompt.errors import SoftpromptError

    for run in (score_choices, generate_texts):
        with pytest.raises(SoftpromptError, match=message):
            run(model, _examples(2) if examples is None else examples, bank_ids)
