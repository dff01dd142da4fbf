"""Shared option groups and argument parsing of the ``softprompt`` command line."""

from __future__ import annotations

import click

from softprompt.data.custom import (
    CUSTOM_FLAGS,
    CUSTOM_OPTIONS,
    label_words_from_rows,
    recorded_task,
    task_from_options,
    template_task,
)
from softprompt.data.tasks import GENERATION_METRICS, at_revision, classification_metric_names
from softprompt.errors import SoftpromptError
from softprompt.model.decoding import DECODING_DEFAULTS, check_decoding

MODEL_HELP = (
    "embedded model (t5-nano, or its siblings t5-nano-s, t5-nano-m: pre-trained here, shipped inside the package; "
    "runs offline), T5 hub name, short alias (t5-small … t5-11b, t5-xl/t5-xxl = LM-adapted v1.1, flan-t5-*) or local directory"
)
TASK_HELP = (
    "built-in task (boolq, cb, copa, rte, wic, wsc, multirc, sst2, mrpc, qqp, e2e_nlg, webnlg, xsum) or 'custom'"
)
TASK_METRIC_HELP = (
    "custom task: primary metric, which picks each prompt's best validation step and the best prompt in "
    f"reports; classification: {', '.join(classification_metric_names(2))} (f1: two label words only); "
    f"generation: {', '.join(GENERATION_METRICS)} [default: accuracy; bleu]"
)


def csv_ints(value: str | None) -> list[int] | None:
    """``"1,2,3"`` -> [1, 2, 3]; None stays None."""
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SoftpromptError(f"expected comma-separated integers, got {value!r}") from None


def task_options(default: str | None = "boolq", hub: bool = True):
    """Options that choose a task and its data (shared by train, ensemble-eval, sweep and predict);
    ``default`` None: the task the command's runs were trained on; ``hub`` False: no --dataset-revision
    (commands that read local files only)."""
    task = (
        click.option("--task", default=default, show_default=True, help=TASK_HELP)
        if default
        else click.option("--task", help=f"{TASK_HELP} [default: the task the runs were trained on]")
    )
    return lambda command: _with_options(
        command,
        [
            task,
            click.option("--input-template", help="custom task: model input, e.g. 'review: {sentence}'"),
            click.option("--label-column", help="custom classification task: column holding the label"),
            click.option(
                "--label-words",
                help="custom classification task: raw label -> word, e.g. 0=negative,1=positive "
                "[train, sweep: when the --train-file label column already holds words "
                "(ham, spam), each names itself]",
            ),
            click.option("--target-column", help="custom generation task: column holding the target text"),
            click.option(
                "--task-name",
                help="custom task: its name in reports, run metadata and `softprompt serve`, e.g. spam "
                "(letters, digits, _.-) [default: custom]",
            ),
            click.option("--task-metric", help=TASK_METRIC_HELP),
            click.option(
                "--dataset-revision",
                help="built-in task: hub branch, tag or commit of its dataset, read when no local file is given [default: the task's own, see the README's task table]",
            ),
        ][: None if hub else -1],
    )


def step_options():
    """How a training step draws its batches and runs them (shared by train and sweep). --data-order's
    choices are ``softprompt.training.config.DATA_ORDERS`` (tested), written out: that module imports transformers."""
    return lambda command: _with_options(
        command,
        [
            click.option(
                "--group-by-length",
                is_flag=True,
                help="draw each batch from examples of similar input length, so batches pad less (faster on inputs of mixed length): shuffle, cut into mega-batches of 50 batches, sort each by token length, longest batch first; the same order per --seed, also on --resume",
            ),
            click.option(
                "--data-order",
                type=click.Choice(["shared", "per-prompt"]),
                default="shared",
                show_default=True,
                help="shared: every prompt sees the same batch each step; per-prompt: prompt i draws its own batches from --seed + i, so the run equals N separate one-prompt runs with seeds --seed .. --seed+N-1 (independent ensemble members, as Lester et al.'s); a step then holds N·B distinct examples, which pad to their longest unless --max-tokens splits them",
            ),
            click.option(
                "--max-tokens",
                type=int,
                help="tokens per pass (rows × padded prompt + source + target length): a step's N·B rows run as passes of similar length, accumulating the same gradient, so a step pads less and its peak memory is bounded (e.g. 2048 on CPU; on a GPU the largest that fits); validation passes too [default: a step is one pass; validation 8,192 on CPU, 65,536 on CUDA]",
            ),
        ],
    )


def _with_options(command, options: list):
    """``command`` with ``options`` added, listed in the given order in ``--help``."""
    for option in reversed(options):
        command = option(command)
    return command


def options_task(kw: dict):
    """The task that a command's ``task_options`` name."""
    return task_from_options(
        kw["task"], dataset_revision=kw.get("dataset_revision"), **{option: kw[option] for option in CUSTOM_OPTIONS}
    )


def default_label_words(kw: dict) -> str | None:
    """train's and sweep's ``--label-words``: as given; for a custom classification task without it, the
    words its ``--train-file`` label column holds (``label_words_from_rows``), announced on stderr and,
    being the option's value, recorded with the run like given words."""
    if kw["label_words"] or kw["task"] != "custom" or not kw["label_column"] or not kw["train_file"]:
        return kw["label_words"]
    from softprompt.data.loading import read_file

    words = label_words_from_rows(read_file(kw["train_file"], "--train-file"), kw["label_column"], kw["train_file"])
    click.echo(f"--label-words not given: the label column's values name themselves: --label-words {words}", err=True)
    return words


def eval_task(kw: dict, meta: dict, run_dir: str, labelled: bool = True):
    """ensemble-eval's and predict's task: the one ``--task`` (and its template options) names, else the one the runs were
    trained on (``meta``: the first run's softprompt.json; pooled runs share their task). Unlabelled inputs (predict,
    ``labelled=False``) may give ``--input-template`` alone: the runs' task in that format."""
    if kw["task"] is not None:
        return options_task(kw)
    if kw.get("transfer"):
        raise SoftpromptError("--transfer evaluates prompts on another task than their own: name it with --task")
    defining = [
        option for option in CUSTOM_OPTIONS if option not in ("input_template", "task_name")
    ]  # the task, not its format
    if not labelled and kw["input_template"] and not any(kw[option] for option in defining):
        return template_task(kw["input_template"], meta["task"], kw["task_name"])
    if any(kw[option] for option in CUSTOM_OPTIONS):
        raise SoftpromptError(
            f"{CUSTOM_FLAGS} need --task custom" + ("" if labelled else "; or give --input-template alone")
        )
    task = recorded_task(meta)
    if task is None:
        fix = (
            "name the task with --task (for a custom task also --input-template and its label or target options)"
            if labelled
            else "give its input format with --input-template, e.g. --input-template 'review: {sentence}'"
        )
        raise SoftpromptError(f"{run_dir} does not record how task {meta['task']['name']!r} formats its inputs; {fix}")
    return task if kw.get("dataset_revision") is None else at_revision(task, kw["dataset_revision"])


def resolve_init(init: str, task) -> str:
    """``auto``: class-label init where the task has label words (Lester et al.'s best at small
    scale), sampled-vocab otherwise (generation, per-example choices)."""
    if init != "auto":
        return init
    return "class-label" if task.kind == "classification" else "sampled-vocab"


def vote_rules(vote: str | None, task) -> list[str]:
    """``--vote`` as a list of rules; unset: the task kind's default (``ensembles.voting.DEFAULT_RULES``)."""
    from ensembles.voting import DEFAULT_RULES

    return (vote or DEFAULT_RULES[task.kind]).split(",")


def decoding_kwargs(
    max_new_tokens: int | None, num_beams: int | None, no_repeat_ngram_size: int | None, recorded: dict | None = None
) -> dict:
    """The decoding options as ``generate()`` keyword arguments, checked (``softprompt.model.decoding.check_decoding``); one
    not given (None) is the runs' ``recorded`` value, else ``DECODING_DEFAULTS``'."""
    given = {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "no_repeat_ngram_size": no_repeat_ngram_size}
    decoding = {
        key: value if value is not None else (recorded or {}).get(key, DECODING_DEFAULTS[key])
        for key, value in given.items()
    }
    check_decoding(decoding)
    return decoding


def recorded_decoding_kwargs(kw: dict, metas: list[dict], task) -> dict:
    """ensemble-eval's and predict's decoding: each option as given, else (generation tasks) as the runs were trained
    and validated with, else ``DECODING_DEFAULTS``'."""
    from ensembles.pool import recorded_decoding

    given = {key: kw[key] for key in DECODING_DEFAULTS}
    recorded = (
        recorded_decoding(metas, [key for key, value in given.items() if value is not None])
        if task.kind == "generation"
        else None
    )
    return decoding_kwargs(**given, recorded=recorded)


def decoding_options(command=None, *, recorded: bool = False):
    """Decoding options for generation tasks; ``recorded=True`` (ensemble-eval, predict): unset means the runs' own."""
    if command is None:
        return lambda c: decoding_options(c, recorded=recorded)
    runs = "what the runs were trained and validated with; {} for runs that record none"
    return _with_options(
        command,
        [
            click.option(
                f"--{key.replace('_', '-')}",
                type=int,
                default=None if recorded else value,
                show_default=not recorded,
                help=help_text + (f" [default: {runs.format(value)}]" if recorded else ""),
            )
            for (key, value), help_text in zip(
                DECODING_DEFAULTS.items(),
                (
                    "generation: longest output",
                    "generation: 1 = greedy, >1 = beam search",
                    "generation: forbid repeated n-grams (0 = off)",
                ),
            )
        ],
    )


def model_device_options(command):
    """Where and how the frozen model runs (ensemble-eval, predict, serve)."""
    return _with_options(
        command,
        [
            click.option(
                "--device",
                default="auto",
                show_default=True,
                help="auto (a GPU if there is one, this process's under accelerate launch; else the CPU), cpu, cuda, cuda:1, ...",
            ),
            click.option(
                "--device-map",
                type=click.Choice(["auto"]),
                help="spread a model too large for one device over all GPUs",
            ),
            click.option("--dtype", type=click.Choice(["float32", "bfloat16"]), default="float32", show_default=True),
        ],
    )


def usage_error_line(error: click.ClickException, command_path: str = "softprompt") -> str:
    """A click error as one line with the command's ``--help`` named, e.g. "Missing option '--prompts'; see
    'softprompt ensemble-eval --help'"; ``--prompts`` given to a command that takes run folders as arguments
    (``neighbors runs/sst2``) says so instead of suggesting a look-alike option. ``command_path`` names the
    command where click's error carries no context (an option's missing value: ``train --n-prompts``)."""
    if not isinstance(error, click.UsageError):
        return error.format_message()
    if error.ctx is None:
        return f"{error.format_message().rstrip('.')}; see '{command_path} --help'"
    command, path = error.ctx.command, error.ctx.command_path
    if isinstance(error, click.exceptions.NoSuchOption):
        arguments = [param for param in command.params if isinstance(param, click.Argument)]
        if error.option_name == "--prompts" and arguments:
            name, many = arguments[0].human_readable_name, arguments[0].nargs != 1
            usage = f"{path} {name}{'...' if many else ''} [OPTIONS]"
            return f"{path} takes {name} as {'arguments' if many else 'an argument'}, not --prompts: {usage}; see '{path} --help'"
        error.possibilities = (error.possibilities or [])[
            :1
        ]  # the closest only (--n-promts: --n-prompts, not --init-from)
    message = error.format_message().rstrip(".")
    return f"{message} See '{path} --help'" if message.endswith("?") else f"{message}; see '{path} --help'"
