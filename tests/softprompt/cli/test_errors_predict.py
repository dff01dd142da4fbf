"""The bad-input catalogue (docs/errors.md), ``softprompt predict``: one line on stderr that says what
is wrong and how to fix it, a non-zero exit code, no traceback, no partial artefact."""

from __future__ import annotations

import io
import json
import shutil
import sys

import pytest

from tests.softprompt.cli.helpers import (
    MULTIRC,
    assert_one_line_error,
    run_cli,
)


@pytest.mark.parametrize(
    "case",
    [
        "missing-input",
        "missing-column",
        "paragraph-row",
        "output-folder",
        "output-under-a-file",
        "vote",
        "stdin-not-json",
        "stdin-not-objects",
        "output-foreign-file",
        "two-votes",
        "template-with-metric",
    ],
)
def test_predict_refusals(case, run, data, tmp_path, monkeypatch):
    """Bad inputs to `predict`: one line, exit 2, and no predictions file."""
    rows = [json.loads(line) for line in data["val"].read_text().splitlines()][:3]
    inputs = tmp_path / "new.jsonl"
    inputs.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in rows))
    out = tmp_path / "p.jsonl"
    args, expected = [], ()
    if case == "missing-input":
        inputs, expected = tmp_path / "nope.csv", ("data file", "nope.csv not found; check the path given to --input")
    elif case == "missing-column":
        inputs.write_text(json.dumps({"premise": "p", "hyp": "h"}) + "\n")
        expected = ("new.jsonl row 1: column 'hypothesis' not found; available columns: premise, hyp",)
    elif case == "paragraph-row":
        shutil.copy(MULTIRC / "val.jsonl", inputs)
        args, expected = (
            ["--task", "multirc"],
            ("new.jsonl row 1 expands to", "model inputs; give one flat row per input"),
        )
    elif case == "output-folder":
        out.mkdir()
        expected = ("--output", "p.jsonl is a folder; give a file path, e.g.", "p.jsonl/predictions.jsonl")
    elif case == "output-under-a-file":
        (tmp_path / "file").write_text("x")
        out, expected = (
            tmp_path / "file" / "p.jsonl",
            ("cannot write the predictions to", "file is a file, not a folder", "--output"),
        )
    elif case == "output-foreign-file":
        out.write_text("my notes\n")
        expected = (
            "--output",
            "p.jsonl holds a file that softprompt did not write; choose another path or remove that file",
        )
    elif case == "two-votes":
        args, expected = (
            ["--vote", "majority,confidence"],
            ("predict answers by one vote rule, got 'majority,confidence'; pick one, e.g. --vote majority",),
        )
    elif (
        case == "template-with-metric"
    ):  # --input-template alone keeps the runs' task; a metric would need --task custom
        args, expected = (
            ["--input-template", "{premise}", "--task-metric", "mcc"],
            ("need --task custom; or give --input-template alone",),
        )
    elif case == "vote":
        args, expected = (
            ["--vote", "mbr"],
            ("unknown classification vote rule(s): mbr", "valid rules are: majority, confidence, logprob_sum"),
        )
    else:
        monkeypatch.setattr(
            sys,
            "stdin",
            io.StringIO(
                '{"premise": "p", "hypothesis": "h"}\n' + ('{"premise": "p"' if case == "stdin-not-json" else "[1, 2]")
            ),
        )
        inputs, expected = (
            "-",
            (
                ("stdin line 2 is not valid JSON", "send one JSON object per line")
                if case == "stdin-not-json"
                else ("stdin line 2 is a JSON list, not an object; send one JSON object per line",)
            ),
        )
    result = run_cli("predict", "--prompts", run, "--input", inputs, "--output", out, "--quiet", *args)
    assert_one_line_error(result, *expected)
    assert result.exit_code == 2 and (
        out.read_text() == "my notes\n" if case == "output-foreign-file" else not out.is_file()
    )
