"""`softprompt plot-history`: curves from one and from several runs' history.json, best step marked."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from matplotlib.image import imread

from analysis.history import load_curves, plot_history
from softprompt.errors import SoftpromptError


def _run(
    directory: Path,
    metric: str = "accuracy",
    n: int = 2,
    log_every: int = 5,
    steps: int = 40,
    eval_every: int = 10,
    peak: int = 20,
) -> Path:
    """A run directory with a history.json as ``softprompt train`` writes it: prompt i's metric
    rises to ``peak + 10 i`` then falls; the loss decays."""
    entries = []
    for step in range(log_every, steps + 1, log_every):
        entry = {
            "step": step,
            "train_loss": [5.0 / (1 + step / 10) + i for i in range(n)],
            "grad_norm": [0.5] * n,
            "lr": [0.3],
        }
        if step % eval_every == 0:
            entry[metric] = [0.9 - abs(step - (peak + 10 * i)) / 100 for i in range(n)]
        entries.append(entry)
    directory.mkdir(parents=True)
    (directory / "history.json").write_text(json.dumps(entries))
    return directory


def _cli(monkeypatch, capsys, *args) -> tuple[int, str, str]:
    from softprompt.cli.app import main

    monkeypatch.setattr(sys, "argv", ["softprompt", *map(str, args)])
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_load_curves_reads_losses_validations_and_best_steps(tmp_path):
    curves = load_curves(_run(tmp_path / "a", n=3))
    assert curves.metric == "accuracy" and curves.n_prompts == 3
    assert curves.loss_steps.tolist() == list(range(5, 41, 5)) and curves.loss.shape == (8, 3)
    assert curves.val_steps.tolist() == [10, 20, 30, 40] and curves.val.shape == (4, 3)
    assert curves.best() == [(20, pytest.approx(0.9)), (30, pytest.approx(0.9)), (40, pytest.approx(0.9))]


def test_best_step_is_the_first_maximum_as_training_keeps_it(tmp_path):
    run = tmp_path / "tie"
    run.mkdir()
    entries = [
        {"step": s, "train_loss": [1.0], "accuracy": [v]} for s, v in ((10, 0.5), (20, 0.7), (30, 0.7), (40, 0.6))
    ]
    (run / "history.json").write_text(json.dumps(entries))
    assert load_curves(run).best() == [(20, 0.7)]


def test_runs_from_before_log_every_plot_their_validation_entries(tmp_path):
    """Old histories hold one entry per validation (step, train_loss, metric) and nothing else."""
    run = tmp_path / "old"
    run.mkdir()
    entries = [{"step": s, "train_loss": [3.0 - s / 1000, 2.0], "f1": [s / 4000, 0.1]} for s in (1000, 2000, 3000)]
    (run / "history.json").write_text(json.dumps(entries))
    curves = load_curves(run)
    assert curves.metric == "f1" and curves.loss_steps.tolist() == curves.val_steps.tolist() == [1000, 2000, 3000]
    assert curves.best() == [(3000, 0.75), (1000, 0.1)]


def test_plot_history_one_run_writes_png_and_svg_with_a_line_per_prompt(tmp_path):
    run = _run(tmp_path / "runs" / "class-label", n=3)
    fig = plot_history([run], tmp_path / "curves.png")
    for suffix in (".png", ".svg"):
        assert (tmp_path / f"curves{suffix}").stat().st_size > 1000
    assert imread(tmp_path / "curves.png").shape[2] in (3, 4)
    top, bottom = fig.axes
    assert top.get_title() == str(run)
    assert len(top.get_lines()) == 3 + 3  # a loss curve per prompt + a dotted line at each best step
    stars = [line for line in bottom.get_lines() if line.get_marker() == "*"]
    assert sorted((line.get_xdata()[0], round(line.get_ydata()[0], 6)) for line in stars) == [
        (20, 0.9),
        (30, 0.9),
        (40, 0.9),
    ]
    assert [t.get_text() for t in bottom.get_legend().get_texts()][0] == "prompt 0: best 0.900 @ 20"


def test_plot_history_several_runs_side_by_side_through_the_cli(tmp_path, monkeypatch, capsys):
    a = _run(tmp_path / "class-label", peak=20)
    b = _run(tmp_path / "random", peak=10, steps=60)
    code, out, err = _cli(
        monkeypatch, capsys, "plot-history", a, b, "--out", tmp_path / "figs" / "curves.svg", "--title", "init"
    )
    assert code == 0, err
    assert out.strip() == f"wrote {tmp_path / 'figs' / 'curves.svg'}"
    assert (tmp_path / "figs" / "curves.svg").read_text().lstrip().startswith("<?xml")
    assert (tmp_path / "figs" / "curves.png").is_file()


def test_plot_history_draws_two_columns_for_two_runs(tmp_path):
    fig = plot_history([_run(tmp_path / "a"), _run(tmp_path / "b", steps=60)], tmp_path / "c.png")
    assert len(fig.axes) == 4
    titles = [ax.get_title() for ax in fig.axes[:2]]
    assert titles == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert fig.axes[3].get_lines()[0].get_xdata().tolist() == [10, 20, 30, 40, 50, 60]


def test_a_run_given_twice_is_refused(tmp_path):
    run = _run(tmp_path / "a")
    with pytest.raises(SoftpromptError, match=r"run .*a/ is given twice \(also as .*a\); give each run once"):
        plot_history([run, str(run) + "/"], tmp_path / "c.png")
    assert not (tmp_path / "c.png").exists()


def test_a_run_still_before_its_first_validation_plots_its_loss(tmp_path):
    fig = plot_history([_run(tmp_path / "early", steps=8, eval_every=100)], tmp_path / "c.png")
    assert "no validation yet" in [t.get_text() for t in fig.axes[1].texts]


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda d: d, "has no history.json; pass a run directory of `softprompt train`"),
        (lambda d: d / "nope", "is not a directory; pass a run directory"),
        (lambda d: (d / "history.json").write_text("[{") and d, "history.json: cannot read the history"),
        (lambda d: (d / "history.json").write_text("{}") and d, "expected a non-empty list of history entries"),
        (
            lambda d: (
                (d / "history.json").write_text('[{"step": 2, "train_loss": [1]}, {"step": 2, "train_loss": [1]}]')
                and d
            ),
            "steps are not strictly increasing",
        ),
        (
            lambda d: (
                (d / "history.json").write_text('[{"step": 2, "train_loss": [1]}, {"step": 4, "train_loss": [1, 2]}]')
                and d
            ),
            "entries disagree on the number of prompts",
        ),
        (
            lambda d: (d / "history.json").write_text('[{"step": "2", "train_loss": [1]}]') and d,
            "an entry lacks an integer 'step'",
        ),
    ],
    ids=["no-history", "missing-dir", "bad-json", "not-a-list", "duplicate-step", "prompt-count", "bad-entry"],
)
def test_bad_histories_are_one_line_errors(tmp_path, setup, message):
    target = setup(tmp_path)
    with pytest.raises(SoftpromptError, match=message.replace("(", r"\(")) as error:
        plot_history([target], tmp_path / "c.png")
    assert "\n" not in str(error.value)
    assert not (tmp_path / "c.png").exists()
