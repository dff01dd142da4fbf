"""Prompt transfer (``--init-from``): exact copies of other runs' prompts, refusals, records, resume.

Tiny random T5s built in-process, RTE rows from the small fixtures under tests/data.
"""

import json
import re
import shutil

import pytest
import torch

from softprompt.errors import SoftpromptError
from softprompt.io.store import load_banks, load_dept, read_meta
from softprompt.model.random_models import random_t5
from softprompt.training.banks import build_prompted
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from softprompt.training.transfer import InitChoice, apply_init_from, check_init_from, parse_spec
from tests.softprompt.training.helpers import rte_examples, tiny_config


@pytest.fixture(scope="module")
def rte():
    return rte_examples(16, 8)


def _config(out, **overrides) -> TrainConfig:
    prefixes = dict(n_prompts=2, deep_prefix=True, prefix_length=2, reparam_dim=8, reparam_hidden=8, lr=None)
    short = dict(steps=2, eval_every=2, checkpoint_every=2)
    return tiny_config(out, **(prefixes | short | overrides))


@pytest.fixture(scope="module")
def source(tmp_path_factory, rte):
    """A trained 3-prompt run with input prompts (4 tokens) and deep prefixes (2 positions, all sites)."""
    out = tmp_path_factory.mktemp("src") / "source"
    task, train_examples, val_examples = rte
    train(_config(out, n_prompts=3, seed=7), random_t5(), task, train_examples, val_examples, progress=False)
    return out


def _start(cfg, task, specs, frozen=None):
    """The banks a run starts from: train()'s own deterministic init, then the transfer."""
    frozen = frozen or random_t5()
    prompted = build_prompted(frozen, cfg, task.label_words)
    record = apply_init_from(prompted, frozen.config, specs, cfg.prompt_seeds)
    return prompted, record


@pytest.mark.parametrize("reparam_dim", [0, 8])
def test_init_from_starts_bit_identical_to_the_source(reparam_dim, source, rte, tmp_path):
    """Input prompts and (folded or MLP-reparameterised) deep prefixes start exactly at the source."""
    task = rte[0]
    _, prompts, prefixes = load_banks(source, random_t5().config)
    cfg = _config(tmp_path / "new", n_prompts=3, reparam_dim=reparam_dim)
    prompted, record = _start(cfg, task, [str(source)])
    assert torch.equal(prompted.prompts.weight, prompts.weight)
    start = prompted.prefixes.full()
    for site, kv in prefixes.kv.items():
        assert torch.equal(start[site], kv), site
    assert [(r["prompt"], r["source_prompt"], r["banks"]) for r in record["sources"]] == [
        (k, k, ["prompts", "prefixes"]) for k in range(3)
    ]
    fresh = build_prompted(random_t5(), cfg, task.label_words)  # the transfer really changed the start
    assert not torch.equal(fresh.prompts.weight, prompts.weight)


def test_init_from_one_per_prompt_or_broadcast(source, rte, tmp_path):
    task = rte[0]
    _, prompts, _ = load_banks(source, random_t5().config)
    picked, _ = _start(_config(tmp_path / "a", n_prompts=2), task, [f"{source}#2", f"{source}#0"])
    assert torch.equal(picked.prompts.weight, prompts.weight[[2, 0]])
    broadcast, record = _start(_config(tmp_path / "b", n_prompts=3), task, [f"{source}#1"])
    assert torch.equal(broadcast.prompts.weight, prompts.weight[[1, 1, 1]])
    assert [r["source_prompt"] for r in record["sources"]] == [1, 1, 1] and record["sources"][0]["task"] == "rte"


def test_init_from_copies_only_the_banks_both_runs_have(source, rte, tmp_path):
    task = rte[0]
    cfg = _config(tmp_path / "p", n_prompts=1, deep_prefix=False)
    prompted, record = _start(cfg, task, [f"{source}#0"])
    assert prompted.prefixes is None and record["sources"][0]["banks"] == ["prompts"]


@pytest.mark.parametrize(
    "overrides, specs, message",
    [
        (
            {"prompt_length": 5},
            ["{src}#0"],
            "has input prompts of length 4, this run trains --prompt-length 5; use --prompt-length 4",
        ),
        (
            {"prefix_length": 3},
            ["{src}#0"],
            "has deep prefixes of length 2 at encoder,decoder,cross, this run trains length 3",
        ),
        ({"prefix_sites": ("encoder",)}, ["{src}#0"], "use --prefix-length 2 --prefix-sites encoder,decoder,cross"),
        (
            {"n_prompts": 2},
            ["{src}"],
            "names 3 source prompts for 2 new prompts; give one (copied to every prompt) or one per prompt",
        ),
        ({"n_prompts": 1}, ["{src}#3"], "has 3 prompt(s), indices 0..2"),
        ({"n_prompts": 1}, ["{src}#x"], "is not RUN or RUN#i"),
        ({"n_prompts": 1}, ["{tmp}"], "is not a softprompt run"),
    ],
    ids=["prompt-length", "prefix-length", "prefix-sites", "count", "index", "malformed", "not-a-run"],
)
def test_init_from_refusals(overrides, specs, message, source, rte, tmp_path):
    specs = [s.format(src=source, tmp=tmp_path) for s in specs]
    with pytest.raises(SoftpromptError, match="^[^\n]*" + re.escape(message)):
        _start(_config(tmp_path / "new", **overrides), rte[0], specs)


def test_init_from_refuses_another_model(source, rte, tmp_path):
    """Same widths, one more layer: another architecture fingerprint."""
    cfg = _config(tmp_path / "new", n_prompts=1, deep_prefix=False)
    with pytest.raises(SoftpromptError, match="prompts transfer only between runs of the same model"):
        _start(cfg, rte[0], [f"{source}#0"], frozen=random_t5(num_layers=3))


def test_init_from_refuses_a_source_without_the_trained_bank(source, rte, tmp_path):
    task, train_examples, val_examples = rte
    prompts_only = tmp_path / "prompts-only"
    train(
        _config(prompts_only, n_prompts=1, deep_prefix=False),
        random_t5(),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    with pytest.raises(SoftpromptError, match="holds no deep prefixes, which this run trains"):
        _start(_config(tmp_path / "new", n_prompts=1, prompt_length=0), task, [str(prompts_only)])
    with pytest.raises(SoftpromptError, match="hold different banks"):
        _start(_config(tmp_path / "new2", n_prompts=2), task, [str(prompts_only), f"{source}#0"])


@pytest.mark.parametrize(
    "specs, library, message",
    [
        (("auto",), (), "--init-from auto needs a prompt library; add --library RUN"),
        (("auto", "runs/a"), ("runs/b",), "do not combine it with other --init-from runs"),
        ((), ("runs/b",), "--library is only used by --init-from auto"),
        (("runs/a#-1",), (), "is not RUN or RUN#i"),
    ],
)
def test_config_refuses_bad_init_from(specs, library, message):
    with pytest.raises(SoftpromptError, match=re.escape(message)):
        check_init_from(specs, library)
    with pytest.raises(SoftpromptError):
        TrainConfig(init_from=specs, library=library)


def test_parse_spec():
    assert parse_spec("runs/a#12") == ("runs/a", 12)
    assert parse_spec("runs/a") == ("runs/a", None)


def test_train_records_the_source_and_resume_keeps_working(source, rte, tmp_path):
    """The run records its sources; resuming reads the banks from the checkpoint, so it neither needs
    the source run any more nor starts over from it, and ends exactly where an uninterrupted run ends."""
    task, train_examples, val_examples = rte
    specs = (f"{source}#2",)
    full = _config(tmp_path / "full", n_prompts=1, steps=4, init_from=specs)
    train(full, random_t5(), task, train_examples, val_examples, progress=False)
    meta = read_meta(full.output_dir)
    assert meta["init_from"] == {
        "sources": [
            {"prompt": 0, "run": str(source), "source_prompt": 2, "task": "rte", "banks": ["prompts", "prefixes"]}
        ],
        "auto": None,
    }
    assert meta["train_args"]["init_from"] == list(specs)

    moved = tmp_path / "moved-source"
    shutil.copytree(source, moved)
    part_specs = (str(moved) + "#2",)
    train(
        _config(tmp_path / "part", n_prompts=1, steps=2, init_from=part_specs),
        random_t5(),
        task,
        train_examples,
        val_examples,
        progress=False,
    )
    shutil.rmtree(moved)  # the source is gone: --resume must not need it
    train(
        _config(tmp_path / "part", n_prompts=1, steps=4, init_from=part_specs),
        random_t5(),
        task,
        train_examples,
        val_examples,
        resume=True,
        progress=False,
    )
    assert read_meta(tmp_path / "part")["init_from"]["sources"][0]["run"] == str(moved)
    for name in ("prompts.safetensors", "prefixes.safetensors"):
        assert (tmp_path / "full" / name).read_bytes() == (tmp_path / "part" / name).read_bytes(), name
    with pytest.raises(SoftpromptError, match="init_from"):  # resuming with another source is refused
        train(
            _config(tmp_path / "part", n_prompts=1, steps=6, init_from=specs),
            random_t5(),
            task,
            train_examples,
            val_examples,
            resume=True,
            progress=False,
        )


def test_auto_needs_a_choice_and_uses_it(source, rte, tmp_path):
    task = rte[0]
    cfg = _config(tmp_path / "auto", n_prompts=1, init_from=("auto",), library=(str(source),))
    prompted = build_prompted(random_t5(), cfg, task.label_words)
    with pytest.raises(SoftpromptError, match="needs a retrieval first"):
        apply_init_from(prompted, random_t5().config, cfg.init_from, cfg.prompt_seeds)
    note = {"picked": [f"{source}#1"]}
    record = apply_init_from(
        prompted, random_t5().config, cfg.init_from, cfg.prompt_seeds, InitChoice((f"{source}#1",), note)
    )
    assert record["auto"] == note and record["sources"][0]["source_prompt"] == 1


def test_runs_written_before_init_from_existed_still_match():
    """A stored config without the transfer settings (older runs, checkpoints) is the default: no transfer."""
    cfg = TrainConfig()
    stored = json.loads(json.dumps(cfg.to_dict()))
    for key in ("init_from", "library", "probe_steps"):
        stored.pop(key)
    assert cfg.differences(stored) == []
    assert TrainConfig(init_from=("runs/a",)).differences(stored) == ["init_from"]


@pytest.fixture(scope="module")
def dept_source(tmp_path_factory, rte):
    """A trained 2-prompt DePT run: prompts of 4 tokens and a rank-2 update of the first 64 token embeddings."""
    out = tmp_path_factory.mktemp("dept") / "source"
    task, train_examples, val_examples = rte
    cfg = _config(out, deep_prefix=False, dept_rank=2, seed=3)
    train(cfg, random_t5(), task, train_examples, val_examples, progress=False)
    return out


def test_init_from_a_dept_run_brings_its_update_bit_identically(dept_source, rte, tmp_path):
    """The new run starts where the source ended: prompts and DePT's A and B, all copied exactly."""
    source = load_dept(dept_source, read_meta(dept_source))
    assert source.b.abs().sum() > 0  # trained: a copy of zeros would prove nothing
    cfg = _config(tmp_path / "new", deep_prefix=False, dept_rank=2)
    prompted, record = _start(cfg, rte[0], [f"{dept_source}#1", f"{dept_source}#0"])
    assert torch.equal(prompted.dept.a, source.a[[1, 0]]) and torch.equal(prompted.dept.b, source.b[[1, 0]])
    assert record["sources"][0]["banks"] == ["prompts", "dept"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({}, "next to a DePT update (rank 2 over 64 positions) that this run would drop; add --dept-rank 2"),
        ({"dept_rank": 3}, "has a DePT update of rank 2 over 64 positions, this run trains rank 3 over 64"),
        ({"dept_rank": 2, "max_source_length": 32}, "use --dept-rank 2 --max-source-length 64"),
    ],
    ids=["dropped", "rank", "positions"],
)
def test_init_from_a_dept_run_refuses_a_run_that_cannot_hold_its_update(overrides, message, dept_source, rte, tmp_path):
    cfg = _config(tmp_path / "new", deep_prefix=False, **overrides)
    with pytest.raises(SoftpromptError, match="^[^\n]*" + re.escape(message)):
        _start(cfg, rte[0], [str(dept_source)])


def test_a_dept_run_from_plain_prompts_starts_at_the_source_prompts_with_a_zero_update(source, rte, tmp_path):
    _, prompts, _ = load_banks(source, random_t5().config)
    cfg = _config(tmp_path / "new", n_prompts=3, deep_prefix=False, dept_rank=2)
    prompted, record = _start(cfg, rte[0], [str(source)])
    assert torch.equal(prompted.prompts.weight, prompts.weight) and prompted.dept.b.abs().sum() == 0
    assert record["sources"][0]["banks"] == ["prompts"]
