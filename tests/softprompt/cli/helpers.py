"""Helpers of the bad-input catalogue (docs/errors.md): run the real entry point in-process and check
that a failure is one line on stderr, a non-zero exit, no traceback and no partial artefact."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import TEST_DATA

RTE = TEST_DATA / "superglue" / "rte"
BOOLQ = TEST_DATA / "superglue" / "boolq"
CB = TEST_DATA / "superglue" / "cb"
MULTIRC = TEST_DATA / "superglue" / "multirc"
SST2 = TEST_DATA / "glue" / "sst2"

ARTEFACTS = ("softprompt.json", "prompts.safetensors", "prefixes.safetensors")


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


def save_bart(path: Path) -> None:
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


def save_gpt2(path: Path) -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=128, n_embd=16, n_layer=1, n_head=2, n_positions=64, bos_token_id=0, eos_token_id=0)
    GPT2LMHeadModel(config).save_pretrained(path)


def saved_t5(factory, name: str, **config) -> Path:
    """A tiny random T5 (built in-process, ``config`` overrides) saved as a model folder."""
    from softprompt.model.loading import save_model_dir
    from softprompt.model.random_models import random_t5

    path = factory.mktemp(name)
    save_model_dir(random_t5(**config), path)
    return path
