"""Evaluation reports: numbers, table, JSON/CSV/JSONL files and read errors."""

import csv
import json

import numpy as np
import pytest

from ensembles.evaluate import (
    FORMAT,
    REPORT_KEYS,
    evaluate_classification,
    evaluate_generation,
    format_table,
    make_report,
    prediction_rows,
    read_report,
    write_predictions,
    write_report,
)
from ensembles.voting import majority_vote, mbr_select
from softprompt.errors import SoftpromptError
from softprompt.runner.metrics import classification_metrics, generation_metrics

NAMES = ["p_a", "p_b", "p_c"]
GOLD = np.array([0, 1, 2, 1])
# (3 prompts, 4 examples, 3 candidates); example 3 has only 2 candidates (third padded).
with np.errstate(divide="ignore"):  # log(0) = -inf marks the padded candidate
    LOG_PROBS = np.log(
        [
            [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.5, 0.3, 0.2], [0.6, 0.4, 0.0]],  # preds 0 1 0 0 -> 2/4
            [[0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.1, 0.2, 0.7], [0.3, 0.7, 0.0]],  # preds 1 1 2 1 -> 3/4
            [[0.6, 0.3, 0.1], [0.5, 0.4, 0.1], [0.2, 0.2, 0.6], [0.1, 0.9, 0.0]],  # preds 0 0 2 1 -> 3/4
        ]
    )


def classification_report(notes=("hand-made table",)):
    core = evaluate_classification(GOLD, LOG_PROBS, NAMES, ["majority", "confidence", "logprob_sum"], 3, "accuracy")
    return core, make_report(core, "copa", "validation", {"model": "t5-small", "n_prompts": 3}, list(notes))


def test_classification_numbers_are_consistent():
    core, report = classification_report()
    assert list(report) == list(REPORT_KEYS)
    assert report["format"] == FORMAT and report["kind"] == "classification" and report["n_examples"] == 4
    assert report["metrics"] == ["accuracy", "macro_f1", "balanced_accuracy", "mcc"]
    accuracies = [row["accuracy"] for row in report["per_prompt"]]
    assert accuracies == pytest.approx([0.5, 0.75, 0.75])
    for name in report["metrics"]:
        values = [row[name] for row in report["per_prompt"]]
        assert report["mean"][name] == pytest.approx(np.mean(values))
        assert report["std"][name] == pytest.approx(np.std(values, ddof=0))
    assert report["best"] == report["per_prompt"][1]  # tie on accuracy with p_c: the first prompt wins
    assert report["best"]["prompt"] == "p_b"
    majority = majority_vote(LOG_PROBS)
    assert report["ensembles"]["majority"] == classification_metrics(GOLD, majority, 3)
    assert list(report["ensembles"]) == ["majority", "confidence", "logprob_sum"]
    assert core["predictions"]["ensembles"]["majority"] == majority.tolist()
    assert "predictions" not in report


def test_primary_metric_comes_first_and_picks_best():
    core = evaluate_classification(GOLD, LOG_PROBS, NAMES, [], 3, "mcc")
    assert core["metrics"][0] == "mcc" and core["ensembles"] == {}
    assert core["best"]["mcc"] == max(row["mcc"] for row in core["per_prompt"])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"primary": "f1"}, "unknown primary metric"),  # f1 exists only for 2 classes
        ({"rules": ["mbr"]}, "valid rules are"),
        ({"prompt_names": ["a", "a", "b"]}, "distinct prompt names"),
        ({"n_classes": 2}, "n_classes"),
        ({"gold": np.array([0, 1, 2, 2])}, "padded"),
    ],
)
def test_classification_input_errors(kwargs, match):
    args = dict(gold=GOLD, log_probs=LOG_PROBS, prompt_names=NAMES, rules=["majority"], n_classes=3, primary="accuracy")
    with pytest.raises(SoftpromptError, match=match):
        evaluate_classification(**{**args, **kwargs})


REFERENCES = [["the cat sat on the mat"], ["a dog barked", "the dog barked loudly"]]
OUTPUTS = [["the cat sat", "a dog barked"], ["cat on mat", "the dog barked"], ["the cat sat on mat", "dogs bark"]]
SCORES = np.array([[-0.5, -0.1], [-0.2, -0.9], [-0.3, -0.4]])  # (3, 2)


def generation_report():
    core = evaluate_generation(REFERENCES, OUTPUTS, SCORES, NAMES, "majority,mbr,best_score", "rougeL")
    return core, make_report(core, "xsum", "test", {}, [])


def test_generation_numbers_are_consistent():
    core, report = generation_report()
    assert report["metrics"] == ["rougeL", "bleu", "chrf", "rouge1", "rouge2"]
    for row, hyps in zip(report["per_prompt"], OUTPUTS):
        assert {k: v for k, v in row.items() if k != "prompt"} == pytest.approx(generation_metrics(hyps, REFERENCES))
    rouge = [row["rougeL"] for row in report["per_prompt"]]
    assert report["best"]["prompt"] == NAMES[int(np.argmax(rouge))]
    assert report["std"]["rougeL"] == pytest.approx(np.std(rouge))
    assert core["predictions"]["ensembles"]["mbr"] == mbr_select(OUTPUTS)
    assert core["predictions"]["ensembles"]["best_score"] == ["cat on mat", "a dog barked"]
    assert report["ensembles"]["best_score"] == pytest.approx(
        generation_metrics(["cat on mat", "a dog barked"], REFERENCES)
    )


def test_generation_input_errors():
    with pytest.raises(SoftpromptError, match="reference list per example"):
        evaluate_generation(REFERENCES[:1], OUTPUTS, SCORES, NAMES, [], "bleu")
    with pytest.raises(SoftpromptError, match="valid rules are"):
        evaluate_generation(REFERENCES, OUTPUTS, SCORES, NAMES, ["confidence"], "bleu")


def test_table_has_every_row_and_scale():
    _, report = classification_report(notes=["std over prompts is population std"])
    text = format_table(report)
    lines = text.splitlines()
    for name in NAMES + [
        "mean ± std",
        "best (p_b)",
        "ensemble: majority",
        "ensemble: confidence",
        "ensemble: logprob_sum",
    ]:
        assert sum(line.startswith(name) for line in lines) == 1, name
    assert "75.0" in next(line for line in lines if line.startswith("p_b"))  # accuracy as a percentage
    assert lines[-1] == "note: std over prompts is population std"
    header = next(line for line in lines if line.startswith("prompt"))
    assert header.split() == ["prompt", *report["metrics"]]
    _, generation = generation_report()
    row = next(line for line in format_table(generation).splitlines() if line.startswith("p_a"))
    assert f"{generation['per_prompt'][0]['rougeL']:.1f}" in row  # already 0-100: no rescaling


def test_write_and_read_report(tmp_path):
    _, report = classification_report()
    path = tmp_path / "out" / "report.json"
    write_report(report, path)
    assert read_report(path) == json.loads(json.dumps(report))
    with open(tmp_path / "out" / "report.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["row", "name", *report["metrics"]]
    assert [row[:2] for row in rows[1:]] == [
        ["prompt", "p_a"],
        ["prompt", "p_b"],
        ["prompt", "p_c"],
        ["mean", ""],
        ["std", ""],
        ["best", "p_b"],
        ["ensemble", "majority"],
        ["ensemble", "confidence"],
        ["ensemble", "logprob_sum"],
    ]
    assert float(rows[2][2]) == pytest.approx(report["per_prompt"][1]["accuracy"])
    assert float(rows[5][2]) == pytest.approx(report["std"]["accuracy"])
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.csv", "report.json"]  # no temp files


def test_write_predictions_jsonl(tmp_path):
    core, _ = classification_report()
    path = tmp_path / "preds.jsonl"
    write_predictions(path, prediction_rows(core) + [{"extra": np.int64(3), "array": np.arange(2)}])
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == 5
    assert rows[3] == {
        "index": 3,
        "gold": 1,
        "prompts": {"p_a": 0, "p_b": 1, "p_c": 1},
        "ensembles": {
            rule: core["predictions"]["ensembles"][rule][3] for rule in ("majority", "confidence", "logprob_sum")
        },
    }
    assert rows[4] == {"extra": 3, "array": [0, 1]}


def test_read_report_errors(tmp_path):
    with pytest.raises(SoftpromptError, match="missing.json: no such evaluation report"):
        read_report(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SoftpromptError, match="bad.json: not valid JSON"):
        read_report(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"format": "something/2"}))
    with pytest.raises(SoftpromptError, match="other.json: format is 'something/2'"):
        read_report(other)
    other.write_text("[1, 2]")
    with pytest.raises(SoftpromptError, match="format is 'list'"):
        read_report(other)
    partial = tmp_path / "partial.json"
    partial.write_text(json.dumps({"format": FORMAT, "task": "copa"}))
    with pytest.raises(SoftpromptError, match="partial.json: report is missing keys split, kind"):
        read_report(partial)
    for error_path in (tmp_path / "missing.json", bad, partial):
        with pytest.raises(SoftpromptError) as info:
            read_report(error_path)
        assert "\n" not in str(info.value)
