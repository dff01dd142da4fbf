"""T5Gemma 2 (``softprompt.model.families``, ``layouts.T5GEMMA2_LAYOUT``): what is T5Gemma 2's own.

Every model here is a tiny random T5Gemma 2 built in-process from its real configuration and model classes
(``random_t5gemma(family="t5gemma2")``: ``T5Gemma2Config`` of a ``T5Gemma2EncoderConfig`` (text and a one-layer SigLIP image encoder)
and a ``T5Gemma2DecoderConfig`` / ``T5Gemma2ForConditionalGeneration``, through ``family_helpers.build_t5gemma2``)
with what makes it differ from T5 and T5Gemma, all at once: rotary positions, query/key norms, grouped-query heads
(encoder 4 query heads over 2 key/value heads, decoder 4 over 1), alternating sliding-window and full layers with a
window (4) shorter than the sequences (bidirectional in the encoder, causal in the decoder), the embedding layer's own
sqrt(d) scale, final-logit soft-capping, a decoder whose self- and cross-attention are one merged attention, a decoder
of another head size and depth than the encoder, and a right-padded row. Tests feed token ids (a 384-row vocabulary);
the CLI test uses a real ``GemmaTokenizer`` (``family_helpers.gemma_tokenizer``).

What T5Gemma 2 shares with the other families is tested once for all of them in ``test_families.py`` (sdpa and
eager): loading, input prompts equal to HF PEFT prompt tuning and to real tokens given as text, cached generation equal
to uncached, ``score`` equal to plain forwards, bf16 close to fp32, joint training with bit-identical resume and
ensemble evaluation, gradient checkpointing. Here:

* geometry and sites: the merged attention hosts the decoder and the cross site; prompts live in table space;
* prompts and deep prefixes together equal an independent computation on sdpa and eager: an attention function
  written here that, in the merged attention, prepends both prefixes to [the decoder's rotated keys; the encoder's
  keys] and masks each part by hand (causal and sliding over the decoder's own positions, padding over the
  encoder's, prefix columns always open); in the encoder, bidirectional sliding windows over the text's positions;
* real-word prefix init takes each site's part of the merged attention's keys;
* ``softprompt train``, ``ensemble-eval`` and ``predict`` from a saved directory.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask
from transformers.models.t5gemma2.modeling_t5gemma2 import T5Gemma2MergedAttention

from softprompt.model.attention import attention_sites
from softprompt.model.families import REFUSED, family_of
from softprompt.model.loading import resolve_model_name, save_model_dir
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.random_models import random_t5gemma
from tests.softprompt.model.family_helpers import (
    CAPS2,
    DECODER2,
    ID_VOCAB,
    TOL,
    WINDOW,
    P,
    assert_prefixes_equal_hand_appended,
    banks,
    gemma_tokenizer,
    train_evaluate_predict,
)
from tests.softprompt.model.family_helpers import build_t5gemma2 as build


@pytest.fixture(scope="module")
def gemma_model_dir(tmp_path_factory):
    """A saved tiny T5Gemma 2 (1280 embedding rows) with a Gemma tokenizer of 1200 pieces."""
    directory = tmp_path_factory.mktemp("t5gemma2")
    model = random_t5gemma(family="t5gemma2", vocab_size=1280, tokenizer=gemma_tokenizer(), decoder=DECODER2, **CAPS2)
    save_model_dir(model, directory)
    return directory


# ----------------------------------------------------------------------------- geometry, sites, aliases


def test_the_merged_attention_hosts_the_decoder_and_cross_sites_and_prompts_live_in_table_space():
    frozen = build()
    geometry, sites = frozen.geometry, attention_sites(frozen.model)
    assert (geometry.d_model, geometry.vocab_size, geometry.input_scale) == (32, ID_VOCAB, 32**0.5)
    assert geometry.sites["encoder"] == type(geometry.sites["encoder"])(layers=3, heads=2, head_dim=8)
    assert geometry.sites["decoder"] == geometry.sites["cross"] == type(geometry.sites["encoder"])(2, 1, 6)
    assert all(isinstance(m, T5Gemma2MergedAttention) for m in sites["decoder"])
    assert [id(m) for m in sites["decoder"]] == [id(m) for m in sites["cross"]]
    prefixes = PrefixBank(1, PrefixShape.for_config(frozen.config, 3))
    assert {site: tuple(kv.shape) for site, kv in prefixes.kv.items()} == {
        "encoder": (1, 3, 2, 2, 3, 8),
        "decoder": (1, 2, 2, 1, 3, 6),
        "cross": (1, 2, 2, 1, 3, 6),
    }
    assert family_of(frozen.config).attention == ("sdpa", "eager")


def test_the_released_checkpoints_have_aliases():
    for size in ("270m-270m", "1b-1b", "4b-4b"):
        assert resolve_model_name(f"t5gemma2-{size}") == f"google/t5gemma-2-{size}"
    assert "t5gemma2" not in REFUSED


# ----------------------------------------------------------------------------- exactness: hand-appended prefixes

HAND = "softprompt_test_t5gemma2_hand_appended"


def _hand_appended(module, query, key, value, attention_mask, **_):
    """softmax(q·[prefixes; K]ᵀ / sqrt(query_pre_attn_scalar) + [0, mask]) · [prefixes; V], written out from the
    module's config alone (the kernel's keyword arguments and the model's masks are ignored). In the decoder's merged
    attention ``key`` is [the decoder's keys, rotated by their positions 0..Q-1; the encoder's keys] and both the
    decoder and the cross prefix are prepended; the decoder's columns are causal (and within the window in sliding
    layers), the encoder's follow its padding. In the encoder the columns follow the padding and, in sliding layers,
    T5Gemma 2's bidirectional window over the text's own positions. Each key/value head serves its group of query
    heads; prefix columns are always open."""
    config, layer = module.config, module.layer_idx
    merged = isinstance(module, T5Gemma2MergedAttention)
    prefix = torch.cat(  # (B, 2, Hkv, Pp (two of them when merged), d)
        [module.hand_prefixes[site][:, layer] for site in (("decoder", "cross") if merged else ("encoder",))], dim=-2
    )
    n_prefix, queries = prefix.shape[-2], query.shape[2]
    groups = query.shape[1] // key.shape[1]
    keys = torch.cat([prefix[:, 0], key], dim=2).repeat_interleave(groups, dim=1)  # (B, H, Pp+K, d)
    values = torch.cat([prefix[:, 1], value], dim=2).repeat_interleave(groups, dim=1)
    sliding = config.layer_types[layer] == "sliding_attention"
    padding = module.hand_padding[:, None, None, :].bool()  # (B, 1, 1, S): the encoder's columns
    if merged:
        q_pos, k_pos = torch.arange(queries)[:, None], torch.arange(queries)[None, :]
        own = k_pos <= q_pos
        if sliding:
            own &= k_pos > q_pos - config.sliding_window
        allowed = torch.cat([own.expand(*padding.shape[:2], -1, -1), padding.expand(-1, -1, queries, -1)], dim=-1)
    else:
        q_pos, k_pos = torch.arange(queries)[:, None], torch.arange(key.shape[2])[None, :]
        distance = q_pos - k_pos
        allowed = padding.expand(-1, -1, queries, -1)
        if sliding:
            window = config.sliding_window
            inside = ((distance >= 0) & (distance < (window + 1) // 2)) | (
                (distance < 0) & (-distance < window // 2 + 1)
            )
            allowed = allowed & inside
    real = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    scores = query @ keys.transpose(-1, -2) * config.query_pre_attn_scalar**-0.5  # (B, H, Q, Pp+K)
    scores = scores + torch.cat([torch.zeros(*real.shape[:-1], n_prefix), real], dim=-1)
    return (scores.softmax(-1) @ values).transpose(1, 2), None  # (B, Q, H, d)


AttentionInterface.register(HAND, _hand_appended)
AttentionMaskInterface.register(HAND, eager_mask)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_prompts_and_prefixes_equal_keys_values_appended_by_hand(attn):
    """Per-row prompts and prefixes at all three sites (two of them in one merged attention), a padded row, sliding
    windows shorter than the sequences, grouped-query heads: the logits equal the unwrapped model given the prompts as
    scaled input embeddings and the prefixes appended by ``_hand_appended``."""
    hand = build("eager").model  # same seed, same weights, never wrapped by softprompt
    ids, _, dec = assert_prefixes_equal_hand_appended(build(attn), hand, HAND)
    assert {m.config.layer_types[i] for i, m in enumerate(attention_sites(hand)["encoder"])} == {
        "sliding_attention",
        "full_attention",
    }
    assert WINDOW < P + ids.shape[1] and WINDOW < dec.shape[1]


def test_real_word_prefix_takes_each_sites_part_of_the_merged_attention():
    """Li & Liang's real-word init: the cross site's keys/values are the merged attention's keys of the encoder's
    states (``k_norm(k_proj(h))``, unrotated: the layout's ``cross_keys_values``), the decoder site's its own."""
    frozen = build(ids_only=False)  # the T5 vocabulary: it reads the text
    model = PromptedT5(frozen, *banks(frozen))
    text = "does it follow"
    kv = model.real_word_prefix(text, length=2)
    ids = frozen.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = frozen.model.get_encoder()(input_ids=ids).last_hidden_state  # (1, T, d)
    layout = family_of(frozen.config).layout
    for layer, module in enumerate(attention_sites(frozen.model)["cross"]):
        keys, values = layout.cross_keys_values(module, hidden)  # (1, Hkv, T, d)
        torch.testing.assert_close(kv["cross"][layer, 0], keys[0, :, :2], **TOL)
        torch.testing.assert_close(kv["cross"][layer, 1], values[0, :, :2], **TOL)
    assert not torch.allclose(kv["decoder"], kv["cross"])


# ----------------------------------------------------------------------------- the CLI, from a saved directory


def test_train_ensemble_eval_and_predict_from_a_saved_t5gemma2_directory(gemma_model_dir, tmp_path):
    """``softprompt train --model ./t5gemma2_dir`` (a Gemma tokenizer, the default inits) with prompts and deep
    prefixes at every site, then ``ensemble-eval`` and ``predict`` of the run, end to end through the CLI."""
    meta = train_evaluate_predict(gemma_model_dir, tmp_path)
    assert (meta["model"]["family"], meta["model"]["d_model"]) == ("t5gemma2", 32)
    assert meta["prefixes"]["sites"] == ["encoder", "decoder", "cross"]
