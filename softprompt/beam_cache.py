"""Beam search without copying the cross-attention keys/values at every step.

``generate()`` with ``num_beams > 1`` reorders its cache after each step (``reorder_cache(beam_idx)``), and
transformers' ``EncoderDecoderCache`` reorders the cross-attention keys/values too: an ``index_select`` of every
layer's (B·beams, heads, S, d_kv) keys and values, a full copy of the largest cache per generated token. That copy
changes nothing: the beams of one example hold identical cross-attention keys/values (projected from its encoder
output, repeated per beam), and beam search only moves beams within their example. ``SharedCrossAttentionCache``
reorders the self-attention cache alone; the generated tokens are those of the default cache (tested). On a
t5-small shape on 2 CPU cores, 4 beams take 0.74 of the time for 8 inputs of 512 tokens and 0.82 for 40 of 84
(``benchmarks/generate_bench.py``, part (2)).

>>> from transformers import T5Config
>>> cache = beam_search_cache(T5Config(num_layers=2, num_decoder_layers=2))
>>> type(cache).__name__, CACHE_ARGUMENT in ("cache", "past_key_values")
('SharedCrossAttentionCache', True)
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedConfig, T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

# the keyword that passes a cache to T5's forward() and generate(): ``cache`` from transformers 5.24, before it
# ``past_key_values`` (5.24 still takes it, with a deprecation warning)
CACHE_ARGUMENT = "cache" if "cache" in inspect.signature(T5ForConditionalGeneration.forward).parameters else "past_key_values"


class SharedCrossAttentionCache(EncoderDecoderCache):
    """An ``EncoderDecoderCache`` whose beam reordering leaves the cross-attention keys/values in place: beams
    reorder within their example, whose beams share one encoder output, so the reorder is the identity there."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder the self-attention cache for beam search (``beam_idx``: (B·beams,) source rows)."""
        self.self_attention_cache.reorder_cache(beam_idx)


def beam_search_cache(config: PreTrainedConfig) -> SharedCrossAttentionCache:
    """An empty cache for one ``generate()`` call with beams, built as transformers builds its default one."""
    decoder = config.get_text_config(decoder=True)
    return SharedCrossAttentionCache(DynamicCache(config=decoder), DynamicCache(config=decoder))
