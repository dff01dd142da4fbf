"""The bad-input catalogue (docs/errors.md), a representative subset run as real ``python -m softprompt.cli`` processes (where library
warnings, logging and progress bars would also reach stderr; exit code exactly 2),: one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.softprompt.cli.helpers import (
    Result,
    assert_one_line_error,
    eval_args,
    save_bart,
    train_args,
)


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
        lambda request, data, tmp: (save_bart(tmp / "bart"), train_args(tmp / "bart", tmp / "out", data))[1],
        ("error: ", "is a 'bart' model, not an encoder-decoder of the T5 family; softprompt supports t5"),
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
