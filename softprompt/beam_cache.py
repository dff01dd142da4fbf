"""Beam search with one copy of each input's cross-attention keys/values, never copied again.

``generate()`` with ``num_beams > 1`` repeats each input's encoder output once per beam, so its default cache holds
every layer's cross-attention keys/values once per beam, and after each step it reorders that cache
(``reorder_cache(beam_idx)``): an ``index_select`` of all of them, a full copy of the largest cache per generated
token. Neither is needed: the beams of one input hold identical cross-attention keys/values, and beam search only
moves beams within their input. ``SharedCrossAttentionCache`` keeps one row per input (every beams-th row of what
the first step projects) and reorders the self-attention cache alone; the cross-attention kernel runs an input's
beams as that many queries against its one row (``softprompt.attention._fold_candidates``, as for the K candidates
of rank classification). Same tokens and scores as on the default cache (tested, deep prefixes included).

>>> from transformers import T5Config
>>> cache = beam_search_cache(T5Config(num_layers=2, num_decoder_layers=2), inputs=8)
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


class OneRowPerInput(DynamicCache):
    """The cross-attention part of ``SharedCrossAttentionCache``: of the (inputs·k, H, S, d_kv) keys/values the first
    step projects from the encoder output that ``generate()`` repeated k times per input, it keeps rows 0, k, 2k, ...
    (one per input, copied out so that the repeated ones are freed) and hands those to the attention."""

    def __init__(self, config: PreTrainedConfig, inputs: int):
        super().__init__(config=config)
        self.inputs = inputs

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        """Cache (and return) one row per input of ``key_states``/``value_states`` for layer ``layer_idx``."""
        rows = key_states.shape[0]
        if rows % self.inputs:
            raise ValueError(f"cross-attention keys of {rows} rows for {self.inputs} inputs: expected whole beams per input")
        k = rows // self.inputs
        key_states, value_states = key_states[::k].contiguous(), value_states[::k].contiguous()  # (inputs, H, S, d_kv)
        return super().update(key_states, value_states, layer_idx, *args, **kwargs)


class SharedCrossAttentionCache(EncoderDecoderCache):
    """An ``EncoderDecoderCache`` holding one row of cross-attention keys/values per input (``OneRowPerInput``),
    which beam reordering leaves in place: beams reorder within their input."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder the self-attention cache for beam search (``beam_idx``: (inputs·beams,) source rows)."""
        self.self_attention_cache.reorder_cache(beam_idx)


def beam_search_cache(config: PreTrainedConfig, inputs: int) -> SharedCrossAttentionCache:
    """An empty cache for one ``generate()`` call with beams over ``inputs`` encoder rows (before its expansion)."""
    decoder = config.get_text_config(decoder=True)
    return SharedCrossAttentionCache(DynamicCache(config=decoder), OneRowPerInput(decoder, inputs))
