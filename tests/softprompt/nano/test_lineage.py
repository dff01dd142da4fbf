"""The shipped sizes' recipe (softprompt.nano.lineage) and the GPU pre-training script that runs it."""

import dataclasses
import json
from pathlib import Path

import pytest

from softprompt.errors import SoftpromptError
from softprompt.model.loading import load_frozen_t5
from softprompt.nano import lineage as nano_lineage
from softprompt.nano import mixture as nano_mixture
from softprompt.nano.export import export, lineage
from softprompt.nano.pretrain import pretrain
from tests.conftest import ROOT
from tests.softprompt.nano.helpers import TINY, cached_mixture, hand_made_gate


def test_lineage_recipe_is_the_one_the_shipped_t5_nano_was_trained_with():
    """STAGES + SIZES["t5-nano"] reproduce every recorded stage config of the shipped checkpoint, and the mixture sources."""
    from softprompt.model.loading import NANO_DIR

    provenance = json.loads((NANO_DIR / "provenance.json").read_text())
    recorded = provenance["lineage"] + [provenance["pretraining"]]
    configs = nano_lineage.stage_configs(nano_lineage.SIZES["t5-nano"])
    assert len(recorded) == len(configs) == 5
    for number, (stage, cfg) in enumerate(zip(recorded, configs), 1):
        ours = dataclasses.asdict(cfg)
        assert {k: ours[k] for k in stage["config"]} == stage["config"], number
        assert stage["total_steps"] == cfg.steps
        sources = [row["source"] for row in stage.get("mixture") or []]
        expected = cfg.mixture_tasks.split(",") if cfg.mixture_tasks else [s.name for s in nano_mixture.SOURCES]
        assert sources == (expected if cfg.mixture_share else []), number
    assert [set(shape) for shape in nano_lineage.SIZES.values()] == [
        {"d_model", "d_ff", "d_kv", "num_heads", "num_layers"}
    ] * 3
    widths = [shape["d_model"] * shape["num_layers"] for shape in nano_lineage.SIZES.values()]
    assert widths == sorted(widths) and len(set(widths)) == 3  # s < default < m


def test_run_lineage_chains_stages_skips_finished_ones_and_resumes(tiny_corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(cached_mixture(tmp_path / "cache")))
    shape = {k: TINY[k] for k in ("d_model", "d_ff", "d_kv", "num_heads", "num_layers")}
    stages = (
        {"steps": 2},
        {
            "steps": 2,
            "seed": 1,
            "mixture_tasks": "headline-sarcasm,news-topic",
            "lm_fraction": 0.0,
            "lm_share": 0.5,
            "mixture_share": 0.5,
        },
    )
    common = {k: v for k, v in TINY.items() if k not in shape and k != "steps"}
    configs = nano_lineage.stage_configs(shape, stages, **common)
    out = tmp_path / "lineage"
    assert (
        nano_lineage.run_lineage(tiny_corpus, out, configs, minutes=1e-9) is None and not out.exists()
    )  # no time left
    assert pretrain(tiny_corpus, out / "stage1", configs[0], minutes=1e-9)["step"] == 1  # an interrupted stage 1
    final = nano_lineage.run_lineage(tiny_corpus, out, configs, eval_batches=1)
    assert final == out / "stage2" / "model"
    state = json.loads((final / "state.json").read_text())
    assert [row["source"] for row in state["mixture"]] == ["headline-sarcasm", "news-topic"]
    assert [s["config"]["seed"] for s in lineage(state)] == [0]  # export's walk finds stage 1, weights checked
    weights = (final / "model.safetensors").read_bytes()
    assert (
        nano_lineage.run_lineage(tiny_corpus, out, configs) == final
        and (final / "model.safetensors").read_bytes() == weights
    )
    assert "stage 2 of 2" in capsys.readouterr().out
    card = (
        export(final, hand_made_gate(final, tmp_path / "gate.json"), tmp_path / "t5-nano-s", name="t5-nano-s")
        / "README.md"
    ).read_text()
    assert card.startswith(
        "# t5-nano-s\n\nOne of softprompt's embedded backbones of one recipe (t5-nano-s, t5-nano, t5-nano-m;"
    )
    assert (
        "| 2 | 2 | 50% / 25% / 25% |" in card and "| headline-sarcasm |" in card and "| tweet-sentiment |" not in card
    )


def test_stage_steps_scale():
    shape = nano_lineage.SIZES["t5-nano-s"]
    assert [c.steps for c in nano_lineage.stage_configs(shape, steps_scale=3)] == [
        3 * s["steps"] for s in nano_lineage.STAGES
    ]
    with pytest.raises(SoftpromptError, match="--steps-scale must be a positive integer"):
        nano_lineage.stage_configs(shape, steps_scale=0)


def test_stage_batch_scale_keeps_each_stages_tokens_in_fewer_larger_steps():
    shape = nano_lineage.SIZES["t5-nano"]
    recipe, scaled = nano_lineage.stage_configs(shape), nano_lineage.stage_configs(shape, steps_scale=2, batch_scale=16)
    for plain, big in zip(recipe, scaled):
        assert big.batch_size == 16 * plain.batch_size == 1024
        assert big.steps * big.batch_size >= 2 * plain.steps * plain.batch_size > (big.steps - 1) * big.batch_size
        assert (
            big.warmup == -(-plain.warmup // 16)
            and big.lr == pytest.approx(4 * plain.lr)
            and big.final_lr == plain.final_lr
        )
        assert (
            dataclasses.replace(big, batch_size=64, steps=plain.steps, warmup=plain.warmup, lr=plain.lr) == plain
        )  # nothing else
    with pytest.raises(SoftpromptError, match="--batch-scale must be a positive integer"):
        nano_lineage.stage_configs(shape, batch_scale=0)


def test_batch_scale_per_stage_scales_each_stage_on_its_own():
    """The next GPU try (docs/t5-nano.md section 5): span corruption at batch 256, the mixture stages at the recipe's 64."""
    shape = nano_lineage.SIZES["t5-nano"]
    recipe, mixed = nano_lineage.stage_configs(shape), nano_lineage.stage_configs(shape, batch_scale=(4, 1, 1, 1, 1))
    assert mixed[0] == nano_lineage.stage_configs(shape, batch_scale=4)[0] and mixed[1:] == recipe[1:]
    with pytest.raises(SoftpromptError, match=r"--batch-scale needs one K, or one per stage \(5\), got 2"):
        nano_lineage.stage_configs(shape, batch_scale=(4, 1))
    with pytest.raises(SoftpromptError, match="--batch-scale must be a positive integer, got 0"):
        nano_lineage.stage_configs(shape, batch_scale=(4, 0, 1, 1, 1))
    assert nano_lineage._scales("4,1,1,1,1") == (4, 1, 1, 1, 1) and nano_lineage._scales("2") == 2


def test_gpu_pretrain_script_returns_the_reached_stage_in_parts_the_device_tool_brings_back(tiny_corpus, tmp_path):
    """tools/gpu_pretrain.sh on the CPU (its smoke run): a few seconds of t5-nano-s's lineage, packed into at
    most 8 files of at most 16 MiB, and joined back into a run folder with the very weights the lineage wrote."""
    import subprocess
    import sys

    script, out, work = ROOT / "tools" / "gpu_pretrain.sh", tmp_path / "out", tmp_path / "work"
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)}
    packed = subprocess.run(
        [
            "bash",
            script,
            "--size",
            "t5-nano-s",
            "--minutes",
            "0.05",
            "--device",
            "cpu",
            "--corpus",
            tiny_corpus,
            "--out",
            out,
            "--work",
            work,
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert packed.returncode == 0, packed.stdout[-2000:] + packed.stderr[-2000:]
    files = list(out.iterdir())
    assert len(files) <= 8 and all(f.stat().st_size <= 16 * 2**20 for f in files)
    assert "latest stage: stage1" in (out / "summary.txt").read_text()
    joined = subprocess.run(
        ["bash", script, "--join", out, tmp_path / "joined"], capture_output=True, text=True, env=env
    )
    assert joined.returncode == 0, joined.stderr
    model = tmp_path / "joined" / "stage1" / "model"
    assert (model / "model.safetensors").read_bytes() == (work / "stage1" / "model" / "model.safetensors").read_bytes()
    assert nano_lineage.size_name(load_frozen_t5(str(model)).config) == "t5-nano-s"
    assert json.loads((model / "state.json").read_text())["step"] >= 1
