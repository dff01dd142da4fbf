"""The prefix bank (``softprompt.model.prefixes``) driving a frozen T5: per-row prefixes, folding,
initialisation, real-word prefixes and a short prefix-tuning run on real SST-2.

The models are ``softprompt.model.random_models.random_t5`` — frozen, randomly initialised tiny T5s built in
well under a second — the right fixture for unit tests: what is checked (which prefix each row
gets, that folding/initialising is exact, that training moves only the prefixes) does not depend
on pretrained weights. Position bias plays no role in these comparisons: both sides of every
equality run the same prefixes through the same positions.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import T5Config

from softprompt.data.loading import load_examples
from softprompt.data.tasks import get_task
from softprompt.errors import SoftpromptError
from softprompt.io.store import load_banks
from softprompt.model.attention import SITES
from softprompt.model.losses import sequence_log_probs
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompted import PromptedT5
from softprompt.model.random_models import random_t5
from softprompt.runner.passes import encode_texts
from softprompt.training.banks import build_prompted
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from tests.conftest import TEST_DATA

ATOL = 1e-5
VOCAB = 256


def tiny(seed: int = 0, **kwargs):
    return random_t5(vocab_size=VOCAB, seed=seed, **kwargs)


def inputs(b: int = 4, t: int = 8, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(2, VOCAB, (b, t), generator=g)
    mask = torch.ones(b, t, dtype=torch.long)
    mask[1, -3:] = 0  # one padded row
    dec = torch.randint(2, VOCAB, (b, 5), generator=g)
    dec[:, 0] = 0
    return ids, mask, dec


# ----------------------------------------------------------------------------- shapes


def test_prefix_shape_uses_layers_per_stack_and_d_kv():
    config = T5Config(d_model=32, d_kv=16, num_heads=4, num_layers=3, num_decoder_layers=2)
    shape = PrefixShape.for_config(config, 5)
    assert shape == PrefixShape(SITES, (3, 2, 2), 4, 16, 5)
    assert shape.site_shape(0) == (3, 2, 4, 5, 16)
    assert shape.site_width(1) == 2 * 2 * 4 * 16
    only = PrefixShape.for_config(config, 2, ("cross",))
    bank = PrefixBank(3, only)
    assert set(bank.kv) == {"cross"} and bank.kv["cross"].shape == (3, 2, 2, 4, 2, 16)
    reparam = PrefixBank(3, shape, reparam_dim=4, reparam_hidden=6)
    full = reparam.full()
    assert {site: tuple(kv.shape) for site, kv in full.items()} == {
        "encoder": (3, 3, 2, 4, 5, 16),
        "decoder": (3, 2, 2, 4, 5, 16),
        "cross": (3, 2, 2, 4, 5, 16),
    }
    rows = reparam(torch.tensor([2, 0, 2]))
    assert torch.equal(rows["decoder"], full["decoder"][[2, 0, 2]])


# ----------------------------------------------------------------------------- per-row prefixes


@pytest.mark.parametrize("reparam_dim", [0, 8])
def test_mixed_batch_equals_separate_batches_row_for_row(reparam_dim):
    """prompt_ids [0, 1, 0, 1] with a 2-prompt bank (all three sites) equals running rows {0, 2}
    with prefix A alone and rows {1, 3} with prefix B alone, row for row (1e-5); and A != B."""
    frozen = tiny()
    bank = PrefixBank(2, PrefixShape.for_config(frozen.config, 3), reparam_dim=reparam_dim, reparam_hidden=16)
    bank.init_random([5, 6], std=1.0)
    prompted = PromptedT5(frozen, prefixes=bank)
    ids, mask, dec = inputs()
    with torch.no_grad():
        mixed = prompted(ids, mask, torch.tensor([0, 1, 0, 1]), decoder_input_ids=dec).logits
        a = prompted(ids[[0, 2]], mask[[0, 2]], torch.tensor([0, 0]), decoder_input_ids=dec[[0, 2]]).logits
        b = prompted(ids[[1, 3]], mask[[1, 3]], torch.tensor([1, 1]), decoder_input_ids=dec[[1, 3]]).logits
        swapped = prompted(ids, mask, torch.tensor([1, 0, 1, 0]), decoder_input_ids=dec).logits
    torch.testing.assert_close(mixed[[0, 2]], a, atol=ATOL, rtol=0)
    torch.testing.assert_close(mixed[[1, 3]], b, atol=ATOL, rtol=0)
    assert (swapped - mixed).abs().amax(dim=(1, 2)).min() > 1e-2  # every row depends on its prefix


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_score_folds_each_rows_candidates_and_equals_plain_forwards(attn, monkeypatch):
    """``score()`` runs the encoder once per row and the decoder per candidate (B·K rows), but every
    cross-attention reads one copy of each encoder row's keys/values: the row's K candidates attend as
    one sequence of K·S queries (``attention._fold_candidates``). With the rows' prefixes at every site
    and a padded row, each score equals a plain forward of that row and candidate."""
    from softprompt.model import attention

    frozen = tiny(attn_implementation=attn)
    bank = PrefixBank(2, PrefixShape.for_config(frozen.config, 2))
    bank.init_random([7, 8], std=1.0)
    prompted = PromptedT5(frozen, prefixes=bank)
    rows_seen = []
    fold = attention._fold_candidates
    monkeypatch.setattr(
        attention,
        "_fold_candidates",
        lambda attend, context, module, query, key, *rest, **kwargs: (
            rows_seen.append((query.shape[0], key.shape[0]))
            or fold(attend, context, module, query, key, *rest, **kwargs)
        ),
    )
    ids, mask, _ = inputs(b=2)
    prompt_ids = torch.tensor([1, 0])
    choice_ids = torch.tensor([[[5, 6, 1], [7, 1, 0], [9, 10, 1]], [[11, 1, 0], [12, 13, 1], [14, 1, 0]]])  # (B, K, S)
    choice_mask = (choice_ids != 0).long()
    scores = prompted.score(ids, mask, prompt_ids, choice_ids, choice_mask)
    assert scores.shape == (2, 3)
    assert rows_seen == [(6, 2)] * frozen.config.num_decoder_layers  # B·K query rows against B rows of keys/values
    with torch.no_grad():
        for row in range(2):
            for k in range(3):
                labels = choice_ids[row, k : k + 1].masked_fill(choice_mask[row, k : k + 1] == 0, -100)
                logits = prompted(
                    ids[row : row + 1], mask[row : row + 1], prompt_ids[row : row + 1], labels=labels
                ).logits
                torch.testing.assert_close(scores[row, k], sequence_log_probs(logits, labels)[0], atol=ATOL, rtol=0)


# ----------------------------------------------------------------------------- fold / init


def test_fold_gives_identical_prefixes_and_outputs():
    """A reparameterised bank and its folded (direct) copy: same prefixes and same model outputs
    (1e-6); the folded copy has no MLP, only ``kv``."""
    frozen = tiny()
    bank = PrefixBank(2, PrefixShape.for_config(frozen.config, 3), reparam_dim=8, reparam_hidden=16)
    bank.init_random([1, 2])
    folded = bank.fold()
    assert bank.reparameterised and not folded.reparameterised
    assert {name.split(".")[0] for name, _ in folded.named_parameters()} == {"kv"}
    for site, kv in bank.full().items():
        torch.testing.assert_close(folded.kv[site], kv.detach(), atol=1e-6, rtol=0)
    ids, mask, dec = inputs()
    prompt_ids = torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        out_reparam = PromptedT5(frozen, prefixes=bank)(ids, mask, prompt_ids, decoder_input_ids=dec).logits
        out_folded = PromptedT5(frozen, prefixes=folded)(ids, mask, prompt_ids, decoder_input_ids=dec).logits
    torch.testing.assert_close(out_folded, out_reparam, atol=1e-6, rtol=0)


@pytest.mark.parametrize("reparam_dim", [0, 8])
def test_init_values_gives_exactly_the_given_prefixes(reparam_dim):
    """``init_values``: every prompt starts exactly at the given prefixes. With reparameterisation
    they live in ``anchor`` and W2 = b2 = 0, so the MLP adds exactly 0 — yet W2 still gets a
    gradient, so training can move away from the anchor."""
    config = T5Config(d_model=32, d_kv=16, num_heads=4, num_layers=3, num_decoder_layers=2)
    shape = PrefixShape.for_config(config, 4)
    bank = PrefixBank(3, shape, reparam_dim=reparam_dim, reparam_hidden=16)
    g = torch.Generator().manual_seed(0)
    values = {site: torch.randn(shape.site_shape(i), generator=g) for i, site in enumerate(shape.sites)}
    bank.init_values(values, seeds=[0, 1, 2])
    full = bank.full()
    for site in shape.sites:
        for n in range(3):
            assert torch.equal(full[site][n], values[site]), (site, n)
    if reparam_dim:
        assert bank.w2.abs().sum() == 0 and bank.embedding.abs().sum() > 0
        sum(kv.square().sum() for kv in bank.full().values()).backward()
        assert bank.w2.grad.abs().sum() > 0


def test_real_word_prefix_shapes_and_values():
    """``real_word_prefix(text, length)``: site -> (L, 2, H, length, d_kv), the text's K/V tiled
    to a longer length and trimmed to a shorter one; encoder layer-0 keys equal the frozen
    model's own key projection of the text. Uses the full T5 vocabulary (real tokenizer)."""
    frozen = random_t5(d_model=32, d_kv=16, num_heads=4)  # t5-3b-shaped heads
    config = frozen.config
    bank = PrefixBank(1, PrefixShape.for_config(config, 2))
    prompted = PromptedT5(frozen, prefixes=bank)
    text = "a great movie"
    ids = frozen.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    n_tokens = ids.shape[1]
    assert n_tokens >= 3
    long = prompted.real_word_prefix(text, 2 * n_tokens + 1)
    short = prompted.real_word_prefix(text, 2)
    assert prompted.context.captured is None
    for site, layers in (
        ("encoder", config.num_layers),
        ("decoder", config.num_decoder_layers),
        ("cross", config.num_decoder_layers),
    ):
        assert long[site].shape == (layers, 2, config.num_heads, 2 * n_tokens + 1, config.d_kv)
        assert short[site].shape == (layers, 2, config.num_heads, 2, config.d_kv)
        for j in range(2 * n_tokens + 1):
            assert torch.equal(long[site][..., j, :], long[site][..., j % n_tokens, :])
        assert torch.equal(short[site], long[site][..., :2, :])
    block = frozen.model.encoder.block[0].layer[0]
    with torch.no_grad():
        keys = block.SelfAttention.k(block.layer_norm(frozen.model.shared(ids)))[0]  # (T, H*d_kv)
    expected = keys.view(n_tokens, config.num_heads, config.d_kv).transpose(0, 1)
    torch.testing.assert_close(long["encoder"][0, 0, :, :n_tokens], expected, atol=ATOL, rtol=0)
    bank.init_values(short, seeds=[0])
    assert torch.equal(bank.kv["cross"][0], short["cross"])


@pytest.mark.parametrize("reparam_dim", [0, 8])
def test_build_prompted_class_label_prefix_init_is_the_label_words_activations(tmp_path, reparam_dim):
    """``--prefix-init class-label`` starts every prefix at the real-word K/V of the task's label
    words joined by spaces (the same as ``text:"negative positive"`` for SST-2), with or without
    the MLP; a task without label words is a one-line error naming the other inits."""
    frozen = random_t5(d_model=32, d_kv=16, num_heads=4)
    task = get_task("sst2")
    cfg = TrainConfig(
        model="random-t5",
        task="sst2",
        output_dir=str(tmp_path),
        n_prompts=2,
        prompt_length=0,
        deep_prefix=True,
        prefix_length=5,
        prefix_init="class-label",
        reparam_dim=reparam_dim,
        reparam_hidden=16,
    )
    full = build_prompted(frozen, cfg, task.label_words).prefixes.full()
    expected = PromptedT5(frozen, prefixes=PrefixBank(1, PrefixShape.for_config(frozen.config, 5))).real_word_prefix(
        "negative positive", 5
    )
    for site in SITES:
        for n in range(2):
            torch.testing.assert_close(full[site][n], expected[site], atol=ATOL, rtol=0)
    with pytest.raises(SoftpromptError, match="class-label needs a task with label words"):
        build_prompted(frozen, cfg, ())
    with pytest.raises(SoftpromptError, match="--prefix-init must be one of random, class-label"):
        TrainConfig(
            model="random-t5",
            task="sst2",
            output_dir=str(tmp_path),
            prompt_length=0,
            deep_prefix=True,
            prefix_init="labels",
        )
    with pytest.raises(
        SoftpromptError, match='^--prefix-init text:"..." needs a non-empty string'
    ):  # the option used, not --init
        TrainConfig(
            model="random-t5",
            task="sst2",
            output_dir=str(tmp_path),
            prompt_length=0,
            deep_prefix=True,
            prefix_init='text:""',
        )


# ----------------------------------------------------------------------------- training


def _per_prompt_loss(prompted, examples, n_prompts):
    ids, mask = encode_texts(prompted.tokenizer, [e.source for e in examples], 64)
    labels, label_mask = encode_texts(prompted.tokenizer, [e.target for e in examples], 8)
    labels = labels.masked_fill(label_mask == 0, -100)
    with torch.no_grad():
        return [
            prompted(ids, mask, torch.full((len(examples),), n), labels=labels).loss.item() for n in range(n_prompts)
        ]


def test_prefix_tuning_trains_on_sst2_and_leaves_the_model_untouched(tmp_path):
    """Joint prefix tuning of 2 reparameterised prefixes on 32 real SST-2 training sentences:
    each prompt's loss on those sentences goes down, the run writes its artefacts, and every
    base-model parameter is bit-identical afterwards."""
    task = get_task("sst2")
    train_examples = load_examples(task, "train", str(TEST_DATA / "glue" / "sst2" / "train.tsv"), limit=32, seed=0)
    val_examples = load_examples(task, "validation", str(TEST_DATA / "glue" / "sst2" / "dev.tsv"), limit=16, seed=0)
    assert len(train_examples) == 32 and len(val_examples) == 16
    frozen = random_t5()
    before_weights = {name: p.detach().clone() for name, p in frozen.model.state_dict().items()}
    cfg = TrainConfig(
        model="random-t5",
        task="sst2",
        output_dir=str(tmp_path),
        n_prompts=2,
        prompt_length=0,
        deep_prefix=True,
        prefix_length=4,
        reparam_dim=16,
        reparam_hidden=32,
        steps=10,
        batch_size=8,
        prefix_optimizer="adamw",
        prefix_lr=3e-2,
        eval_every=10,
        checkpoint_every=10,
        max_source_length=64,
        max_target_length=8,
    )
    initial = build_prompted(frozen, cfg, task.label_words)  # the same deterministic init train() starts from
    loss_before = _per_prompt_loss(initial, train_examples, 2)

    result = train(cfg, frozen, task, train_examples, val_examples, progress=False)

    assert len(result.best_metric) == 2 and result.best_step == [10, 10]
    history = json.loads((tmp_path / "history.json").read_text())
    assert history[-1]["step"] == 10 and len(history[-1]["train_loss"]) == 2
    _, prompts, prefixes = load_banks(tmp_path, frozen.config)
    assert prompts is None and set(prefixes.kv) == set(SITES)
    loss_after = _per_prompt_loss(PromptedT5(frozen, prefixes=prefixes), train_examples, 2)
    for before, after in zip(loss_before, loss_after):  # measured: ~11.0 -> ~7.4
        assert after < 0.8 * before, (loss_before, loss_after)
    for name, parameter in frozen.model.state_dict().items():
        assert torch.equal(parameter, before_weights[name]), name
    assert all(not p.requires_grad for p in frozen.model.parameters())


def test_gradients_of_rows_sharing_a_prompt_add_up_in_a_fixed_order():
    """Same inputs, same gradients, bit for bit, with 2 threads: the gather's backward must not add the rows
    of one prompt in a thread-dependent order (indexing ``kv[ids]`` did: same-seed deep-prefix runs differed
    in the last bits, so ``--resume`` was not bit-identical). Repeated 20 times; the old gather gave ~15
    different results out of 20 on this shape."""
    shape = PrefixShape(("encoder",), (3,), heads=4, d_kv=64, length=4)
    bank, ids = PrefixBank(3, shape), torch.tensor([0, 1, 2] * 6)  # (B,) = 18 rows, 6 per prompt
    upstream = torch.randn(len(ids), *shape.site_shape(0), generator=torch.Generator().manual_seed(0))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        grads = set()
        for _ in range(20):
            bank.zero_grad()
            bank(ids)["encoder"].backward(upstream)
            grads.add(bank.kv["encoder"].grad.numpy().tobytes())
    finally:
        torch.set_num_threads(threads)
    assert len(grads) == 1
