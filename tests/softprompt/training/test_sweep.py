"""Tests for softprompt.training.sweep: every model is checked before the first cell trains; a finished cell is reused only
for the settings it was trained and evaluated with."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import softprompt.model.hub
from softprompt.cli.app import cli
from softprompt.errors import SoftpromptError
from softprompt.training.sweep import _check_evaluated
from tests.conftest import TEST_DATA
from tests.softprompt.model.test_loading import hub_without

RTE = TEST_DATA / "superglue" / "rte"


def _sweep(tiny_model_dir, out, *extra):
    """``softprompt sweep`` of one tiny cell (2 prompts, 1 step) into ``out``; returns click's result."""
    args = [
        "sweep",
        "--models",
        tiny_model_dir,
        "--task",
        "rte",
        "--train-file",
        RTE / "train.jsonl",
        "--validation-file",
        RTE / "val.jsonl",
        "--eval-size",
        "6",
        "--prompt-lengths",
        "2",
        "--n-prompts",
        "2",
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--eval-every",
        "1",
        "--max-source-length",
        "48",
        "--out-dir",
        out,
        "--quiet",
        *extra,
    ]
    return CliRunner().invoke(cli, [str(a) for a in args])


def _report(tmp_path, settings: dict, rules: list[str]):
    """A minimal result file whose ensembles are ``rules``."""
    path = tmp_path / "cell.json"
    report = {
        "format": "softprompt.eval/1",
        "task": "rte",
        "split": "validation",
        "kind": "classification",
        "settings": settings,
        "metrics": ["accuracy"],
        "primary": "accuracy",
        "per_prompt": [],
        "mean": {},
        "std": {},
        "best": {},
        "ensembles": {rule: {"accuracy": 0.5} for rule in rules},
        "n_examples": 6,
        "notes": [],
    }
    path.write_text(json.dumps(report), encoding="utf-8")
    return path


def test_rules_are_compared_with_the_recorded_vote_or_else_the_reports_ensembles(tmp_path):
    recorded = _report(tmp_path, {"vote": "majority,confidence"}, ["majority", "confidence"])
    _check_evaluated(["confidence", "majority"], tmp_path / "run", recorded)  # the same rules in another order
    with pytest.raises(SoftpromptError) as err:
        _check_evaluated(["majority"], tmp_path / "run", recorded)
    assert str(err.value) == (
        f"{recorded} was evaluated with other settings (vote: majority,confidence → majority); use "
        f"another --output-dir for the new settings, or delete {recorded} to rerun that cell"
    )
    older = _report(tmp_path, {}, ["majority", "confidence"])  # written before the sweep recorded its vote
    _check_evaluated(["majority", "confidence"], tmp_path / "run", older)
    with pytest.raises(SoftpromptError, match=r"\(vote: majority,confidence → logprob_sum\)"):
        _check_evaluated(["logprob_sum"], tmp_path / "run", older)


def test_a_rerun_with_another_vote_is_refused_and_a_deleted_result_is_evaluated_again_without_training(
    tmp_path, tiny_model_dir
):
    out = tmp_path / "sweep"
    first = _sweep(tiny_model_dir, out)
    assert first.exit_code == 0, first.output
    (result,) = (out / "results").glob("*.json")
    (run,) = (out / "runs").iterdir()
    report = json.loads(result.read_text())
    assert report["settings"]["vote"] == "majority,confidence" and list(report["ensembles"]) == [
        "majority",
        "confidence",
    ]
    assert _sweep(tiny_model_dir, out, "--vote", "confidence,majority").output.count("done, skipped") == 1

    changed = _sweep(tiny_model_dir, out, "--vote", "logprob_sum")  # not skipped without the new rule
    assert changed.exit_code != 0 and str(changed.exception) == (
        f"{result} was evaluated with other settings (vote: majority,confidence → logprob_sum); use another --output-dir "
        f"for the new settings, or delete {result} to re-evaluate that cell's trained prompts"
    )
    assert json.loads(result.read_text()) == report

    prompts, history = (run / "prompts.safetensors").read_bytes(), (run / "history.json").read_text()
    result.unlink()
    again = _sweep(tiny_model_dir, out, "--vote", "logprob_sum")
    assert again.exit_code == 0, again.output
    report = json.loads(result.read_text())
    assert report["settings"]["vote"] == "logprob_sum" and list(report["ensembles"]) == ["logprob_sum"]
    assert (run / "prompts.safetensors").read_bytes() == prompts and (run / "history.json").read_text() == history


def test_an_unknown_vote_fails_before_the_first_cell_trains(tmp_path, tiny_model_dir):
    result = _sweep(tiny_model_dir, tmp_path / "sweep", "--vote", "mbr")
    assert result.exit_code != 0
    assert (
        str(result.exception)
        == "unknown classification vote rule(s): mbr; valid rules are: majority, confidence, logprob_sum"
    )
    assert not (tmp_path / "sweep" / "runs").exists()


def test_every_model_is_checked_before_the_first_cell_trains(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setattr(softprompt.model.hub, "get_hf_file_metadata", hub_without("flan-t5-bse"))
    result = _sweep(f"{tiny_model_dir},t5-nano,flan-t5-bse", tmp_path / "sweep")
    assert result.exit_code != 0
    assert str(result.exception) == (
        "model 'flan-t5-bse' is neither a local directory nor a model on the Hugging Face "
        "hub; did you mean 'flan-t5-base'? check the spelling, log in (hf auth login) if it "
        "is private, or pass a local T5 directory"
    )
    assert not (tmp_path / "sweep").exists()  # no run folder: nothing trained
