"""Shared option groups and argument parsing of the ``softprompt`` command line."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields

import click

from ensembles.settings import DECODING_HELP, EvalConfig
from softprompt.cli.config_options import setting_option, settings_options, with_options
from softprompt.data.custom import (
    CUSTOM_FLAGS,
    CUSTOM_OPTIONS,
    label_words_from_rows,
    recorded_task,
    task_from_options,
    template_task,
)
from softprompt.data.tasks import at_revision
from softprompt.errors import SoftpromptError
from softprompt.model.decoding import DECODING_DEFAULTS
from softprompt.training.settings import CONCERNS, TASK_HELP, DataSettings, ModelSettings, names

TRAIN_SETTINGS = tuple(name for concern in CONCERNS for name in names(concern))  # TrainConfig's fields
quiet_option = click.option("--quiet", is_flag=True, help="no progress bars")


def csv_ints(value: str | None) -> list[int] | None:
    """``"1,2,3"`` -> [1, 2, 3]; None stays None."""
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SoftpromptError(f"expected comma-separated integers, got {value!r}") from None


def task_options(default: str | None = "boolq", hub: bool = True):
    """Options that choose a task and its data (shared by train, ensemble-eval, sweep and predict), generated from
    ``DataSettings``; ``default`` None: the task the command's runs were trained on; ``hub`` False: no
    --dataset-revision (commands that read local files only)."""
    task_option = (
        setting_option(DataSettings, "task", default=default)
        if default
        else setting_option(
            DataSettings, "task", default=None, help=f"{TASK_HELP} [default: the task the runs were trained on]"
        )
    )
    revision = click.option(
        "--dataset-revision",
        help="built-in task: hub branch, tag or commit of its dataset, read when no local file is given [default: the task's own, see the README's task table]",
    )
    return lambda command: with_options(
        command, [task_option, settings_options(DataSettings, only=CUSTOM_OPTIONS), *([revision] if hub else [])]
    )


def training_options(exclude: Iterable[str] = ()):
    """train's and sweep's options for ``TrainConfig``'s settings (``softprompt.training.settings``), but ``exclude``:
    --model, the task options, every other setting by concern, then the decoding of generation tasks' validation."""
    exclude = set(exclude)
    return lambda command: with_options(
        command,
        [
            settings_options(ModelSettings, only={"model"} - exclude),
            task_options(),
            settings_options(
                *(concern for concern in CONCERNS if concern is not ModelSettings),
                ModelSettings,  # where and how the model runs: last
                exclude={"model", "task", *CUSTOM_OPTIONS, *exclude},
            ),
            decoding_options,
        ],
    )


def train_config(kw: dict, **overrides):
    """The ``TrainConfig`` that a command's ``training_options`` (``kw``) give, with ``overrides``: train's and sweep's
    one way to their settings."""
    from softprompt.training.config import TrainConfig

    given = {name: kw[name] for name in TRAIN_SETTINGS if name in kw}
    return TrainConfig(**given, decoding={key: kw[key] for key in DECODING_DEFAULTS}, **overrides)


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


def decoding_options(command):
    """The decoding options of generation tasks' validation (train, sweep), at their defaults (``DECODING_DEFAULTS``)."""
    return with_options(
        command,
        [
            click.option(
                f"--{key.replace('_', '-')}", type=int, default=value, show_default=True, help=DECODING_HELP[key]
            )
            for key, value in DECODING_DEFAULTS.items()
        ],
    )


def eval_options(command):
    """How pooled prompts score and generate (ensemble-eval, predict), generated from ``EvalConfig``: unset means the
    runs' own (``ensembles.settings.resolve_settings``)."""
    return settings_options(EvalConfig)(command)


def eval_config(kw: dict) -> EvalConfig:
    """The ``EvalConfig`` that a command's ``eval_options`` (``kw``) give."""
    return EvalConfig(**{f.name: kw[f.name] for f in fields(EvalConfig)})


def model_device_options(command):
    """Where and how the frozen model runs (ensemble-eval, predict, serve), generated from ``ModelSettings``."""
    return settings_options(ModelSettings, only=("device", "device_map", "dtype"))(command)


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


def load_runs(kw: dict, metas: list[dict], examples):
    """The runs of ``--prompts`` pooled on their frozen model (``--model`` or the one they record), loaded after its
    tokenizer is checked against the inputs' words (ensemble-eval, predict)."""
    from ensembles.pool import load_pool
    from softprompt.model.loading import load_frozen_t5

    frozen = load_frozen_t5(
        kw["model"] or metas[0]["model"]["name"],
        kw["dtype"],
        kw["device"],
        device_map=kw["device_map"],
        texts=[e.source for e in examples],
    )
    return load_pool(kw["run_dirs"], frozen)
