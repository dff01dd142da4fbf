"""T5 span corruption and prefix LM (softprompt.nano.objectives)."""

import numpy as np

from softprompt.model.loading import load_tokenizer
from softprompt.nano.objectives import SENTINEL_0, prefix_lm_split, random_spans_noise_mask, span_corrupt, span_lengths


def reconstruct(inputs: np.ndarray, targets: np.ndarray) -> list[int]:
    """Put each target span back in place of its sentinel (both sequences end with EOS)."""
    spans, current = {}, None
    for token in targets[:-1]:
        if token > SENTINEL_0 - 100:
            current = int(token)
            spans[current] = []
        else:
            spans[current].append(int(token))
    return [t for token in inputs[:-1] for t in (spans[int(token)] if token > SENTINEL_0 - 100 else [int(token)])]


def test_noise_mask_has_t5_noise_fraction_and_span_count():
    rng = np.random.default_rng(0)
    fractions = []
    for length in (70, 114, 500):
        for _ in range(20):
            mask = random_spans_noise_mask(length, 0.15, 3.0, rng)
            n_noise, starts = mask.sum(), mask & ~np.concatenate([[False], mask[:-1]])
            assert n_noise == round(length * 0.15)
            assert starts.sum() == round(n_noise / 3.0)
            assert not mask[0] and mask[-1]  # T5 order: non-noise first, noise last
            fractions.append(mask.mean())
    assert abs(np.mean(fractions) - 0.15) < 0.005


def test_span_corruption_lengths_sentinels_and_reconstruction():
    raw, target_length = span_lengths(64, 0.15, 3.0)
    assert (raw, target_length) == (70, 14)  # T5's compute_input_and_target_lengths for 64-token inputs
    rng = np.random.default_rng(1)
    tokens = rng.integers(5, 32000, size=raw)
    inputs, targets = span_corrupt(tokens, random_spans_noise_mask(raw, 0.15, 3.0, rng))
    assert len(inputs) == 64 and len(targets) == target_length
    assert inputs[-1] == targets[-1] == 1
    sentinels = [t for t in targets if t > SENTINEL_0 - 100]
    assert sentinels == list(range(SENTINEL_0, SENTINEL_0 - len(sentinels), -1))
    assert [t for t in inputs if t > SENTINEL_0 - 100] == sentinels
    assert targets[0] == SENTINEL_0
    assert reconstruct(inputs, targets) == tokens.tolist()
    assert load_tokenizer().convert_ids_to_tokens([SENTINEL_0, SENTINEL_0 - 1]) == ["<extra_id_0>", "<extra_id_1>"]


def test_prefix_lm_split():
    tokens = np.arange(10, 40)
    inputs, targets = prefix_lm_split(tokens, 12, 8)
    assert inputs.tolist() == list(range(10, 22)) + [1]
    assert targets.tolist() == list(range(22, 29)) + [1]
