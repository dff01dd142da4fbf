"""Where softprompt reaches into an encoder-decoder: its geometry and its attention modules, per architecture.

Prompts, deep prefixes, beam caches and artefact checks need five things of a model, and nothing else: the width of
the encoder's input embeddings, the vocabulary, per attention site (encoder self, decoder self, cross) its layer count,
key/value heads and head size, the attention modules of each site, and the model's own attention kernels. A
``Layout`` answers them for one architecture:

* ``T5_LAYOUT`` (t5, mt5, umt5): ``encoder.block[i].layer[0].SelfAttention``, ``decoder.block[i].layer[1]
  .EncDecAttention``, ``num_heads`` heads of ``d_kv``, relative-position bias, sdpa or eager;
* ``T5GEMMA_LAYOUT`` (t5gemma): ``model.encoder.layers[i].self_attn``, ``model.decoder.layers[i].cross_attn``, the
  encoder's and decoder's own nested configs (``hidden_size``, ``num_key_value_heads`` of ``head_dim``: grouped-query
  attention), rotary positions, sliding-window layers and logit soft-capping in T5Gemma's eager kernel (transformers
  has no sdpa kernel for it: soft-capping needs the scores);
* ``T5GEMMA2_LAYOUT`` (t5gemma2): ``model.encoder.text_model.layers[i].self_attn`` and the decoder's merged attention
  ``model.decoder.layers[i].self_attn``, one softmax over the decoder's own keys and the encoder's, which hosts both
  the decoder and the cross site (its keys come from one ``k_proj``, the encoder's normalised by ``k_norm``); its
  embedding layer multiplies token embeddings by sqrt(hidden_size) itself (``Geometry.input_scale``), where T5Gemma's
  encoder scales whatever embeddings it receives; sdpa or eager.

>>> from transformers import T5Config
>>> T5_LAYOUT.geometry(T5Config(num_layers=2, num_heads=4, d_kv=16)).sites["cross"]
SiteGeometry(layers=2, heads=4, head_dim=16)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.models.t5.modeling_t5 import eager_attention_forward as t5_eager_attention_forward
from transformers.models.t5gemma.modeling_t5gemma import eager_attention_forward as t5gemma_eager_attention_forward
from transformers.models.t5gemma2.modeling_t5gemma2 import eager_attention_forward as t5gemma2_eager_attention_forward

SITES = ("encoder", "decoder", "cross")


@dataclass(frozen=True)
class SiteGeometry:
    """One attention site: ``layers`` attention modules whose keys/values have ``heads`` heads of ``head_dim`` (the
    key/value heads: fewer than the query heads under grouped-query attention)."""

    layers: int
    heads: int
    head_dim: int


@dataclass(frozen=True)
class Geometry:
    """What softprompt's banks must match in a model: ``d_model``, the width of the encoder's input embeddings (prompt
    vectors, DePT updates), ``vocab_size``, the encoder's embedding rows, and each site's ``SiteGeometry``.
    ``input_scale``: what the model's embedding layer multiplies table rows by before the encoder takes them (T5Gemma
    2's sqrt(hidden_size); 1 where the encoder scales whatever embeddings it receives, or nothing does): prompt vectors
    and DePT updates live in table space and are multiplied by it, so a prompt equal to a token's row is that token."""

    d_model: int
    vocab_size: int
    sites: dict[str, SiteGeometry]
    input_scale: float = 1.0


class Layout(ABC):
    """One architecture's answers (see the module docstring); ``kernels`` maps an ``attn_implementation`` the model
    runs to its own attention function, the first being the one it loads with by default."""

    kernels: dict[str, Callable]

    @abstractmethod
    def geometry(self, config: PretrainedConfig) -> Geometry:
        """The geometry of a model's ``config``."""

    @abstractmethod
    def sites(self, model: PreTrainedModel) -> dict[str, list[nn.Module]]:
        """The attention modules of each site, indexed by layer."""

    @abstractmethod
    def cross_keys_values(self, module: nn.Module, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A cross-attention module's keys and values of encoder states (B, S, d): each (B, Hkv, S, head_dim)."""


class T5Layout(Layout):
    kernels = {"sdpa": sdpa_attention_forward, "eager": t5_eager_attention_forward}

    def geometry(self, config: PretrainedConfig) -> Geometry:
        encoder = SiteGeometry(config.num_layers, config.num_heads, config.d_kv)
        decoder = SiteGeometry(config.num_decoder_layers, config.num_heads, config.d_kv)
        return Geometry(config.d_model, config.vocab_size, {"encoder": encoder, "decoder": decoder, "cross": decoder})

    def sites(self, model: PreTrainedModel) -> dict[str, list[nn.Module]]:
        return {
            "encoder": [block.layer[0].SelfAttention for block in model.encoder.block],
            "decoder": [block.layer[0].SelfAttention for block in model.decoder.block],
            "cross": [block.layer[1].EncDecAttention for block in model.decoder.block],
        }

    def cross_keys_values(self, module: nn.Module, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*states.shape[:-1], -1, module.key_value_proj_dim)
        return module.k(states).view(shape).transpose(1, 2), module.v(states).view(shape).transpose(1, 2)


class T5GemmaLayout(Layout):
    kernels = {"eager": t5gemma_eager_attention_forward}

    def stacks(self, config: PretrainedConfig) -> tuple[PretrainedConfig, PretrainedConfig]:
        """The encoder's and the decoder's text configs."""
        return config.encoder, config.decoder

    def input_scale(self, encoder: PretrainedConfig) -> float:
        """What the embedding layer multiplies rows by (``Geometry.input_scale``): T5Gemma's encoder scales inputs."""
        return 1.0

    def geometry(self, config: PretrainedConfig) -> Geometry:
        encoder, decoder = self.stacks(config)
        self_decoder = SiteGeometry(decoder.num_hidden_layers, decoder.num_key_value_heads, decoder.head_dim)
        return Geometry(
            encoder.hidden_size,
            encoder.vocab_size,
            {
                "encoder": SiteGeometry(encoder.num_hidden_layers, encoder.num_key_value_heads, encoder.head_dim),
                "decoder": self_decoder,
                "cross": self_decoder,  # the decoder's heads, projected from the encoder's states
            },
            self.input_scale(encoder),
        )

    def sites(self, model: PreTrainedModel) -> dict[str, list[nn.Module]]:
        return {
            "encoder": [layer.self_attn for layer in model.model.encoder.layers],
            "decoder": [layer.self_attn for layer in model.model.decoder.layers],
            "cross": [layer.cross_attn for layer in model.model.decoder.layers],
        }

    def cross_keys_values(self, module: nn.Module, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shape = (*states.shape[:-1], -1, module.head_dim)
        return module.k_proj(states).view(shape).transpose(1, 2), module.v_proj(states).view(shape).transpose(1, 2)


class T5Gemma2Layout(T5GemmaLayout):
    """T5Gemma's geometry, read from the encoder's text config; the decoder's merged attention is both the decoder
    and the cross site; the embedding layer scales rows by sqrt(hidden_size); sdpa too."""

    kernels = {"sdpa": sdpa_attention_forward, "eager": t5gemma2_eager_attention_forward}

    def stacks(self, config: PretrainedConfig) -> tuple[PretrainedConfig, PretrainedConfig]:
        return config.encoder.text_config, config.decoder

    def input_scale(self, encoder: PretrainedConfig) -> float:
        return encoder.hidden_size**0.5

    def sites(self, model: PreTrainedModel) -> dict[str, list[nn.Module]]:
        merged = [layer.self_attn for layer in model.model.decoder.layers]
        return {
            "encoder": [layer.self_attn for layer in model.model.encoder.text_model.layers],
            "decoder": merged,
            "cross": merged,
        }

    def cross_keys_values(self, module: nn.Module, states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = super().cross_keys_values(module, states)
        return module.k_norm(keys), values  # the encoder's keys are normalised like the decoder's own, never rotated


T5_LAYOUT = T5Layout()
T5GEMMA_LAYOUT = T5GemmaLayout()
T5GEMMA2_LAYOUT = T5Gemma2Layout()
