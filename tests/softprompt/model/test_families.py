"""Every family (``softprompt.model.families``): mT5, ByT5, UL2, umT5, T5Gemma and T5Gemma 2 load, are exact and train
like T5.

Every model here is a tiny random model built in-process from its family's real configuration and model classes
(``family_helpers.build``: ``random_t5(family=...)``: ``MT5Config`` / ``MT5ForConditionalGeneration``, ``T5Config``
with gated-SiLU for UL2 and with ByT5's 384 byte rows for ByT5, ``UMT5Config`` / ``UMT5ForConditionalGeneration``;
``random_t5gemma``: ``T5GemmaConfig`` / ``T5GemmaForConditionalGeneration`` with rotary positions, grouped-query
heads, a sliding window shorter than the sequences, low soft-caps and a smaller decoder; ``random_t5gemma(family="t5gemma2")``:
``T5Gemma2Config`` / ``T5Gemma2ForConditionalGeneration``, the same and a merged decoder attention) and the family's own
tokenizer type: SentencePiece (the vendored T5 vocabulary: mT5, umT5, UL2 and T5Gemma use the same tokenizer class)
or ``ByT5Tokenizer``, which needs no files. Random weights are the right fixture: the claims are about how prompts,
prefixes, masks and position biases are wired through each family's attention, which no trained weight changes.
What only T5Gemma has (its own hand-appended keys/values, Gemma's tokenizer, per-site geometry, aliases, its refusal
of sdpa) is tested in ``test_t5gemma.py``; T5Gemma 2's (its merged attention) in ``test_t5gemma2.py``.

Exactness, per family, on sdpa and eager (T5Gemma: eager, its only kernel) and with a padded row:

* input prompts equal HF PEFT prompt tuning (logits, greedy and beam generation) and equal real tokens given as text;
* prompts and deep prefixes together equal an independent computation (the T5 families here; T5Gemma's and T5Gemma
  2's, with rotary positions, soft-capping, sliding windows and merged attention, in their own files): an attention function written here that
  appends each row's prefix keys/values by hand, with zero bias and "attend" for the prefix columns and the model's
  own (non-zero) relative-position bias and mask for the real ones. umT5 computes a bias in every layer, so this is
  the proof that the bias rule holds at every layer, not only the first;
* cached generation (greedy, and beams on ``softprompt.model.beam_cache``'s cache) equals uncached generation, and
  ``score`` (the encoder once, K candidates per row) equals plain forwards; a bf16 model stays close to fp32.

Per family too: gradient checkpointing leaves the banks' gradients as they are; prompts and prefixes train jointly,
resume bit-identically and ensemble-evaluate, and a run of one family is refused by a model of another.
"""

from __future__ import annotations

import io
import json

import pytest
import sentencepiece
import torch
from huggingface_hub import constants as hub_constants
from peft import PromptTuningConfig, TaskType, get_peft_model
from torch.nn import functional as F
from transformers import (
    AttentionInterface,
    ByT5Tokenizer,
    LongT5Config,
    LongT5ForConditionalGeneration,
    MT5ForConditionalGeneration,
    T5ForConditionalGeneration,
    T5Gemma2ForConditionalGeneration,
    T5GemmaForConditionalGeneration,
    UMT5ForConditionalGeneration,
)
from transformers.masking_utils import AttentionMaskInterface, eager_mask

from ensembles.pipeline import run_ensemble_eval
from ensembles.pool import load_pool
from softprompt.data.loading import load_examples
from softprompt.data.tasks import get_task
from softprompt.errors import SoftpromptError
from softprompt.io.store import model_fingerprint, read_meta, save_run
from softprompt.model.families import REFUSED, supported_families
from softprompt.model.loading import enable_gradient_checkpointing, keep_wo_in_fp32, load_frozen_t5, save_model_dir
from softprompt.model.losses import sequence_log_probs
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from softprompt.serve.config import ServeConfig
from softprompt.serve.schema import ClassifyRequest
from softprompt.serve.server import build_engine
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from tests.conftest import TEST_DATA
from tests.softprompt.cli.helpers import run_cli, train_args
from tests.softprompt.model.family_helpers import (
    ATTENTION,
    FAMILIES,
    ID_VOCAB,
    PEFT_GEOMETRY,
    RTE,
    SPECS,
    TOL,
    P,
    assert_prefixes_equal_hand_appended,
    banks,
    batch,
    build,
    predict_rte,
)

CLASSES = {
    "mt5": MT5ForConditionalGeneration,
    "byt5": T5ForConditionalGeneration,
    "ul2": T5ForConditionalGeneration,
    "umt5": UMT5ForConditionalGeneration,
    "t5gemma": T5GemmaForConditionalGeneration,
    "t5gemma2": T5Gemma2ForConditionalGeneration,
}
FAMILY_NAMES = {family: spec["family"] for family, spec in SPECS.items()} | {
    "t5gemma": "t5gemma",
    "t5gemma2": "t5gemma2",
}
KERNELS = [(family, attn) for family in FAMILIES for attn in ATTENTION[family]]  # (family, attn): T5Gemma eager only
T5_KERNELS = [(family, attn) for family in SPECS for attn in ATTENTION[family]]

GENERATE = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False, output_scores=True, return_dict_in_generate=True)
# uncached, T5Gemma masks the decoder positions that hold the pad id (cached, it does not): a random model must not
# emit it
GENERATE_EXTRA = {"t5gemma": dict(suppress_tokens=[0]), "t5gemma2": dict(suppress_tokens=[0])}
# training: the default prefix init for the T5 families; real-word init for T5Gemma (the keys/values it computes for
# the text)
TRAIN_EXTRA = {family: dict(prefix_init='text:"does it follow"') for family in ("t5gemma", "t5gemma2")}


def generation(family: str, beams: int) -> dict:
    """Fixed-length greedy (``beams`` 1) or beam search, with step scores, as ``family`` needs it."""
    return dict(GENERATE, num_beams=beams, **GENERATE_EXTRA.get(family, {}))


# ----------------------------------------------------------------------------- loading


@pytest.mark.parametrize("family", FAMILIES)
def test_a_saved_family_model_loads_with_its_class_and_tokenizer_frozen_in_fp32_and_bf16(family, tmp_path):
    """Loaded back with its class, family, tokenizer type and default kernel, frozen; in bf16 the T5 families keep
    their ``wo`` projections in fp32 (T5Gemma has none)."""
    save_model_dir(build(family, ids_only=False), tmp_path)
    frozen = load_frozen_t5(str(tmp_path))
    assert type(frozen.model) is CLASSES[family]
    assert frozen.family == FAMILY_NAMES[family]
    assert frozen.config._attn_implementation == ATTENTION[family][0]
    assert isinstance(frozen.tokenizer, ByT5Tokenizer) == (family == "byt5")
    assert not frozen.model.training and not any(p.requires_grad for p in frozen.model.parameters())
    half = load_frozen_t5(str(tmp_path), dtype="bfloat16")
    assert half.model.get_input_embeddings().weight.dtype == torch.bfloat16
    assert all(m.weight.dtype == torch.float32 for name, m in half.model.named_modules() if name.endswith(".wo"))


def _save_longt5(path, attention: str) -> None:
    config = LongT5Config(
        vocab_size=128, d_model=16, d_ff=32, d_kv=4, num_heads=2, num_layers=1, encoder_attention_type=attention
    )
    LongT5ForConditionalGeneration(config).save_pretrained(path)


@pytest.mark.parametrize("attention", ["local", "transient-global"])
def test_longt5_is_refused_in_one_line_that_says_why(attention, tmp_path):
    """LongT5's encoder attention (local or transient-global) runs inside its layers, outside transformers'
    attention interface, within a local window: no exact prompt or prefix there, so the family is refused."""
    _save_longt5(tmp_path, attention)
    with pytest.raises(SoftpromptError) as refused:
        load_frozen_t5(str(tmp_path))
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{str(tmp_path)!r} is a 'longt5' model")
    assert REFUSED["longt5"] in message and supported_families() in message


def test_the_supported_families_are_named_once_each():
    assert supported_families() == (
        "t5 (T5, T5 v1.1, Flan-T5, ByT5, UL2 / Flan-UL2), mt5 (mT5), umt5 (umT5), t5gemma (T5Gemma), "
        "t5gemma2 (T5Gemma 2)"
    )


# ----------------------------------------------------------------------------- exactness: input prompts


@pytest.mark.parametrize("family", FAMILIES)
def test_prompts_equal_peft_prompt_tuning_logits_and_generation(family):
    """PEFT's prompt tuning on one copy of the model, ours on a second copy (same seed), the same prompt."""
    base = build(family).model
    peft_geometry = PEFT_GEOMETRY.get(family, lambda config: {})(base.config)
    peft = get_peft_model(
        base, PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=P, **peft_geometry)
    )
    frozen = build(family)
    prompts, _ = banks(frozen, n=1)
    with torch.no_grad():  # PEFT's virtual tokens stand where the embedding layer's output does (T5Gemma 2: scaled)
        peft.prompt_encoder.default.embedding.weight[:P] = prompts.weight[0] * frozen.geometry.input_scale
    ours = PromptedT5(frozen, prompts=prompts)
    ids, mask, dec = batch(frozen)
    zeros, labels = torch.zeros(2, dtype=torch.long), dec[:, 1:].contiguous()
    with torch.no_grad():
        theirs = peft(input_ids=ids, attention_mask=mask, labels=labels).logits
        mine = ours(ids, mask, zeros, labels=labels).logits
    torch.testing.assert_close(mine, theirs, **TOL)
    for beams in (1, 3):  # tiny random models repeat a token, so the step scores are compared too
        generated = ours.generate(ids, mask, zeros, **generation(family, beams))
        expected = peft.generate(input_ids=ids, attention_mask=mask, **generation(family, beams))
        assert torch.equal(generated.sequences, expected.sequences)
        torch.testing.assert_close(torch.stack(generated.scores), torch.stack(expected.scores), **TOL)


@pytest.mark.parametrize(("family", "attn"), KERNELS)
def test_prompt_of_token_embeddings_equals_the_tokens_as_text(family, attn):
    """The prompt takes positions 0..P-1 and shifts the input by P (T5's relative positions; T5Gemma's rotary
    positions and sliding windows), exactly as text in front would; it lives where token embeddings do (T5Gemma:
    before its encoder's sqrt(d) scale)."""
    frozen = build(family, attn, seed=5)
    ids, mask, dec = batch(frozen)
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

HAND = "softprompt_test_hand_appended"


def _hand_appended(module, query, key, value, attention_mask, scaling=None, dropout=0.0, position_bias=None, **_):
    """softmax(q·[Kp; K]ᵀ·scaling + [0, bias + mask]) · [Vp; V], written out: the prefix columns of this row get no
    bias and are always attended; the real columns keep the model's own bias and mask."""
    site, layer = module.hand_site
    prefix = module.hand_prefixes[site][:, layer]  # (B, 2, H, Pp, d_kv)
    n_prefix = prefix.shape[-2]
    keys = torch.cat([prefix[:, 0], key], dim=2)  # (B, H, Pp+K, d_kv)
    values = torch.cat([prefix[:, 1], value], dim=2)
    real = torch.zeros(query.shape[0], query.shape[1], query.shape[2], key.shape[2])  # (B, H, Q, K)
    if position_bias is not None:
        real = real + position_bias
    if attention_mask is not None:
        real = real + attention_mask  # eager masks: 0 or the dtype's minimum
    elif site == "decoder":  # no mask given: causal
        real = real.masked_fill(torch.ones(query.shape[2], key.shape[2]).tril(key.shape[2] - query.shape[2]) == 0, -1e9)
    scores = query @ keys.transpose(-1, -2) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    scores = scores + torch.cat([torch.zeros(*real.shape[:3], n_prefix), real], dim=-1)
    return (scores.softmax(-1) @ values).transpose(1, 2), None  # (B, Q, H, d_kv)


AttentionInterface.register(HAND, _hand_appended)
AttentionMaskInterface.register(HAND, eager_mask)


@pytest.mark.parametrize(("family", "attn"), T5_KERNELS)
def test_prompts_and_prefixes_equal_keys_values_appended_by_hand(family, attn):
    """Per-row prompts and prefixes at all three sites, a padded row, the models' own non-zero relative-position
    biases (umT5: in every layer, asserted): the logits equal the unwrapped model given the prompts as input
    embeddings and the prefixes appended by ``_hand_appended``."""
    hand = build(family, "eager").model  # same seed, same weights, never wrapped by softprompt
    tables = [m for m in hand.modules() if hasattr(m, "relative_attention_bias")]
    expected_tables = 2 * hand.config.num_layers if family == "umt5" else 2  # encoder and decoder self-attention
    assert len(tables) == expected_tables and all(t.relative_attention_bias.weight.abs().sum() > 0 for t in tables)
    assert_prefixes_equal_hand_appended(build(family, attn), hand, HAND)


# ----------------------------------------------------------------------------- exactness: generation and scoring


@pytest.mark.parametrize(("family", "attn"), KERNELS)
def test_cached_generation_equals_uncached_and_each_row_alone(family, attn):
    """Greedy and beam search (beams on the shared cross-attention cache) with per-row prompts and prefixes equal
    the uncached search, which recomputes every position at every step (T5Gemma's decoder sliding-window cache too);
    a mixed batch equals each row alone."""
    frozen = build(family, attn)
    model = PromptedT5(frozen, *banks(frozen))
    ids, mask, _ = batch(frozen)
    prompt_ids = torch.tensor([1, 0])
    for beams in (1, 3):
        kwargs = generation(family, beams)
        cached = model.generate(ids, mask, prompt_ids, **kwargs)
        uncached = model.generate(ids, mask, prompt_ids, use_cache=False, **kwargs)
        assert torch.equal(cached.sequences, uncached.sequences)
        if beams > 1:
            torch.testing.assert_close(cached.sequences_scores, uncached.sequences_scores, **TOL)
        for row in range(2):
            alone = model.generate(ids[row : row + 1], mask[row : row + 1], prompt_ids[row : row + 1], **kwargs)
            assert torch.equal(alone.sequences[0], cached.sequences[row, : alone.sequences.shape[1]])


@pytest.mark.parametrize(("family", "attn"), KERNELS)
def test_score_runs_the_encoder_once_and_equals_plain_forwards(family, attn):
    """Rank classification: K candidates per row against one encoder pass (umT5's cross-attention keys/values are
    projected beforehand, once per row; T5Gemma's cross-attention projects the B encoder rows once and the K
    candidates' queries attend as one sequence; T5Gemma 2's merged attention gets a copy of the encoder's row per
    candidate) equal a plain forward of each row and candidate."""
    frozen = build(family, attn)
    model = PromptedT5(frozen, *banks(frozen))
    ids, mask, _ = batch(frozen)
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


@pytest.mark.parametrize("family", FAMILIES)
def test_bf16_model_with_fp32_banks_stays_close_to_fp32(family):
    """A bf16 model as ``load_frozen_t5(dtype="bfloat16")`` makes it (the T5 families' ``wo`` projections kept in
    fp32; T5Gemma, which has none, all bf16) with the fp32 banks: bf16 keeps about 3 significant digits, so the
    logits stay within 2% of their largest magnitude of fp32's and their cosine above 0.9999 (measured on these
    models: 0.8-1.0% and 0.99997-0.99998)."""
    frozen = build(family)
    model = PromptedT5(frozen, *banks(frozen))
    ids, mask, dec = batch(frozen)
    prompt_ids = torch.tensor([0, 1])
    with torch.no_grad():
        fp32 = model(ids, mask, prompt_ids, decoder_input_ids=dec).logits
        frozen.model.to(torch.bfloat16)
        keep_wo_in_fp32(frozen.model)
        bf16 = model(ids, mask, prompt_ids, decoder_input_ids=dec).logits
    assert bf16.dtype == torch.bfloat16 and torch.isfinite(bf16).all()
    assert (bf16.float() - fp32).abs().max() < 0.02 * fp32.abs().max()
    assert F.cosine_similarity(bf16.float().flatten(), fp32.flatten(), dim=0) > 0.9999
    assert model.prompts.weight.dtype == torch.float32


# ----------------------------------------------------------------------------- training, resuming, ensembles


@pytest.mark.parametrize("family", FAMILIES)
def test_gradient_checkpointing_gives_the_prompts_and_prefixes_the_same_gradients(family):
    """Recomputing the layers in the backward (training mode, dropout off) leaves every bank gradient as is."""
    gradients = []
    for checkpointing in (False, True):
        frozen = build(family)
        ids, mask, dec = batch(frozen)
        if checkpointing:
            enable_gradient_checkpointing(frozen.model)
        model = PromptedT5(frozen, *banks(frozen))
        model(ids, mask, torch.tensor([1, 0]), labels=dec[:, 1:].contiguous()).loss.backward()
        gradients.append([p.grad for p in model.trainable_parameters()])
    assert frozen.model.training and all(g.abs().sum() > 0 for g in gradients[0])
    for plain, checkpointed in zip(*gradients):
        torch.testing.assert_close(checkpointed, plain, **TOL)


@pytest.fixture(scope="module")
def rte():
    task = get_task("rte")
    train_examples = load_examples(task, "train", str(TEST_DATA / "superglue" / "rte" / "train.jsonl"), limit=24)
    val_examples = load_examples(task, "validation", str(TEST_DATA / "superglue" / "rte" / "val.jsonl"), limit=8)
    return task, train_examples, val_examples


def _config(tmp_path, name: str, family: str, steps: int) -> TrainConfig:
    return TrainConfig(
        model=f"random-{family}",
        task="rte",
        output_dir=str(tmp_path / name),
        n_prompts=2,
        prompt_length=P,
        init="class-label",  # ByT5: the label words' bytes, the rest sampled from the bytes of text
        deep_prefix=True,
        prefix_length=2,
        reparam_dim=4,
        reparam_hidden=8,
        steps=steps,
        batch_size=4,
        eval_every=2,
        checkpoint_every=2,
        max_source_length=48,
        max_target_length=8,
        **TRAIN_EXTRA.get(family, {}),
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_prompts_and_prefixes_train_jointly_resume_bit_identically_and_ensemble_evaluate(family, tmp_path, rte):
    task, train_examples, val_examples = rte
    full = _config(tmp_path, "full", family, steps=4)
    train(full, build(family, ids_only=False), task, train_examples, val_examples, progress=False)
    train(
        _config(tmp_path, "part", family, steps=2),
        build(family, ids_only=False),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    train(
        _config(tmp_path, "part", family, steps=4),
        build(family, ids_only=False),
        task,
        train_examples,
        val_examples,
        resume=True,
        progress=False,
    )
    frozen = build(family, ids_only=False)
    meta = read_meta(full.output_dir)
    assert meta["model"]["family"] == FAMILY_NAMES[family] and meta["model"]["d_model"] == frozen.geometry.d_model
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


def _model(family: str):
    """``build``'s families, and plain T5 (``random_t5``)."""
    return random_t5(vocab_size=ID_VOCAB) if family == "t5" else build(family)


@pytest.mark.parametrize(
    ("trained", "other"), [("mt5", "umt5"), ("t5gemma", "t5"), ("t5", "t5gemma"), ("t5gemma2", "t5gemma")]
)
def test_a_run_of_one_family_is_refused_by_a_model_of_another_in_one_line(trained, other, tmp_path):
    """mT5 and umT5 of the same shapes take the same banks, yet a run trained on one is refused on the other (its
    meta records the family), T5Gemma's runs and T5's refuse each other's models, and so do T5Gemma 2's runs a
    T5Gemma's (prompts there are scaled by the embedding layer); a run written before families were recorded is a t5
    run."""
    frozen, model = _model(trained), _model(other)
    prompts, prefixes = banks(frozen)
    meta = {
        "model": {"name": f"random-{trained}", **model_fingerprint(frozen.config)},
        "task": {"name": "rte", "kind": "classification", "label_words": ["entailment", "not_entailment"]},
        "n_prompts": 2,
        "seeds": [0, 1],
        "prompts": {"length": P, "init": "random-uniform"},
        "prefixes": {"length": 3, "sites": ["encoder", "decoder", "cross"], "init": "random", "reparam_dim": 0},
    }
    run = tmp_path / f"{trained}-run"
    save_run(run, meta, prompts, prefixes)
    assert read_meta(run)["model"]["family"] == trained
    assert load_pool([run], frozen).names == [f"{trained}-run#0", f"{trained}-run#1"]
    with pytest.raises(SoftpromptError) as refused:
        load_pool([run], model)
    assert str(refused.value) == (
        f"{run} was trained on a {trained} model ('random-{trained}') but this is a {other} model; prompts do not "
        "carry over between families: load it with the model it was trained on"
    )
    if trained != "t5":
        old = {**meta, "model": {k: v for k, v in meta["model"].items() if k != "family"}}
        save_run(tmp_path / "old-run", old, prompts, prefixes)
        with pytest.raises(SoftpromptError, match=f"was trained on a t5 model .* but this is a {trained} model"):
            load_pool([tmp_path / "old-run"], frozen)


# ----------------------------------------------------------------------------- a hub name through the CLI

MT5_SMALL = "google/mt5-small"


def _sentencepiece(texts: list[str], path, size: int) -> None:
    """A small unigram SentencePiece model in T5's id layout (pad 0, eos 1, unk 2), trained on ``texts``."""
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts),
        model_writer=model,
        vocab_size=size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory):
    """A local Hugging Face cache holding google/mt5-small under the real repository's file names (config.json,
    generation_config.json, pytorch_model.bin, spiece.model, tokenizer_config.json, special_tokens_map.json): a tiny
    random mT5 (``MT5Config``) with a 300-piece SentencePiece vocabulary trained here on the RTE test data."""
    cache = tmp_path_factory.mktemp("hf-cache")
    repo = cache / "models--google--mt5-small"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    rows = [json.loads(line) for line in (RTE / "train.jsonl").read_text().splitlines()]
    _sentencepiece([row[key] for row in rows for key in ("premise", "hypothesis")], snapshot / "spiece.model", 300)
    special = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    (snapshot / "special_tokens_map.json").write_text(json.dumps(special))
    tokenizer_config = {**special, "extra_ids": 0, "additional_special_tokens": None, "sp_model_kwargs": {}}
    (snapshot / "tokenizer_config.json").write_text(json.dumps(tokenizer_config | {"tokenizer_class": "T5Tokenizer"}))
    model = random_t5(vocab_size=320, **SPECS["mt5"]).model
    model.config.save_pretrained(snapshot)
    model.generation_config.save_pretrained(snapshot)
    torch.save(model.state_dict(), snapshot / "pytorch_model.bin")
    return cache


def test_train_by_hub_name_loads_the_mt5_class_then_predict_and_serve_answer(hub_cache, monkeypatch, tmp_path):
    """``softprompt train --model google/mt5-small`` with the hub intercepted (its files in the local cache, offline)
    resolves the name, loads ``MT5ForConditionalGeneration`` with the repository's SentencePiece tokenizer, records
    the family; ``predict`` and the serving engine load the run's model by that name and answer."""
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(hub_cache))
    loaded = []
    load = MT5ForConditionalGeneration.from_pretrained.__func__
    monkeypatch.setattr(
        MT5ForConditionalGeneration,
        "from_pretrained",
        classmethod(lambda cls, source, *args, **kwargs: loaded.append(source) or load(cls, source, *args, **kwargs)),
    )
    out = tmp_path / "run"
    data = {"train": RTE / "train.jsonl", "val": RTE / "val.jsonl"}
    result = run_cli(*train_args(MT5_SMALL, out, data, "--deep-prefix", "--prefix-length", "2"))
    assert result.exit_code == 0, result.stderr
    assert loaded == [MT5_SMALL]
    model = read_meta(out)["model"]
    assert (model["name"], model["family"], model["vocab_size"]) == (MT5_SMALL, "mt5", 320)

    rows, answers = predict_rte(out, tmp_path)
    assert loaded == [MT5_SMALL] * 2

    engine = build_engine(ServeConfig(prompts=(str(out),), device="cpu"))
    with engine.worker:
        served = engine.classify(ClassifyRequest(task="rte", inputs=rows)).result(timeout=120)
    assert [a["label"] for a in served["answers"]] == [a["label"] for a in answers]
