"""Tests for analysis.scale: model-scale curves from evaluation reports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from matplotlib.lines import Line2D

from analysis.scale import load_results, plot_scale, read_reference_csv, scale_points
from softprompt.errors import SoftpromptError

MODELS = [("google/t5-small-lm-adapt", 77_000_000), ("t5-base", 250_000_000), ("t5-large", 800_000_000)]


def _report(
    model: str,
    params: int,
    acc: list[float],
    vote: float,
    seed: int = 0,
    kind: str = "classification",
    names: tuple[str, str] = ("accuracy", "macro_f1"),
) -> dict:
    """A report whose primary metric (``names[0]``) takes the values ``acc``; the second is 0.1 lower."""
    first, second = names
    f1 = [a - 0.1 for a in acc]
    mean_acc = sum(acc) / len(acc)
    return {
        "format": "softprompt.eval/1",
        "task": "boolq",
        "split": "validation",
        "kind": kind,
        "settings": {
            "model": model,
            "model_params": params,
            "n_prompts": len(acc),
            "prompt_length": 100,
            "init": "vocab",
            "train_size": None,
            "seed": seed,
        },
        "metrics": [first, second],
        "primary": first,
        "per_prompt": [{"prompt": f"p{i}", first: a, second: f} for i, (a, f) in enumerate(zip(acc, f1))],
        "mean": {first: mean_acc, second: mean_acc - 0.1},
        "std": {first: 0.05, second: 0.04},
        "best": {"prompt": "p0", first: max(acc), second: max(f1)},
        "ensembles": {"vote": {first: vote, second: vote - 0.1}, "logit_mean": {first: vote + 0.01}},
        "n_examples": 100,
        "notes": [],
    }


def _write(tmp_path: Path, name: str, report: object) -> str:
    path = tmp_path / name
    path.write_text(report if isinstance(report, str) else json.dumps(report), encoding="utf-8")
    return str(path)


@pytest.fixture
def paths(tmp_path) -> list[str]:
    accs = [[0.6, 0.7], [0.7, 0.8], [0.8, 0.9]]
    votes = [0.7, 0.8, 0.9]
    return [
        _write(tmp_path, f"r{i}.json", _report(model, params, acc, vote))
        for i, ((model, params), acc, vote) in enumerate(zip(MODELS, accs, votes))
    ]


def test_load_and_points(paths):
    results = load_results(paths)
    assert len(results) == 3
    points = scale_points(results, "accuracy")
    methods = points["methods"]
    assert list(methods) == ["mean", "best", "ensemble:logit_mean", "ensemble:vote"]
    assert methods["mean"]["x"] == [77_000_000, 250_000_000, 800_000_000]
    assert methods["mean"]["y"] == pytest.approx([0.65, 0.75, 0.85])
    assert methods["mean"]["std"] == pytest.approx([0.05, 0.05, 0.05])
    assert methods["best"]["y"] == pytest.approx([0.7, 0.8, 0.9])
    assert methods["ensemble:vote"]["y"] == pytest.approx([0.7, 0.8, 0.9])
    assert methods["ensemble:logit_mean"]["y"] == pytest.approx([0.71, 0.81, 0.91])
    assert points["labels"][77_000_000] == "t5-small-lm-adapt"
    # logit_mean carries no macro_f1: that curve disappears for this metric
    assert list(scale_points(results, "macro_f1")["methods"]) == ["mean", "best", "ensemble:vote"]


def test_same_x_is_averaged(paths, tmp_path):
    extra = _report("t5-base", 250_000_000, [0.5, 0.6], 0.6, seed=1)
    extra["std"]["accuracy"] = 0.15  # the reports' own stds do not enter the band: their prompts do
    results = load_results(paths + [_write(tmp_path, "seed1.json", extra)])
    methods = scale_points(results, "accuracy")["methods"]
    assert methods["mean"]["x"] == [77_000_000, 250_000_000, 800_000_000]
    assert methods["mean"]["y"][1] == pytest.approx((0.7 + 0.8 + 0.5 + 0.6) / 4)
    assert methods["mean"]["std"][1] == pytest.approx(math.sqrt((0.05**2 + 0.15**2 + 0.15**2 + 0.05**2) / 4))
    assert methods["mean"]["std"][0] == pytest.approx(0.05)  # one report: its prompts' population std
    assert methods["best"]["y"][1] == pytest.approx((0.8 + 0.6) / 2)
    assert methods["ensemble:vote"]["y"][1] == pytest.approx((0.8 + 0.6) / 2)


def test_the_band_at_one_x_shows_the_spread_between_reports(tmp_path):
    """Two subsamples 0.10 apart, each with two prompts 0.02 apart: the band is the std of the four prompts pooled
    (0.051), not the reports' own stds (0.01), and the mean is theirs (0.56)."""
    reports = [
        _report("t5-base", 250_000_000, acc, 0.6, seed=seed) for seed, acc in enumerate([[0.50, 0.52], [0.60, 0.62]])
    ]
    for report in reports:
        report["std"]["accuracy"] = 0.01
    methods = scale_points(
        load_results([_write(tmp_path, f"s{i}.json", r) for i, r in enumerate(reports)]), "accuracy"
    )["methods"]
    assert methods["mean"]["y"] == pytest.approx([0.56])
    assert methods["mean"]["std"] == pytest.approx([math.sqrt((0.06**2 + 0.04**2 + 0.04**2 + 0.06**2) / 4)])
    assert methods["mean"]["std"][0] == pytest.approx(0.051, abs=1e-3)


def test_a_report_given_twice_is_refused(paths, tmp_path, monkeypatch):
    """The same file twice (as given, under another spelling of its path, or through a symlink) would count as two seeds."""
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "link.json"
    link.symlink_to(paths[0])
    for again, also in [(paths[0], ""), ("./r0.json", f" (also as {paths[0]})"), (str(link), f" (also as {paths[0]})")]:
        with pytest.raises(SoftpromptError) as err:
            load_results([paths[0], paths[1], again])
        assert str(err.value) == f"report {again} is given twice{also}; give each report once"
    assert len(load_results(paths)) == 3


def test_reports_at_one_x_that_differ_in_more_than_seeds_are_not_averaged(paths, tmp_path):
    """Averaging a P=20 point with a P=100 one (or another model's) would draw a point no run had."""
    other = _report("t5-base", 250_000_000, [0.5, 0.6], 0.6, seed=1)
    other["settings"]["prompt_length"] = 20
    results = load_results(paths + [_write(tmp_path, "p20.json", other)])
    with pytest.raises(
        SoftpromptError,
        match=r"reports at model_params = 250000000 differ in more than their seeds "
        r"\(prompt_length 100 vs 20\), so .* one setting, or put it on the x axis \(--x prompt_length\)",
    ):
        scale_points(results, "accuracy")


def test_plot(paths, tmp_path):
    refs = tmp_path / "refs.csv"
    refs.write_text(
        "label,x,y\nModel tuning (paper),60000000,0.81\nModel tuning (paper),800000000,0.9\n"
        "Prompt design,800000000,0.6\n",
        encoding="utf-8",
    )
    assert read_reference_csv(str(refs))[0] == {"label": "Model tuning (paper)", "x": 6e7, "y": 0.81}
    out = tmp_path / "scale.png"
    fig = plot_scale(load_results(paths), "accuracy", str(out), reference_csv=str(refs))
    assert out.stat().st_size > 0 and (tmp_path / "scale.svg").stat().st_size > 0
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert ax.get_xlabel() == "Model parameters (log scale)"
    assert ax.get_ylabel() == "accuracy (%)"
    assert all(isinstance(line, Line2D) for line in ax.lines)
    assert len(ax.lines) == 4 + 2  # mean, best, two ensemble rules + two reference labels
    assert len(ax.collections) == 1  # the ± std band
    assert max(ax.lines[0].get_ydata()) == pytest.approx(85.0)  # fractions drawn as percent
    ticks = " ".join(t.get_text() for t in ax.get_xticklabels())
    for name in ("t5-small-lm-adapt", "t5-base", "t5-large"):
        assert name in ticks


def test_single_result_svg_out(paths, tmp_path):
    out = tmp_path / "one.svg"
    fig = plot_scale(load_results(paths[:1]), "accuracy", str(out), title="one model")
    assert out.stat().st_size > 0 and (tmp_path / "one.png").stat().st_size > 0
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and all(line.get_marker() not in (None, "None", "") for line in ax.lines)
    assert ax.get_title() == "one model"
    assert len(ax.collections) == 1  # the single point's ± std bar


def test_a_long_title_is_wrapped_inside_the_figure(paths, tmp_path):
    title = "SST-2 dev, 5 input prompts (P=20, 1000 steps) on t5-nano-s / t5-nano / t5-nano-m (one recipe)"
    fig = plot_scale(load_results(paths), "accuracy", str(tmp_path / "long.png"), title=title)
    ax = fig.axes[0]
    assert ax.get_title().replace("\n", " ") == title and "\n" in ax.get_title()
    fig.canvas.draw()
    box = ax.title.get_window_extent()
    assert 0 <= box.x0 and box.x1 <= fig.bbox.x1  # once clipped at both sides


def test_other_x_and_generation(tmp_path):
    reports = [
        _report("t5-base", 250_000_000, [40.0, 50.0], 55.0, kind="generation", names=("bleu", "chrf")) for _ in range(2)
    ]
    reports[1]["settings"]["prompt_length"] = 20
    results = load_results([_write(tmp_path, f"g{i}.json", r) for i, r in enumerate(reports)])
    fig = plot_scale(results, "bleu", str(tmp_path / "len.png"), x="prompt_length")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "prompt_length"
    assert ax.get_ylabel() == "bleu (0–100)"  # generation scores are drawn as they are
    assert list(ax.lines[0].get_xdata()) == [20, 100] and list(ax.lines[0].get_ydata()) == [45.0, 45.0]


@pytest.mark.parametrize(
    "content, match",
    [
        (None, "no such evaluation report"),
        ("{not json", "not valid JSON"),
        ({"format": "softprompt.eval/0"}, "expected 'softprompt.eval/1'"),
        ({"format": "softprompt.eval/1", "task": "boolq"}, "report is missing keys split, kind"),
        ({**_report("t5-base", 250_000_000, [0.6, 0.7], 0.7), "n_examples": "500"}, "key 'n_examples' is not a int"),
    ],
)
def test_bad_reports(tmp_path, content, match):
    path = str(tmp_path / "missing.json") if content is None else _write(tmp_path, "bad.json", content)
    with pytest.raises(SoftpromptError, match=match) as err:
        load_results([path])
    assert Path(path).name in str(err.value) and "\n" not in str(err.value)


def test_incomplete_metric_rejected(tmp_path):
    report = _report("t5-base", 250_000_000, [0.6, 0.7], 0.7)
    del report["per_prompt"][1]["macro_f1"]
    with pytest.raises(SoftpromptError, match="macro_f1"):
        load_results([_write(tmp_path, "r.json", report)])


def test_unknown_metric_or_x(paths):
    results = load_results(paths)
    with pytest.raises(SoftpromptError, match="accuracy, macro_f1"):
        scale_points(results, "bleu")
    with pytest.raises(SoftpromptError, match="model_params"):
        scale_points(results, "accuracy", x="train_size")  # null in the reports
    results[1]["task"] = "rte"
    with pytest.raises(SoftpromptError, match="mix tasks"):
        scale_points(results, "accuracy")


def test_bad_reference_csv(paths, tmp_path):
    for name, text, match in [
        ("cols.csv", "name,x,y\na,1,2\n", "label,x,y"),
        ("num.csv", "label,x,y\na,big,0.5\n", "line 2"),
        ("pct.csv", "label,x,y\na,60000000,81\n", "fractions"),
    ]:
        path = _write(tmp_path, name, text)
        with pytest.raises(SoftpromptError, match=match):
            plot_scale(load_results(paths), "accuracy", str(tmp_path / "x.png"), reference_csv=path)
    with pytest.raises(SoftpromptError, match="no such reference CSV"):
        read_reference_csv(str(tmp_path / "absent.csv"))
