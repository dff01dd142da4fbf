"""Model-scale curves from evaluation reports (Lester et al. 2021, Figure 1).

Reads ``softprompt.eval/1`` JSON reports and plots a metric against a setting (by default
the model's parameter count): the mean single prompt with a ± std band, the best single
prompt, and each ensemble rule, plus optional reference points from a CSV. Reports at one x
(e.g. subsample seeds) are averaged; the mean and its ± std band are over all their prompts pooled,
so the spread between the reports shows in the band.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.figures import check_plot_path, fitted_title, save_png_and_svg
from ensembles.evaluate import read_report
from softprompt.errors import SoftpromptError
from softprompt.paths import each_once

_REQUIRED = {
    "task": str,
    "split": str,
    "kind": str,
    "settings": dict,
    "metrics": list,
    "primary": str,
    "per_prompt": list,
    "mean": dict,
    "std": dict,
    "best": dict,
    "ensembles": dict,
    "n_examples": int,
}


def load_results(paths: Sequence[str]) -> list[dict]:
    """Read and validate evaluation reports, each file once; any problem raises SoftpromptError naming the file."""
    return [_validated(path, read_report(path, required=tuple(_REQUIRED))) for path in each_once(paths, "report")]


def _validated(path: str, result: dict) -> dict:
    """``result``, once the types of the parts of it that the curves use are checked."""
    for key, kind in _REQUIRED.items():
        if not isinstance(result.get(key), kind):
            raise SoftpromptError(f"{path}: key {key!r} is not a {kind.__name__}; the report is incomplete")
    if result["kind"] not in ("classification", "generation"):
        raise SoftpromptError(f"{path}: kind is {result['kind']!r}, expected 'classification' or 'generation'")
    if not result["per_prompt"] or not all(isinstance(v, dict) for v in result["ensembles"].values()):
        raise SoftpromptError(f"{path}: 'per_prompt' is empty or an 'ensembles' entry is not an object")
    rows = [result["mean"], result["std"], *result["per_prompt"]]
    for metric in result["metrics"]:
        if not all(isinstance(row, dict) and _number(row.get(metric)) for row in rows):
            raise SoftpromptError(
                f"{path}: metric {metric!r} lacks a number in 'mean', 'std' or a 'per_prompt' entry; "
                "the report is incomplete"
            )
    return result


def _number(value: object) -> bool:
    """True for a finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _method_values(result: dict, metric: str) -> dict[str, float]:
    """y values of the methods of one report that are averaged over reports: best, ensemble:<rule>."""
    # the report's best prompt when it carries this metric, else the top single prompt on it
    best = result["best"].get(metric)
    values = {"best": best if _number(best) else max(row[metric] for row in result["per_prompt"])}
    for rule, scores in result["ensembles"].items():
        if _number(scores.get(metric)):
            values[f"ensemble:{rule}"] = scores[metric]
    return values


SETUP = (
    "model",
    "model_params",
    "n_prompts",
    "prompt_length",
    "init",
    "deep_prefix",
    "train_size",
)  # what a point's prompts were


def _check_same_setup(results: Sequence[dict], x: str) -> None:
    """Reports at one x are averaged only when they differ in nothing but seeds (e.g. subsample seeds)."""
    seen: dict[Any, dict[str, Any]] = {}
    for result in results:
        setup = {key: result["settings"].get(key) for key in SETUP if key != x}
        first = seen.setdefault(result["settings"][x], setup)
        differing = [key for key in SETUP if key != x and setup[key] != first[key]]
        if differing:
            values = "; ".join(f"{key} {first[key]!r} vs {setup[key]!r}" for key in differing)
            numeric = [key for key in differing if _number(setup[key]) and key != "model_params"]
            hint = f", or put it on the x axis (--x {numeric[0]})" if numeric else ""
            raise SoftpromptError(
                f"reports at {x} = {result['settings'][x]} differ in more than their seeds ({values}), "
                f"so they cannot be averaged into one point; pass the reports of one setting{hint}"
            )


def scale_points(results: Sequence[dict], metric: str, x: str = "model_params") -> dict:
    """Curves of ``metric`` against ``settings[x]``, one per method, x values sorted ascending.

    Returns {"metric", "x", "kind", "task", "split", "labels": {x value: model name},
    "methods": {"mean": {"x", "y", "std"}, "best": {"x", "y"}, "ensemble:<rule>": {"x", "y"}}}.
    Several reports at the same x (e.g. subsample seeds) are averaged: the mean curve's y and std
    are the mean and population std (as in the reports) of all their single prompts pooled, so the
    spread between the reports counts; the best curve's and each rule's y is the mean of the
    reports' values. An ensemble rule absent from some reports has points only where it is
    present. Values stay in the reports' units (fractions for classification).
    """
    if not results:
        raise SoftpromptError("no evaluation reports given; pass at least one report file")
    for key in ("kind", "task", "split"):
        found = sorted({r[key] for r in results})
        if len(found) > 1:
            raise SoftpromptError(f"reports mix {key}s {found}; plot one {key} at a time")
    metrics = [m for m in results[0]["metrics"] if all(m in r["metrics"] for r in results)]
    if metric not in metrics:
        raise SoftpromptError(f"unknown metric {metric!r}; available in all reports: {', '.join(metrics)}")
    xs = [k for k in results[0]["settings"] if all(_number(r["settings"].get(k)) for r in results)]
    if x not in xs:
        raise SoftpromptError(f"unknown or non-numeric x {x!r}; numeric settings in all reports: {', '.join(xs)}")

    _check_same_setup(results, x)
    grouped: dict[float, list[dict[str, float]]] = defaultdict(list)
    prompts: dict[float, list[float]] = defaultdict(list)
    names: dict[float, list[str]] = defaultdict(list)
    for result in results:
        at = result["settings"][x]
        grouped[at].append(_method_values(result, metric))
        prompts[at] += [row[metric] for row in result["per_prompt"]]
        model = result["settings"].get("model")
        if isinstance(model, str) and model not in names[at]:
            names[at].append(model)

    methods: dict[str, dict[str, list[float]]] = {"mean": {"x": [], "y": [], "std": []}}
    for at in sorted(grouped):
        mean, std = _pooled(prompts[at])
        methods["mean"]["x"].append(at)
        methods["mean"]["y"].append(mean)
        methods["mean"]["std"].append(std)
        runs = grouped[at]
        for name in sorted({m for values in runs for m in values}):
            present = [values for values in runs if name in values]
            curve = methods.setdefault(name, {"x": [], "y": []})
            curve["x"].append(at)
            curve["y"].append(sum(v[name] for v in present) / len(present))
    order = ["mean", "best"] + sorted(m for m in methods if m.startswith("ensemble:"))
    return {
        "metric": metric,
        "x": x,
        "kind": results[0]["kind"],
        "task": results[0]["task"],
        "split": results[0]["split"],
        "labels": {at: "/".join(n.split("/")[-1] for n in names[at]) for at in sorted(names) if names[at]},
        "methods": {name: methods[name] for name in order},
    }


def _pooled(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population std (ddof=0, as the reports' std) of ``values``."""
    mean = sum(values) / len(values)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def read_reference_csv(path: str) -> list[dict]:
    """Reference points from a CSV with columns label,x,y (y in the reports' units) -> [{"label", "x", "y"}]."""
    try:
        with open(path, encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
            fields = set(rows[0]) if rows else set()
    except FileNotFoundError:
        raise SoftpromptError(f"{path}: no such reference CSV; check the path") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise SoftpromptError(f"{path}: cannot read the reference CSV ({err})") from None
    if not rows or not {"label", "x", "y"} <= fields:
        raise SoftpromptError(f"{path}: reference CSV needs a header 'label,x,y' and at least one row")
    points = []
    for line, row in enumerate(rows, start=2):
        try:
            x, y = float(row["x"]), float(row["y"])
        except (TypeError, ValueError):
            raise SoftpromptError(
                f"{path}, line {line}: x and y must be numbers, got {row['x']!r}, {row['y']!r}"
            ) from None
        if not row["label"] or not (math.isfinite(x) and math.isfinite(y)):
            raise SoftpromptError(f"{path}, line {line}: needs a label and finite x and y")
        points.append({"label": row["label"], "x": x, "y": y})
    return points


def _params(n: float) -> str:
    """Parameter count as text: 60000000 -> '60M', 1.1e10 -> '11B'."""
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= size:
            return f"{n / size:.3g}{suffix}"
    return f"{n:g}"


def plot_scale(
    results: Sequence[dict],
    metric: str,
    out: str,
    x: str = "model_params",
    reference_csv: str | None = None,
    title: str | None = None,
) -> Figure:
    """Plot ``metric`` against ``settings[x]`` for every method, write PNG and SVG, return the Figure.

    ``out`` ends with .png or .svg; the other format is written beside it. Classification
    fractions are drawn as percentages; reference CSV y values are in the reports' units.
    With x == "model_params" the x axis is logarithmic and ticks show the model names. Reports
    at one x are averaged; the mean ± std is over all their prompts pooled (``scale_points``).

    >>> from pathlib import Path
    >>> figure = plot_scale(load_results(["results/sst2.json"]), "accuracy", "scale.png")  # one report per model size
    >>> sorted(str(p) for p in Path().glob("scale.*"))
    ['scale.png', 'scale.svg']
    """
    check_plot_path(out)
    points = scale_points(results, metric, x)
    references = read_reference_csv(reference_csv) if reference_csv else []
    percent = points["kind"] == "classification"
    if percent and any(not 0 <= ref["y"] <= 1 for ref in references):
        raise SoftpromptError(
            f"{reference_csv}: y values must be fractions in [0, 1] like the reports' {metric}; "
            "divide percentages by 100"
        )
    log_x = x == "model_params"
    if log_x and any(v <= 0 for curve in points["methods"].values() for v in curve["x"]):
        raise SoftpromptError("model_params must be positive in every report for the log-scale axis; fix the reports")
    if log_x and any(ref["x"] <= 0 for ref in references):
        raise SoftpromptError(f"{reference_csv}: x values must be positive parameter counts for the log-scale axis")
    scale = 100.0 if percent else 1.0

    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    styles = {"mean": ("o", "-", "Mean single prompt (± std)"), "best": ("^", "-", "Best single prompt")}
    for i, (name, curve) in enumerate(points["methods"].items()):
        marker, line, label = styles.get(name, ("s", "--", f"Ensemble: {name.removeprefix('ensemble:')}"))
        ys = [scale * v for v in curve["y"]]
        ax.plot(curve["x"], ys, marker=marker, linestyle=line, color=f"C{i}", label=label, linewidth=2, markersize=7)
        if name == "mean":
            low = [y - scale * s for y, s in zip(ys, curve["std"])]
            high = [y + scale * s for y, s in zip(ys, curve["std"])]
            if len(ys) > 1:
                ax.fill_between(curve["x"], low, high, color="C0", alpha=0.2, linewidth=0)
            else:  # a band of zero width is invisible: draw the single point's ± std as a bar
                ax.vlines(curve["x"], low, high, color="C0", alpha=0.3, linewidth=8)
    groups: dict[str, list[dict]] = defaultdict(list)
    for ref in references:
        groups[ref["label"]].append(ref)
    for j, (label, refs) in enumerate(groups.items()):
        refs.sort(key=lambda r: r["x"])
        ax.plot(
            [r["x"] for r in refs],
            [scale * r["y"] for r in refs],
            marker="D",
            linestyle=":",
            color=f"{0.1 + 0.25 * (j % 3):.2f}",
            label=label,
            linewidth=1.5,
            markersize=6,
        )

    xs = sorted({v for curve in points["methods"].values() for v in curve["x"]})
    if log_x:
        ax.set_xscale("log")
        ax.set_xlabel("Model parameters (log scale)")
        ticks = [f"{points['labels'][v]}\n{_params(v)}" if v in points["labels"] else _params(v) for v in xs]
    else:
        ax.set_xlabel(x)
        ticks = [f"{v:g}" for v in xs]
    ax.set_xticks(xs, ticks)
    ax.set_xticks([], minor=True)
    if len(xs) == 1:  # one x value: give the single point some room on both sides
        half = abs(xs[0]) / 2 or 1.0
        ax.set_xlim(*((xs[0] / 3, xs[0] * 3) if log_x else (xs[0] - half, xs[0] + half)))
    unit = "%" if percent else "0–100"
    ax.set_ylabel(f"{metric} ({unit})")
    ax.set_title(
        fitted_title(
            fig, title or f"{points['task']} ({points['split']}): {metric} vs. {'model scale' if log_x else x}"
        )
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=9)
    fig.tight_layout()

    save_png_and_svg(fig, out, "--output")
    return fig
