"""Tiny randomly initialised models of each T5 family, built in-process from the family's real configuration and
model classes (``softprompt.model.families``), for tests, benchmarks and demos: frozen, with the vendored T5 tokenizer
by default, so nothing is downloaded.
"""

from __future__ import annotations

import torch
from transformers import (
    PretrainedConfig,
    PreTrainedTokenizerBase,
    SiglipVisionConfig,
    T5Gemma2Config,
    T5GemmaConfig,
    T5GemmaModuleConfig,
)
from transformers.models.t5gemma2.configuration_t5gemma2 import (
    T5Gemma2DecoderConfig,
    T5Gemma2EncoderConfig,
    T5Gemma2TextConfig,
)

from softprompt.model.families import FAMILIES
from softprompt.model.loading import FrozenT5, freeze, load_tokenizer

GEMMA_TOKENS = dict(pad_token_id=0, eos_token_id=1, bos_token_id=2)  # Gemma's ids


def random_t5(
    d_model: int = 32,
    d_ff: int = 64,
    d_kv: int = 8,
    num_heads: int = 4,
    num_layers: int = 2,
    vocab_size: int = 32128,
    seed: int = 0,
    attn_implementation: str = "sdpa",
    family: str = "t5",
    tokenizer: PreTrainedTokenizerBase | None = None,
    **extra: object,
) -> FrozenT5:
    """A frozen, randomly initialised model of ``family`` (its own configuration and model classes, see
    ``softprompt.model.families``) with ``tokenizer``, by default the real T5 vocabulary (tests, benchmarks, demos).

    >>> tiny = random_t5(d_model=32, num_layers=2)
    >>> tiny.config.num_decoder_layers, tiny.tokenizer.convert_ids_to_tokens(tiny.tokenizer("positive").input_ids)
    (2, ['▁positive', '</s>'])
    >>> type(random_t5(family="umt5").model).__name__
    'UMT5ForConditionalGeneration'
    """
    spec = FAMILIES[family]
    config = spec.config_class(
        vocab_size=vocab_size,
        d_model=d_model,
        d_ff=d_ff,
        d_kv=d_kv,
        num_heads=num_heads,
        num_layers=num_layers,
        num_decoder_layers=num_layers,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        **extra,
    )
    config._attn_implementation = attn_implementation
    return _random_model(family, config, f"random-{family}-d{d_model}-l{num_layers}-seed{seed}", seed, tokenizer)


def random_t5gemma(
    hidden_size: int = 32,
    intermediate_size: int = 64,
    head_dim: int = 8,
    num_attention_heads: int = 4,
    num_key_value_heads: int = 2,
    num_layers: int = 3,
    sliding_window: int = 4,
    vocab_size: int = 32128,
    seed: int = 0,
    family: str = "t5gemma",
    attn_implementation: str | None = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    decoder: dict | None = None,
    **extra: object,
) -> FrozenT5:
    """A frozen, randomly initialised T5Gemma (``family="t5gemma"``: ``T5GemmaConfig`` /
    ``T5GemmaForConditionalGeneration``, attention and final-logit soft-capping as the released checkpoints set them)
    or T5Gemma 2 (``family="t5gemma2"``: ``T5Gemma2Config`` / ``T5Gemma2ForConditionalGeneration``, query/key norms, the
    decoder's merged self- and cross-attention, a one-layer image encoder that text never reaches), with grouped-query
    heads and alternating sliding-window and full layers, on the family's default kernel unless
    ``attn_implementation`` is given. ``extra`` overrides settings of both text stacks, ``decoder`` the decoder's alone
    (a 9B-2B-like pair; T5Gemma 2's decoder keeps the encoder's width: its merged attention projects the encoder's
    states). Token ids follow Gemma's layout (pad 0, eos 1, bos 2, the decoder's start); ``tokenizer`` defaults to the
    vendored T5 vocabulary, which shares pad and eos with it.

    >>> tiny = random_t5gemma(decoder={"hidden_size": 24, "num_hidden_layers": 2})
    >>> tiny.geometry.d_model, tiny.geometry.sites["encoder"], tiny.geometry.sites["cross"]
    (32, SiteGeometry(layers=3, heads=2, head_dim=8), SiteGeometry(layers=2, heads=2, head_dim=8))
    >>> tiny2 = random_t5gemma(family="t5gemma2")  # sdpa, its default kernel
    >>> tiny2.config._attn_implementation, round(tiny2.geometry.input_scale, 3)
    ('sdpa', 5.657)
    """
    encoder = dict(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_attention_heads,
        num_key_value_heads=num_key_value_heads,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,
        sliding_window=sliding_window,
        **GEMMA_TOKENS,
    )
    if family == "t5gemma":
        encoder.update(attn_logit_softcapping=50.0, final_logit_softcapping=30.0)
    encoder.update(extra)
    decoder = {**encoder, **(decoder or {})}
    config = _t5gemma_config(encoder, decoder) if family == "t5gemma" else _t5gemma2_config(encoder, decoder)
    config._attn_implementation = attn_implementation or FAMILIES[family].attention[0]
    return _random_model(family, config, f"random-{family}-d{hidden_size}-l{num_layers}-seed{seed}", seed, tokenizer)


def _t5gemma_config(encoder: dict, decoder: dict) -> T5GemmaConfig:
    return T5GemmaConfig(
        encoder=T5GemmaModuleConfig(**encoder),
        decoder=T5GemmaModuleConfig(**decoder),
        vocab_size=encoder["vocab_size"],
        decoder_start_token_id=GEMMA_TOKENS["bos_token_id"],
        **GEMMA_TOKENS,
    )


def _t5gemma2_config(encoder: dict, decoder: dict) -> T5Gemma2Config:
    for stack in (encoder, decoder):  # sliding-window and full layers alternate (5 to 1 in the released checkpoints)
        stack.setdefault(
            "layer_types", [("sliding_attention", "full_attention")[i % 2] for i in range(stack["num_hidden_layers"])]
        )
    vision = SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28, patch_size=14
    )
    return T5Gemma2Config(
        encoder=T5Gemma2EncoderConfig(
            text_config=T5Gemma2TextConfig(**encoder), vision_config=vision, mm_tokens_per_image=4
        ),
        decoder=T5Gemma2DecoderConfig(**decoder),
    )


def _random_model(
    family: str, config: PretrainedConfig, name: str, seed: int, tokenizer: PreTrainedTokenizerBase | None
) -> FrozenT5:
    """A frozen model of ``family`` built from ``config`` with weights drawn from ``seed``, and ``tokenizer`` (by
    default the vendored T5 vocabulary)."""
    torch.manual_seed(seed)
    model = FAMILIES[family].model_class(config)
    return FrozenT5(freeze(model), tokenizer if tokenizer is not None else load_tokenizer(), name)
