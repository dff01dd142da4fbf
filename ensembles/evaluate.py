"""Evaluation reports: per-prompt metrics, their mean/std, the best prompt and each ensemble rule.

``evaluate_classification`` / ``evaluate_generation`` return a report *core*; ``make_report``
adds the task, split, settings and notes to give the ``softprompt.eval/1`` report that
``write_report`` saves as JSON (+ a CSV beside it) and ``format_table`` renders. The core also
carries the raw predictions under "predictions" (not part of the report; ``ensembles.pipeline`` adds each
example's origin there) for ``prediction_rows`` / ``write_predictions``.

The std over prompts is the population std (ddof=0). The best prompt is the one with the
highest primary metric (ties: the first prompt). Classification metrics are stored as fractions
and shown as percentages; generation metrics are stored and shown on the 0-100 scale.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ensembles.voting import CLASSIFICATION_RULES, GENERATION_RULES, check_log_probs, check_outputs, parse_rules
from softprompt.data.tasks import GENERATION_METRICS, classification_metric_names
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text
from softprompt.runner.metrics import classification_metrics, generation_metrics

FORMAT = "softprompt.eval/1"
REPORT_KEYS = (
    "format",
    "task",
    "split",
    "kind",
    "settings",
    "metrics",
    "primary",
    "per_prompt",
    "mean",
    "std",
    "best",
    "ensembles",
    "n_examples",
    "notes",
)


def _metric_order(names: Sequence[str], primary: str) -> list[str]:
    if primary not in names:
        raise SoftpromptError(f"unknown primary metric {primary!r}; choose one of: {', '.join(names)}")
    return [primary, *(name for name in names if name != primary)]


def _check_prompt_names(prompt_names: Sequence[str], n_prompts: int) -> list[str]:
    names = list(prompt_names)
    if len(names) != n_prompts or len(set(names)) != n_prompts:
        raise SoftpromptError(f"need {n_prompts} distinct prompt names, got {names}; name each prompt once")
    return names


def _core(
    kind: str,
    metrics: list[str],
    prompt_names: list[str],
    per_prompt: list[dict[str, float]],
    ensembles: dict[str, dict[str, float]],
    n_examples: int,
    predictions: dict[str, Any],
) -> dict:
    table = np.array([[row[name] for name in metrics] for row in per_prompt])  # (N, n_metrics)
    best = int(table[:, 0].argmax())  # column 0 is the primary metric
    rows = [{"prompt": name, **dict(zip(metrics, values.tolist()))} for name, values in zip(prompt_names, table)]
    return {
        "kind": kind,
        "metrics": metrics,
        "primary": metrics[0],
        "per_prompt": rows,
        "mean": dict(zip(metrics, table.mean(axis=0).tolist())),
        "std": dict(zip(metrics, table.std(axis=0).tolist())),  # population std, ddof=0
        "best": dict(rows[best]),
        "ensembles": {rule: {name: values[name] for name in metrics} for rule, values in ensembles.items()},
        "n_examples": n_examples,
        "predictions": predictions,
    }


def evaluate_classification(
    gold: np.ndarray,
    log_probs: np.ndarray,
    prompt_names: list[str],
    rules: Sequence[str],
    n_classes: int,
    primary: str,
) -> dict:
    """Report core for rank classification: gold (M,), log_probs (N, M, K) with -inf pads, K <= n_classes.

    Each prompt predicts its argmax candidate; for variable-K tasks (COPA) pass n_classes = max K.
    """
    log_probs = check_log_probs(log_probs)
    n_prompts, n_examples, n_candidates = log_probs.shape
    gold = np.asarray(gold)
    if gold.shape != (n_examples,) or not np.issubdtype(gold.dtype, np.integer):
        raise SoftpromptError(
            f"gold must be {n_examples} integer labels, one per example, got {gold.dtype} {gold.shape}"
        )
    if n_candidates > n_classes:
        raise SoftpromptError(
            f"log_probs have {n_candidates} candidates but n_classes is {n_classes}; pass n_classes = max K"
        )
    if gold.min() < 0 or gold.max() >= n_candidates:
        raise SoftpromptError(f"gold labels must lie in [0, {n_candidates}); check the label mapping")
    if not np.isfinite(log_probs[:, np.arange(n_examples), gold]).any(axis=0).all():
        raise SoftpromptError("some gold labels point at -inf padded candidates; check the candidate lists")
    names = _check_prompt_names(prompt_names, n_prompts)
    metrics = _metric_order(classification_metric_names(n_classes), primary)
    preds = {name: log_probs[n].argmax(axis=1) for n, name in enumerate(names)}  # name -> (M,)
    votes = {rule: CLASSIFICATION_RULES[rule](log_probs) for rule in parse_rules(rules, "classification")}
    return _core(
        "classification",
        metrics,
        names,
        [classification_metrics(gold, pred, n_classes) for pred in preds.values()],
        {rule: classification_metrics(gold, pred, n_classes) for rule, pred in votes.items()},
        n_examples,
        {
            "gold": gold.tolist(),
            "prompts": {name: pred.tolist() for name, pred in preds.items()},
            "ensembles": {rule: pred.tolist() for rule, pred in votes.items()},
        },
    )


def evaluate_generation(
    references: list[list[str]],
    outputs: list[list[str]],
    scores: np.ndarray,
    prompt_names: list[str],
    rules: Sequence[str],
    primary: str,
) -> dict:
    """Report core for generation: references[m] (one or more strings), outputs[n][m], scores (N, M)."""
    n_prompts, n_examples = check_outputs(outputs)
    if len(references) != n_examples:
        raise SoftpromptError(
            f"need one reference list per example: {n_examples} examples, {len(references)} reference lists"
        )
    names = _check_prompt_names(prompt_names, n_prompts)
    metrics = _metric_order(GENERATION_METRICS, primary)
    votes = {rule: GENERATION_RULES[rule](outputs, scores) for rule in parse_rules(rules, "generation")}
    return _core(
        "generation",
        metrics,
        names,
        [generation_metrics(list(hyps), references) for hyps in outputs],
        {rule: generation_metrics(hyps, references) for rule, hyps in votes.items()},
        n_examples,
        {
            "references": [list(refs) for refs in references],
            "prompts": {name: list(hyps) for name, hyps in zip(names, outputs)},
            "ensembles": votes,
        },
    )


def make_report(core: dict, task: str, split: str, settings: dict, notes: list[str]) -> dict:
    """The ``softprompt.eval/1`` report: the core's metrics plus task, split, free-form settings and notes."""
    report = {"format": FORMAT, "task": task, "split": split, "settings": dict(settings), "notes": list(notes)}
    return {key: report[key] if key in report else core[key] for key in REPORT_KEYS}


def prediction_rows(core: dict) -> list[dict]:
    """One JSONL row per example: where it came from, gold (or references), each prompt's and each rule's prediction.

    Where it came from is ``predictions["origins"][m]`` (index, input, ...: ``ensembles.pipeline.example_origin``)
    when the core has it, else ``{"index": m}``, the example's position.
    """
    predictions = core["predictions"]
    target = "gold" if core["kind"] == "classification" else "references"
    origins = predictions.get("origins") or [{"index": m} for m in range(core["n_examples"])]
    return [
        {
            **origins[m],
            target: predictions[target][m],
            "prompts": {name: preds[m] for name, preds in predictions["prompts"].items()},
            "ensembles": {rule: preds[m] for rule, preds in predictions["ensembles"].items()},
        }
        for m in range(core["n_examples"])
    ]


def _table_rows(report: dict) -> list[tuple[str, str, list[float]]]:
    """(row kind, name, values in report scale) for every table row except std, which rides with mean."""
    metrics = report["metrics"]
    rows = [("prompt", row["prompt"], [row[name] for name in metrics]) for row in report["per_prompt"]]
    rows.append(("mean", "", [report["mean"][name] for name in metrics]))
    rows.append(("best", report["best"]["prompt"], [report["best"][name] for name in metrics]))
    rows += [("ensemble", rule, [values[name] for name in metrics]) for rule, values in report["ensembles"].items()]
    return rows


def format_table(report: dict) -> str:
    """Fixed-width table: one row per prompt, mean ± std, best (prompt), one row per ensemble rule; notes below."""
    metrics = report["metrics"]
    scale = 100.0 if report["kind"] == "classification" else 1.0
    std = [report["std"][name] * scale for name in metrics]
    labels = {"prompt": "{}", "mean": "mean ± std", "best": "best ({})", "ensemble": "ensemble: {}"}
    body = []
    for kind, name, values in _table_rows(report):
        cells = [f"{value * scale:.1f}" for value in values]
        if kind == "mean":
            cells = [f"{cell} ± {s:.1f}" for cell, s in zip(cells, std)]
        body.append((kind, [labels[kind].format(name), *cells]))
    header = ["prompt", *metrics]
    widths = [max(map(len, column)) for column in zip(header, *(cells for _, cells in body))]

    def line(cells: list[str]) -> str:
        return "  ".join([cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

    rule = "-" * len(line(header))
    unit = ", scores in %" if scale == 100.0 else ""
    out = [
        f"{report['task']} [{report['split']}] {report['kind']}, {report['n_examples']} examples, "
        f"primary: {report['primary']}{unit}",
        line(header),
        rule,
    ]
    for i, (kind, cells) in enumerate(body):
        if kind == "mean" or (kind == "ensemble" and body[i - 1][0] != "ensemble"):
            out.append(rule)
        out.append(line(cells))
    out += [f"note: {note}" for note in report["notes"]]
    return "\n".join(out) + "\n"


def _csv_text(report: dict) -> str:
    metrics = report["metrics"]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["row", "name", *metrics])
    for kind, name, values in _table_rows(report):
        writer.writerow([kind, name, *values])
        if kind == "mean":
            writer.writerow(["std", "", *(report["std"][name] for name in metrics)])
    return buffer.getvalue()


def write_report(report: dict, path: str | os.PathLike) -> None:
    """Write the report as JSON at ``path`` and as CSV beside it (same stem, .csv), both atomically.

    CSV columns: row (prompt/mean/std/best/ensemble), name, then the metrics in report scale.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path.with_suffix(".csv"), _csv_text(report))
    atomic_write_text(path, json.dumps(report, indent=2, ensure_ascii=False) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_predictions(path: str | os.PathLike, rows: Iterable[dict]) -> None:
    """Write ``rows`` as JSONL (one JSON object per line) atomically; numpy values become Python numbers."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(row, ensure_ascii=False, default=_json_default) + "\n" for row in rows]
    atomic_write_text(path, "".join(lines))


def written_by_softprompt(path: Path) -> bool:
    """Whether ``path`` is empty, an evaluation report, or predictions JSONL (its first row has an "index"): what a
    rerun of ``ensemble-eval`` or ``predict`` may replace."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read(1 << 20)
    except (OSError, UnicodeDecodeError):
        return False
    if not text.strip():
        return True
    try:
        report = json.loads(text)
        return isinstance(report, dict) and report.get("format") == FORMAT
    except ValueError:
        pass
    try:
        first = json.loads(next(line for line in text.splitlines() if line.strip()))
    except ValueError:
        return False
    return isinstance(first, dict) and "index" in first


def read_report(path: str | os.PathLike, required: Sequence[str] = REPORT_KEYS) -> dict:
    """Load a report written by ``write_report`` that holds the ``required`` keys; raises SoftpromptError
    naming the file and the problem."""
    try:
        report = json.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise SoftpromptError(f"{path}: no such evaluation report; check the path") from None
    except OSError as error:
        raise SoftpromptError(f"{path}: cannot read the evaluation report ({error.strerror})") from None
    except ValueError as error:
        raise SoftpromptError(f"{path}: not valid JSON ({error}); re-run the evaluation to rewrite it") from None
    found = report.get("format") if isinstance(report, dict) else type(report).__name__
    if found != FORMAT:
        raise SoftpromptError(f"{path}: format is {found!r}, expected {FORMAT!r}; pass an evaluation report")
    missing = [key for key in required if key not in report]
    if missing:
        raise SoftpromptError(f"{path}: report is missing keys {', '.join(missing)}; re-run the evaluation")
    return report
