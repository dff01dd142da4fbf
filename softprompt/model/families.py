"""The supported encoder-decoders: which model types softprompt loads, with which class, and why the others are refused.

A family is one ``config.model_type`` with its transformers class and its ``Layout`` (``softprompt.model.layouts``:
its geometry, its attention modules per site and its own attention kernels), through which prompts and deep prefixes
reach every attention site (``softprompt.model.attention``):

* ``t5``: T5, T5 v1.1 / LM-adapted, Flan-T5, ByT5 (a byte tokenizer) and UL2 / Flan-UL2 (gated-SiLU);
* ``mt5``: mT5, the T5 v1.1 architecture with a 250k multilingual vocabulary;
* ``umt5``: umT5, like mT5 but every layer owns its relative-position bias;
* ``t5gemma``: T5Gemma (text only): rotary positions, grouped-query heads, sliding-window layers and logit
  soft-capping, an encoder and a decoder that may differ in size (9B-2B); eager attention only;
* ``t5gemma2``: T5Gemma 2 (text only: its image encoder is loaded but never fed): T5Gemma's attention with Gemma 3's
  query/key norms, tied embeddings scaled inside the embedding layer, and a decoder whose self- and cross-attention
  are one merged attention; sdpa or eager.

>>> from transformers import MT5Config
>>> model_family(MT5Config(), "./mt5").model_class.__name__
'MT5ForConditionalGeneration'
>>> geometry_of(MT5Config(num_layers=2)).sites["encoder"]
SiteGeometry(layers=2, heads=6, head_dim=64)
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import (
    MT5Config,
    MT5ForConditionalGeneration,
    PretrainedConfig,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
    T5Gemma2Config,
    T5Gemma2ForConditionalGeneration,
    T5GemmaConfig,
    T5GemmaForConditionalGeneration,
    UMT5Config,
    UMT5ForConditionalGeneration,
)

from softprompt.errors import SoftpromptError
from softprompt.model.layouts import T5_LAYOUT, T5GEMMA2_LAYOUT, T5GEMMA_LAYOUT, Geometry, Layout


@dataclass(frozen=True)
class Family:
    """One supported model type: ``name`` (= ``config.model_type``, recorded in artefacts), the checkpoints
    it covers, its transformers classes and its ``layout``. ``cross_rows``: how K decoder rows per encoder row
    (rank-classification candidates, beams) meet the encoder's states: ``"shared"``, the cross-attention projects
    keys/values from the encoder's own rows, so the K rows share one projection; ``"projected"``, umT5 reshapes them to
    the decoder's row count, so they are projected beforehand (a prefilled cache); ``"repeated"``, T5Gemma 2's merged
    attention concatenates them with each decoder row's own keys, so each decoder row gets its own copy.
    ``eos_tokens``: its tokenizer (Gemma's: BOS in front, nothing after, left padding) is set on load to the T5
    convention softprompt's inputs and targets follow: EOS after every text, no BOS, right padding."""

    name: str
    members: str
    config_class: type[PretrainedConfig]
    model_class: type[PreTrainedModel]
    cross_rows: str = "shared"
    layout: Layout = T5_LAYOUT
    eos_tokens: bool = False

    @property
    def attention(self) -> tuple[str, ...]:
        """The attention implementations it runs, the default first (T5Gemma: eager alone)."""
        return tuple(self.layout.kernels)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("t5", "T5, T5 v1.1, Flan-T5, ByT5, UL2 / Flan-UL2", T5Config, T5ForConditionalGeneration),
        Family("mt5", "mT5", MT5Config, MT5ForConditionalGeneration),
        Family("umt5", "umT5", UMT5Config, UMT5ForConditionalGeneration, cross_rows="projected"),
        Family(
            "t5gemma", "T5Gemma", T5GemmaConfig, T5GemmaForConditionalGeneration, layout=T5GEMMA_LAYOUT, eos_tokens=True
        ),
        Family(
            "t5gemma2",
            "T5Gemma 2",
            T5Gemma2Config,
            T5Gemma2ForConditionalGeneration,
            cross_rows="repeated",
            layout=T5GEMMA2_LAYOUT,
            eos_tokens=True,
        ),
    )
}

# Encoder-decoders of the family that softprompt refuses, and why (one clause each).
REFUSED: dict[str, str] = {
    "longt5": (
        "its encoder attends within a local window (local or transient-global attention, computed inside the "
        "layer, outside transformers' attention interface), so tokens farther than local_radius from an input "
        "prompt never see it and deep prefixes cannot reach the encoder"
    ),
}


def supported_families() -> str:
    """The supported families for a message: ``"t5 (T5, ...), mt5 (mT5), umt5 (umT5)"``."""
    return ", ".join(f"{family.name} ({family.members})" for family in FAMILIES.values())


def model_family(config: PretrainedConfig, name: str) -> Family:
    """The family of a model's ``config``, or a one-line error naming the supported families."""
    model_type = getattr(config, "model_type", None)
    family = FAMILIES.get(model_type)
    if family is not None and getattr(config, "is_encoder_decoder", False):
        return family
    if model_type in REFUSED:
        raise SoftpromptError(
            f"{name!r} is a {model_type!r} model, which softprompt does not support: {REFUSED[model_type]}; "
            f"use a model of the supported T5 families: {supported_families()}"
        )
    raise SoftpromptError(
        f"{name!r} is a {model_type!r} model, not an encoder-decoder of the T5 family; softprompt supports "
        f"{supported_families()}"
    )


def family_name(config: PretrainedConfig) -> str:
    """The family recorded for ``config`` (its model type; artefacts from before families were recorded are t5)."""
    return getattr(config, "model_type", None) or "t5"


def family_of(config: PretrainedConfig) -> Family:
    """The family of a loaded model's config (``model_family`` has already accepted it)."""
    return FAMILIES[family_name(config)]


def geometry_of(config: PretrainedConfig) -> Geometry:
    """What softprompt's banks must match in a model of a supported family (``layouts.Geometry``)."""
    return family_of(config).layout.geometry(config)
