"""t5-nano's pre-training objectives on token arrays: T5 span corruption (noise masks, sentinels,
the input/target lengths) and the prefix-LM split of LM adaptation.

>>> import numpy as np
>>> inputs, targets = span_corrupt(np.array([5, 6, 7, 8]), np.array([False, True, True, False]))
>>> inputs.tolist(), targets.tolist()
([5, 32099, 8, 1], [32099, 6, 7, 32098, 1])
"""

from __future__ import annotations

import numpy as np

SENTINEL_0 = 32099  # <extra_id_0>; <extra_id_k> is SENTINEL_0 - k in the T5 vocabulary
EOS, PAD = 1, 0


def random_spans_noise_mask(
    length: int, noise_density: float, mean_span: float, rng: np.random.Generator
) -> np.ndarray:
    """T5's ``random_spans_noise_mask``: a boolean mask with round(length * density) noise tokens in
    round(noise / mean_span) spans, alternating with non-noise spans and starting with non-noise."""
    n_noise = min(max(int(round(length * noise_density)), 1), length - 1)
    n_spans = max(int(round(n_noise / mean_span)), 1)

    def segment(n_items: int) -> np.ndarray:  # random split of n_items into n_spans non-empty parts
        starts = np.arange(n_items - 1) < n_spans - 1
        rng.shuffle(starts)
        return np.bincount(np.cumsum(np.concatenate([[0], starts])), minlength=n_spans)

    lengths = np.stack([segment(length - n_noise), segment(n_noise)], axis=1).reshape(-1)
    span_index = np.repeat(np.arange(2 * n_spans), lengths)
    return span_index % 2 == 1


def span_lengths(input_length: int, noise_density: float, mean_span: float) -> tuple[int, int]:
    """T5's ``compute_input_and_target_lengths``: (raw tokens per example, target length) so that
    the corrupted input, sentinels and EOS included, is exactly ``input_length`` tokens."""

    def lengths(raw: int) -> tuple[int, int]:
        noise = int(round(raw * noise_density))
        spans = int(round(noise / mean_span))
        return raw - noise + spans + 1, noise + spans + 1

    raw = input_length
    while lengths(raw + 1)[0] <= input_length:
        raw += 1
    return raw, lengths(raw)[1]


def span_corrupt(tokens: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) as in T5: in the inputs each noise span becomes the next sentinel; the
    targets are each sentinel followed by the span it replaced. Both end with EOS. ``mask`` must
    start with non-noise (as ``random_spans_noise_mask``'s masks do)."""
    return _squeeze(tokens, mask), _squeeze(tokens, ~mask)


def _squeeze(tokens: np.ndarray, dropped: np.ndarray) -> np.ndarray:
    """Replace every run of ``dropped`` tokens by one sentinel (numbered from <extra_id_0>), add EOS."""
    starts = dropped & ~np.concatenate([[False], dropped[:-1]])
    sentinels = SENTINEL_0 + 1 - np.cumsum(starts)
    kept = np.where(starts, sentinels, tokens.astype(np.int64))[~dropped | starts]
    return np.concatenate([kept, [EOS]])


def prefix_lm_split(tokens: np.ndarray, split: int, target_length: int) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) of the prefix-LM objective: the first ``split`` tokens, then the next
    ``target_length - 1`` tokens to continue them; both end with EOS."""
    tokens = tokens.astype(np.int64)
    return np.append(tokens[:split], EOS), np.append(tokens[split : split + target_length - 1], EOS)
