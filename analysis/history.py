"""Training curves of runs: training loss and validation metric against step, best step marked.

Reads a run's ``history.json`` (written by ``softprompt train`` at every checkpoint, so a run still
training can be plotted too): entries ``{"step", "train_loss": [N], "grad_norm": [N], "lr": [...]}``
every ``--log-every`` steps, plus the task's metric (``{"accuracy": [N]}``) at validations. Runs
written before ``--log-every`` existed have validation entries only; they plot the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.figures import check_plot_path, fitted_title, save_png_and_svg
from ensembles.pool import run_list
from softprompt.errors import SoftpromptError

HISTORY = "history.json"
NOT_METRICS = {"step", "train_loss", "grad_norm", "lr"}


@dataclass
class RunCurves:
    """One run's curves: (S,) steps and (S, N) training losses; (V,) steps and (V, N) metric values."""

    label: str
    metric: str | None
    loss_steps: np.ndarray
    loss: np.ndarray
    val_steps: np.ndarray
    val: np.ndarray

    @property
    def n_prompts(self) -> int:
        """Prompts in the run."""
        return self.loss.shape[1]

    def best(self) -> list[tuple[int, float]]:
        """Each prompt's best (step, value): the first validation with the highest metric, as training keeps it."""
        if not len(self.val_steps):
            return []
        index = self.val.argmax(axis=0)  # (N,) first maximum
        return [(int(self.val_steps[i]), float(self.val[i, n])) for n, i in enumerate(index)]


def load_curves(run_dir: str | Path) -> RunCurves:
    """A run directory's curves from its ``history.json``; any problem is a one-line SoftpromptError.

    >>> best = load_curves("runs/sst2").best()  # a trained run
    >>> len(best), best[0][0]  # (step, metric) per prompt: this run validated once, at step 2
    (3, 2)
    """
    run = Path(run_dir)
    path = run / HISTORY
    if not path.is_file():
        what = "is not a directory" if not run.is_dir() else f"has no {HISTORY}"
        raise SoftpromptError(
            f"{run} {what}; pass a run directory of `softprompt train` (the history appears at its first checkpoint)"
        )
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SoftpromptError(
            f"{path}: cannot read the history ({error}); rerun or resume the training to rewrite it"
        ) from None
    if not isinstance(entries, list) or not entries:
        raise SoftpromptError(
            f"{path}: expected a non-empty list of history entries; rerun or resume the training to rewrite it"
        )
    metric = _metric(run, entries)
    loss_steps, loss, val_steps, val = [], [], [], []
    for entry in entries:
        if not (isinstance(entry, dict) and _int(entry.get("step")) and _numbers(entry.get("train_loss"))):
            raise SoftpromptError(
                f"{path}: an entry lacks an integer 'step' or a list of numbers 'train_loss': {str(entry)[:80]}"
            )
        loss_steps.append(entry["step"])
        loss.append(entry["train_loss"])
        if metric in entry:
            if not _numbers(entry[metric]):
                raise SoftpromptError(f"{path}: step {entry['step']}: {metric!r} is not a list of numbers")
            val_steps.append(entry["step"])
            val.append(entry[metric])
    if len({len(row) for row in loss + val}) != 1:
        raise SoftpromptError(
            f"{path}: entries disagree on the number of prompts; rerun or resume the training to rewrite it"
        )
    if any(b <= a for a, b in zip(loss_steps, loss_steps[1:])):
        raise SoftpromptError(f"{path}: steps are not strictly increasing; rerun or resume the training to rewrite it")
    n = len(loss[0])
    return RunCurves(
        label=str(run_dir),
        metric=metric,
        loss_steps=np.array(loss_steps),
        loss=np.array(loss, dtype=float).reshape(-1, n),
        val_steps=np.array(val_steps, dtype=int),
        val=np.array(val, dtype=float).reshape(-1, n),
    )


def _metric(run: Path, entries: list) -> str | None:
    """The run's validation metric: the task's (softprompt.json) when recorded, else the one key of
    the history entries that is not a training quantity; None before the first validation."""
    try:
        metric = json.loads((run / "softprompt.json").read_text(encoding="utf-8"))["task"]["metric"]
        if any(isinstance(e, dict) and metric in e for e in entries):
            return metric
    except (OSError, ValueError, KeyError, TypeError):  # unfinished run (no softprompt.json yet) or an old one
        pass
    keys = [k for e in entries if isinstance(e, dict) for k in e if k not in NOT_METRICS]
    return keys[0] if keys else None


def _int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _numbers(value: object) -> bool:
    """A non-empty list of finite numbers."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    )


def plot_history(run_dirs: Sequence[str | Path], out: str | Path, title: str | None = None) -> Figure:
    """Training loss (top) and validation metric (bottom) against step, one column per run, one line
    per prompt (the same colour in every panel), each prompt's best step starred; writes PNG and SVG.

    >>> figure = plot_history(["runs/sst2"], "curves.png")  # one column per run: e.g. ["runs/class-label", "runs/random"]
    >>> sorted(str(p) for p in Path().glob("curves.*"))
    ['curves.png', 'curves.svg']
    """
    check_plot_path(out)
    if not run_dirs:
        raise SoftpromptError("no runs given; pass at least one run directory")
    runs = [load_curves(run) for run in run_list(run_dirs)]
    columns = len(runs)
    fig = Figure(figsize=(4.8 * columns + 0.6, 7.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, columns, squeeze=False, sharex="col", sharey="row")
    for col, run in enumerate(runs):
        top, bottom = axes[0, col], axes[1, col]
        best = run.best()
        for n in range(run.n_prompts):
            color = f"C{n % 10}"
            top.plot(run.loss_steps, run.loss[:, n], color=color, linewidth=1.4, alpha=0.9, label=f"prompt {n}")
            if best:
                step, value = best[n]
                bottom.plot(
                    run.val_steps,
                    run.val[:, n],
                    color=color,
                    marker="o",
                    markersize=4,
                    linewidth=1.4,
                    label=f"prompt {n}: best {value:.3f} @ {step}",
                )
                bottom.plot([step], [value], marker="*", markersize=15, color=color, markeredgecolor="black", zorder=5)
                top.axvline(step, color=color, linestyle=":", linewidth=1, alpha=0.7)
        if best:
            bottom.legend(loc="best", fontsize=7)
        else:
            bottom.text(0.5, 0.5, "no validation yet", ha="center", va="center", transform=bottom.transAxes)
        top.set_title(run.label)
        bottom.set_xlabel("step")
        for ax in (top, bottom):
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("training loss (mean per token)")
    metrics = sorted({run.metric for run in runs if run.metric})
    axes[1, 0].set_ylabel(f"validation {'/'.join(metrics) or 'metric'} (★ best step)")
    axes[0, 0].legend(loc="best", fontsize=7)
    fig.suptitle(fitted_title(fig, title or "training curves"))
    fig.tight_layout()
    save_png_and_svg(fig, out, "--output")
    return fig
