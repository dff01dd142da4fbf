"""Deep-prefix injection through transformers' pluggable attention function.

The attention modules of the supported families call ``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]`` with
the module, q, k, v and the mask (T5's also with ``position_bias``). We register wrapped versions of the ``sdpa``
and ``eager`` kernels that, for every attention site (encoder self-attention, decoder self-attention, decoder
cross-attention), prepend per-row prefix keys/values and then call the module's own kernel (``Layout.kernels``:
T5's, or T5Gemma's eager kernel with its scaling, soft-capping and ``sliding_window``):

* the prefix columns are always attended (mask 1 / additive 0),
* they get zero relative-position bias; the bias of real tokens was computed by T5 from the real
  key length before the prefix was added, so real tokens keep exactly their own relative positions,
* nothing is written to the KV cache: the prefix is prepended afresh at every call, so cached
  decoding never doubles it.

Because it works below ``T5Stack``, it reaches the encoder too (``T5Stack`` drops
``past_key_values`` in the encoder, so the KV-cache route cannot).

mT5 and umT5 (``softprompt.model.families``) have the same layout and call the same interface. umT5 computes a
relative-position bias in every layer instead of reusing the first layer's: each layer's bias is padded by the same
rule (prefix columns zero, real columns their own), prepared once per layer instead of once per stack.

T5Gemma rotates queries and keys (RoPE) before its kernel. Prefix keys are held as they enter the kernel, in the frame
of cached keys, and are never rotated: position-free, as PEFT's prefix tuning and Li & Liang's ``past_key_values``
hold them. So the text keeps its positions 0..T-1 (the query-key angles between real tokens are exactly the model's
own), and every query sees the prefix whatever its position: in sliding-window layers the prefix columns are open to
every query, like the columns of padding-free full attention. Its decoder's self-attention prefix keys meet rotated
queries, so their dot products depend on the query's position, as a cached key's would. T5Gemma runs eager attention
only (transformers has no sdpa kernel for it: soft-capping needs the scores).

T5Gemma 2 holds prefix keys the same way. Its decoder runs self- and cross-attention as one merged attention: one
softmax over the decoder's own (rotated) keys and the encoder's (unrotated) keys. That module hosts two sites: the
decoder prefix joins the softmax beside the decoder's keys and the cross prefix beside the encoder's, so there the two
act as one prefix of their summed length (with no position bias, where a column stands in the softmax is immaterial).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import AttentionInterface, PreTrainedModel
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, eager_mask, sdpa_mask

from softprompt.model.families import family_of
from softprompt.model.layouts import SITES, T5_LAYOUT

__all__ = ["PREFIXED", "SITES", "PrefixContext", "attention_sites", "install_prefix_attention"]
PREFIXED = {"sdpa": "softprompt_sdpa", "eager": "softprompt_eager"}


@dataclass
class PrefixContext:
    """What the wrapped attention reads on each call.

    ``kv`` maps a site to per-row prefixes of shape (B, L, 2, Hkv, Pp, d) (index 2: keys, values; the site's
    key/value heads and head size);
    ``captured`` (when not None) collects the real keys/values each site computes, by (site, layer).
    """

    kv: dict[str, torch.Tensor] = field(default_factory=dict)
    captured: dict[tuple[str, int], tuple[torch.Tensor, torch.Tensor]] | None = None
    _once: dict[tuple[str, str], tuple[object, tuple, object]] = field(default_factory=dict, repr=False)

    def once(self, key: tuple[str, str], source: object, variant: tuple, make: Callable[[], object]) -> object:
        """``make()``, computed again only when a call passes another ``source`` object or ``variant``.

        Every layer of a T5 stack passes the same prefix, mask and position bias, so their per-site
        preparation runs once per forward instead of once per layer: fewer kernels (what bounds
        a GPU at these sizes), one padded mask and bias saved for the backward instead of L, and
        the prefix's gradient gathered by one stack instead of L full-size select gradients. One
        entry per (site, kind): what the last forward prepared, nothing older.
        """
        hit = self._once.get(key)
        if hit is None or hit[0] is not source or hit[1] != variant:
            hit = self._once[key] = (source, variant, make())
        return hit[2]


def attention_sites(model: PreTrainedModel) -> dict[str, list[nn.Module]]:
    """The attention modules (T5Attention, or its family's) of each site, indexed by layer."""
    return family_of(model.config).layout.sites(model)


def install_prefix_attention(model: PreTrainedModel) -> PrefixContext:
    """Route ``model``'s attention through the prefix-aware kernels; returns the shared context.

    With an empty context the wrapped kernels are the original ones, bit for bit: each module keeps its family's own
    kernel for the implementation it was loaded with (``Layout.kernels``).
    """
    implementation = model.config._attn_implementation
    if implementation in PREFIXED.values():
        return attention_sites(model)["encoder"][0].softprompt_context
    kernels = family_of(model.config).layout.kernels
    if implementation not in kernels:
        supported = " or ".join(kernels)
        raise ValueError(f"prefix injection supports attn_implementation {supported} here, not {implementation!r}")
    context = PrefixContext()
    for site, modules in attention_sites(model).items():
        for layer, module in enumerate(modules):  # T5Gemma 2's merged attention hosts the decoder and cross sites
            module.softprompt_sites = (*getattr(module, "softprompt_sites", ()), (site, layer))
            module.softprompt_context = context
            module.softprompt_kernel = kernels[implementation]
    model.set_attn_implementation(PREFIXED[implementation])
    return context


def _with_prefix(default_kernel):
    def attention(module, query, key, value, attention_mask, position_bias=None, **kwargs):
        # query (B, H, Q, d); key/value (B, Hkv, K, d) (Hkv = H but under grouped-query attention)
        kernel = getattr(module, "softprompt_kernel", default_kernel)
        if position_bias is not None:  # T5's relative-position bias; T5Gemma's kernel takes none
            kwargs["position_bias"] = position_bias
        context: PrefixContext | None = getattr(module, "softprompt_context", None)
        if context is None:
            return kernel(module, query, key, value, attention_mask, **kwargs)
        sites = module.softprompt_sites  # ((site, layer), ...): one, or the two a merged attention hosts
        site = sites[0][0]
        if site == "cross" and query.shape[0] != key.shape[0]:  # K decoder rows per encoder row (candidates, beams)
            return _fold_candidates(attention, context, module, query, key, value, attention_mask, **kwargs)
        if context.captured is not None:
            context.captured.update(dict.fromkeys(sites, (key, value)))
        prefixes = {name: context.kv.get(name) for name, _ in sites}
        present = [(name, layer, prefixes[name]) for name, layer in sites if _nonempty(prefixes[name])]
        if not present:  # no prefix / zero-length: the original kernel, bit for bit
            return kernel(module, query, key, value, attention_mask, **kwargs)
        batch, keys, values = query.shape[0], [], []
        for name, layer, prefix in present:
            layers = context.once(  # 2L tensors (B, Hkv, Pp, d): layer l's keys at 2l, its values at 2l+1
                (name, "kv"),
                prefix,
                (batch, key.dtype, key.device),
                lambda prefix=prefix: _match_batch(prefix, batch).to(key.device, key.dtype).flatten(1, 2).unbind(1),
            )
            keys.append(layers[2 * layer])
            values.append(layers[2 * layer + 1])
        n_prefix = sum(k.shape[2] for k in keys)
        if attention_mask is None and site == "decoder" and query.shape[2] > 1:
            shape = (query.shape[2], key.shape[2], key.device, query.dtype, kernel is not sdpa_attention_forward)
            attention_mask = context.once((site, "causal"), None, shape, lambda: _causal_mask(*shape))
        key = torch.cat([*keys, key], dim=2)  # (B, Hkv, Pp+K, d)
        value = torch.cat([*values, value], dim=2)
        if attention_mask is not None:  # make() runs inside once(), before the name is rebound
            window = kwargs.get("sliding_window", getattr(module, "sliding_window", None))
            attention_mask = context.once(  # one per mask kind: T5Gemma's sliding-window layers have their own
                (site, "mask", window),
                attention_mask,
                (n_prefix,),
                lambda: _pad_front(attention_mask, n_prefix, True if attention_mask.dtype == torch.bool else 0.0),
            )
        if position_bias is not None:  # prefix columns: zero bias
            kwargs["position_bias"] = context.once(
                (site, "bias"), position_bias, (n_prefix,), lambda: _pad_front(position_bias, n_prefix, 0.0)
            )
        return kernel(module, query, key, value, attention_mask, **kwargs)

    return attention


def _fold_candidates(attend, context: PrefixContext, module, query, key, value, attention_mask, **kwargs):
    """Cross-attention of K decoder rows per encoder row (row b's candidates or beams at rows b·K .. b·K+K-1),
    computed as one row of K·S queries, so the keys/values stay one copy per encoder row instead of K.
    Exact: cross-attention has no relative-position bias in the T5 family (zeros) and no rotary positions in T5Gemma,
    so every query of a row attends to the same keys under the same mask and bias.
    """
    position_bias = kwargs.pop("position_bias", None)
    rows, heads, length, d_kv = query.shape  # (B·K, H, S, d)
    batch = key.shape[0]
    if rows % batch or getattr(module, "has_relative_attention_bias", False):
        raise ValueError(
            f"cross-attention of {rows} decoder rows over {batch} encoder rows: "
            "expected K whole candidates per row and no relative-position bias"
        )
    k = rows // batch
    folded = (
        query.view(batch, k, heads, length, d_kv).transpose(1, 2).reshape(batch, heads, k * length, d_kv)
    )  # (B, H, K·S, d)
    # masks and biases of (B·K, B or 1) rows -> one per encoder row (B or 1), one query row for all queries
    mask, bias = (
        None
        if t is None
        else context.once(("cross", name), t, (k,), lambda t=t: (t[::k] if t.shape[0] == rows else t)[:, :, :1])
        for name, t in (("folded mask", attention_mask), ("folded bias", position_bias))
    )
    out, weights = attend(module, folded, key, value, mask, position_bias=bias, **kwargs)  # (B, K·S, H, d_kv)
    if weights is not None:  # (B, H, K·S, Tk) -> (B·K, H, S, Tk)
        weights = weights.view(batch, heads, k, length, -1).transpose(1, 2).reshape(rows, heads, length, -1)
    return out.reshape(rows, length, heads, d_kv), weights


def _nonempty(prefix: torch.Tensor | None) -> bool:
    return prefix is not None and prefix.shape[-2] > 0


def _match_batch(prefix: torch.Tensor, batch: int) -> torch.Tensor:
    """Repeat per-example prefixes for rows that ``generate()`` expanded (beams): (B0, ...) -> (B, ...)."""
    if prefix.shape[0] == batch:
        return prefix
    if batch % prefix.shape[0]:
        raise ValueError(f"prefix batch {prefix.shape[0]} does not divide attention batch {batch}")
    return prefix.repeat_interleave(batch // prefix.shape[0], dim=0)


def _causal_mask(
    q_length: int, k_length: int, device: torch.device, dtype: torch.dtype, additive: bool
) -> torch.Tensor:
    """(1, 1, Q, K) causal mask with the queries aligned to the last Q keys: boolean, or ``additive``
    (0 / dtype's min, as the eager kernel adds its mask)."""
    offset = k_length - q_length
    rows = torch.arange(q_length, device=device)[:, None] + offset
    allowed = (torch.arange(k_length, device=device)[None, :] <= rows)[None, None]
    if not additive:
        return allowed
    return torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, torch.finfo(dtype).min)


def _pad_front(tensor: torch.Tensor, n: int, value: float | bool) -> torch.Tensor:
    """Prepend ``n`` columns filled with ``value`` on the last (key) dimension."""
    pad = torch.full((*tensor.shape[:-1], n), value, dtype=tensor.dtype, device=tensor.device)
    return torch.cat([pad, tensor], dim=-1)


AttentionInterface.register(PREFIXED["sdpa"], _with_prefix(T5_LAYOUT.kernels["sdpa"]))
AttentionInterface.register(PREFIXED["eager"], _with_prefix(T5_LAYOUT.kernels["eager"]))
AttentionMaskInterface.register(PREFIXED["sdpa"], sdpa_mask)
AttentionMaskInterface.register(PREFIXED["eager"], eager_mask)
