"""T5Gemma (``softprompt.model.families``, ``layouts.T5GEMMA_LAYOUT``): loads, is exact and trains like the T5 families.

Every model here is a tiny random T5Gemma built in-process from its real configuration and model classes
(``random_t5gemma``: ``T5GemmaConfig`` of two ``T5GemmaModuleConfig`` / ``T5GemmaForConditionalGeneration``) with what
makes T5Gemma's attention differ from T5's, all at once: rotary positions, grouped-query heads (encoder 4 query heads
over 2 key/value heads, decoder 4 over 1), alternating sliding-window and full layers with a window (4) shorter than
the sequences, attention-logit and final-logit soft-capping set low enough to bite, an encoder and a decoder of
different widths, head sizes and depths (like the 9B-2B checkpoint), and a right-padded row. Tests feed token ids (a
384-row vocabulary) or use the vendored T5 vocabulary, which shares Gemma's pad and eos ids; the CLI test and the
tokenizer test use a real ``GemmaTokenizer`` (BPE with byte fallback, Gemma's special ids) whose merges are learnt
here on the RTE test data, as no Gemma vocabulary can be downloaded.

Exactness, eager attention (T5Gemma's only kernel):

* input prompts equal HF PEFT prompt tuning (logits, greedy and beam generation) and equal real tokens given as text
  (T5Gemma's encoder scales its input embeddings by sqrt(d): prompt vectors live before that scale, like tokens);
* prompts and deep prefixes together equal an independent computation: an attention function written here that
  appends each row's prefix keys/values (unrotated) to the model's rotated keys, repeats the key/value heads for
  the query heads, soft-caps and masks by hand (padding, causality, sliding windows over the text's own positions
  0..T-1, prefix columns always open);
* cached generation (greedy, and beams on ``softprompt.model.beam_cache``'s cache) equals uncached generation, and
  ``score`` equals plain forwards; a bf16 model stays close to fp32.
"""

from __future__ import annotations

import json

import pytest
import torch
from peft import PromptTuningConfig, TaskType, get_peft_model
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from torch.nn import functional as F
from transformers import AttentionInterface, GemmaTokenizer, T5GemmaForConditionalGeneration
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from ensembles.pipeline import run_ensemble_eval
from ensembles.pool import load_pool
from softprompt.data.loading import load_examples
from softprompt.data.tasks import get_task
from softprompt.errors import SoftpromptError
from softprompt.io.store import model_fingerprint, read_meta, save_run
from softprompt.model.attention import attention_sites
from softprompt.model.families import REFUSED
from softprompt.model.loading import (
    enable_gradient_checkpointing,
    load_frozen_t5,
    random_t5,
    random_t5gemma,
    resolve_model_name,
    save_model_dir,
)
from softprompt.model.losses import sequence_log_probs
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank, frequent_token_ids
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from tests.conftest import TEST_DATA
from tests.softprompt.cli.helpers import eval_args, run_cli, train_args, write_jsonl

TOL = dict(atol=1e-5, rtol=1e-5)  # fp32 rounding of logits computed in another order
P = 4  # input-prompt length
ID_VOCAB = 384
START = 2  # Gemma's bos: T5Gemma's decoder start
WINDOW = 4  # sliding window, shorter than every sequence here (P + 9 encoder positions, 6 decoder positions)
DECODER = dict(hidden_size=24, num_key_value_heads=1, head_dim=6, num_hidden_layers=2)  # a smaller decoder (9B-2B)
CAPS = dict(attn_logit_softcapping=0.5, final_logit_softcapping=5.0)  # low caps: they change the outputs


def build(seed: int = 0, ids_only: bool = True):
    """A frozen tiny random T5Gemma; ``ids_only``: a small vocabulary, for tests that feed token ids."""
    return random_t5gemma(
        vocab_size=ID_VOCAB if ids_only else 32128, seed=seed, sliding_window=WINDOW, decoder=DECODER, **CAPS
    )


def batch(seed: int = 0, b: int = 2, t: int = 9):
    """Token ids with a right-padded last row, and decoder ids starting with the start token."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, ID_VOCAB, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[-1, -3:] = 0
    ids[-1, -3:] = 0
    dec = torch.randint(3, ID_VOCAB, (b, 6), generator=g)
    dec[:, 0] = START
    return ids, mask, dec


def banks(frozen, n: int = 2, prefix_length: int = 3) -> tuple[PromptBank, PrefixBank]:
    """O(1) random prompts and prefixes at every site (large enough to change outputs visibly)."""
    g = torch.Generator().manual_seed(1)
    prompts = PromptBank(n, P, frozen.geometry.d_model)
    with torch.no_grad():
        prompts.weight.copy_(torch.randn(prompts.weight.shape, generator=g))
    prefixes = PrefixBank(n, PrefixShape.for_config(frozen.config, prefix_length))
    prefixes.init_random(list(range(10, 10 + n)), std=1.0)
    return prompts, prefixes


# uncached, T5Gemma masks the decoder positions that hold the pad id (cached, it does not): a random model must not
# emit it
GENERATE = dict(
    max_new_tokens=6,
    min_new_tokens=6,
    do_sample=False,
    output_scores=True,
    return_dict_in_generate=True,
    suppress_tokens=[0],
)


RTE = TEST_DATA / "superglue" / "rte"
GEMMA_SPECIAL = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # Gemma's ids 0..4
GEMMA_BYTES = [f"<0x{b:02X}>" for b in range(256)]  # byte-fallback pieces, after the special tokens as in Gemma's


def gemma_tokenizer(size: int = 1200) -> GemmaTokenizer:
    """transformers' ``GemmaTokenizer`` (BPE with byte fallback, "▁" for spaces, BOS in front, left padding) over a
    ``size``-piece vocabulary in Gemma's layout (special tokens, byte pieces, then pieces by merge order), its merges
    learnt on the RTE test data."""
    texts = [json.loads(line)[key] for line in (RTE / "train.jsonl").open() for key in ("premise", "hypothesis")]
    bpe = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    bpe.normalizer = normalizers.Replace(" ", "▁")
    bpe.pre_tokenizer = pre_tokenizers.Split(pattern="▁", behavior="merged_with_next")
    bpe.train_from_iterator(
        texts, trainers.BpeTrainer(vocab_size=size, special_tokens=GEMMA_SPECIAL + GEMMA_BYTES, show_progress=False)
    )
    model = json.loads(bpe.to_str())["model"]
    return GemmaTokenizer(vocab=model["vocab"], merges=[tuple(merge) for merge in model["merges"]], add_bos_token=True)


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


def test_a_saved_t5gemma_loads_frozen_eager_in_fp32_and_bf16_and_sdpa_is_refused(tmp_path):
    save_model_dir(build(ids_only=False), tmp_path)
    frozen = load_frozen_t5(str(tmp_path))
    assert type(frozen.model) is T5GemmaForConditionalGeneration and frozen.family == "t5gemma"
    assert frozen.config._attn_implementation == "eager"
    assert not frozen.model.training and not any(p.requires_grad for p in frozen.model.parameters())
    half = load_frozen_t5(str(tmp_path), dtype="bfloat16")
    assert half.model.get_input_embeddings().weight.dtype == torch.bfloat16
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


def test_the_released_checkpoints_have_aliases_and_t5gemma2_is_refused_saying_why():
    assert resolve_model_name("t5gemma-2b-2b-prefixlm-it") == "google/t5gemma-2b-2b-prefixlm-it"
    assert resolve_model_name("t5gemma-9b-2b-ul2") == "google/t5gemma-9b-2b-ul2"
    assert "t5gemma" not in REFUSED and "merged attention" in REFUSED["t5gemma2"]


# ----------------------------------------------------------------------------- exactness: input prompts


def test_prompts_equal_peft_prompt_tuning_logits_and_generation():
    """PEFT's prompt tuning (told the geometry it cannot read from T5Gemma's nested config) on one copy of the model,
    ours on a second copy (same seed), the same prompt."""
    base = build().model
    encoder = base.config.encoder
    peft = get_peft_model(
        base,
        PromptTuningConfig(
            task_type=TaskType.SEQ_2_SEQ_LM,
            num_virtual_tokens=P,
            num_layers=encoder.num_hidden_layers,
            token_dim=encoder.hidden_size,
            num_attention_heads=encoder.num_attention_heads,
        ),
    )
    frozen = build()
    prompts, _ = banks(frozen, n=1)
    with torch.no_grad():
        peft.prompt_encoder.default.embedding.weight[:P] = prompts.weight[0]
    ours = PromptedT5(frozen, prompts=prompts)
    ids, mask, dec = batch()
    zeros, labels = torch.zeros(2, dtype=torch.long), dec[:, 1:].contiguous()
    with torch.no_grad():
        theirs = peft(input_ids=ids, attention_mask=mask, labels=labels).logits
        mine = ours(ids, mask, zeros, labels=labels).logits
    torch.testing.assert_close(mine, theirs, **TOL)
    for beams in (1, 3):
        generated = ours.generate(ids, mask, zeros, num_beams=beams, **GENERATE)
        expected = peft.generate(input_ids=ids, attention_mask=mask, num_beams=beams, **GENERATE)
        assert torch.equal(generated.sequences, expected.sequences)
        torch.testing.assert_close(torch.stack(generated.scores), torch.stack(expected.scores), **TOL)


def test_prompt_of_token_embeddings_equals_the_tokens_as_text():
    """The prompt takes positions 0..P-1 and shifts the input by P (rotary positions, sliding windows), exactly as
    text in front would; it lives where token embeddings do, before the encoder's sqrt(d) scale."""
    frozen = build(seed=5)
    ids, mask, dec = batch()
    front = torch.randint(3, ID_VOCAB, (P,), generator=torch.Generator().manual_seed(2))
    prompts = PromptBank(1, P, frozen.geometry.d_model)
    with torch.no_grad():
        prompts.weight[0] = frozen.model.get_input_embeddings().weight[front]
    model = PromptedT5(frozen, prompts=prompts)
    text = torch.cat([front.expand(2, -1), ids], dim=1)
    with torch.no_grad():
        ours = model(ids, mask, torch.zeros(2, dtype=torch.long), decoder_input_ids=dec).logits
        real = frozen.model(
            input_ids=text,
            attention_mask=torch.cat([torch.ones(2, P, dtype=torch.long), mask], 1),
            decoder_input_ids=dec,
        ).logits
    torch.testing.assert_close(ours, real, **TOL)


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
    frozen = build()
    prompts, prefixes = banks(frozen)
    ours = PromptedT5(frozen, prompts, prefixes)
    hand = build().model  # same seed, same weights, never wrapped by softprompt
    hand.set_attn_implementation(HAND)
    ids, mask, dec = batch()
    prompt_ids = torch.tensor([1, 0])
    kv = prefixes(prompt_ids)
    full_mask = torch.cat([torch.ones(2, P, dtype=torch.long), mask], dim=1)  # (B, P+T)
    for site, modules in attention_sites(hand).items():
        for layer, module in enumerate(modules):
            module.hand_site, module.hand_prefixes, module.hand_padding = (site, layer), kv, full_mask
    assert {m.config.layer_types[i] for i, m in enumerate(attention_sites(hand)["encoder"])} == {
        "sliding_attention",
        "full_attention",
    }
    assert WINDOW < P + ids.shape[1] and WINDOW < dec.shape[1]
    with torch.no_grad():
        mine = ours(ids, mask, prompt_ids, decoder_input_ids=dec).logits
        embeds = torch.cat([prompts(prompt_ids), hand.get_input_embeddings()(ids)], dim=1)  # (B, P+T, d)
        reference = hand(inputs_embeds=embeds, attention_mask=full_mask, decoder_input_ids=dec, use_cache=False).logits
        ours.context.kv = {}  # sanity: without the prefixes the logits really differ
        alone = ours.model(
            inputs_embeds=embeds, attention_mask=full_mask, decoder_input_ids=dec, use_cache=False
        ).logits
    torch.testing.assert_close(mine, reference, **TOL)
    assert (alone - reference).abs().max() > 1e-2


# ----------------------------------------------------------------------------- exactness: generation and scoring


def test_cached_generation_equals_uncached_and_each_row_alone():
    """Greedy and beam search (beams on the shared cross-attention cache) with per-row prompts and prefixes equal
    the uncached search, which recomputes every position at every step (the decoder's sliding-window cache too); a
    mixed batch equals each row alone."""
    frozen = build()
    model = PromptedT5(frozen, *banks(frozen))
    ids, mask, _ = batch()
    prompt_ids = torch.tensor([1, 0])
    for beams in (1, 3):
        cached = model.generate(ids, mask, prompt_ids, num_beams=beams, **GENERATE)
        uncached = model.generate(ids, mask, prompt_ids, num_beams=beams, use_cache=False, **GENERATE)
        assert torch.equal(cached.sequences, uncached.sequences)
        if beams > 1:
            torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, **TOL)
        for row in range(2):
            alone = model.generate(
                ids[row : row + 1], mask[row : row + 1], prompt_ids[row : row + 1], num_beams=beams, **GENERATE
            )
            assert torch.equal(alone.sequences[0], cached.sequences[row, : alone.sequences.shape[1]])


def test_score_runs_the_encoder_once_and_equals_plain_forwards():
    """Rank classification: K candidates per row against one encoder pass (the cross-attention projects the B encoder
    rows once; the K candidates' queries attend as one sequence) equal a plain forward of each row and candidate."""
    frozen = build()
    model = PromptedT5(frozen, *banks(frozen))
    ids, mask, _ = batch()
    prompt_ids = torch.tensor([1, 0])
    choices = torch.tensor([[[5, 6, 1], [7, 1, 0], [9, 10, 1]], [[11, 1, 0], [12, 13, 1], [14, 1, 0]]])  # (B, K, S)
    choice_mask = (choices != 0).long()
    scores = model.score(ids, mask, prompt_ids, choices, choice_mask)
    with torch.no_grad():
        for row in range(2):
            for k in range(3):
                labels = choices[row, k : k + 1].masked_fill(choice_mask[row, k : k + 1] == 0, -100)
                logits = model(ids[row : row + 1], mask[row : row + 1], prompt_ids[row : row + 1], labels=labels).logits
                torch.testing.assert_close(scores[row, k], sequence_log_probs(logits, labels)[0], **TOL)


def test_bf16_model_with_fp32_banks_stays_close_to_fp32():
    """A bf16 T5Gemma (all of it: it has no T5 ``wo`` to keep in fp32) with the fp32 banks: the logits stay within
    2% of their largest magnitude of fp32's and their cosine above 0.9999 (measured: 0.8% and 0.99998)."""
    frozen = build()
    model = PromptedT5(frozen, *banks(frozen))
    ids, mask, dec = batch()
    prompt_ids = torch.tensor([0, 1])
    with torch.no_grad():
        fp32 = model(ids, mask, prompt_ids, decoder_input_ids=dec).logits
        frozen.model.to(torch.bfloat16)
        bf16 = model(ids, mask, prompt_ids, decoder_input_ids=dec).logits
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16).all()
    assert (bf16.float() - fp32).abs().max() < 0.02 * fp32.abs().max()
    assert F.cosine_similarity(bf16.float().flatten(), fp32.flatten(), dim=0) > 0.9999
    assert model.prompts.weight.dtype == torch.float32


def test_gradient_checkpointing_gives_the_prompts_and_prefixes_the_same_gradients():
    """Recomputing T5Gemma's layers in the backward (training mode, dropout off) leaves every bank gradient as is."""
    ids, mask, dec = batch()
    gradients = []
    for checkpointing in (False, True):
        frozen = build()
        if checkpointing:
            enable_gradient_checkpointing(frozen.model)
        model = PromptedT5(frozen, *banks(frozen))
        model(ids, mask, torch.tensor([1, 0]), labels=dec[:, 1:].contiguous()).loss.backward()
        gradients.append([p.grad for p in model.trainable_parameters()])
    assert frozen.model.training and all(g.abs().sum() > 0 for g in gradients[0])
    for plain, checkpointed in zip(*gradients):
        torch.testing.assert_close(checkpointed, plain, **TOL)


# ----------------------------------------------------------------------------- training, resuming, ensembles


@pytest.fixture(scope="module")
def rte():
    task = get_task("rte")
    train_examples = load_examples(task, "train", str(TEST_DATA / "superglue" / "rte" / "train.jsonl"), limit=24)
    val_examples = load_examples(task, "validation", str(TEST_DATA / "superglue" / "rte" / "val.jsonl"), limit=8)
    return task, train_examples, val_examples


def _config(tmp_path, name: str, steps: int) -> TrainConfig:
    return TrainConfig(
        model="random-t5gemma",
        task="rte",
        output_dir=str(tmp_path / name),
        n_prompts=2,
        prompt_length=P,
        init="class-label",
        deep_prefix=True,
        prefix_length=2,
        prefix_init='text:"does it follow"',  # real-word init: the keys/values T5Gemma computes for the text
        reparam_dim=4,
        reparam_hidden=8,
        steps=steps,
        batch_size=4,
        eval_every=2,
        checkpoint_every=2,
        max_source_length=48,
        max_target_length=8,
    )


def test_prompts_and_prefixes_train_jointly_resume_bit_identically_and_ensemble_evaluate(tmp_path, rte):
    task, train_examples, val_examples = rte
    full = _config(tmp_path, "full", steps=4)
    train(full, build(ids_only=False), task, train_examples, val_examples, progress=False)
    train(_config(tmp_path, "part", steps=2), build(ids_only=False), task, train_examples, val_examples, progress=False)
    train(
        _config(tmp_path, "part", steps=4),
        build(ids_only=False),
        task,
        train_examples,
        val_examples,
        resume=True,
        progress=False,
    )
    meta = read_meta(full.output_dir)
    assert meta["model"]["family"] == "t5gemma" and meta["model"]["d_model"] == 32
    frozen = build(ids_only=False)
    pools = [load_pool([cfg], frozen).model for cfg in (full.output_dir, str(tmp_path / "part"))]
    assert torch.equal(pools[0].prompts.weight, pools[1].prompts.weight)
    for site, kv in pools[0].prefixes.kv.items():
        assert torch.equal(kv, pools[1].prefixes.kv[site]), site
    assert not torch.equal(pools[0].prompts.weight[0], pools[0].prompts.weight[1])

    core = run_ensemble_eval(load_pool([full.output_dir], frozen), task, val_examples, "validation", ["majority"])
    assert len(core["per_prompt"]) == 2 and set(core["ensembles"]) == {"majority"}
    history = json.loads((tmp_path / "full" / "history.json").read_text())
    assert [entry["step"] for entry in history if "train_loss" in entry][-1] == 4
    tokenizer = frozen.tokenizer
    batch_ = tokenizer([e.source for e in val_examples[:2]], return_tensors="pt", padding=True)
    generated = pools[0].generate(batch_.input_ids, batch_.attention_mask, torch.tensor([0, 1]), max_new_tokens=4)
    assert generated.shape[0] == 2 and generated.shape[1] > 1


# ----------------------------------------------------------------------------- artefacts record the family


def test_a_t5gemma_run_is_refused_by_a_t5_model_and_a_t5_run_by_a_t5gemma_model(tmp_path):
    t5gemma, t5 = build(), random_t5(vocab_size=ID_VOCAB)
    for frozen, name, other in ((t5gemma, "t5gemma", t5), (t5, "t5", t5gemma)):
        prompts, prefixes = banks(frozen)
        meta = {
            "model": {"name": f"random-{name}", **model_fingerprint(frozen.config)},
            "task": {"name": "rte", "kind": "classification", "label_words": ["entailment", "not_entailment"]},
            "n_prompts": 2,
            "seeds": [0, 1],
            "prompts": {"length": P, "init": "random-uniform"},
            "prefixes": {"length": 3, "sites": ["encoder", "decoder", "cross"], "init": "random", "reparam_dim": 0},
        }
        save_run(tmp_path / name, meta, prompts, prefixes)
        assert load_pool([tmp_path / name], frozen).names == [f"{name}#0", f"{name}#1"]
        with pytest.raises(SoftpromptError) as refused:
            load_pool([tmp_path / name], other)
        assert str(refused.value) == (
            f"{tmp_path / name} was trained on a {name} model ('random-{name}') but this is a {other.family} model; "
            "prompts do not carry over between families: load it with the model it was trained on"
        )


# ----------------------------------------------------------------------------- the CLI, from a saved directory


def test_train_ensemble_eval_and_predict_from_a_saved_t5gemma_directory(gemma_model_dir, tmp_path):
    """``softprompt train --model ./t5gemma_dir`` (a Gemma tokenizer; the default init: class-label words, then
    frequent pieces) with prompts and deep prefixes, then ``ensemble-eval`` and ``predict`` of the run, end to end
    through the CLI."""
    model_dir = gemma_model_dir
    out = tmp_path / "run"
    data = {"train": RTE / "train.jsonl", "val": RTE / "val.jsonl"}
    result = run_cli(*train_args(str(model_dir), out, data, "--deep-prefix", "--prefix-length", "2"))
    assert result.exit_code == 0, result.stderr
    model = read_meta(out)["model"]
    assert (model["family"], model["d_model"], model["num_heads"], model["d_kv"]) == ("t5gemma", 32, 2, 8)

    evaluated = run_cli(*eval_args(out, data, tmp_path / "eval.json"))
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["per_prompt"]

    rows = [{k: v for k, v in json.loads(line).items() if k != "label"} for line in (RTE / "val.jsonl").open()][:3]
    inputs = write_jsonl(tmp_path / "inputs.jsonl", rows)
    predicted = run_cli("predict", "--prompts", out, "--input", inputs, "--output", tmp_path / "predictions.jsonl")
    assert predicted.exit_code == 0, predicted.stderr
    answers = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and {a["label"] for a in answers} <= {"entailment", "not_entailment"}
