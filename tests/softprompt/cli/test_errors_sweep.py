"""The bad-input catalogue (docs/errors.md), ``softprompt sweep``: bad grids: one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import pytest

from tests.softprompt.cli.helpers import (
    assert_one_line_error,
    run_cli,
)


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
