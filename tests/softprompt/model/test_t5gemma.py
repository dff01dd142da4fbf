"""T5Gemma (``softprompt.model.families``, ``layouts.T5GEMMA_LAYOUT``): what is T5Gemma's own.

Every model here is a tiny random T5Gemma built in-process from its real configuration and model classes
(``random_t5gemma``: ``T5GemmaConfig`` of two ``T5GemmaModuleConfig`` / ``T5GemmaForConditionalGeneration``, through
``family_helpers.build_t5gemma``) with what makes T5Gemma's attention differ from T5's, all at once: rotary
positions, grouped-query heads (encoder 4 query heads over 2 key/value heads, decoder 4 over 1), alternating
sliding-window and full layers with a window (4) shorter than the sequences, attention-logit and final-logit
soft-capping set low enough to bite, an encoder and a decoder of different widths, head sizes and depths (like the
9B-2B checkpoint), and a right-padded row. Tests feed token ids (a 384-row vocabulary); the CLI test and the
tokenizer test use a real ``GemmaTokenizer`` (BPE with byte fallback, Gemma's special ids) whose merges are learnt
here on the RTE test data, as no Gemma vocabulary can be downloaded.

What T5Gemma shares with the T5 families is tested once for all of them in ``test_families.py`` (with this same
model, eager attention, T5Gemma's only kernel): loading, input prompts equal to HF PEFT prompt tuning and to real
tokens given as text, cached generation equal to uncached, ``score`` equal to plain forwards, bf16 close to fp32,
gradient checkpointing, joint training with bit-identical resume and ensemble evaluation, and refusing runs of another family (T5's) both
ways. Here:

* per-site geometry from the nested configs; eager only (sdpa refused in one line); Gemma's tokenizer set to
  softprompt's conventions; aliases of the released checkpoints;
* prompts and deep prefixes together equal an independent computation: an attention function written here that
  appends each row's prefix keys/values (unrotated) to the model's rotated keys, repeats the key/value heads for
  the query heads, soft-caps and masks by hand (padding, causality, sliding windows over the text's own positions
  0..T-1, prefix columns always open);
* ``softprompt train``, ``ensemble-eval`` and ``predict`` run end to end from a saved T5Gemma directory with a Gemma
  tokenizer.
"""

from __future__ import annotations

import pytest
import torch
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from softprompt.errors import SoftpromptError
from softprompt.model.attention import attention_sites
from softprompt.model.families import REFUSED
from softprompt.model.loading import load_frozen_t5, resolve_model_name, save_model_dir
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompts import frequent_token_ids
from softprompt.model.random_models import random_t5gemma
from tests.softprompt.model.family_helpers import (
    CAPS,
    DECODER,
    GEMMA_BYTES,
    GEMMA_SPECIAL,
    ID_VOCAB,
    WINDOW,
    P,
    assert_prefixes_equal_hand_appended,
    gemma_tokenizer,
    train_evaluate_predict,
)
from tests.softprompt.model.family_helpers import build_t5gemma as build


@pytest.fixture(scope="module")
def gemma_model_dir(tmp_path_factory):
    """A saved tiny T5Gemma (1280 embedding rows) with a Gemma tokenizer of 1200 pieces."""
    directory = tmp_path_factory.mktemp("t5gemma")
    save_model_dir(random_t5gemma(vocab_size=1280, tokenizer=gemma_tokenizer(), decoder=DECODER, **CAPS), directory)
    return directory


# ----------------------------------------------------------------------------- loading


def test_geometry_per_site_follows_the_nested_configs():
    frozen = build()
    sites = frozen.geometry.sites
    assert frozen.geometry.d_model == 32 and frozen.geometry.vocab_size == ID_VOCAB
    assert (sites["encoder"].layers, sites["encoder"].heads, sites["encoder"].head_dim) == (3, 2, 8)
    assert (sites["decoder"].layers, sites["decoder"].heads, sites["decoder"].head_dim) == (2, 1, 6)
    assert sites["cross"] == sites["decoder"]
    prefixes = PrefixBank(1, PrefixShape.for_config(frozen.config, 3))
    assert {site: tuple(kv.shape) for site, kv in prefixes.kv.items()} == {
        "encoder": (1, 3, 2, 2, 3, 8),
        "decoder": (1, 2, 2, 1, 3, 6),
        "cross": (1, 2, 2, 1, 3, 6),
    }


def test_a_saved_t5gemma_loads_eager_only_and_sdpa_is_refused_in_one_line(tmp_path):
    """Its class, family, freezing and bf16 loading are ``test_families.py``'s (with every family); T5Gemma has no
    sdpa kernel (soft-capping), so asking for one is refused."""
    save_model_dir(build(ids_only=False), tmp_path)
    assert load_frozen_t5(str(tmp_path)).config._attn_implementation == "eager"
    with pytest.raises(SoftpromptError) as refused:
        load_frozen_t5(str(tmp_path), attn_implementation="sdpa")
    assert str(refused.value) == (
        f"{str(tmp_path)!r} is a t5gemma model, which runs attn_implementation eager only, not 'sdpa'"
    )


def test_a_gemma_tokenizer_loads_with_eos_after_every_text_and_its_earliest_merges_as_frequent_pieces(
    gemma_model_dir,
):
    """Gemma's tokenizer puts BOS in front and pads on the left; loaded with a T5Gemma it follows softprompt's (T5's)
    convention: EOS after every text, no BOS, right padding. Its frequent pieces (sampled-vocab and class-label
    inits) are its earliest merges: no special, byte or added token."""
    assert gemma_tokenizer()("a cat").input_ids[0] == 2  # as it comes: BOS in front, no EOS
    tokenizer = load_frozen_t5(str(gemma_model_dir)).tokenizer
    batch_ = tokenizer(["a cat sat", "a"], padding=True)
    assert [ids[-1] for ids in batch_.input_ids] == [1, 0] and 2 not in batch_.input_ids[0]
    assert batch_.attention_mask[1][0] == 1 and tokenizer.padding_side == "right"
    frequent = frequent_token_ids(tokenizer, n=50).tolist()
    pieces = tokenizer.convert_ids_to_tokens(frequent)
    assert frequent == sorted(frequent) and min(frequent) == len(
        GEMMA_SPECIAL + GEMMA_BYTES
    )  # the first piece after them
    assert not any(piece.startswith("<") and piece.endswith(">") for piece in pieces)


def test_the_released_checkpoints_have_aliases():
    assert resolve_model_name("t5gemma-2b-2b-prefixlm-it") == "google/t5gemma-2b-2b-prefixlm-it"
    assert resolve_model_name("t5gemma-9b-2b-ul2") == "google/t5gemma-9b-2b-ul2"
    assert "t5gemma" not in REFUSED


# ----------------------------------------------------------------------------- exactness: hand-appended prefixes

HAND = "softprompt_test_t5gemma_hand_appended"


def _hand_appended(module, query, key, value, attention_mask, **_):
    """softmax(cap·tanh(q·[Kp; K]ᵀ / sqrt(query_pre_attn_scalar) / cap) + [0, mask]) · [Vp; V], written out from
    the module's config alone (the kernel's keyword arguments and the model's masks are ignored): ``key`` holds the
    text's keys as the model rotated them (positions 0..T-1), the prefix keys are prepended unrotated; each key/value
    head serves its group of query heads; the mask of the real columns is built here from the padding, causality and
    the layer's sliding window; the prefix columns are always open."""
    site, layer = module.hand_site
    config = module.config
    prefix = module.hand_prefixes[site][:, layer]  # (B, 2, Hkv, Pp, d)
    n_prefix, queries, length = prefix.shape[-2], query.shape[2], key.shape[2]
    groups = query.shape[1] // key.shape[1]
    keys = torch.cat([prefix[:, 0], key], dim=2).repeat_interleave(groups, dim=1)  # (B, H, Pp+K, d)
    values = torch.cat([prefix[:, 1], value], dim=2).repeat_interleave(groups, dim=1)
    q_pos, k_pos = torch.arange(queries)[:, None], torch.arange(length)[None, :]  # the text's own positions
    allowed = torch.ones(queries, length, dtype=torch.bool)
    sliding = site != "cross" and config.layer_types[layer] == "sliding_attention"
    if site == "decoder":
        allowed &= k_pos <= q_pos
        if sliding:
            allowed &= k_pos > q_pos - config.sliding_window
    else:
        allowed = allowed & module.hand_padding[:, None, None, :].bool()  # (B, 1, Q, K)
        if sliding:
            allowed &= (q_pos - k_pos).abs() <= config.sliding_window
    real = torch.zeros(allowed.shape).masked_fill(~allowed, torch.finfo(torch.float32).min)
    scores = query @ keys.transpose(-1, -2) * config.query_pre_attn_scalar**-0.5  # (B, H, Q, Pp+K)
    cap = config.attn_logit_softcapping
    scores = torch.tanh(scores / cap) * cap
    scores = scores + torch.cat([torch.zeros(*real.shape[:-1], n_prefix), real], dim=-1)
    return (scores.softmax(-1) @ values).transpose(1, 2), None  # (B, Q, H, d)


AttentionInterface.register(HAND, _hand_appended)
AttentionMaskInterface.register(HAND, eager_mask)


def test_prompts_and_prefixes_equal_keys_values_appended_by_hand():
    """Per-row prompts and prefixes at all three sites, a padded row, sliding windows shorter than the sequences,
    soft-capping, grouped-query heads: the logits equal the unwrapped model given the prompts as input embeddings and
    the prefixes appended by ``_hand_appended``."""
    hand = build().model  # same seed, same weights, never wrapped by softprompt
    ids, _, dec = assert_prefixes_equal_hand_appended(build(), hand, HAND)
    assert {m.config.layer_types[i] for i, m in enumerate(attention_sites(hand)["encoder"])} == {
        "sliding_attention",
        "full_attention",
    }
    assert WINDOW < P + ids.shape[1] and WINDOW < dec.shape[1]


# ----------------------------------------------------------------------------- the CLI, from a saved directory


def test_train_ensemble_eval_and_predict_from_a_saved_t5gemma_directory(gemma_model_dir, tmp_path):
    """``softprompt train --model ./t5gemma_dir`` (a Gemma tokenizer; the default init: class-label words, then
    frequent pieces) with prompts and deep prefixes, then ``ensemble-eval`` and ``predict`` of the run, end to end
    through the CLI."""
    model = train_evaluate_predict(gemma_model_dir, tmp_path)["model"]
    assert (model["family"], model["d_model"], model["num_heads"], model["d_kv"]) == ("t5gemma", 32, 2, 8)
