"""Commands that answer new inputs with trained prompts: ``predict`` (a file, offline) and ``serve``
(HTTP); ``softprompt.cli.app`` registers them."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click

from ensembles.settings import EvalConfig
from softprompt.cli.config_options import settings_options
from softprompt.cli.options import (
    eval_config,
    eval_options,
    eval_task,
    load_runs,
    model_device_options,
    quiet_option,
    task_options,
)
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import check_output_file
from softprompt.serve.config import MAX_ROWS


@click.command()
@click.option(
    "--prompts",
    "run_dirs",
    multiple=True,
    required=True,
    type=click.Path(),
    help="run directory from `softprompt train` (repeatable: runs of one task are pooled)",
)
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(),
    help="the inputs: a .jsonl/.json/.csv/.tsv file, one row per input with the task's input columns (no label column needed); - reads JSON Lines from standard input",
)
@task_options(default=None, hub=False)
@click.option(
    "--vote",
    default="majority",
    show_default=True,
    help="how the prompts' answers combine; classification: majority, confidence, logprob_sum; generation: majority, mbr, best_score",
)
@click.option("--model", help="override the model recorded in the runs (same architecture)")
@click.option(
    "--output",
    default="results/predictions.jsonl",
    show_default=True,
    type=click.Path(),
    help="one JSON line per input, in input order: the vote's label (or text), the mean probabilities and every prompt's vote; - writes them to standard output",
)
@eval_options
@model_device_options
@quiet_option
def predict(**kw) -> None:
    """Answer unlabelled inputs from a file with trained prompts and their vote, offline: the batched,
    length-sorted passes of ensemble-eval, the answers of `softprompt serve`. Runs that record no
    input format (imported from PEFT) take --input-template alone.

    Example: softprompt predict --prompts runs/sst2 --input reviews.csv --output results/reviews.jsonl
    """
    from ensembles.evaluate import write_predictions, written_by_softprompt
    from ensembles.pipeline import check_settings
    from ensembles.pipeline import predict as predict_rows
    from ensembles.pool import read_pool_metas
    from ensembles.settings import resolve_settings
    from softprompt.data.loading import read_file, read_json_lines
    from softprompt.model import distributed

    to_stdout = kw["output"] == "-"
    output = Path(kw["output"])
    if not to_stdout:  # a bad path fails before any scoring, not after
        check_output_file(output, "the predictions", "--output", "predictions.jsonl", written_by_softprompt)
    metas = read_pool_metas(kw["run_dirs"])
    task = eval_task(kw, metas[0], kw["run_dirs"][0], labelled=False)
    if kw["vote"] and "," in kw["vote"]:
        raise SoftpromptError(
            f"predict answers by one vote rule, got {kw['vote']!r}; pick one, e.g. --vote {kw['vote'].split(',')[0]}"
        )
    evaluation = resolve_settings(metas, task.kind, eval_config(kw))
    check_settings([kw["vote"]], task.kind, evaluation)  # before the model loads
    if kw["input_file"] == "-":
        examples = task.to_inputs(read_json_lines(sys.stdin), origin="stdin")
    else:
        examples = task.to_inputs(read_file(kw["input_file"], "--input"), origin=kw["input_file"])
    pool = load_runs(kw, metas, examples)
    rows = predict_rows(
        pool,
        task,
        examples,
        kw["vote"],
        evaluation,
        progress=not kw["quiet"],
    )
    if not distributed.is_main():
        return
    if to_stdout:
        for row in rows:
            click.echo(json.dumps(row, ensure_ascii=False))
    else:
        write_predictions(output, rows)
    counts = (
        ""
        if task.kind == "generation"
        else ": " + ", ".join(f"{label} {n}" for label, n in Counter(r["label"] for r in rows).most_common())
    )
    click.echo(
        f"{len(rows)} inputs, {len(pool.names)} prompts of {task.name}, vote {kw['vote']}{counts}", err=to_stdout
    )
    if not to_stdout:
        click.echo(f"wrote {output}")


@click.command()
@click.option(
    "--prompts",
    "run_dirs",
    multiple=True,
    required=True,
    type=click.Path(),
    help="run directory from `softprompt train` (repeatable; any tasks, one model)",
)
@click.option("--model", help="override the model recorded in the runs (same architecture)")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to bind; an address other machines can reach also needs --api-key-env (or --no-auth)",
)
@click.option("--port", default=8000, show_default=True, help="TCP port (0 = any free port, printed on start)")
@click.option(
    "--max-rows", default=MAX_ROWS, show_default=True, help="rows (inputs × prompts) taken from the queue for one pass"
)
@settings_options(EvalConfig, only=("max_tokens",))
@click.option(
    "--max-wait-ms", default=10.0, show_default=True, help="longest a request waits for others to share its pass"
)
@click.option("--no-batching", is_flag=True, help="run every request in its own pass (for comparison)")
@click.option(
    "--api-key-env",
    help="name of an environment variable holding the key clients send as 'Authorization: Bearer <key>'",
)
@click.option(
    "--no-auth",
    is_flag=True,
    help="serve without an API key on an address other machines can reach (anyone who reaches the port can use it)",
)
@click.option("--max-inputs", default=64, show_default=True, help="inputs per request (413 above)")
@click.option("--max-input-chars", default=4000, show_default=True, help="characters per formatted input (422 above)")
@click.option(
    "--max-new-tokens", default=256, show_default=True, help="largest max_new_tokens a generate request may ask for"
)
@click.option("--max-beams", default=8, show_default=True, help="largest num_beams a generate request may ask for")
@settings_options(EvalConfig, only=("max_length",))
@model_device_options
def serve(**kw) -> None:
    """Serve the runs' prompts and task ensembles over HTTP (JSON), batching requests of any
    prompts and tasks into shared passes of one frozen T5.

    Example: softprompt serve --prompts runs/boolq --prompts runs/sst2 --port 8000
    (then: curl -H 'Content-Type: application/json' -d '{"task": "sst2", "texts": ["sst2 sentence: a gem"]}'
    localhost:8000/v1/classify)
    """
    from softprompt.serve.config import Limits, ServeConfig, require_serve_extra

    require_serve_extra()  # before the server's modules import fastapi and uvicorn
    from softprompt.serve.server import serve as run_server

    limits = Limits(kw["max_inputs"], kw["max_input_chars"], kw["max_new_tokens"], kw["max_beams"])
    run_server(
        ServeConfig(
            prompts=tuple(kw["run_dirs"]),
            model=kw["model"],
            host=kw["host"],
            port=kw["port"],
            max_rows=kw["max_rows"],
            max_tokens=kw["max_tokens"],
            max_wait_ms=kw["max_wait_ms"],
            batching=not kw["no_batching"],
            api_key_env=kw["api_key_env"],
            no_auth=kw["no_auth"],
            max_length=kw["max_length"],
            limits=limits,
            device=kw["device"],
            dtype=kw["dtype"],
            device_map=kw["device_map"],
        ),
        lambda line: click.echo(line, err=line.startswith("warning")),
    )


PREDICT_COMMANDS = (predict, serve)
