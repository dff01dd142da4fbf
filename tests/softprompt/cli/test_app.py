"""The command line end to end: train → ensemble-eval → neighbors → sweep → plot-scale → demo.

Runs on the RTE and SST-2 fixtures in tests/data with a tiny random T5 saved to a local directory
(built in-process), exactly as a user would call the commands.
"""

import csv
import json
import os
import re
import subprocess
import sys

import pytest
from click.testing import CliRunner

from softprompt.cli.app import cli
from softprompt.data.custom import recorded_task, task_from_options
from softprompt.io.store import read_meta
from softprompt.training.config import DATA_ORDERS
from tests.conftest import TEST_DATA

RTE = TEST_DATA / "superglue" / "rte"
DATA = ["--task", "rte", "--train-file", str(RTE / "train.jsonl"), "--validation-file", str(RTE / "val.jsonl")]
SMALL = [
    "--train-size",
    "16",
    "--eval-size",
    "8",
    "--n-prompts",
    "3",
    "--prompt-length",
    "4",
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--eval-every",
    "2",
    "--max-source-length",
    "64",
    "--quiet",
]


def _invoke(*args):
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model_dir):
    out = tmp_path_factory.mktemp("cli") / "run"
    _invoke("train", "--model", tiny_model_dir, *DATA, *SMALL, "--output-dir", out)
    return out


def test_train_writes_artefacts(run_dir):
    meta = json.loads((run_dir / "softprompt.json").read_text())
    assert meta["n_prompts"] == 3 and meta["prompts"]["length"] == 4 and len(meta["best"]) == 3
    assert {"softprompt", "torch", "transformers"} <= set(meta["library"])


def test_train_group_by_length_is_off_by_default_and_stored_when_passed(run_dir, tmp_path, tiny_model_dir):
    assert read_meta(run_dir)["train_args"]["group_by_length"] is False
    _invoke(
        "train", "--model", tiny_model_dir, *DATA, *SMALL, "--group-by-length", "--output-dir", tmp_path / "grouped"
    )
    assert read_meta(tmp_path / "grouped")["train_args"]["group_by_length"] is True


def test_ensemble_eval_prints_table_and_writes_files(run_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = _invoke(
        "ensemble-eval",
        "--prompts",
        run_dir,
        "--task",
        "rte",
        "--data-file",
        RTE / "val.jsonl",
        "--limit",
        10,
        "--output",
        out,
        "--quiet",
    )
    assert "mean ± std" in result.output and "ensemble: majority" in result.output
    assert out.is_file() and out.with_suffix(".csv").is_file() and out.with_suffix(".predictions.jsonl").is_file()
    rows = [json.loads(line) for line in (RTE / "val.jsonl").read_text().splitlines()]
    lines = [json.loads(line) for line in out.with_suffix(".predictions.jsonl").read_text().splitlines()]
    assert (
        len(lines) == 10 and max(line["index"] for line in lines) >= 10
    )  # --limit picks 10 of 24 rows; index is the row
    for line in lines:
        row = rows[line["index"]]
        assert (
            line["input"] == f"rte sentence1: {row['premise']} sentence2: {row['hypothesis']}"
            and line["idx"] == row["idx"]
        )


def test_ensemble_eval_and_predict_score_at_the_length_training_validated_at(tmp_path, tiny_model_dir):
    """Inputs longer than the run's --max-source-length: without --max-length, predict and ensemble-eval truncate
    them as training's validation did, so their scores are those of --max-length 12, not of 512."""
    run = tmp_path / "short"
    _invoke("train", "--model", tiny_model_dir, *DATA, *SMALL, "--max-source-length", "12", "--output-dir", run)

    def predicted(*options):
        out = tmp_path / f"p{len(options)}{''.join(map(str, options))}.jsonl"
        _invoke("predict", "--prompts", run, "--input", RTE / "val.jsonl", "--output", out, "--quiet", *options)
        return [[vote["scores"] for vote in json.loads(line)["votes"]] for line in out.read_text().splitlines()]

    default = predicted()
    assert default == predicted("--max-length", 12) and default != predicted("--max-length", 512)
    _invoke(
        "ensemble-eval",
        "--prompts",
        run,
        "--data-file",
        RTE / "val.jsonl",
        "--limit",
        8,
        "--output",
        tmp_path / "e.json",
        "--quiet",
    )
    report = json.loads((tmp_path / "e.json").read_text())
    assert [row["accuracy"] for row in report["per_prompt"]] == [row["accuracy"] for row in read_meta(run)["best"]]


SST2 = TEST_DATA / "glue" / "sst2"
CUSTOM = [
    "--task",
    "custom",
    "--input-template",
    "review: {sentence}",
    "--label-column",
    "label",
    "--label-words",
    "0=negative,1=positive",
]


@pytest.mark.parametrize("kind", ["built-in", "custom", "named custom"])
def test_ensemble_eval_without_task_evaluates_the_runs_own(kind, run_dir, tmp_path, tiny_model_dir):
    """No --task: the task the runs were trained on (a custom one rebuilt from the template options and
    --task-name the run recorded) gives the same report as naming it."""
    if kind == "built-in":
        runs, task, data = run_dir, ["--task", "rte"], RTE / "val.jsonl"
    else:
        runs, task, data = (
            tmp_path / "custom",
            CUSTOM + (["--task-name", "review"] if kind == "named custom" else []),
            SST2 / "dev.tsv",
        )
        _invoke(
            "train",
            "--model",
            tiny_model_dir,
            *task,
            "--train-file",
            SST2 / "train.tsv",
            "--validation-file",
            data,
            *SMALL,
            "--output-dir",
            runs,
        )
    reports = []
    for name, options in (("named", task), ("default", [])):
        out = tmp_path / f"{name}.json"
        _invoke(
            "ensemble-eval", "--prompts", runs, *options, "--data-file", data, "--limit", 8, "--output", out, "--quiet"
        )
        report = json.loads(out.read_text())
        reports.append((report["task"], report["per_prompt"], report["ensembles"], report["n_examples"]))
    assert reports[0] == reports[1]
    assert reports[0][0] == {"built-in": "rte", "custom": "custom", "named custom": "review"}[kind]


def test_custom_label_column_of_words_needs_no_label_words(tmp_path, tiny_model_dir):
    """RTE's label column holds words (entailment, not_entailment): train without --label-words says on stderr which
    words it took, records them, and gives the run that naming them gives (same prompts, bit for bit); ensemble-eval
    rebuilds the task from the run."""
    template = ["--task", "custom", "--input-template", "{premise} / {hypothesis}", "--label-column", "label"]
    data = ["--train-file", RTE / "train.jsonl", "--validation-file", RTE / "val.jsonl"]
    inferred, named = tmp_path / "inferred", tmp_path / "named"
    result = _invoke("train", "--model", tiny_model_dir, *template, *data, *SMALL, "--output-dir", inferred)
    assert (
        "--label-words not given: the label column's values name themselves: "
        "--label-words entailment=entailment,not_entailment=not_entailment"
    ) in result.stderr
    _invoke(
        "train",
        "--model",
        tiny_model_dir,
        *template,
        "--label-words",
        "entailment=entailment,not_entailment=not_entailment",
        *data,
        *SMALL,
        "--output-dir",
        named,
    )
    meta = read_meta(inferred)
    assert meta["task"]["label_words"] == ["entailment", "not_entailment"]
    assert meta["train_args"]["label_words"] == read_meta(named)["train_args"]["label_words"]
    assert (inferred / "prompts.safetensors").read_bytes() == (named / "prompts.safetensors").read_bytes()
    out = tmp_path / "eval.json"
    _invoke(
        "ensemble-eval",
        "--prompts",
        inferred,
        "--data-file",
        RTE / "val.jsonl",
        "--limit",
        8,
        "--output",
        out,
        "--quiet",
    )
    assert json.loads(out.read_text())["task"] == "custom"


def test_task_metric_is_a_custom_tasks_primary_metric_from_training_to_its_reports(tmp_path, tiny_model_dir):
    """--task-metric rougeL on a custom generation task: training validates by it, the run records it, and ensemble-eval,
    rebuilding the task from the run, reports it as the primary metric (the per-prompt scores are training's best);
    --task custom with another --task-metric reports that one."""
    e2e = TEST_DATA / "e2e"
    generation, run, out = (
        ["--task", "custom", "--input-template", "{mr}", "--target-column", "ref"],
        tmp_path / "run",
        tmp_path / "eval.json",
    )
    _invoke(
        "train",
        "--model",
        tiny_model_dir,
        *generation,
        "--task-metric",
        "rougeL",
        "--train-file",
        e2e / "devset.csv",
        "--validation-file",
        e2e / "testset_w_refs.csv",
        *SMALL,
        "--max-new-tokens",
        "4",
        "--output-dir",
        run,
    )
    meta = read_meta(run)
    assert (meta["train_args"]["task_metric"], meta["task"]["metric"]) == ("rougeL", "rougeL")
    _invoke(
        "ensemble-eval",
        "--prompts",
        run,
        "--data-file",
        e2e / "testset_w_refs.csv",
        "--limit",
        8,
        "--output",
        out,
        "--quiet",
    )
    report = json.loads(out.read_text())
    assert (report["task"], report["primary"], report["metrics"][0]) == ("custom", "rougeL", "rougeL")
    assert [row["rougeL"] for row in report["per_prompt"]] == pytest.approx([best["rougeL"] for best in meta["best"]])
    _invoke(
        "ensemble-eval",
        "--prompts",
        run,
        *generation,
        "--task-metric",
        "chrf",
        "--data-file",
        e2e / "testset_w_refs.csv",
        "--limit",
        8,
        "--output",
        out,
        "--quiet",
    )
    assert json.loads(out.read_text())["primary"] == "chrf"


def test_ensemble_eval_default_votes_and_decoding_follow_the_runs(tmp_path, tiny_model_dir):
    """No --vote: classification gets majority,confidence; generation majority,mbr (confidence is not a generation rule).
    No decoding options: the runs' own (trained with --max-new-tokens 4, so 4, not 64), recorded in the report."""
    e2e = TEST_DATA / "e2e"
    _invoke(
        "train",
        "--model",
        tiny_model_dir,
        "--task",
        "e2e_nlg",
        "--train-file",
        e2e / "devset.csv",
        "--validation-file",
        e2e / "testset_w_refs.csv",
        *SMALL,
        "--max-new-tokens",
        "4",
        "--output-dir",
        tmp_path / "e2e",
    )
    result = _invoke(
        "ensemble-eval",
        "--prompts",
        tmp_path / "e2e",
        "--task",
        "e2e_nlg",
        "--data-file",
        e2e / "testset_w_refs.csv",
        "--limit",
        3,
        "--output",
        tmp_path / "eval.json",
        "--quiet",
    )
    assert "ensemble: majority" in result.output and "ensemble: mbr" in result.output
    settings = json.loads((tmp_path / "eval.json").read_text())["settings"]
    assert settings["decoding"] == {"max_new_tokens": 4, "num_beams": 1, "no_repeat_ngram_size": 0}
    assert settings["max_length"] == 64  # SMALL's --max-source-length


def test_predict_generation_gives_the_texts_ensemble_eval_votes_for(tmp_path, tiny_model_dir):
    """`predict` for a generation run: a file of meaning representations only (no reference column) gives,
    per input, the text that `ensemble-eval`'s mbr vote picks and every prompt's own text."""
    e2e = TEST_DATA / "e2e"
    _invoke(
        "train",
        "--model",
        tiny_model_dir,
        "--task",
        "e2e_nlg",
        "--train-file",
        e2e / "devset.csv",
        "--validation-file",
        e2e / "testset_w_refs.csv",
        *SMALL,
        "--max-new-tokens",
        "4",
        "--output-dir",
        tmp_path / "e2e",
    )
    decoding = ["--vote", "mbr", "--quiet"]  # generating with the run's own --max-new-tokens 4
    _invoke(
        "ensemble-eval",
        "--prompts",
        tmp_path / "e2e",
        "--data-file",
        e2e / "testset_w_refs.csv",
        "--limit",
        3,
        "--output",
        tmp_path / "eval.json",
        *decoding,
    )
    expected = [json.loads(line) for line in (tmp_path / "eval.predictions.jsonl").read_text().splitlines()]
    with open(e2e / "testset_w_refs.csv", newline="", encoding="utf-8") as handle:
        references = {}
        for row in csv.DictReader(handle):
            references.setdefault(row["mr"], []).append(row["ref"])
    mrs = [
        next(mr for mr, refs in references.items() if refs == e["references"]) for e in expected
    ]  # the evaluated inputs
    outputs = {}
    for name, order in (("forward", mrs), ("reversed", mrs[::-1])):
        with open(tmp_path / f"{name}.csv", "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([["mr"], *([mr] for mr in order)])
        result = _invoke(
            "predict",
            "--prompts",
            tmp_path / "e2e",
            "--input",
            tmp_path / f"{name}.csv",
            "--output",
            tmp_path / f"{name}.jsonl",
            *decoding,
        )
        assert "3 inputs, 3 prompts of e2e_nlg, vote mbr" in result.output
        outputs[name] = [json.loads(line) for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()]
    got = outputs["forward"]
    for g, e in zip(got, expected, strict=True):
        assert g["text"] == e["ensembles"]["mbr"]
        assert [(v["prompt"], v["text"]) for v in g["votes"]] == list(e["prompts"].items())
    # the tiny random model writes one text for every input, so the scores check the order: they differ per input
    scores = [[v["score"] for v in g["votes"]] for g in got]
    assert len({round(row[0], 4) for row in scores}) == 3
    assert sum(([v["score"] for v in g["votes"]] for g in outputs["reversed"]), []) == pytest.approx(
        sum(scores[::-1], []), abs=1e-4
    )


def test_neighbors_table_json_and_plot(run_dir, tmp_path):
    table = _invoke("neighbors", run_dir, "--prompt", "1", "--top-k", "3")
    assert "p1 pos 0" in table.output and "distinct tokens" in table.output
    report = json.loads(_invoke("neighbors", run_dir, "--format", "json", "--plot", tmp_path / "nn.png").stdout)
    assert len(report["prompts"]) == 3
    assert (tmp_path / "nn.png").stat().st_size > 0


def test_sweep_then_plot_scale(tmp_path, tiny_model_dir):
    out = tmp_path / "sweep"
    args = [
        "sweep",
        "--models",
        tiny_model_dir,
        *DATA,
        "--eval-size",
        "6",
        "--prompt-lengths",
        "2,3",
        "--n-prompts",
        "2",
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--eval-every",
        "1",
        "--max-source-length",
        "48",
        "--output-dir",
        out,
        "--quiet",
    ]
    first = _invoke(*args)
    assert first.output.count("done, skipped") == 0
    results = sorted((out / "results").glob("*.json"))
    assert len(results) == 2
    again = _invoke(*args)  # resumable: finished cells are skipped
    assert again.output.count("done, skipped") == 2
    changed = CliRunner().invoke(cli, [str(a) for a in args] + ["--steps", "2"])  # not answered with the 1-step results
    assert changed.exit_code != 0 and "was trained with other settings (steps); use another --output-dir" in str(
        changed.exception
    )
    _invoke("plot-scale", *results, "--x", "prompt_length", "--output", tmp_path / "scale.png")
    assert (tmp_path / "scale.png").stat().st_size > 0 and (tmp_path / "scale.svg").stat().st_size > 0


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_data_order_choices_are_the_configs(command):
    """The CLI lists --data-order's choices itself (softprompt.training.config imports transformers, which the CLI loads lazily)."""
    (option,) = [param for param in cli.commands[command].params if param.name == "data_order"]
    assert tuple(option.type.choices) == DATA_ORDERS


def test_sweep_runs_record_their_custom_task_and_step_options(tmp_path, tiny_model_dir):
    """A sweep's runs record a custom task's template options (and --task-metric, its results' primary metric), so
    ensemble-eval and serve can rebuild it, and train with the sweep's step options (as softprompt train's)."""
    out = tmp_path / "sweep"
    _invoke(
        "sweep",
        "--models",
        tiny_model_dir,
        *CUSTOM,
        "--task-name",
        "review",
        "--task-metric",
        "macro_f1",
        "--train-file",
        SST2 / "train.tsv",
        "--validation-file",
        SST2 / "dev.tsv",
        "--eval-size",
        "6",
        "--prompt-lengths",
        "2",
        "--n-prompts",
        "2",
        "--steps",
        "1",
        "--batch-size",
        "4",
        "--eval-every",
        "1",
        "--max-source-length",
        "48",
        "--output-dir",
        out,
        "--quiet",
        "--group-by-length",
        "--data-order",
        "per-prompt",
        "--max-tokens",
        "200",
    )
    (run,) = [path.parent for path in (out / "runs").rglob("softprompt.json")]
    train_args = read_meta(run)["train_args"]
    assert (train_args["group_by_length"], train_args["data_order"], train_args["max_tokens"]) == (
        True,
        "per-prompt",
        200,
    )
    expected = task_from_options(*CUSTOM[1::2], task_name="review", task_metric="macro_f1")
    assert recorded_task(read_meta(run)) == expected and (expected.name, expected.template) == (
        "review",
        "review: {sentence}",
    )
    (result,) = (out / "results").glob("*.json")
    assert [json.loads(result.read_text())[key] for key in ("task", "primary")] == ["review", "macro_f1"]


def test_demo_runs_end_to_end_on_t5_nano(tmp_path, monkeypatch):
    """A tiny demo on the shipped t5-nano (SST-2 files stand in for the fetched reviews: same format)."""
    import softprompt.cli.demo as demo

    sst2 = TEST_DATA / "glue" / "sst2"
    monkeypatch.setattr(demo, "fetch_reviews", lambda **_: (sst2 / "train.tsv", sst2 / "dev.tsv"))
    result = _invoke(
        "demo", "--output-dir", tmp_path / "demo", "--steps", 2, "--train-size", 16, "--eval-size", 8, "--n-prompts", 2
    )
    assert "ensemble: confidence" in result.output and "baseline: always" in result.output
    assert (tmp_path / "demo" / "neighbors.png").is_file() and (tmp_path / "demo" / "reviews_eval.json").is_file()
    assert (tmp_path / "demo" / "curves.png").is_file() and (tmp_path / "demo" / "curves.svg").is_file()
    assert read_meta(tmp_path / "demo" / "prompts")["model"]["name"] == "t5-nano"
    top1 = float(re.search(r"mean top-1 similarity: ([0-9.]+)", result.output).group(1))
    assert (
        top1 < 0.99
    )  # the input prompt moved off its initial tokens in 2 steps (measured 0.973), under its own Adafactor 0.3


def test_console_script_help_lists_every_command():
    out = subprocess.run(
        [sys.executable, "-m", "softprompt.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for command in (
        "train",
        "ensemble-eval",
        "predict",
        "serve",
        "neighbors",
        "sweep",
        "plot-scale",
        "plot-history",
        "demo",
        "export-peft",
        "import-peft",
    ):
        assert command in out


def test_every_command_names_what_it_writes_output_or_output_dir():
    """One spelling across commands: a file is --output, a folder --output-dir (older spellings stay as aliases)."""
    from softprompt.cli.app import cli

    for name, command in cli.commands.items():
        for param in command.params:
            spellings = set(getattr(param, "opts", [])) & {"--out", "--out-dir", "--output", "--output-dir"}
            if spellings:
                assert param.opts[0] in ("--output", "--output-dir"), (name, param.opts)


@pytest.mark.parametrize("show", [False, True])
def test_cli_keeps_third_party_warnings_off_stderr_unless_asked(run_dir, tmp_path, show):
    """A real scoring pass in a subprocess, plus a library-style FutureWarning raised while the command runs."""
    code = (
        "import sys, warnings; from softprompt import cli; import softprompt.model.prompted as p; "
        "score = p.PromptedT5.score\n"
        "def noisy(*a, **k):\n"
        "    warnings.warn('old argument is deprecated', FutureWarning)\n"
        "    return score(*a, **k)\n"
        "p.PromptedT5.score = noisy; sys.argv[0] = 'softprompt'; cli.main()"
    )
    env = (
        {**os.environ, "SOFTPROMPT_SHOW_WARNINGS": "1"}
        if show
        else {k: v for k, v in os.environ.items() if k != "SOFTPROMPT_SHOW_WARNINGS"}
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "ensemble-eval",
            "--prompts",
            str(run_dir),
            "--task",
            "rte",
            "--data-file",
            str(RTE / "val.jsonl"),
            "--limit",
            "4",
            "--output",
            str(tmp_path / "eval.json"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert ("FutureWarning: old argument is deprecated" in result.stderr) == show
    if not show:
        assert result.stderr == ""


def test_predict_agrees_with_ensemble_eval_and_needs_no_labels(run_dir, tmp_path):
    """`predict` on an unlabelled copy of RTE validation rows in reversed order: one line per input in input
    order, the same candidate log-likelihoods per prompt as on the labelled rows in file order (labels play no
    part), and every prompt's and the majority vote's label that `ensemble-eval` gives."""
    rows = [json.loads(line) for line in (RTE / "val.jsonl").read_text().splitlines()][:10]
    labelled, unlabelled = tmp_path / "labelled.jsonl", tmp_path / "new.jsonl"
    labelled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    unlabelled.write_text(
        "".join(json.dumps({k: v for k, v in r.items() if k != "label"}) + "\n" for r in reversed(rows))
    )
    _invoke(
        "ensemble-eval",
        "--prompts",
        run_dir,
        "--data-file",
        labelled,
        "--vote",
        "majority",
        "--output",
        tmp_path / "eval.json",
        "--quiet",
    )
    expected = [json.loads(line) for line in (tmp_path / "eval.predictions.jsonl").read_text().splitlines()]
    outputs = {}
    for name, data in (("forward", labelled), ("reversed", unlabelled)):
        result = _invoke(
            "predict", "--prompts", run_dir, "--input", data, "--output", tmp_path / "out" / f"{name}.jsonl", "--quiet"
        )
        assert "10 inputs, 3 prompts of rte, vote majority: " in result.output
        outputs[name] = [json.loads(line) for line in (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()]
    got = outputs["reversed"]
    assert [g["index"] for g in got] == list(range(10))
    assert [g["input"].split(" sentence2:")[0] for g in got] == [
        f"rte sentence1: {r['premise']}" for r in reversed(rows)
    ]
    words = ["entailment", "not_entailment"]
    for g, forward, e in zip(got, reversed(outputs["forward"]), reversed(expected)):
        assert sum((v["scores"] for v in g["votes"]), []) == pytest.approx(
            sum((v["scores"] for v in forward["votes"]), []), abs=1e-4
        )
        assert g["label"] == words[e["ensembles"]["majority"]]
        assert [(v["prompt"], v["label"]) for v in g["votes"]] == [
            (name, words[index]) for name, index in e["prompts"].items()
        ]
        assert abs(sum(g["probs"]) - 1) < 1e-6 and g["candidates"] == words
    assert len({round(g["votes"][0]["scores"][0], 3) for g in got}) == 10  # the scores tell the inputs apart
    piped = CliRunner().invoke(
        cli,
        ["predict", "--prompts", str(run_dir), "--input", "-", "--output", "-", "--quiet"],
        input=unlabelled.read_text(),
        catch_exceptions=False,
    )
    assert (
        piped.exit_code == 0 and [json.loads(line) for line in piped.stdout.splitlines()] == got
    )  # JSON Lines in, out
    assert "10 inputs, 3 prompts of rte" in piped.stderr
