"""Shared option groups and argument parsing of the ``softprompt`` command line."""

from __future__ import annotations

import click

from softprompt.errors import SoftpromptError

MODEL_HELP = ("embedded model (t5-nano, or its siblings t5-nano-s, t5-nano-m: pre-trained here, shipped inside the package; "
              "runs offline), T5 hub name, short alias (t5-small … t5-11b, t5-xl/t5-xxl = LM-adapted v1.1, flan-t5-*) or local directory")
TASK_HELP = "built-in task (boolq, cb, copa, rte, wic, wsc, multirc, sst2, mrpc, qqp, e2e_nlg, webnlg, xsum) or 'custom'"


def csv_ints(value: str | None) -> list[int] | None:
    """``"1,2,3"`` -> [1, 2, 3]; None stays None."""
    if value is None:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise SoftpromptError(f"expected comma-separated integers, got {value!r}") from None


def task_options(command):
    """Options that choose a task and its data (shared by train, ensemble-eval and sweep)."""
    options = [
        click.option("--task", default="boolq", show_default=True, help=TASK_HELP),
        click.option("--input-template", help="custom task: model input, e.g. 'review: {sentence}'"),
        click.option("--label-column", help="custom classification task: column holding the label"),
        click.option("--label-words", help="custom classification task: raw label -> word, e.g. 0=negative,1=positive"),
        click.option("--target-column", help="custom generation task: column holding the target text"),
        click.option("--dataset-revision", help="built-in task: hub branch, tag or commit of its dataset, read when no local file is given [default: the task's own, see the README's task table]"),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def resolve_task(task: str, input_template=None, label_column=None, label_words=None, target_column=None, dataset_revision=None):
    """A built-in task by name (its hub dataset at ``dataset_revision`` when given), or a custom task from the template options."""
    from softprompt.tasks import at_revision, custom_task, get_task, parse_label_words

    if task != "custom":
        if input_template or label_column or label_words or target_column:
            raise SoftpromptError(f"--input-template/--label-column/--label-words/--target-column apply to --task custom, not {task!r}")
        chosen = get_task(task)
    elif not input_template:
        raise SoftpromptError("--task custom needs --input-template, e.g. --input-template 'review: {sentence}'")
    else:
        words = parse_label_words(label_words) if label_words else None
        chosen = custom_task(input_template, label_column, words, target_column)
    return chosen if dataset_revision is None else at_revision(chosen, dataset_revision)


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


def decoding_kwargs(max_new_tokens: int, num_beams: int, no_repeat_ngram_size: int) -> dict:
    """The decoding options as ``generate()`` keyword arguments."""
    return {"max_new_tokens": max_new_tokens, "num_beams": num_beams, "no_repeat_ngram_size": no_repeat_ngram_size}


def decoding_options(command):
    """Decoding options for generation tasks."""
    for option in reversed(
        [
            click.option("--max-new-tokens", default=64, show_default=True, help="generation: longest output"),
            click.option("--num-beams", default=1, show_default=True, help="generation: 1 = greedy, >1 = beam search"),
            click.option("--no-repeat-ngram-size", default=0, show_default=True, help="generation: forbid repeated n-grams (0 = off)"),
        ]
    ):
        command = option(command)
    return command
