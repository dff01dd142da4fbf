"""Beam search on ``SharedCrossAttentionCache`` (``softprompt.model.beam_cache``), one row of cross-attention keys/values
per input and never reordered, against transformers' default ``EncoderDecoderCache``: a row per beam, copied at
every step.

Models are tiny random T5s built in-process (``random_t5``): the claim is about how beam search moves cache rows,
which no pretrained weight changes.
"""

from __future__ import annotations

import pytest
import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from softprompt.model.attention import attention_sites
from softprompt.model.beam_cache import CACHE_ARGUMENT, SharedCrossAttentionCache
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5


@pytest.mark.parametrize(
    "attn, prefixes",
    [("sdpa", False), ("sdpa", True), ("eager", True)],
    ids=["sdpa-input-prompts", "sdpa-input-prompts+prefixes", "eager-input-prompts+prefixes"],
)
def test_beam_search_on_one_cross_cache_row_per_input_equals_the_default_cache(attn, prefixes, monkeypatch):
    """Per-row prompts (and deep prefixes at every site), a padded row, 4 beams: the sequences and their beam scores
    equal those of generate() on transformers' default cache; the cross-attention cache holds one row per input,
    projected once per layer before generate() (none inside it), beam search did move beams (a reorder that is not
    the identity), and the cross-attention cache was never reordered."""
    torch.manual_seed(0)
    frozen = random_t5(seed=0, attn_implementation=attn)
    prompts = PromptBank(3, 4, frozen.config.d_model)
    with torch.no_grad():
        prompts.weight.normal_(0, 3)
    bank = PrefixBank(3, PrefixShape.for_config(frozen.config, 3)) if prefixes else None
    if bank is not None:
        for parameter in bank.parameters():
            torch.nn.init.normal_(parameter, 0, 1)
    model = PromptedT5(frozen, prompts=prompts, prefixes=bank)
    ids = torch.randint(3, 32000, (3, 11))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    prompt_ids = torch.tensor([2, 0, 1])
    decoding = dict(num_beams=4, max_new_tokens=8, min_new_tokens=8, output_scores=True, return_dict_in_generate=True)

    reorders, cross_reorders = [], []
    reorder = SharedCrossAttentionCache.reorder_cache
    monkeypatch.setattr(
        SharedCrossAttentionCache,
        "reorder_cache",
        lambda self, beam_idx: (reorders.append(beam_idx.clone()), reorder(self, beam_idx))[1],
    )
    cross_reorder = DynamicCache.reorder_cache
    monkeypatch.setattr(
        DynamicCache,
        "reorder_cache",
        lambda self, beam_idx: (
            cross_reorders.append(self is model_cache.cross_attention_cache),
            cross_reorder(self, beam_idx),
        )[1],
    )

    projections, inside = [], [False]  # cross-attention key projections: made inside generate()?
    for attention in attention_sites(model.model)["cross"]:
        attention.k.register_forward_hook(lambda *_: projections.append(inside[0]))
    model_cache = None
    original_generate = model.model.generate

    def spy_generate(**kwargs):  # the cache PromptedT5.generate passed
        nonlocal model_cache
        model_cache, inside[0] = kwargs.get(CACHE_ARGUMENT), True
        try:
            return original_generate(**kwargs)
        finally:
            inside[0] = False

    monkeypatch.setattr(model.model, "generate", spy_generate)
    ours = model.generate(ids, mask, prompt_ids, **decoding)
    assert isinstance(model_cache, SharedCrossAttentionCache)
    cross = model_cache.cross_attention_cache.layers
    assert [layer.keys.shape[0] for layer in cross] == [3, 3]  # 3 inputs, not 3·4 beams (2 decoder layers)
    assert projections == [False, False]
    assert reorders and any(not torch.equal(idx, torch.arange(len(idx))) for idx in reorders)
    assert cross_reorders and not any(cross_reorders)  # self-attention only

    default = model.generate(
        ids, mask, prompt_ids, **decoding, **{CACHE_ARGUMENT: EncoderDecoderCache(DynamicCache(), DynamicCache())}
    )
    assert type(model_cache) is EncoderDecoderCache  # the caller's cache wins
    assert torch.equal(ours.sequences, default.sequences)
    assert torch.allclose(ours.sequences_scores, default.sequences_scores, atol=1e-5)
    assert len(set(ours.sequences[:, 1:].flatten().tolist())) > 1  # not a degenerate constant output


@pytest.mark.parametrize("decoding", [{}, {"num_beams": 2, "use_cache": False}], ids=["greedy", "beams-uncached"])
def test_no_beam_cache_without_beams_or_without_a_cache(decoding, monkeypatch):
    """Greedy search reorders nothing, and use_cache=False wants no cache (given one, generate() would use it):
    generate() gets no cache from us."""
    model = PromptedT5(random_t5(seed=1), prompts=PromptBank(2, 3, 32))
    seen = []
    original_generate = model.model.generate
    monkeypatch.setattr(
        model.model,
        "generate",
        lambda **kwargs: (seen.append(CACHE_ARGUMENT in kwargs), original_generate(**kwargs))[1],
    )
    model.generate(
        torch.randint(3, 32000, (2, 5)),
        torch.ones(2, 5, dtype=torch.long),
        torch.tensor([0, 1]),
        max_new_tokens=3,
        **decoding,
    )
    assert seen == [False]
