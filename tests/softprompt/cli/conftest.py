"""Fixtures of the bad-input catalogue: small slices of real data, tiny saved T5s (random, built
in-process) and one tiny trained run."""

import shutil
from pathlib import Path

import pytest

from tests.softprompt.cli.helpers import BOOLQ, CB, RTE, head, run_cli, saved_t5, train_args


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


@pytest.fixture(scope="module")
def t5_d48(tmp_path_factory) -> Path:
    """A tiny T5 with another width (d_model 48 instead of 32)."""
    return saved_t5(tmp_path_factory, "t5-d48", d_model=48, d_kv=12)


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
