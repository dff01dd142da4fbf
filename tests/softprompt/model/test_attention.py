"""Deep-prefix injection (``softprompt.model.attention``): numerical proofs on tiny random T5s.

Every test uses ``softprompt.model.random_models.random_t5`` — a frozen, randomly initialised tiny T5 built in
well under a second — which is the right fixture here: the claims are about how keys/values,
masks and position biases are wired through T5's attention, which no pretrained weight changes.
Most models use a small vocabulary (token ids only, no tokenizer round trip) to keep tests fast.

Position bias, in short: T5 adds a learned relative-position bias (only the first layer of each
stack owns the table; later layers reuse its output). The prefix columns get zero bias, and the
real tokens keep the bias T5 computed for them from their own positions. So a prefix equal to the
K/V of real tokens t1..tk matches "t1..tk as real tokens" only if the bias those tokens would have
had is zero too; the exactness tests therefore zero the relevant ``relative_attention_bias`` table
(then the bias is 0 for every pair). Real-to-real relative positions are unchanged by dropping
t1..tk (a shift of both ends), so nothing else about positions matters. Cross-attention has no
position bias in T5 at all (checked below). ``test_kernel_*`` checks the bias/mask wiring itself
with non-zero bias against a hand-written softmax.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_outputs import BaseModelOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

from softprompt.model.attention import PREFIXED, PrefixContext, attention_sites, install_prefix_attention
from softprompt.model.beam_cache import CACHE_ARGUMENT
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.random_models import random_t5

ATOL = 1e-5
VOCAB = 256  # token-id-only tests: a small vocabulary keeps the models tiny
SHAPES = {
    "t5-like": dict(d_model=32, d_kv=8, num_heads=4),
    "t5-3b-like": dict(d_model=32, d_kv=16, num_heads=4),  # d_kv * heads (64) != d_model (32)
}


def tiny(attn: str = "sdpa", seed: int = 0, shape: str = "t5-like", **extra):
    return random_t5(vocab_size=VOCAB, seed=seed, attn_implementation=attn, **SHAPES[shape], **extra)


def batch(seed: int = 0, b: int = 2, t: int = 9, pad_last: int = 3):
    """Random token ids (no pad/eos ids) and a mask with the last row right-padded by ``pad_last``."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    if pad_last:
        mask[-1, -pad_last:] = 0
        ids[-1, -pad_last:] = 0
    return ids, mask


def dec_ids(seed: int = 1, b: int = 2, t: int = 7):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (b, t), generator=g)
    ids[:, 0] = 0  # decoder start token
    return ids


def stack_prefix(captured, site: int | str, n_layers: int, positions: slice) -> torch.Tensor:
    """Captured real K/V of ``site`` at ``positions`` as a prefix (B, L, 2, H, Pp, d_kv)."""
    per_layer = [
        torch.stack([k[:, :, positions], v[:, :, positions]], dim=1)
        for k, v in (captured[(site, layer)] for layer in range(n_layers))
    ]
    return torch.stack(per_layer, dim=1).detach().clone()


def random_bank(frozen, n: int = 2, length: int = 3, sites=("encoder", "decoder", "cross"), std: float = 1.0):
    """A direct prefix bank with O(1) random prefixes (large enough to change outputs visibly)."""
    bank = PrefixBank(n, PrefixShape.for_config(frozen.config, length, sites))
    bank.init_random(list(range(10, 10 + n)), std=std)
    return bank


# ----------------------------------------------------------------------------- kernel wiring


class _Module(nn.Module):
    is_causal = True


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("site", ["encoder", "decoder"])
def test_kernel_prefix_columns_zero_bias_real_columns_keep_theirs(attn, site):
    """The wrapped kernel equals a hand-written softmax over [prefix; real] keys in which the
    prefix columns get bias 0 and mask 'attend', and the real columns keep T5's (non-zero!) bias
    and mask unchanged; for the decoder with no mask the causal pattern is aligned so that query i
    sees every prefix column and real keys 0..i."""
    g = torch.Generator().manual_seed(0)
    b, h, q, pp, d = 3, 2, 5, 4, 8
    query, key, value = (torch.randn(b, h, q, d, generator=g) for _ in range(3))
    bias = torch.randn(1, h, q, q, generator=g)  # a non-zero relative-position bias
    prefix = torch.randn(b, 1, 2, h, pp, d, generator=g)  # one layer
    module = _Module()
    module.softprompt_context = PrefixContext(kv={site: prefix})
    module.softprompt_sites = ((site, 0),)

    real_ok = torch.ones(b, 1, q, q, dtype=torch.bool)
    if site == "encoder":  # padding mask: last row's last 2 keys are padding
        real_ok[-1, ..., -2:] = False
        mask = (
            real_ok if attn == "sdpa" else torch.zeros(b, 1, q, q).masked_fill(~real_ok, torch.finfo(torch.float32).min)
        )
    else:  # decoder with no mask: the wrapper must build the causal mask itself
        real_ok = real_ok & torch.ones(q, q, dtype=torch.bool).tril()
        mask = None
    out, _ = ALL_ATTENTION_FUNCTIONS[PREFIXED[attn]](module, query, key, value, mask, scaling=1.0, position_bias=bias)

    keys = torch.cat([prefix[:, 0, 0], key], dim=2)
    values = torch.cat([prefix[:, 0, 1], value], dim=2)
    full_bias = torch.cat([torch.zeros(1, h, q, pp), bias], dim=-1).expand(b, h, q, pp + q)
    allowed = torch.cat([torch.ones(b, 1, q, pp, dtype=torch.bool), real_ok], dim=-1)
    scores = (query @ keys.transpose(-1, -2) + full_bias).masked_fill(~allowed, float("-inf"))
    expected = (scores.softmax(-1) @ values).transpose(1, 2)
    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_install_is_idempotent_and_rejects_other_kernels():
    frozen = tiny()
    context = install_prefix_attention(frozen.model)
    assert install_prefix_attention(frozen.model) is context
    assert frozen.model.config._attn_implementation == PREFIXED["sdpa"]
    other = tiny()
    other.model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(ValueError, match="sdpa or eager"):
        install_prefix_attention(other.model)


# ----------------------------------------------------------------------------- exactness per site


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_decoder_prefix_equals_real_decoder_tokens(attn, shape):
    """A decoder-self-attention prefix holding the K/V the frozen model computes for the decoder
    tokens [start, t1..tk] gives the same next-token logits for the continuation c1..cm as decoding
    [start, t1..tk, c1..cm] for real — both in one full pass and with cached step-by-step decoding
    (so the cache neither stores nor doubles the prefix).

    Position bias: the decoder's relative-attention table (decoder layer 0; other layers reuse
    it) is zeroed, so the reference's bias from c_i to t_j (which the prefix columns cannot carry:
    they get 0) is 0 as well. Between continuation tokens the bias depends on (key - query) only,
    which dropping t1..tk leaves unchanged; with the table zeroed it is 0 anyway. The K/V of
    t1..tk depend on their own context (causal, plus cross-attention), so they are captured at
    every layer from the reference run itself.
    """
    frozen = tiny(attn, shape=shape)
    model = frozen.model
    bias_table = model.decoder.block[0].layer[0].SelfAttention.relative_attention_bias
    assert all(not b.layer[0].SelfAttention.has_relative_attention_bias for b in model.decoder.block[1:])
    with torch.no_grad():
        bias_table.weight.zero_()
    context = install_prefix_attention(model)
    ids, mask = batch()
    dec = dec_ids(t=8)
    p = 4  # start + t1..t3 become the prefix; c1..c4 stay real
    n_layers = model.config.num_decoder_layers

    context.captured = {}
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(input_ids=ids, attention_mask=mask)
        reference = model(
            encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=dec, use_cache=False
        ).logits
    prefix = stack_prefix(context.captured, "decoder", n_layers, slice(0, p))
    context.captured = None
    assert prefix.shape == (2, n_layers, 2, model.config.num_heads, p, model.config.d_kv)

    context.kv = {"decoder": prefix}
    with torch.no_grad():
        full = model(
            encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=dec[:, p:], use_cache=False
        ).logits
        torch.testing.assert_close(full, reference[:, p:], atol=ATOL, rtol=0)

        past, steps = None, []
        for i in range(p, dec.shape[1]):
            out = model(
                encoder_outputs=encoder_outputs,
                attention_mask=mask,
                decoder_input_ids=dec[:, i : i + 1],
                use_cache=True,
                **{CACHE_ARGUMENT: past},
            )
            past = out.past_key_values
            steps.append(out.logits)
        assert past.self_attention_cache.get_seq_length(0) == dec.shape[1] - p  # real tokens only
        torch.testing.assert_close(torch.cat(steps, dim=1), reference[:, p:], atol=ATOL, rtol=0)

        context.kv = {}  # sanity: without the prefix the continuation's logits really differ
        alone = model(
            encoder_outputs=encoder_outputs, attention_mask=mask, decoder_input_ids=dec[:, p:], use_cache=False
        ).logits
    assert (alone - reference[:, p:]).abs().max() > 1e-2


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_encoder_prefix_equals_real_encoder_tokens(attn, shape):
    """An encoder prefix holding the K/V of real tokens a1..ap gives, for the other tokens r1..rn,
    the same encoder outputs as encoding [a1..ap, r1..rn] for real (including a right-padded row:
    the padding mask is extended with 'attend' for the prefix columns).

    Position bias: the encoder's relative-attention table (encoder layer 0) is zeroed, because
    the reference's bias between r_i and a_j cannot be reproduced by the prefix columns (they get
    0). Between r tokens the bias depends on (key - query) only, unchanged by dropping a1..ap.
    At layer l > 0 the K/V of a1..ap depend on their hidden states (they attend to r too), so
    every layer's K/V is captured from the reference run over the full sequence.
    """
    frozen = tiny(attn, shape=shape)
    model = frozen.model
    with torch.no_grad():
        model.encoder.block[0].layer[0].SelfAttention.relative_attention_bias.weight.zero_()
    context = install_prefix_attention(model)
    ids, mask = batch(t=10, pad_last=3)
    p = 3
    encoder = model.get_encoder()

    context.captured = {}
    with torch.no_grad():
        reference = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
    prefix = stack_prefix(context.captured, "encoder", model.config.num_layers, slice(0, p))
    context.captured = None

    context.kv = {"encoder": prefix}
    with torch.no_grad():
        out = encoder(input_ids=ids[:, p:], attention_mask=mask[:, p:]).last_hidden_state
    torch.testing.assert_close(out, reference[:, p:], atol=ATOL, rtol=0)
    context.kv = {}
    with torch.no_grad():
        alone = encoder(input_ids=ids[:, p:], attention_mask=mask[:, p:]).last_hidden_state
    assert (alone - reference[:, p:]).abs().max() > 1e-2


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cross_prefix_equals_extra_encoder_positions(attn, shape):
    """A cross-attention prefix holding the K/V of extra encoder positions equals concatenating
    those encoder outputs in front of the others (decoder logits, every layer).

    Position bias: none needed — T5's cross-attention has no relative-attention table (asserted),
    its bias is all zeros, so the prefix columns' zero bias is exactly what real columns get.
    """
    frozen = tiny(attn, shape=shape)
    model = frozen.model
    for module in attention_sites(model)["cross"]:
        assert not module.has_relative_attention_bias and not hasattr(module, "relative_attention_bias")
    context = install_prefix_attention(model)
    ids, mask = batch(t=10, pad_last=2)
    dec = dec_ids(t=6)
    p = 4
    with torch.no_grad():
        hidden = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state

        context.captured = {}
        reference = model(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            decoder_input_ids=dec,
            use_cache=False,
        ).logits
        prefix = stack_prefix(context.captured, "cross", model.config.num_decoder_layers, slice(0, p))
        context.captured = None

        context.kv = {"cross": prefix}
        rest = BaseModelOutput(last_hidden_state=hidden[:, p:])
        out = model(encoder_outputs=rest, attention_mask=mask[:, p:], decoder_input_ids=dec, use_cache=False).logits
        torch.testing.assert_close(out, reference, atol=ATOL, rtol=0)
        cached = model.generate(
            encoder_outputs=rest,
            attention_mask=mask[:, p:],
            max_new_tokens=5,
            min_new_tokens=5,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        context.kv = {}
        full_gen = model.generate(
            encoder_outputs=BaseModelOutput(last_hidden_state=hidden),
            attention_mask=mask,
            max_new_tokens=5,
            min_new_tokens=5,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
        alone = model(encoder_outputs=rest, attention_mask=mask[:, p:], decoder_input_ids=dec, use_cache=False).logits
    # cached decoding (cross K/V cached after step 1) too
    assert torch.equal(cached.sequences, full_gen.sequences)
    torch.testing.assert_close(torch.stack(cached.logits), torch.stack(full_gen.logits), atol=ATOL, rtol=0)
    assert (alone - reference).abs().max() > 1e-2


# ----------------------------------------------------------------------------- no prefix = frozen model


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_empty_context_and_zero_length_prefix_are_bit_exact(attn):
    """Prefixes off (empty context) and zero-length prefixes at every site reproduce the frozen,
    un-wrapped model bit for bit: forward logits and generated tokens."""
    ids, mask = batch()
    dec = dec_ids()
    plain = tiny(attn).model  # never wrapped
    wrapped_frozen = tiny(attn)  # same seed, same weights
    wrapped = wrapped_frozen.model
    context = install_prefix_attention(wrapped)
    kwargs = dict(input_ids=ids, attention_mask=mask, decoder_input_ids=dec, use_cache=False)
    gen = dict(input_ids=ids, attention_mask=mask, max_new_tokens=4, do_sample=False)
    with torch.no_grad():
        reference = plain(**kwargs).logits
        reference_gen = plain.generate(**gen)
        assert torch.equal(wrapped(**kwargs).logits, reference)
        assert torch.equal(wrapped.generate(**gen), reference_gen)
        zero = random_bank(wrapped_frozen, length=0)
        context.kv = zero(torch.tensor([0, 1]))
        assert context.kv["decoder"].shape[-2] == 0
        assert torch.equal(wrapped(**kwargs).logits, reference)
        assert torch.equal(wrapped.generate(**gen), reference_gen)


# ----------------------------------------------------------------------------- generate


def _manual_greedy(prompted, ids, mask, prompt_ids, steps, eos_id):
    """Greedy decoding with no cache: the full decoder input is re-run at every step."""
    dec = torch.zeros(ids.shape[0], 1, dtype=torch.long)
    logits = []
    for _ in range(steps):
        step = prompted(ids, mask, prompt_ids, decoder_input_ids=dec).logits[:, -1]
        step[:, eos_id] = float("-inf")  # what min_new_tokens does
        logits.append(step)
        dec = torch.cat([dec, step.argmax(-1, keepdim=True)], dim=1)
    return dec, torch.stack(logits)


def test_generate_with_prefixes_equals_uncached_greedy_loop():
    """``generate()`` (cached) with prefixes at all three sites and different prompts per row
    equals a manual greedy loop that re-runs the whole decoder at every step without a cache:
    same tokens and the same per-step scores. So the decoder prefix is present at every cached
    step and the cache does not double it. Position bias: both paths compute the real tokens'
    bias from their own positions (the cache length counts real tokens only)."""
    frozen = tiny()
    bank = random_bank(frozen)
    prompted = PromptedT5(frozen, prefixes=bank)
    ids, mask = batch()
    prompt_ids = torch.tensor([0, 1])
    steps = 8
    out = prompted.generate(
        ids,
        mask,
        prompt_ids,
        max_new_tokens=steps,
        min_new_tokens=steps,
        do_sample=False,
        num_beams=1,
        output_scores=True,
        return_dict_in_generate=True,
    )
    with torch.no_grad():
        manual, manual_scores = _manual_greedy(prompted, ids, mask, prompt_ids, steps, frozen.config.eos_token_id)
        prompted.context.kv = {}
        plain_first = frozen.model(input_ids=ids, attention_mask=mask, decoder_input_ids=manual[:, :1]).logits[:, -1]
    assert out.sequences.shape == (2, steps + 1)
    assert torch.equal(out.sequences, manual)
    torch.testing.assert_close(torch.stack(out.scores), manual_scores, atol=ATOL, rtol=0)
    assert (manual_scores[0] - plain_first).abs().max() > 1e-2  # the prefixes matter


def test_beam_search_with_prefixes_matches_uncached_and_per_row():
    """Beam search (2 beams): the prefixes are repeated to the beams (repeat_interleave), the
    cached search equals the uncached one, and a batch mixing two prompts equals each row searched
    alone with its own prompt."""
    frozen = tiny()
    prompted = PromptedT5(frozen, prefixes=random_bank(frozen))
    ids, mask = batch()
    prompt_ids = torch.tensor([0, 1])
    kwargs = dict(
        max_new_tokens=6,
        min_new_tokens=6,
        num_beams=2,
        do_sample=False,
        return_dict_in_generate=True,
        output_scores=True,
    )
    cached = prompted.generate(ids, mask, prompt_ids, **kwargs)
    uncached = prompted.generate(ids, mask, prompt_ids, use_cache=False, **kwargs)
    assert cached.sequences.shape == (2, 7)
    assert torch.equal(cached.sequences, uncached.sequences)
    torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, atol=ATOL, rtol=0)
    for row in range(2):
        alone = prompted.generate(ids[row : row + 1], mask[row : row + 1], prompt_ids[row : row + 1], **kwargs)
        length = alone.sequences.shape[1]
        assert torch.equal(alone.sequences[0], cached.sequences[row, :length])
        torch.testing.assert_close(alone.sequences_scores[0], cached.sequences_scores[row], atol=ATOL, rtol=0)
    returned = prompted.generate(
        ids, mask, prompt_ids, max_new_tokens=6, min_new_tokens=6, num_beams=2, num_return_sequences=2, do_sample=False
    )
    assert returned.shape == (4, 7)
    assert torch.equal(returned[::2], cached.sequences)


# ----------------------------------------------------------------------------- kernels, dtypes, autograd


def test_sdpa_and_eager_agree_with_prefixes():
    """Same weights, same prefixes: sdpa and eager kernels give the same logits (fp32, 1e-5) and
    the same generations, with padding and all three sites."""
    ids, mask = batch()
    dec = dec_ids()
    outputs = []
    for attn in ("sdpa", "eager"):
        frozen = tiny(attn)
        prompted = PromptedT5(frozen, prefixes=random_bank(frozen))
        with torch.no_grad():
            logits = prompted(ids, mask, torch.tensor([1, 0]), decoder_input_ids=dec).logits
        generated = prompted.generate(
            ids, mask, torch.tensor([1, 0]), max_new_tokens=5, min_new_tokens=5, do_sample=False
        )
        outputs.append((logits, generated))
    torch.testing.assert_close(outputs[0][0], outputs[1][0], atol=ATOL, rtol=0)
    assert torch.equal(outputs[0][1], outputs[1][1])


def test_bf16_model_with_fp32_prefixes_runs_close_to_fp32():
    """A bf16 base model with the (fp32) prefix bank runs — prefixes are cast to the key dtype —
    and its logits are close to the fp32 model's (bf16 keeps ~3 significant digits)."""
    ids, mask = batch()
    dec = dec_ids()
    frozen = tiny()
    prompted = PromptedT5(frozen, prefixes=random_bank(frozen))
    prompt_ids = torch.tensor([0, 1])
    with torch.no_grad():
        fp32 = prompted(ids, mask, prompt_ids, decoder_input_ids=dec).logits
        frozen.model.to(torch.bfloat16)
        bf16 = prompted(ids, mask, prompt_ids, decoder_input_ids=dec).logits
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16).all()
    assert (bf16.float() - fp32).abs().max() < 0.1  # logits are O(1..5); measured ~0.03
    assert F.cosine_similarity(bf16.float().flatten(), fp32.flatten(), dim=0) > 0.999
    generated = prompted.generate(ids, mask, prompt_ids, max_new_tokens=3, do_sample=False)
    assert generated.shape[0] == 2


@pytest.mark.parametrize("reparam_dim", [0, 8])
def test_gradients_reach_prefixes_only_and_no_grad_works(reparam_dim):
    """Autograd: a loss through all three sites gives non-zero gradients to every prefix site
    (direct bank) or to every reparameterisation tensor, and none to the frozen base model; under
    ``torch.no_grad`` the same call gives the same logits and builds no graph."""
    frozen = tiny()
    shape = PrefixShape.for_config(frozen.config, 3)
    bank = PrefixBank(2, shape, reparam_dim=reparam_dim, reparam_hidden=16)
    bank.init_random([3, 4], std=1.0)
    prompted = PromptedT5(frozen, prefixes=bank)
    ids, mask = batch()
    labels = dec_ids()[:, 1:].contiguous()
    prompt_ids = torch.tensor([0, 1])
    out = prompted(ids, mask, prompt_ids, labels=labels)
    out.loss.backward()
    for name, parameter in bank.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
        assert torch.isfinite(parameter.grad).all(), name
    if reparam_dim == 0:  # every site and layer of both prompts got gradient
        for site, kv in bank.kv.items():
            assert (kv.grad.flatten(2).abs().sum(-1) > 0).all(), site
    for parameter in frozen.model.parameters():
        assert not parameter.requires_grad and parameter.grad is None
    with torch.no_grad():
        again = prompted(ids, mask, prompt_ids, labels=labels)
    assert again.logits.grad_fn is None
    torch.testing.assert_close(again.logits, out.logits.detach(), atol=0, rtol=0)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_per_site_preparation_runs_once_per_forward_and_follows_new_inputs(attn, monkeypatch):
    """Every layer of a stack passes the same prefix, mask and position bias, so the padded mask and
    bias are built once per site and forward (not once per layer); a later call with another mask of
    the same shape, or another prefix, gets its own (the reuse is keyed on the tensors, not shapes):
    its logits equal a fresh model's. At most one preparation per (site, kind) is kept."""
    from softprompt.model import attention

    frozen = tiny(attn, num_layers=3)
    bank = random_bank(frozen, length=2)
    prompted = PromptedT5(frozen, prefixes=bank)
    pads = []
    real_pad = attention._pad_front
    monkeypatch.setattr(attention, "_pad_front", lambda *args: pads.append(args[0].shape) or real_pad(*args))
    ids, mask = batch(pad_last=3)
    labels = dec_ids()[:, 1:].contiguous()
    with torch.no_grad():
        prompted(ids, mask, torch.tensor([0, 1]), labels=labels)
        # a mask and a bias per site (cross attention's bias is T5's zeros): 6, not 6 x 3 layers
        assert len(pads) == 6
        other_mask = mask.clone()
        other_mask[0, -2:] = 0  # same shape, other values
        got = prompted(ids, other_mask, torch.tensor([1, 0]), labels=labels).logits
        twin = tiny(attn, num_layers=3)  # same seed, same weights
        fresh = PromptedT5(twin, prefixes=random_bank(twin, length=2))  # random_bank's fixed seeds: bank's prefixes
        want = fresh(ids, other_mask, torch.tensor([1, 0]), labels=labels).logits
    torch.testing.assert_close(got, want, atol=0, rtol=0)
    assert len(prompted.context._once) <= 4 * 3


# ----------------------------------------------------------------------------- t5-3b-shaped heads


def test_t5_3b_shaped_heads_use_d_kv_at_every_site():
    """With d_kv * heads != d_model (as in t5-3b / t5-11b) the bank and the injected prefixes use
    d_kv: forward and generate run at all three sites, and a prefix sized d_model / heads is
    rejected rather than silently reshaped."""
    frozen = tiny(shape="t5-3b-like")
    config = frozen.config
    assert config.d_kv * config.num_heads != config.d_model
    bank = random_bank(frozen, length=2)
    for site, kv in bank.kv.items():
        assert kv.shape == (2, config.num_layers, 2, config.num_heads, 2, config.d_kv), site
    prompted = PromptedT5(frozen, prefixes=bank)
    ids, mask = batch()
    with torch.no_grad():
        logits = prompted(ids, mask, torch.tensor([0, 1]), decoder_input_ids=dec_ids()).logits
    assert logits.shape == (2, 7, VOCAB) and torch.isfinite(logits).all()
    assert prompted.generate(ids, mask, torch.tensor([0, 1]), max_new_tokens=3, do_sample=False).shape[0] == 2
    wrong = torch.zeros(2, config.num_layers, 2, config.num_heads, 2, config.d_model // config.num_heads)
    prompted.context.kv = {"encoder": wrong}
    with pytest.raises(RuntimeError):
        frozen.model.get_encoder()(input_ids=ids, attention_mask=mask)
