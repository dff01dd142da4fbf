"""Joint training of N prompts on real SuperGLUE RTE with a tiny random T5 (built in-process).

The tiny model is random, so scores are near chance: these tests check mechanics (independence of
prompts, frozen base, artefacts that reproduce), not quality.
"""

import json

import pytest
import safetensors.torch
import torch

from ensembles.pool import load_pool
from softprompt.data.tasks import get_task
from softprompt.errors import SoftpromptError
from softprompt.io.store import read_meta
from softprompt.model.random_models import random_t5
from softprompt.runner.passes import encode_texts, repeat_for_prompts
from softprompt.training.banks import build_prompted
from softprompt.training.loop import joint_backward, micro_passes, train, validate
from tests.softprompt.training.helpers import rte_examples, tiny_config


@pytest.fixture(scope="module")
def rte():
    return rte_examples(48, 24)


def _config(tmp_path, name, **overrides):
    return tiny_config(tmp_path / name, **overrides)


def test_three_prompts_train_jointly_write_artefacts_and_reproduce_scores(tmp_path, rte):
    task, train_examples, val_examples = rte
    frozen = random_t5()
    before = {name: p.detach().clone() for name, p in frozen.model.named_parameters()}
    cfg = _config(tmp_path, "run")
    result = train(cfg, frozen, task, train_examples, val_examples, progress=False)

    for name, parameter in frozen.model.named_parameters():  # the base model never changes
        assert torch.equal(parameter, before[name]), name
    meta = read_meta(cfg.output_dir)
    assert meta["n_prompts"] == 3 and meta["seeds"] == [0, 1, 2] and meta["task"]["name"] == "rte"
    assert (tmp_path / "run" / "prompts.safetensors").is_file()
    assert [b["accuracy"] for b in meta["best"]] == result.best_metric

    reloaded = load_pool([cfg.output_dir], random_t5())  # artefacts alone reproduce the best scores
    assert validate(reloaded.model, task, val_examples, cfg) == pytest.approx(result.best_metric, abs=1e-12)


def test_joint_training_equals_training_each_prompt_alone(tmp_path, rte):
    task, train_examples, val_examples = rte
    joint_cfg = _config(tmp_path, "joint", eval_every=100, steps=5)
    train(joint_cfg, random_t5(), task, train_examples, val_examples, progress=False)
    joint = load_pool([joint_cfg.output_dir], random_t5()).model.prompts.weight
    for i, seed in enumerate(joint_cfg.prompt_seeds):
        alone_cfg = _config(tmp_path, f"alone{i}", eval_every=100, steps=5, n_prompts=1, prompt_seeds=(seed,))
        train(alone_cfg, random_t5(), task, train_examples, val_examples, progress=False)
        alone = load_pool([alone_cfg.output_dir], random_t5()).model.prompts.weight
        assert torch.allclose(joint[i], alone[0], atol=1e-5), f"prompt {i} coupled to the others"
    assert not torch.allclose(joint[0], joint[1])  # different seeds, different prompts


def test_per_prompt_data_order_equals_separate_one_prompt_runs_with_their_seeds(tmp_path, rte):
    task, train_examples, val_examples = rte
    joint_cfg = _config(tmp_path, "joint", eval_every=100, steps=5, data_order="per-prompt")
    train(joint_cfg, random_t5(), task, train_examples, val_examples, progress=False)
    joint = load_pool([joint_cfg.output_dir], random_t5()).model.prompts.weight
    for i, seed in enumerate(joint_cfg.prompt_seeds):
        alone_cfg = _config(
            tmp_path, f"alone{i}", eval_every=100, steps=5, n_prompts=1, seed=seed
        )  # its own data order
        train(alone_cfg, random_t5(), task, train_examples, val_examples, progress=False)
        alone = load_pool([alone_cfg.output_dir], random_t5()).model.prompts.weight
        assert torch.allclose(joint[i], alone[0], atol=1e-5), (
            f"prompt {i} did not train as a separate run with seed {seed}"
        )


def test_per_prompt_data_order_resumes_to_the_same_prompts_and_cannot_change_on_resume(tmp_path, rte):
    task, train_examples, val_examples = rte
    full_cfg, part_cfg = (_config(tmp_path, name, steps=6, data_order="per-prompt") for name in ("full", "part"))
    train(full_cfg, random_t5(), task, train_examples, val_examples, progress=False)
    train(
        _config(tmp_path, "part", steps=3, data_order="per-prompt"),
        random_t5(),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    train(part_cfg, random_t5(), task, train_examples, val_examples, resume=True, progress=False)
    full, resumed = (load_pool([cfg.output_dir], random_t5()).model.prompts.weight for cfg in (full_cfg, part_cfg))
    assert torch.equal(full, resumed)
    with pytest.raises(SoftpromptError, match="data_order"):  # the data order must not change on resume
        train(
            _config(tmp_path, "part", steps=9),
            random_t5(),
            task,
            train_examples,
            val_examples,
            resume=True,
            progress=False,
        )


@pytest.mark.parametrize("shared", [True, False])
def test_micro_passes_accumulate_the_one_pass_gradient(tmp_path, rte, shared):
    """--max-tokens: a step's rows (mixed lengths; per-prompt rows when not shared) run as several
    length-sorted passes, each trimmed to its longest source and target; the losses and the
    gradients of input prompts and deep prefixes equal one untrimmed pass's."""
    task, train_examples, _ = rte
    cfg = _config(tmp_path, "run", deep_prefix=True, prefix_length=2, reparam_dim=8, reparam_hidden=8)
    prompted = build_prompted(random_t5(), cfg, task.label_words)
    examples = train_examples[:4] if shared else train_examples[:12]  # per-prompt: (3·4,) rows, prompt-major
    input_ids, mask = encode_texts(prompted.tokenizer, [e.source for e in examples], 64)
    labels, label_mask = encode_texts(prompted.tokenizer, [e.target for e in examples], 8)
    labels = labels.masked_fill(label_mask == 0, -100)
    budget = 2 * (cfg.prompt_length + 64 + 8)  # about two rows per pass
    copies = 3 if shared else 1  # the step's rows: (12, ·) either way
    assert (
        len(
            micro_passes(
                repeat_for_prompts(mask, copies), repeat_for_prompts(labels, copies), cfg.prompt_length, budget
            )
        )
        >= 4
    )
    results = []
    for max_tokens in (None, budget):
        losses = joint_backward(prompted, input_ids, mask, labels, shared, max_tokens)
        results.append((losses, [p.grad.clone() for p in prompted.trainable_parameters()]))
        prompted.zero_grad(set_to_none=True)
    (one_loss, one_grads), (micro_loss, micro_grads) = results
    assert torch.allclose(one_loss, micro_loss, atol=1e-5)
    for one, micro in zip(one_grads, micro_grads):
        assert one.abs().max() > 0 and torch.allclose(one, micro, atol=1e-6, rtol=1e-4)


def test_max_tokens_trains_like_one_pass_and_may_change_on_resume(tmp_path, rte):
    task, train_examples, val_examples = rte
    one, micro = _config(tmp_path, "one", steps=4), _config(tmp_path, "micro", steps=4, max_tokens=150)
    for cfg in (one, micro):
        train(cfg, random_t5(), task, train_examples, val_examples, progress=False)
    weights = [load_pool([cfg.output_dir], random_t5()).model.prompts.weight for cfg in (one, micro)]
    assert torch.allclose(*weights, atol=1e-5)
    train(
        _config(tmp_path, "micro", steps=6, max_tokens=300),
        random_t5(),
        task,
        train_examples,
        val_examples,
        resume=True,
        progress=False,
    )
    assert read_meta(micro.output_dir)["train_args"]["max_tokens"] == 300
    with pytest.raises(SoftpromptError, match="--max-tokens must be a positive integer"):
        _config(tmp_path, "bad", max_tokens=0)


@pytest.mark.parametrize(
    "init,data_order",
    [('text:"yes no maybe"', "shared"), ('text:"yes no maybe"', "per-prompt"), ("sampled-vocab", "shared")],
)
def test_prompts_that_start_equal_end_equal_and_the_run_says_so(tmp_path, rte, capsys, init, data_order):
    """One data order for all prompts: a start shared by every prompt (a text init) trains N copies, and
    training notes it on stderr; per-prompt starts (sampled tokens) or per-prompt batches give N different
    prompts and no note."""
    task, train_examples, val_examples = rte
    cfg = _config(tmp_path, "run", init=init, steps=3, eval_every=3, data_order=data_order)
    train(cfg, random_t5(), task, train_examples, val_examples, progress=False)
    weight = load_pool([cfg.output_dir], random_t5()).model.prompts.weight
    copies = init.startswith("text:") and data_order == "shared"
    assert torch.allclose(weight[0], weight[1], atol=1e-6) == torch.allclose(weight[0], weight[2], atol=1e-6) == copies
    err = capsys.readouterr().err
    assert ("note: all 3 prompts start at the same values" in err) == copies
    assert ("its own start (--init class-label or --init sampled-vocab) or its own batches" in err) == copies


def test_the_copies_note_suggests_only_options_that_apply_to_the_run(tmp_path):
    """A prefix-only run is not told about --init, a generation task not about class-label, an --init-from run
    only about its sources."""
    from softprompt.training.banks import own_starts

    prefix_only = _config(tmp_path, "p", prompt_length=0, deep_prefix=True, prefix_init="class-label")
    assert own_starts(prefix_only, get_task("rte")) == "deep prefixes: --reparam-dim > 0 or --prefix-init random"
    assert own_starts(_config(tmp_path, "g", init='text:"x"'), get_task("xsum")) == "--init sampled-vocab"
    assert own_starts(_config(tmp_path, "c", init="class-label"), get_task("rte")).startswith(
        "a --prompt-length longer"
    )


def test_resume_continues_to_the_same_prompts(tmp_path, rte):
    task, train_examples, val_examples = rte
    full_cfg = _config(tmp_path, "full", steps=6)
    train(full_cfg, random_t5(), task, train_examples, val_examples, progress=False)
    part_cfg = _config(tmp_path, "part", steps=6)
    train(_config(tmp_path, "part", steps=3), random_t5(), task, train_examples, val_examples, progress=False)
    train(part_cfg, random_t5(), task, train_examples, val_examples, resume=True, progress=False)
    full = load_pool([full_cfg.output_dir], random_t5()).model.prompts.weight
    resumed = load_pool([part_cfg.output_dir], random_t5()).model.prompts.weight
    assert torch.equal(full, resumed)


def test_group_by_length_changes_the_order_and_resumes_to_the_same_prompts(tmp_path, rte):
    task, train_examples, val_examples = rte
    grouped = dict(
        group_by_length=True, batch_size=7, steps=8, checkpoint_every=4, eval_every=4
    )  # step 6 spans epochs 0 and 1
    full_cfg = _config(tmp_path, "full", **grouped)
    train(full_cfg, random_t5(), task, train_examples, val_examples, progress=False)
    assert read_meta(full_cfg.output_dir)["train_args"]["group_by_length"] is True
    train(
        _config(tmp_path, "part", **(grouped | {"steps": 4})),
        random_t5(),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    train(
        _config(tmp_path, "part", **grouped),
        random_t5(),
        task,
        train_examples,
        val_examples,
        resume=True,
        progress=False,
    )
    train(
        _config(tmp_path, "plain", **(grouped | {"group_by_length": False})),
        random_t5(),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    full, resumed, plain = (
        _checkpoint_banks(tmp_path / name)["bank.prompts.weight"] for name in ("full", "part", "plain")
    )
    assert torch.equal(full, resumed)
    assert not torch.allclose(full, plain)  # grouping drew other batches
    with pytest.raises(SoftpromptError, match="group_by_length"):  # the data order must not change on resume
        train(
            _config(tmp_path, "part", **(grouped | {"steps": 10, "group_by_length": False})),
            random_t5(),
            task,
            train_examples,
            val_examples,
            resume=True,
            progress=False,
        )


def test_resume_refuses_changed_settings(tmp_path, rte):
    task, train_examples, val_examples = rte
    train(_config(tmp_path, "run", steps=3), random_t5(), task, train_examples, val_examples, progress=False)
    with pytest.raises(SoftpromptError, match="prompt_length"):
        train(
            _config(tmp_path, "run", steps=6, prompt_length=5),
            random_t5(),
            task,
            train_examples,
            val_examples,
            resume=True,
            progress=False,
        )


def _checkpoint_banks(run_dir):
    state = json.loads((run_dir / "checkpoint" / "state.json").read_text())
    tensors = safetensors.torch.load_file(run_dir / "checkpoint" / state["tensors_file"])
    return {k: v for k, v in tensors.items() if not k.startswith("best.")}  # current banks and optimiser state


def test_prompts_and_prefixes_keep_their_own_recipes_and_resume_bit_identically(tmp_path, rte):
    task, train_examples, val_examples = rte
    both = dict(deep_prefix=True, prefix_length=2, reparam_dim=8, reparam_hidden=8, log_every=1, lr=None, steps=6)
    full_cfg = _config(tmp_path, "full", **both)
    assert full_cfg.recipes() == {"prompts": ("adafactor", 0.3), "prefixes": ("adamw", 3e-4)}
    train(full_cfg, random_t5(), task, train_examples, val_examples, progress=False)
    history = json.loads((tmp_path / "full" / "history.json").read_text())
    assert len(history) == 6 and all(entry["lr"] == [0.3, 3e-4] for entry in history)  # one param group per bank
    start = build_prompted(random_t5(), full_cfg, task.label_words)
    full = _checkpoint_banks(tmp_path / "full")
    moved = (full["bank.prompts.weight"] - start.prompts.weight).abs().max()
    assert moved > 0.05  # Adafactor 0.3 moves the input prompts (AdamW 3e-4 would leave them within 0.006)
    for name, tensor in start.prefixes.named_parameters():  # AdamW 3e-4: each element moves about lr per step
        assert 0 < (full[f"bank.prefixes.{name}"] - tensor).abs().max() < 6 * 3 * 3e-4, name

    train(
        _config(tmp_path, "part", **(both | {"steps": 3})),
        random_t5(),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    train(
        _config(tmp_path, "part", **both), random_t5(), task, train_examples, val_examples, resume=True, progress=False
    )
    resumed = _checkpoint_banks(tmp_path / "part")
    assert full.keys() == resumed.keys() and any(k.startswith("opt.") for k in full)
    assert all(torch.equal(full[k], resumed[k]) for k in full), [
        k for k in full if not torch.equal(full[k], resumed[k])
    ]
    for name in ("prompts.safetensors", "prefixes.safetensors"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "part" / name).read_bytes()
