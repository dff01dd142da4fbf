"""The bad-input catalogue (docs/errors.md), ``softprompt train``: bad data, models, settings, output folders, resumes and hub sources: one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA, hub_answering
from tests.softprompt.cli.helpers import (
    MULTIRC,
    SMALL,
    assert_no_artefacts,
    assert_one_line_error,
    run_cli,
    save_bart,
    save_gpt2,
    saved_t5,
    snapshot,
    train_args,
    write_jsonl,
)

# ----------------------------------------------------------------------------- train: data


def test_train_missing_data_file(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, train=tmp_path / "nope.jsonl"))
    assert_one_line_error(result, "data file", "nope.jsonl not found", "--train-file")
    assert not (tmp_path / "out").exists()


def test_train_empty_data_file(tiny_model_dir, data, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n \n")
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, train=empty))
    assert_one_line_error(result, "empty.jsonl has no rows", "pass a file with data")
    assert not (tmp_path / "out").exists()


def test_train_unreadable_data_file(tiny_model_dir, data, tmp_path):
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(b'{"premise": "a", "hypothesis": \n\xff\xfe not json\n')
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, train=broken))
    assert_one_line_error(
        result, "could not read", "broken.jsonl (line 1 is not valid JSON (Expecting value))", "valid jsonl"
    )
    assert not (tmp_path / "out").exists()


def test_train_unsupported_file_type(tiny_model_dir, data, tmp_path):
    text = tmp_path / "train.txt"
    text.write_text("premise\thypothesis\tlabel\n")
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, train=text))
    assert_one_line_error(result, "unsupported file type '.txt'", "use a .jsonl, .json, .csv, .tsv file")


def test_train_missing_column(tiny_model_dir, data, tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"premise": "It rains.", "label": "entailment"}] * 4)
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, train=rows))
    assert_one_line_error(
        result,
        "row 1: column 'hypothesis' not found",
        "available columns: premise, label",
        "the rte task needs columns premise, hypothesis, label",
    )
    assert not (tmp_path / "out").exists()


def test_train_label_outside_verbalizers(tiny_model_dir, data, tmp_path):
    rows = write_jsonl(tmp_path / "rows.jsonl", [{"premise": "a", "hypothesis": "b", "label": "maybe"}])
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, train=rows))
    assert_one_line_error(result, "label 'maybe'", "is not a rte label", "allowed: 0, 1, entailment, not_entailment")


def test_train_empty_split(tiny_model_dir, data, tmp_path):
    """MultiRC paragraphs without questions: the file has rows but the split has no examples."""
    rows = write_jsonl(tmp_path / "multirc.jsonl", [{"idx": 0, "passage": {"text": "A text.", "questions": []}}])
    result = run_cli(
        "train",
        "--model",
        tiny_model_dir,
        "--task",
        "multirc",
        "--train-file",
        rows,
        "--validation-file",
        MULTIRC / "val.jsonl",
        *SMALL,
        "--output-dir",
        tmp_path / "out",
    )
    assert_one_line_error(
        result, "the train split", "gives no multirc examples from its 1 row(s)", "pass a file with labelled examples"
    )
    assert not (tmp_path / "out").exists()


def test_train_unknown_task_suggests_closest(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--task", "boolqq"))
    assert_one_line_error(result, "unknown task 'boolqq'", "did you mean 'boolq'?", "available tasks:")


def test_train_invalid_label_words(tiny_model_dir, data, tmp_path):
    result = run_cli(
        *train_args(
            tiny_model_dir,
            tmp_path / "out",
            data,
            "--task",
            "custom",
            "--input-template",
            "{premise} / {hypothesis}",
            "--label-column",
            "label",
            "--label-words",
            "entailment",
        )
    )
    assert_one_line_error(result, "malformed label words 'entailment'", "LABEL=WORD", "0=negative,1=positive")


@pytest.mark.parametrize(
    "column, message",
    [
        ("label", "the label column 'label' of "),
        ("stars", "--label-column 'stars' is not a column of "),
    ],
    ids=["numbers", "missing-column"],
)
def test_train_custom_labels_without_label_words(column, message, tiny_model_dir, tmp_path):
    """No --label-words and a label column that cannot name its classes (SST-2's 0/1) or is not in the file."""
    sst2 = TEST_DATA / "glue" / "sst2"
    result = run_cli(
        *train_args(
            tiny_model_dir,
            tmp_path / "out",
            None,
            "--task",
            "custom",
            "--input-template",
            "{sentence}",
            "--label-column",
            column,
            train=sst2 / "train.tsv",
            val=sst2 / "dev.tsv",
        )
    )
    line = assert_one_line_error(result, message, "--label")
    assert "holds 0, 1, not words" in line or column == "stars"
    assert not (tmp_path / "out").exists()


def test_train_custom_options_on_builtin_task(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--label-words", "0=yes,1=no"))
    assert_one_line_error(result, "apply to --task custom, not 'rte'")


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            [
                "--task",
                "custom",
                "--input-template",
                "{premise}",
                "--label-column",
                "label",
                "--label-words",
                "entailment=yes,not_entailment=no",
                "--task-name",
                "rte",
            ],
            "--task-name 'rte' is not usable",
        ),
        (["--task-name", "nli"], "apply to --task custom, not 'rte'"),
    ],
    ids=["built-in-name", "name-without-custom"],
)
def test_train_bad_task_name(extra, message, tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, *extra))
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


NLI = [
    "--task",
    "custom",
    "--input-template",
    "{premise} / {hypothesis}",
    "--label-column",
    "label",
    "--label-words",
    "entailment=yes,not_entailment=no",
]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--task-metric", "f1"],
            "--task-metric applies to --task custom; 'rte' is scored by its official metric, accuracy: "
            "drop --task-metric",
        ),
        (
            [*NLI, "--task-metric", "rougeL"],
            "--task-metric 'rougeL' does not fit a 2-class classification task; choose one of "
            "accuracy, macro_f1, balanced_accuracy, f1, mcc",
        ),
        (
            [
                "--task",
                "custom",
                "--input-template",
                "{premise}",
                "--target-column",
                "hypothesis",
                "--task-metric",
                "accuracy",
            ],
            "--task-metric 'accuracy' does not fit a generation task; choose one of bleu, chrf, rouge1, rouge2, rougeL",
        ),
    ],
    ids=["built-in-task", "classification", "generation"],
)
def test_train_bad_task_metric(extra, message, tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, *extra))
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


def test_eval_runs_trained_for_different_task_metrics(tiny_model_dir, data, tmp_path):
    """Runs of one custom task whose best steps were picked by different --task-metric do not pool."""
    for name, extra in (("acc", []), ("mcc", ["--task-metric", "mcc"])):
        assert run_cli(*train_args(tiny_model_dir, tmp_path / name, data, *NLI, *extra)).exit_code == 0
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        tmp_path / "acc",
        "--prompts",
        tmp_path / "mcc",
        "--data-file",
        data["val"],
        "--output",
        tmp_path / "eval.json",
        "--quiet",
    )
    assert_one_line_error(
        result,
        "mcc and",
        "acc both say task 'custom' but were scored by different primary metrics "
        "(mcc vs accuracy: --task-metric); pool only runs of one task",
    )
    assert not (tmp_path / "eval.json").exists()


def test_train_custom_task_without_template(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--task", "custom"))
    assert_one_line_error(result, "--task custom needs --input-template", "--input-template 'review: {sentence}'")


# ----------------------------------------------------------------------------- train: model


@pytest.mark.parametrize("kind, build", [("bart", save_bart), ("gpt2", save_gpt2)])
def test_train_non_t5_model(kind, build, data, tmp_path):
    model = tmp_path / kind
    build(model)
    result = run_cli(*train_args(model, tmp_path / "out", data))
    assert_one_line_error(
        result, f"is a '{kind}' model, not an encoder-decoder of the T5 family", "softprompt supports t5 ("
    )
    assert not (tmp_path / "out").exists()


def test_train_model_dir_without_weights(tiny_model_dir, data, tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    shutil.copy(tiny_model_dir / "config.json", model)
    result = run_cli(*train_args(model, tmp_path / "out", data))
    assert_one_line_error(result, "has no weights (*.safetensors)", "save it with save_pretrained()")


def test_train_model_dir_missing(data, tmp_path):
    result = run_cli(*train_args(tmp_path / "no-such-model", tmp_path / "out", data))
    assert_one_line_error(result, "no-such-model' does not exist", "pass a hub name or an existing directory")


def test_train_corrupted_model_weights(tiny_model_dir, data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    with open(model / "model.safetensors", "r+b") as handle:
        handle.truncate(1000)
    result = run_cli(*train_args(model, tmp_path / "out", data))
    assert_one_line_error(result, "cannot load weights for", "missing or corrupted", "download it again")
    assert not (tmp_path / "out").exists()


def test_train_unknown_model_type(tiny_model_dir, data, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "config.json").write_text('{"model_type": "t6"}')
    result = run_cli(*train_args(model, tmp_path / "out", data))
    assert_one_line_error(result, "cannot load model config for", "model type `t6`", "pass a local directory")


def test_train_tokenizer_vocab_mismatch(tmp_path_factory, data, tmp_path):
    """A T5 whose vocabulary (1000) is smaller than its tokenizer's (32100)."""
    model = saved_t5(tmp_path_factory, "t5-vocab1000", vocab_size=1000)
    result = run_cli(*train_args(model, tmp_path / "out", data))
    assert_one_line_error(
        result, "has 32100 tokens but the model's vocabulary has 1000", "use the tokenizer the model was trained with"
    )


def test_train_prompt_plus_input_exceeds_model_limit(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--prompt-length", "500"))
    assert_one_line_error(
        result,
        "--prompt-length 500 + --max-source-length 64 exceeds the model's input limit of 512",
        "shorten one of them",
    )
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- train: settings


@pytest.mark.parametrize(
    "args, message",
    [
        (["--n-prompts", "0"], "--n-prompts must be a positive integer, got 0"),
        (["--prompt-length", "-1"], "--prompt-length must be >= 0, got -1"),
        (["--deep-prefix", "--prefix-length", "-2"], "--prefix-length must be a positive integer, got -2"),
        (["--prompt-length", "0"], "--prompt-length 0 leaves nothing to train; use a positive length or --deep-prefix"),
        (["--init", "zeros"], "unknown init 'zeros'; use one of:"),
        (["--steps", "0"], "--steps must be a positive integer, got 0"),
        (["--max-tokens", "0"], "--max-tokens must be a positive integer, got 0"),
        (["--weight-decay", "-1"], "--weight-decay must be >= 0, got -1.0"),
        (
            ["--num-beams", "0"],
            "--num-beams must be a positive integer, got 0",
        ),  # else generate() fails at the first validation
        (["--max-new-tokens", "0"], "--max-new-tokens must be a positive integer, got 0"),
    ],
    ids=[
        "n-prompts-0",
        "negative-prompt-length",
        "negative-prefix-length",
        "nothing-to-train",
        "unknown-init",
        "zero-steps",
        "zero-max-tokens",
        "negative-weight-decay",
        "zero-beams",
        "zero-new-tokens",
    ],
)
def test_train_invalid_settings(args, message, tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, *args))
    assert_one_line_error(result, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--n-prompts", "abc"], "'abc' is not a valid integer"),
        (["train", "--optimizer", "sgd"], "'sgd' is not one of 'adafactor', 'adamw'"),
        (["ensemble-eval", "--task", "rte"], "Missing option '--prompts'; see '"),
        (["neighbors"], "Missing argument 'RUN_DIR'; see '"),
        (["train", "--n-promts", "3"], "No such option '--n-promts'. Did you mean '--n-prompts'? See '"),
        (["traim"], "No such command 'traim'. Did you mean 'train'? See '"),
        (["neighbors", "--prompts", "runs/rte"], "neighbors takes RUN_DIR as an argument, not --prompts: "),
        (["plot-history", "--prompts", "runs/rte"], "plot-history takes RUNS as arguments, not --prompts: "),
        (["train", "-z"], "No such option '-z'; see '"),  # a short option: click suggests nothing
        (
            ["train", "--n-prompts"],
            "Option '--n-prompts' requires an argument; see 'softprompt train --help'",
        ),  # no click context
    ],
    ids=[
        "not-an-integer",
        "bad-choice",
        "missing-option",
        "missing-argument",
        "misspelled-option",
        "misspelled-command",
        "prompts-for-a-run-argument",
        "prompts-for-run-arguments",
        "unknown-short-option",
        "missing-value",
    ],
)
def test_usage_errors_are_one_line(args, message):
    assert_one_line_error(run_cli(*args), message, "--help")


# ----------------------------------------------------------------------------- train: output directory


def test_train_refuses_dir_with_other_files(tiny_model_dir, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = snapshot(out)
    assert_one_line_error(
        run_cli(*train_args(tiny_model_dir, out, data)),
        "already holds files that are not a softprompt run",
        "--overwrite",
    )
    # --overwrite never deletes files that are not a run
    assert_one_line_error(
        run_cli(*train_args(tiny_model_dir, out, data, "--overwrite")),
        "holds files that are not a softprompt run",
        "refusing to delete them",
        "choose another directory",
    )
    assert snapshot(out) == before


def test_train_refuses_existing_run_without_flag(run_copy, tiny_model_dir, data):
    before = snapshot(run_copy)
    result = run_cli(*train_args(tiny_model_dir, run_copy, data))
    assert_one_line_error(
        result, "already holds a softprompt run", "pass --resume to continue it or --overwrite to replace it"
    )
    assert snapshot(run_copy) == before


def test_train_output_dir_is_a_file(tiny_model_dir, data, tmp_path):
    target = tmp_path / "out"
    target.write_text("x")
    assert_one_line_error(run_cli(*train_args(tiny_model_dir, target, data)), "is a file; choose a directory path")
    assert target.read_text() == "x"


def test_train_output_dir_under_a_file(tiny_model_dir, data, tmp_path):
    """Read-only output, simulated: a directory cannot be created under a regular file (ENOTDIR)."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli(*train_args(tiny_model_dir, blocker / "sub", data))
    assert_one_line_error(result, "cannot write to --output-dir", "Not a directory", "choose a writable directory")
    assert blocker.read_text() == "x"


def test_train_output_dir_not_writable(tiny_model_dir, data, tmp_path, monkeypatch):
    """Read-only output, simulated: the write probe raises EACCES (chmod does not stop root)."""
    real = Path.write_bytes

    def write_bytes(self, payload):
        if self.name == ".write_test":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(self))
        return real(self, payload)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    out = tmp_path / "out"
    result = run_cli(*train_args(tiny_model_dir, out, data))
    assert_one_line_error(result, "cannot write to --output-dir", "Permission denied", "choose a writable directory")
    assert_no_artefacts(out)


def _enospc(*_, **__):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_train_disk_full_when_saving_the_run(run_copy, tiny_model_dir, data, monkeypatch):
    """ENOSPC when the final prompts.safetensors is committed (the checkpoint writes succeed): one line,
    and the previous run files survive intact, with no temporary files left."""
    before = {name: (run_copy / name).read_bytes() for name in ("softprompt.json", "prompts.safetensors")}
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if Path(dst) == run_copy / "prompts.safetensors":
            _enospc()
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    result = run_cli(*train_args(tiny_model_dir, run_copy, data, "--resume", "--steps", "3", "--checkpoint-every", "1"))
    assert_one_line_error(result, "cannot write", "No space left on device", "free disk space")
    assert {name: (run_copy / name).read_bytes() for name in before} == before
    assert not list(run_copy.glob(".*.tmp"))


def test_train_disk_full_when_checkpointing(run_copy, tiny_model_dir, data, monkeypatch):
    """ENOSPC on the atomic rename of a checkpoint file: one line, the last checkpoint survives."""
    before = snapshot(run_copy)
    real = os.replace

    def replace(src, dst, *args, **kwargs):
        if str(dst).startswith(str(run_copy)):
            _enospc()
        return real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)
    result = run_cli(*train_args(tiny_model_dir, run_copy, data, "--resume", "--steps", "3", "--checkpoint-every", "1"))
    assert snapshot(run_copy) == before
    assert_one_line_error(result, "cannot write", "checkpoint", "No space left on device", "free disk space")


def test_train_non_finite_loss_keeps_last_good_checkpoint(tiny_model_dir, data, tmp_path):
    out = tmp_path / "out"
    result = run_cli(
        *train_args(
            tiny_model_dir, out, data, "--lr", "1e30", "--steps", "4", "--eval-every", "100", "--checkpoint-every", "1"
        )
    )
    line = assert_one_line_error(
        result, "loss became non-finite at step", "the last good checkpoint (step", "lower --lr"
    )
    bad_step = int(line.split("non-finite at step ")[1].split()[0])
    saved = json.loads((out / "checkpoint" / "state.json").read_text())["step"]
    assert saved == bad_step - 1 and f"(step {saved})" in line
    assert_no_artefacts(out)


def test_train_resume_with_changed_settings(run_copy, tiny_model_dir, data):
    before = snapshot(run_copy)
    result = run_cli(
        *train_args(
            tiny_model_dir,
            run_copy,
            data,
            "--resume",
            "--prompt-length",
            "4",
            "--lr",
            "0.1",
            "--num-beams",
            "2",
            "--subsample-seed",
            "7",
        )
    )  # another --train-size subset
    assert_one_line_error(
        result,
        "--resume with settings that differ from the checkpoint in",  # decoding: its changed entry
        "(decoding.num_beams: 1 → 2, lr: 0.3 → 0.1, prompt_length: 3 → 4, subsample_seed: 0 → 7)",
        "rerun with the original settings",
    )
    assert snapshot(run_copy) == before


def test_train_resume_takes_the_data_files_under_any_spelling_of_their_paths(
    run_copy, tiny_model_dir, data, monkeypatch
):
    """Data files are compared as files, not as strings: a relative path from another folder names the same file."""
    monkeypatch.chdir(data["root"])  # the run was trained with absolute paths
    result = run_cli(
        *train_args(
            tiny_model_dir,
            run_copy,
            data,
            "--resume",
            "--steps",
            "3",
            "--checkpoint-every",
            "1",
            train="./" + data["train"].name,
            val=data["val"].name,
        )
    )
    assert result.exit_code == 0, result.stderr
    assert json.loads((run_copy / "checkpoint" / "state.json").read_text())["step"] == 3


@pytest.mark.parametrize("case", ["fewer-steps", "with-overwrite"])
def test_train_resume_that_contradicts_itself(case, run_copy, tiny_model_dir, data):
    before = snapshot(run_copy)
    if case == "fewer-steps":  # the checkpoint is at step 2
        result = run_cli(
            *train_args(tiny_model_dir, run_copy, data, "--resume", "--steps", "1", "--checkpoint-every", "1")
        )
        assert_one_line_error(result, "is at step 2, past --steps 1; give --steps 2 or more")
    else:
        result = run_cli(*train_args(tiny_model_dir, run_copy, data, "--resume", "--overwrite"))
        assert_one_line_error(
            result, "--resume continues the run in --output-dir and --overwrite replaces it; pass one of them"
        )
    assert snapshot(run_copy) == before


def test_train_interrupted_says_which_checkpoint_is_kept_and_how_to_continue(
    tiny_model_dir, data, tmp_path, monkeypatch
):
    import softprompt.training.loop

    calls = []

    def record(self, *args):  # Ctrl-C during step 2, after step 1's checkpoint
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(softprompt.training.loop.TrainingLog, "record", record)
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--checkpoint-every", "1"))
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert (
        f"interrupted: the checkpoint of step 1 in {tmp_path / 'out'} is kept; run the same command with --resume"
        in result.stderr
    )


def test_sigterm_during_an_overwrite_before_its_first_checkpoint_puts_the_earlier_run_back(
    tiny_model_dir, data, tmp_path
):
    """A real process: SIGTERM (a scheduler, ``timeout``) stops ``train --overwrite`` as Ctrl-C does. It used to kill
    the process at once, leaving the earlier run hidden in .out.replaced, which the next --overwrite deleted."""
    out = tmp_path / "out"
    assert run_cli(*train_args(tiny_model_dir, out, data)).exit_code == 0
    before = snapshot(out)
    never = ["--steps", "100000", "--eval-every", "100000", "--checkpoint-every", "100000"]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "softprompt.cli",
            *map(str, train_args(tiny_model_dir, out, data, *never, "--overwrite")),
        ],
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    set_aside = tmp_path / ".out.replaced"
    for _ in range(600):  # the old run is set aside before the model loads
        if set_aside.exists() or process.poll() is not None:
            break
        time.sleep(0.05)
    process.terminate()
    stderr = process.communicate(timeout=120)[1]
    assert process.returncode == 130 and "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.strip()] == [
        f"interrupted before the first checkpoint; the earlier run in {out} is back in place"
    ]
    assert snapshot(out) == before and not set_aside.exists()


def test_train_says_when_it_stops_early_and_a_resume_does_not_train_on(tiny_model_dir, data, tmp_path):
    args = train_args(tiny_model_dir, tmp_path / "out", data, "--steps", "8", "--eval-every", "1", "--patience", "1")
    result = run_cli(*args)
    assert result.exit_code == 0, result.stderr
    stopped = json.loads((tmp_path / "out" / "checkpoint" / "state.json").read_text())["step"]
    assert (
        stopped < 8
        and f"stopped early at step {stopped} of 8: no prompt improved its accuracy in the last 1 validations"
        in result.stderr
    )
    before = snapshot(tmp_path / "out")
    assert run_cli(*args, "--resume").exit_code == 0  # the run is over: it used to train on to step 8
    assert snapshot(tmp_path / "out") == before


def test_train_resume_of_a_new_folder_says_that_it_starts_a_new_run(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "new", data, "--resume"))
    assert (
        result.exit_code == 0
        and f"note: no checkpoint in {tmp_path / 'new'} to resume; starting a new run there" in result.stderr
    )


def test_train_resume_without_checkpoint(tiny_model_dir, data, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    result = run_cli(*train_args(tiny_model_dir, out, data, "--resume"))
    assert snapshot(out) == {"notes.txt": b"mine"}
    assert_one_line_error(result, "no checkpoint to resume", "drop --resume")


# ----------------------------------------------------------------------------- hub data


def test_train_hub_unreachable_names_the_source(tiny_model_dir, tmp_path, monkeypatch):
    from softprompt.data import loading as data_module

    def offline(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'tuetschek/e2e_nlg' on the Hub (ConnectError)")

    monkeypatch.setattr(data_module.datasets, "load_dataset", offline)
    monkeypatch.setattr(data_module, "ask_hub", hub_answering())  # it answered
    result = run_cli("train", "--model", tiny_model_dir, "--task", "e2e_nlg", *SMALL, "--output-dir", tmp_path / "out")
    assert_one_line_error(
        result,
        "could not load the train split of tuetschek/e2e_nlg (config default, revision "
        "refs/convert/parquet) from the Hugging Face hub (Couldn't reach",
        "pass local files with --train-file/--validation-file (--data-file for ensemble-eval)",
        "--dataset-revision",
    )
    assert not (tmp_path / "out").exists()


def test_train_dataset_revision_on_custom_task(tiny_model_dir, data, tmp_path):
    result = run_cli(
        *train_args(
            tiny_model_dir,
            tmp_path / "out",
            data,
            "--task",
            "custom",
            "--input-template",
            "{premise}",
            "--target-column",
            "hypothesis",
            "--dataset-revision",
            "main",
        )
    )
    assert_one_line_error(
        result,
        "--dataset-revision applies to tasks read from the Hugging Face hub; custom tasks read local files",
        "drop it",
    )
    assert not (tmp_path / "out").exists()
