"""Prompt variants end to end (residual reparameterisation, DePT) on real SuperGLUE RTE with a tiny random T5 built
in-process: runs resume bit for bit, residual runs store plain (folded) prompts, a DePT run's batched ensemble equals
its prompts scored one at a time and pools with plain runs, and the settings are checked."""

import pytest
import torch

from analysis.similarity import format_similarity, load_run_vectors, similarity_report
from ensembles.pool import load_pool
from softprompt.errors import SoftpromptError
from softprompt.io.peft import export_peft
from softprompt.io.store import PROMPTS_REPARAM, load_tensors, read_meta
from softprompt.model.prompts import PromptBank
from softprompt.model.random_models import random_t5
from softprompt.model.reparam import ResidualPromptBank
from softprompt.runner.scoring import score_choices
from softprompt.training.banks import build_prompted
from softprompt.training.loop import train
from tests.softprompt.training.helpers import rte_examples, tiny_config

RESIDUAL = dict(prompt_reparam="residual", prompt_reparam_hidden=8, prompt_reparam_dropout=0.1)
DEPT = dict(dept_rank=2, dept_lr=1e-2)


@pytest.fixture(scope="module")
def rte():
    return rte_examples(32, 12)


def _config(tmp_path, name, **overrides):
    short = dict(steps=4, eval_every=2, checkpoint_every=2, max_source_length=48)
    return tiny_config(tmp_path / name, **(short | overrides))


def _train(cfg, rte, resume=False):
    task, train_examples, val_examples = rte
    return train(cfg, random_t5(), task, train_examples, val_examples, resume=resume, progress=False)


@pytest.mark.parametrize("variant", [RESIDUAL, DEPT], ids=["residual", "dept"])
def test_a_resumed_run_equals_the_straight_run_bit_for_bit(tmp_path, rte, variant):
    """Train 2 steps, stop, resume to 4 == 4 straight: the checkpoints hold the MLPs or updates and their optimiser."""
    straight = _config(tmp_path, "straight", **variant)
    _train(straight, rte)
    _train(_config(tmp_path, "part", steps=2, **variant), rte)
    _train(_config(tmp_path, "part", **variant), rte, resume=True)
    pools = [load_pool([cfg.output_dir], random_t5()).model for cfg in (straight, _config(tmp_path, "part", **variant))]
    assert torch.equal(pools[0].prompts.weight, pools[1].prompts.weight)
    if "dept_rank" in variant:
        assert torch.equal(pools[0].dept.a, pools[1].dept.a) and torch.equal(pools[0].dept.b, pools[1].dept.b)
        assert pools[0].dept.b.abs().sum() > 0  # the update trained
    with pytest.raises(SoftpromptError, match="prompt_reparam|dept_rank"):  # the variant cannot change on resume
        _train(_config(tmp_path, "part", steps=6), rte, resume=True)


def test_a_residual_run_stores_plain_folded_prompts_and_keeps_its_mlps_when_asked(tmp_path, rte):
    cfg = _config(tmp_path, "residual", keep_reparam=True, **RESIDUAL)
    _train(cfg, rte)
    meta = read_meta(cfg.output_dir)
    pool = load_pool([cfg.output_dir], random_t5())
    assert type(pool.model.prompts) is PromptBank and pool.model.dept is None
    assert meta["prompts"]["reparam"] == "residual"
    trainable = 3 * (4 * 32 + 32 * 8 + 8 + 8 * 32 + 32 + 2 * 32)  # P·d + the MLP's W1, b1, W2, b2, LayerNorm
    assert meta["trainable_parameters"] == trainable
    unfolded = ResidualPromptBank(3, 4, 32, 8, 0.1)
    unfolded.load_state_dict(load_tensors(tmp_path / "residual" / PROMPTS_REPARAM, meta))
    assert torch.allclose(unfolded.fold().weight, pool.model.prompts.weight)  # the stored prompts are the fold
    assert not torch.allclose(unfolded.weight, pool.model.prompts.weight)


def test_a_dept_runs_batched_ensemble_equals_its_prompts_one_at_a_time_and_pools_with_plain_runs(tmp_path, rte):
    task, _, val_examples = rte
    dept_cfg, plain_cfg = (
        _config(tmp_path, "dept", prompt_length=2, **DEPT),
        _config(tmp_path, "plain", n_prompts=2, prompt_length=2),
    )
    for cfg in (dept_cfg, plain_cfg):
        _train(cfg, rte)
    assert read_meta(dept_cfg.output_dir)["dept"] == {"rank": 2, "positions": 48}
    frozen = random_t5()
    pool = load_pool([dept_cfg.output_dir], frozen)
    batched = score_choices(pool.model, val_examples, [0, 1, 2], 48).log_likelihood  # (N, E, K)
    for i in range(3):
        alone = score_choices(pool.model, val_examples, [i], 48).log_likelihood[0]
        assert torch.allclose(torch.as_tensor(batched[i]), torch.as_tensor(alone), atol=1e-5)
    mixed = load_pool([plain_cfg.output_dir, dept_cfg.output_dir], frozen)  # one pass: plain rows get no update
    assert mixed.names == ["plain#0", "plain#1", "dept#0", "dept#1", "dept#2"]
    scores = score_choices(mixed.model, val_examples, [0, 1, 2, 3, 4], 48).log_likelihood
    plain = score_choices(load_pool([plain_cfg.output_dir], frozen).model, val_examples, [0, 1], 48).log_likelihood
    assert torch.allclose(torch.as_tensor(scores[:2]), torch.as_tensor(plain), atol=1e-5)
    assert torch.allclose(torch.as_tensor(scores[2:]), torch.as_tensor(batched), atol=1e-5)
    with pytest.raises(SoftpromptError, match="is a DePT run: .* which a PEFT prompt-tuning adapter cannot carry"):
        export_peft(dept_cfg.output_dir, 0, tmp_path / "adapter")
    runs = load_run_vectors([dept_cfg.output_dir, plain_cfg.output_dir])  # the prompt part, said in one note
    assert runs[0].vectors.shape == (3, 2, 32) and runs[1].note is None
    assert format_similarity(similarity_report(runs)).endswith(
        "DePT run; this analyses its prompt part only, not its rank-2 update of the input token embeddings"
    )


def test_a_dept_run_trains_its_update_with_its_own_adamw(tmp_path):
    cfg = _config(tmp_path, "recipe", **DEPT)
    assert cfg.recipes()["dept"] == ("adamw", 1e-2)
    prompted = build_prompted(random_t5(), cfg)
    assert prompted.dept.a.shape == (3, 48, 2) and prompted.dept.b.abs().sum() == 0


@pytest.mark.parametrize(
    "overrides,message",
    [
        (dict(prompt_reparam="lstm"), "--prompt-reparam must be one of none, residual"),
        (dict(prompt_reparam="residual", prompt_reparam_hidden=0), "--prompt-reparam-hidden must be a positive"),
        (dict(prompt_reparam="residual", prompt_reparam_dropout=1.0), r"--prompt-reparam-dropout must be in \[0, 1\)"),
        (dict(dept_rank=-1), "--dept-rank must be >= 0"),
        (dict(dept_rank=2, dept_lr=0.0), "--dept-lr must be > 0"),
        (dict(dept_rank=2, prompt_length=0, deep_prefix=True), "--dept-rank acts with input prompts"),
        (dict(prompt_reparam="residual", prompt_length=0, deep_prefix=True), "--prompt-reparam residual acts with"),
    ],
)
def test_invalid_variant_settings_are_refused_in_one_line(tmp_path, overrides, message):
    with pytest.raises(SoftpromptError, match=message):
        _config(tmp_path, "bad", **overrides)
