"""The bad-input catalogue (docs/errors.md), the analysis commands (``neighbors``, ``plot-scale``, ``plot-history``): one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.softprompt.cli.helpers import (
    assert_one_line_error,
    run_cli,
    train_args,
)

# ----------------------------------------------------------------------------- neighbors


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


# ----------------------------------------------------------------------------- plot-scale


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


# ----------------------------------------------------------------------------- training curves


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
