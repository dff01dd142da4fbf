"""Tiny random models of every family, the inputs and banks fed to them, the comparison with prefixes appended by
hand and ``softprompt predict`` of a trained run, shared by ``test_families.py`` (what holds for every family) and
``test_t5gemma.py`` / ``test_t5gemma2.py`` (what is T5Gemma's / T5Gemma 2's own).

Each model is built in-process from its family's real configuration and model classes: ``random_t5(family=...)``
for the T5 families (``SPECS``), ``random_t5gemma`` for T5Gemma and (``family="t5gemma2"``) T5Gemma 2, with what
makes their attention differ from T5's set to bite (a sliding window shorter than the sequences, low soft-caps, a
decoder with other heads and depth).
"""

from __future__ import annotations

import json

import torch
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import ByT5Tokenizer, GemmaTokenizer

from softprompt.io.store import read_meta
from softprompt.model.attention import attention_sites
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5, random_t5gemma
from tests.conftest import TEST_DATA
from tests.softprompt.cli.helpers import eval_args, run_cli, train_args, write_jsonl

RTE = TEST_DATA / "superglue" / "rte"
TOL = dict(atol=1e-5, rtol=1e-5)  # fp32 rounding of logits O(1..10) computed in another order
P = 4  # input-prompt length
ID_VOCAB = 384  # token-id-only tests: ByT5's rows, small enough for every family
SPECS = {  # family -> random_t5 arguments, as the released checkpoints configure them
    "mt5": dict(family="mt5", feed_forward_proj="gated-gelu", tie_word_embeddings=False),
    "byt5": dict(family="t5", feed_forward_proj="gated-gelu", tie_word_embeddings=False, vocab_size=384),
    "ul2": dict(family="t5", feed_forward_proj="gated-silu", tie_word_embeddings=False),
    "umt5": dict(family="umt5", feed_forward_proj="gated-gelu", tie_word_embeddings=False),
}
ATTENTION = {family: ("sdpa", "eager") for family in SPECS} | {"t5gemma": ("eager",), "t5gemma2": ("sdpa", "eager")}
FAMILIES = tuple(ATTENTION)

WINDOW = 4  # T5Gemma's sliding window, shorter than every sequence here (P + 9 encoder positions, 6 decoder ones)
DECODER = dict(hidden_size=24, num_key_value_heads=1, head_dim=6, num_hidden_layers=2)  # a smaller decoder (9B-2B)
CAPS = dict(attn_logit_softcapping=0.5, final_logit_softcapping=5.0)  # low caps: they change the outputs
# T5Gemma 2's decoder keeps the encoder's width (its merged attention projects the encoder's states); its attention
# takes no soft-cap (Gemma 3's query/key norms instead), its logits do
DECODER2 = dict(num_key_value_heads=1, head_dim=6, num_hidden_layers=2)
CAPS2 = dict(final_logit_softcapping=5.0)


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


# PEFT reads a T5 config's geometry itself; T5Gemma's and T5Gemma 2's nested configs it cannot read, so it is told the
# encoder's
PEFT_GEOMETRY = {
    "t5gemma": lambda config: dict(
        num_layers=config.encoder.num_hidden_layers,
        token_dim=config.encoder.hidden_size,
        num_attention_heads=config.encoder.num_attention_heads,
    ),
    "t5gemma2": lambda config: dict(
        num_layers=config.encoder.text_config.num_hidden_layers,
        token_dim=config.encoder.text_config.hidden_size,
        num_attention_heads=config.encoder.text_config.num_attention_heads,
    ),
}


def build_t5gemma(seed: int = 0, ids_only: bool = True):
    """A frozen tiny random T5Gemma; ``ids_only``: a small vocabulary, for tests that feed token ids."""
    return random_t5gemma(
        vocab_size=ID_VOCAB if ids_only else 32128, seed=seed, sliding_window=WINDOW, decoder=DECODER, **CAPS
    )


def build_t5gemma2(attn: str = "sdpa", seed: int = 0, ids_only: bool = True):
    """A frozen tiny random T5Gemma 2 on ``attn``; ``ids_only``: a small vocabulary, for tests that feed token ids."""
    return random_t5gemma(
        family="t5gemma2",
        vocab_size=ID_VOCAB if ids_only else 32128,
        seed=seed,
        attn_implementation=attn,
        sliding_window=WINDOW,
        decoder=DECODER2,
        **CAPS2,
    )


def build(family: str, attn: str | None = None, seed: int = 0, ids_only: bool = True):
    """A frozen tiny random model of ``family`` on ``attn`` (default: the family's first kernel in ``ATTENTION``);
    ``ids_only``: a small vocabulary, for tests that feed token ids."""
    attn = attn or ATTENTION[family][0]
    assert attn in ATTENTION[family], (family, attn)
    if family == "t5gemma":
        return build_t5gemma(seed=seed, ids_only=ids_only)
    if family == "t5gemma2":
        return build_t5gemma2(attn, seed=seed, ids_only=ids_only)
    spec = dict(SPECS[family])
    if family == "byt5":
        spec["tokenizer"] = ByT5Tokenizer()
    elif ids_only:
        spec["vocab_size"] = ID_VOCAB
    return random_t5(seed=seed, attn_implementation=attn, **spec)


def batch(frozen, seed: int = 0, b: int = 2, t: int = 9):
    """Token ids with a right-padded last row, and decoder ids starting with ``frozen``'s decoder start token (T5's
    pad 0, T5Gemma's bos 2; T5Gemma 2 names none: generation starts from its bos 2)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, ID_VOCAB, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[-1, -3:] = 0
    ids[-1, -3:] = 0
    dec = torch.randint(3, ID_VOCAB, (b, 6), generator=g)
    start = getattr(frozen.config, "decoder_start_token_id", None)
    dec[:, 0] = frozen.model.generation_config.bos_token_id if start is None else start
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


def assert_prefixes_equal_hand_appended(frozen, hand, attention: str):
    """Per-row prompts and prefixes (``banks``) at all three sites and a padded row (``batch``) on ``frozen``: the
    logits equal ``hand`` (a model of the same weights, never wrapped by softprompt) given the prompts as input
    embeddings and running the registered ``attention``, which finds on each attention module its ``hand_site``
    (site, layer), ``hand_prefixes`` (the rows' prefix keys/values per site) and ``hand_padding`` (the (B, P+T)
    encoder mask); without the prefixes the logits really differ. Returns the ``batch`` used."""
    prompts, prefixes = banks(frozen)
    ours = PromptedT5(frozen, prompts, prefixes)
    hand.set_attn_implementation(attention)
    ids, mask, dec = batch(frozen)
    prompt_ids = torch.tensor([1, 0])
    kv = prefixes(prompt_ids)
    full_mask = torch.cat([torch.ones(2, P, dtype=torch.long), mask], dim=1)  # (B, P+T)
    for site, modules in attention_sites(hand).items():
        for layer, module in enumerate(modules):
            module.hand_site, module.hand_prefixes, module.hand_padding = (site, layer), kv, full_mask
    with torch.no_grad():
        mine = ours(ids, mask, prompt_ids, decoder_input_ids=dec).logits
        scaled = prompts(prompt_ids) * frozen.geometry.input_scale  # as the embedding layer scales rows (T5Gemma 2)
        embeds = torch.cat([scaled, hand.get_input_embeddings()(ids)], dim=1)  # (B, P+T, d)
        reference = hand(inputs_embeds=embeds, attention_mask=full_mask, decoder_input_ids=dec, use_cache=False).logits
        ours.context.kv = {}  # sanity: without the prefixes the logits really differ
        alone = ours.model(
            inputs_embeds=embeds, attention_mask=full_mask, decoder_input_ids=dec, use_cache=False
        ).logits
    torch.testing.assert_close(mine, reference, **TOL)
    assert (alone - reference).abs().max() > 1e-2
    return ids, mask, dec


def train_evaluate_predict(model_dir, tmp_path) -> dict:
    """``softprompt train --model MODEL_DIR`` on RTE with input prompts and deep prefixes (the default inits), then
    ``ensemble-eval`` and ``predict`` of the run, end to end through the CLI; returns the run's metadata."""
    out = tmp_path / "run"
    data = {"train": RTE / "train.jsonl", "val": RTE / "val.jsonl"}
    result = run_cli(*train_args(str(model_dir), out, data, "--deep-prefix", "--prefix-length", "2"))
    assert result.exit_code == 0, result.stderr
    evaluated = run_cli(*eval_args(out, data, tmp_path / "eval.json"))
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads((tmp_path / "eval.json").read_text())["per_prompt"]
    predict_rte(out, tmp_path)
    return read_meta(out)


def predict_rte(run, tmp_path) -> tuple[list[dict], list[dict]]:
    """``softprompt predict`` of the ``run`` (trained on RTE) on three RTE validation rows without their labels: it
    exits 0 and answers each with an RTE label. Returns the rows and the answers."""
    rows = [{k: v for k, v in json.loads(line).items() if k != "label"} for line in (RTE / "val.jsonl").open()][:3]
    inputs = write_jsonl(tmp_path / "inputs.jsonl", rows)
    predicted = run_cli("predict", "--prompts", run, "--input", inputs, "--output", tmp_path / "predictions.jsonl")
    assert predicted.exit_code == 0, predicted.stderr
    answers = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(answers) == 3 and {a["label"] for a in answers} <= {"entailment", "not_entailment"}
    return rows, answers
