"""The bad-input catalogue (docs/errors.md), ``softprompt ensemble-eval``: bad runs, settings, data and outputs: one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.softprompt.cli.helpers import (
    assert_one_line_error,
    eval_args,
    run_cli,
    saved_t5,
    train_args,
)


def test_eval_not_a_run(data, tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli(*eval_args(tmp_path / "empty", data, tmp_path / "eval.json"))
    assert_one_line_error(result, "is not a softprompt run (no softprompt.json)", "written by `softprompt train`")
    assert not (tmp_path / "eval.json").exists()


def test_eval_mixed_models(run, t5_d48, data, tmp_path_factory, tmp_path):
    other = tmp_path_factory.mktemp("runs") / "rte-d48"
    assert run_cli(*train_args(t5_d48, other, data, "--steps", "1", "--eval-every", "1")).exit_code == 0
    result = run_cli(*eval_args(run, data, tmp_path / "eval.json", "--prompts", other))
    assert_one_line_error(result, "was trained on model", "pool only runs trained on the same model")
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("key", ["d_model", "vocab_size"])
def test_eval_prompts_from_another_model(key, run, t5_d48, tmp_path_factory, data, tmp_path):
    model = t5_d48 if key == "d_model" else saved_t5(tmp_path_factory, "t5-vocab32200", vocab_size=32200)
    expected = {"d_model": ("d_model=32", "d_model=48"), "vocab_size": ("vocab_size=32128", "vocab_size=32200")}[key]
    result = run_cli(*eval_args(run, data, tmp_path / "eval.json", "--model", model))
    assert_one_line_error(
        result,
        f"trained on a model with {expected[0]} but this model has {expected[1]}",
        "load it with the model it was trained on",
    )
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-tokens", "0"], "--max-tokens must be a positive integer, got 0"),
        (["--max-length", "-5"], "--max-length must be a positive integer, got -5"),
        (["--num-beams", "0"], "--num-beams must be a positive integer, got 0"),
        (["--no-repeat-ngram-size", "-1"], "--no-repeat-ngram-size must be >= 0 (0: off), got -1"),
    ],
)
def test_eval_and_predict_bad_pass_or_decoding_settings(args, message, run, data, tmp_path):
    result = run_cli(*eval_args(run, data, tmp_path / "eval.json", *args))
    assert_one_line_error(result, message)
    assert not (tmp_path / "eval.json").exists()
    result = run_cli("predict", "--prompts", run, "--input", data["val"], "--output", tmp_path / "p.jsonl", *args)
    assert_one_line_error(result, message)
    assert not (tmp_path / "p.jsonl").exists()


def test_eval_prompts_from_another_task(run, data, tmp_path):
    result = run_cli(*eval_args(run, data, tmp_path / "eval.json", "--task", "boolq", "--data-file", data["boolq_val"]))
    assert_one_line_error(result, "prompts were trained on 'rte', not 'boolq'", "pass --transfer")
    assert not (tmp_path / "eval.json").exists()


def test_eval_transfer_to_task_with_other_classes(run, data, tmp_path):
    result = run_cli(
        *eval_args(run, data, tmp_path / "eval.json", "--task", "cb", "--data-file", data["cb_val"], "--transfer")
    )
    assert_one_line_error(result, "--transfer needs", "'rte'", "'cb'")
    assert not (tmp_path / "eval.json").exists()


def test_eval_transfer_without_a_task(run, data, tmp_path):
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        run,
        "--data-file",
        data["val"],
        "--output",
        tmp_path / "eval.json",
        "--quiet",
        "--transfer",
    )
    assert_one_line_error(result, "--transfer evaluates prompts on another task", "name it with --task")
    assert not (tmp_path / "eval.json").exists()


def test_eval_template_options_without_a_task(run, data, tmp_path):
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        run,
        "--data-file",
        data["val"],
        "--output",
        tmp_path / "eval.json",
        "--quiet",
        "--input-template",
        "{premise}",
    )
    assert_one_line_error(
        result,
        "--input-template/--label-column/--label-words/--target-column/--task-name/--task-metric need --task custom",
    )


def test_eval_run_that_does_not_record_its_custom_task(run_copy, data, tmp_path):
    """A run whose task is no built-in one and whose softprompt.json lacks the training options (as a PEFT
    import's): ensemble-eval cannot format inputs for it without --task."""

    def as_custom(meta):
        meta["task"]["name"] = "my-task"
        meta.pop("train_args")

    _edit_meta(run_copy, as_custom)
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        run_copy,
        "--data-file",
        data["val"],
        "--output",
        tmp_path / "eval.json",
        "--quiet",
    )
    assert_one_line_error(result, "does not record how task 'my-task' formats its inputs", "name the task with --task")
    assert not (tmp_path / "eval.json").exists()


def test_eval_named_custom_task_without_its_name(run_copy, data, tmp_path):
    """Runs of a custom task trained with --task-name, evaluated with --task custom but no --task-name."""
    _edit_meta(run_copy, lambda meta: meta["task"].update(name="nli"))
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        run_copy,
        "--data-file",
        data["val"],
        "--output",
        tmp_path / "eval.json",
        "--quiet",
        "--task",
        "custom",
        "--input-template",
        "{premise} {hypothesis}",
        "--label-column",
        "label",
        "--label-words",
        "entailment=entailment,not_entailment=not_entailment",
    )
    assert_one_line_error(result, "prompts were trained on 'nli', not 'custom'", "add --task-name nli")
    assert not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "truncated-no-digest"])
def test_eval_corrupted_safetensors(damage, run_copy, data, tmp_path):
    """Caught by the SHA-256 that softprompt.json records, or (metadata without digests) by the parser."""
    path = run_copy / "prompts.safetensors"
    if damage == "garbage":
        path.write_bytes(b"\x00" * 7 + b"not a safetensors file")
    else:
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    if damage == "truncated-no-digest":
        _edit_meta(run_copy, lambda meta: meta.pop("files", None))
    result = run_cli(*eval_args(run_copy, data, tmp_path / "eval.json"))
    assert_one_line_error(result, "prompts.safetensors is corrupted or truncated", "retrain or restore it")
    assert not (tmp_path / "eval.json").exists()


def test_eval_missing_safetensors(run_copy, data, tmp_path):
    (run_copy / "prompts.safetensors").unlink()
    result = run_cli(*eval_args(run_copy, data, tmp_path / "eval.json"))
    assert_one_line_error(result, "prompts.safetensors is missing", "retrain or restore it")


def _edit_meta(run_dir: Path, edit) -> None:
    path = run_dir / "softprompt.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_eval_metadata_missing_fields(run_copy, data, tmp_path):
    _edit_meta(run_copy, lambda meta: [meta.pop("seeds"), meta.pop("task")])
    result = run_cli(*eval_args(run_copy, data, tmp_path / "eval.json"))
    assert_one_line_error(result, "softprompt.json lacks field(s) task, seeds", "re-run training or restore the file")


def test_eval_metadata_from_newer_format(run_copy, data, tmp_path):
    _edit_meta(run_copy, lambda meta: meta.update(format_version=99))
    result = run_cli(*eval_args(run_copy, data, tmp_path / "eval.json"))
    assert_one_line_error(result, "has format version 99, newer than this softprompt reads (1)", "upgrade softprompt")


def test_eval_metadata_invalid_json(run_copy, data, tmp_path):
    (run_copy / "softprompt.json").write_text('{"model": ')
    result = run_cli(*eval_args(run_copy, data, tmp_path / "eval.json"))
    assert_one_line_error(result, "softprompt.json is not valid JSON", "re-run training or restore the file")


def test_eval_unknown_vote_rule(run, data, tmp_path):
    result = run_cli(*eval_args(run, data, tmp_path / "eval.json", "--vote", "majority,majorty"))
    assert_one_line_error(
        result, "unknown classification vote rule(s): majorty", "valid rules are: majority, confidence, logprob_sum"
    )
    assert not (tmp_path / "eval.json").exists()


def test_eval_unknown_split(run, tmp_path):
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        run,
        "--task",
        "rte",
        "--split",
        "dev",
        "--output",
        tmp_path / "eval.json",
        "--quiet",
    )
    assert_one_line_error(result, "unknown split 'dev' for rte", "choose one of train, validation, test")


def test_eval_zero_limit(run, data, tmp_path):
    result = run_cli(*eval_args(run, data, tmp_path / "eval.json", "--limit", "0"))
    assert_one_line_error(result, "must be positive, got 0", "--limit")


def test_eval_output_under_a_file(run, data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(*eval_args(run, data, blocker / "eval.json"))
    assert_one_line_error(
        result, "cannot write the report to", "file is a file, not a folder", "choose another --output path"
    )
    assert blocker.read_text() == "x"


@pytest.mark.parametrize("case", ["folder", "foreign-file", "foreign-predictions-file"])
def test_eval_output_is_checked_before_scoring_and_never_replaces_another_file(case, run, data, tmp_path, monkeypatch):
    """A folder, or a file that softprompt did not write (at --output or where its predictions go), is refused
    before any scoring; the user's file is unchanged. A report of an earlier run is replaced (rerun below)."""
    import ensembles.pipeline

    monkeypatch.setattr(ensembles.pipeline, "score_choices", lambda *a, **k: pytest.fail("scored before the check"))
    out = tmp_path / "eval.json"
    if case == "folder":
        out.mkdir()
        expected = ("--output", "eval.json is a folder; give a file path, e.g.", "eval.json/eval.json")
    else:
        foreign = out if case == "foreign-file" else out.with_suffix(".predictions.jsonl")
        foreign.write_text("my notes\n")
        expected = (
            "--output",
            f"{foreign.name} holds a file that softprompt did not write; choose another path or remove that file",
        )
    assert_one_line_error(run_cli(*eval_args(run, data, out)), *expected)
    if case != "folder":
        assert foreign.read_text() == "my notes\n"


def test_eval_and_predict_replace_their_own_earlier_output(run, data, tmp_path):
    out, predictions = tmp_path / "eval.json", tmp_path / "p.jsonl"
    for _ in range(2):
        assert run_cli(*eval_args(run, data, out)).exit_code == 0
        assert (
            run_cli("predict", "--prompts", run, "--input", data["val"], "--output", predictions, "--quiet").exit_code
            == 0
        )
    assert (
        json.loads(out.read_text())["format"] == "softprompt.eval/1"
        and json.loads(predictions.read_text().splitlines()[0])["index"] == 0
    )


def test_eval_missing_data_file_names_its_option(run, tmp_path):
    result = run_cli(
        "ensemble-eval", "--prompts", run, "--data-file", tmp_path / "nope.jsonl", "--output", tmp_path / "e.json"
    )
    assert_one_line_error(result, "nope.jsonl not found; check the path given to --data-file")


def test_eval_output_must_name_the_report_not_its_csv(run, tmp_path):
    """The CSV and the predictions go beside the report: --output x.csv used to write the JSON, then the CSV over it."""
    result = run_cli(*eval_args(run, {"val": tmp_path / "unread.jsonl"}, tmp_path / "x.csv"))
    assert_one_line_error(
        result,
        f"--output names the report JSON, and its CSV and predictions go beside it; give e.g. "
        f"{tmp_path / 'x.json'}, not {tmp_path / 'x.csv'}",
    )
    assert not any(tmp_path.iterdir())
