"""The bad-input catalogue (docs/errors.md), prompt transfer (``train --init-from``, ``similarity``, ``retrieve``): one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import pytest

from tests.softprompt.cli.helpers import (
    assert_no_artefacts,
    assert_one_line_error,
    run_cli,
    snapshot,
    train_args,
)


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
