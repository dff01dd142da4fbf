"""Beam search with one copy of each input's cross-attention keys/values, projected once and never copied.

``generate()`` with ``num_beams > 1`` repeats each input's encoder output once per beam, and its default cache then
projects and holds every layer's cross-attention keys/values once per beam; after each step it reorders that cache
(``reorder_cache(beam_idx)``): an ``index_select`` of all of them, a full copy of the largest cache per generated
token. None of it is needed: the beams of one input hold identical cross-attention keys/values, and beam search only
moves beams within their input. ``beam_search_cache`` projects them from the B encoder rows before ``generate()``
starts (so the model finds them cached and projects nothing), one row per input, and ``SharedCrossAttentionCache``
reorders the self-attention cache alone; the cross-attention kernel runs an input's beams as that many queries
against its one row (``softprompt.model.attention._fold_candidates``, as for the K candidates of rank classification).
Same tokens and scores as on the default cache (tested, deep prefixes included).

>>> from softprompt.model.random_models import random_t5
>>> model = random_t5().model
>>> cache = beam_search_cache(model, torch.zeros(8, 5, model.config.d_model))  # 8 inputs of 5 tokens
>>> type(cache).__name__, tuple(cache.cross_attention_cache.layers[0].keys.shape)  # (inputs, Hkv, tokens, d)
('SharedCrossAttentionCache', (8, 4, 5, 8))
"""

from __future__ import annotations

import inspect

import torch
from transformers import PreTrainedModel, T5ForConditionalGeneration
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from softprompt.model.attention import attention_sites
from softprompt.model.families import family_of

# the keyword that passes a cache to T5's forward() and generate(): ``cache`` from transformers 5.24, before it
# ``past_key_values`` (5.24 still takes it, with a deprecation warning)
CACHE_ARGUMENT = (
    "cache" if "cache" in inspect.signature(T5ForConditionalGeneration.forward).parameters else "past_key_values"
)


class SharedCrossAttentionCache(EncoderDecoderCache):
    """An ``EncoderDecoderCache`` whose cross-attention keys/values hold one row per input, which beam reordering
    leaves in place: beams reorder within their input."""

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder the self-attention cache for beam search (``beam_idx``: (inputs·beams,) source rows)."""
        self.self_attention_cache.reorder_cache(beam_idx)


@torch.no_grad()
def beam_search_cache(model: PreTrainedModel, encoder_hidden: torch.Tensor) -> SharedCrossAttentionCache:
    """A cache for one ``generate()`` call with beams over the encoder output ``encoder_hidden`` (B, S, d), before
    ``generate()`` repeats it per beam: every decoder layer's cross-attention keys/values projected from its B rows.
    The cross-attention cache is built without the decoder's config: T5Gemma's decoder declares sliding-window
    layers, which a cache built from it would apply to the encoder's keys too (T5Gemma's own cross cache is plain)."""
    config = model.config.get_text_config(decoder=True)
    layout, cross = family_of(model.config).layout, DynamicCache()
    for layer, attention in enumerate(attention_sites(model)["cross"]):
        states = encoder_hidden.to(next(attention.parameters()).device)
        cross.update(*layout.cross_keys_values(attention, states), layer)  # (B, Hkv, S, d) each
    return SharedCrossAttentionCache(DynamicCache(config=config), cross)
