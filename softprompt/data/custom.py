"""Custom tasks: a user's own template, label column and label words (or target column), as the
command line's ``--task custom`` options define them, and rebuilding the task a run recorded."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from softprompt.data.tasks import (
    GENERATION_METRICS,
    HUB_SPLITS,
    TASKS,
    Task,
    at_revision,
    classification_metric_names,
    get_task,
    template_fields,
)
from softprompt.errors import SoftpromptError


def parse_label_words(spec: str) -> dict[str, str]:
    """Parse ``"0=negative,1=positive"`` into ``{"0": "negative", "1": "positive"}``."""
    words: dict[str, str] = {}
    for item in spec.split(","):
        label, sep, word = (part.strip() for part in item.partition("="))
        if not sep or not label or not word:
            raise SoftpromptError(
                f"malformed label words {spec!r} (bad item {item.strip()!r}); write LABEL=WORD "
                "pairs separated by commas, e.g. --label-words 0=negative,1=positive"
            )
        if label in words:
            raise SoftpromptError(f"label {label!r} appears twice in label words {spec!r}; give each label once")
        words[label] = word
    return words


MAX_LABEL_CLASSES = 32  # a label column with more distinct values is taken for a mistyped --label-column


def label_words_from_rows(rows: list[Mapping[str, Any]], label_column: str, origin: str) -> str:
    """``--label-words`` for a label column that already holds words (``ham``, ``spam``): each distinct
    value names itself, in sorted order. Numbers, booleans, a missing column, one class or more than
    ``MAX_LABEL_CLASSES`` distinct values need explicit words: a SoftpromptError says so. ``origin``
    names the rows' file in messages.

    >>> label_words_from_rows([{"label": "spam"}, {"label": "ham"}, {"label": "spam"}], "label", "sms.csv")
    'ham=ham,spam=spam'
    """
    if not any(label_column in row for row in rows):
        columns = ", ".join(rows[0]) if rows else "none"
        raise SoftpromptError(
            f"--label-column {label_column!r} is not a column of {origin} (its columns: {columns}); "
            "check --label-column"
        )
    values = sorted({row[label_column] for row in rows if row.get(label_column) is not None}, key=str)
    shown = ", ".join(map(str, values[:5])) + (", ..." if len(values) > 5 else "")
    if any(not isinstance(value, str) or _is_number(value) for value in values):
        example = (
            ",".join(f"{value}={word}" for value, word in zip(values, ("negative", "positive")))
            if len(values) == 2
            else "0=negative,1=positive"
        )
        raise SoftpromptError(
            f"the label column {label_column!r} of {origin} holds {shown}, not words: give each "
            f"label the word the model should emit, e.g. --label-words {example}"
        )
    if len(values) < 2 or len(values) > MAX_LABEL_CLASSES:
        raise SoftpromptError(
            f"the label column {label_column!r} of {origin} holds {len(values)} distinct value(s) "
            f"({shown}); a classification task has 2 to {MAX_LABEL_CLASSES} classes: check "
            "--label-column, or give --label-words"
        )
    for value in values:
        if value != value.strip() or not value or "," in value or "=" in value:
            raise SoftpromptError(
                f"label {value!r} of {origin} cannot name itself (it has a ',' or '=', or spaces "
                "around it): give the words with --label-words LABEL=WORD,..."
            )
    return ",".join(f"{value}={value}" for value in values)


def _is_number(text: str) -> bool:
    """Whether ``text`` reads as a number (``0``, ``-1``, ``2.5``, ``nan``)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


# the command-line options (TrainConfig fields) that define a custom task, and their flags
CUSTOM_OPTIONS = ("input_template", "label_column", "label_words", "target_column", "task_name", "task_metric")
CUSTOM_FLAGS = "/".join("--" + option.replace("_", "-") for option in CUSTOM_OPTIONS)


def task_from_options(
    task: str,
    input_template: str | None = None,
    label_column: str | None = None,
    label_words: str | None = None,
    target_column: str | None = None,
    dataset_revision: str | None = None,
    task_name: str | None = None,
    task_metric: str | None = None,
) -> Task:
    """A built-in task by name (its hub dataset at ``dataset_revision`` when given), or a custom task
    from the command line's template options (``label_words`` as ``"0=negative,1=positive"``), called
    ``task_name`` (default ``custom``) and scored by ``task_metric`` (default accuracy or BLEU).

    >>> task_from_options("custom", "review: {sentence}", "label", "0=negative,1=positive").label_words
    ('negative', 'positive')
    >>> task_from_options("custom", "summarize: {text}", target_column="summary", task_metric="rougeL").metric
    'rougeL'
    """
    if task != "custom":
        if task_metric:
            raise SoftpromptError(
                f"--task-metric applies to --task custom; {task!r} is scored by its official "
                f"metric, {get_task(task).metric}: drop --task-metric"
            )
        if any((input_template, label_column, label_words, target_column, task_name)):
            raise SoftpromptError(f"{CUSTOM_FLAGS} apply to --task custom, not {task!r}")
        chosen = get_task(task)
    elif not input_template:
        raise SoftpromptError("--task custom needs --input-template, e.g. --input-template 'review: {sentence}'")
    else:
        words = parse_label_words(label_words) if label_words else None
        chosen = custom_task(input_template, label_column, words, target_column, task_metric, task_name or "custom")
    return chosen if dataset_revision is None else at_revision(chosen, dataset_revision)


def recorded_task(meta: Mapping[str, Any]) -> Task | None:
    """The task a run was trained on, rebuilt from its ``softprompt.json`` (``meta``): from the task
    options it recorded (a custom task's template, label column, words, name and metric; runs from before
    --task-metric record no metric and keep the default), else a built-in task of that name with the same kind
    and label words; None when neither applies (e.g. a custom task imported from PEFT, or trained by a sweep
    before 2026-11-30: neither records a template)."""
    info, args = meta["task"], meta.get("train_args") or {}
    task = TASKS.get(info["name"])
    if args.get("task") == "custom" and args.get("input_template"):
        task = task_from_options("custom", **{option: args.get(option) for option in CUSTOM_OPTIONS})
    if (
        task is None
        or task.name != info["name"]
        or task.kind != info["kind"]
        or list(task.label_words) != list(info.get("label_words") or [])
    ):
        return None
    return task


def template_task(input_template: str, task_meta: Mapping[str, Any], name: str | None = None) -> Task:
    """The task a run records (``task_meta``: its kind and label words), formatted by ``input_template``:
    ``softprompt predict --input-template`` for runs that record no template (e.g. imported from
    PEFT). Its rows need no label or target column; it is called ``name``, else the run's task name
    where that is not a built-in task's, else ``custom``.

    >>> template_task("review: {text}", {"name": "reviews", "kind": "classification", "label_words": ["bad", "good"]}).label_words
    ('bad', 'good')
    """
    name = name or (task_meta["name"] if task_meta["name"] not in TASKS else "custom")
    if task_meta["kind"] == "generation":
        return custom_task(input_template, target_column="target", name=name)
    if task_meta["kind"] != "classification":
        raise SoftpromptError(f"--input-template cannot rebuild a {task_meta['kind']} task; name the task with --task")
    words = task_meta.get("label_words") or []
    return custom_task(input_template, label_column="label", label_words={word: word for word in words}, name=name)


def check_custom_name(name: str, flag: str = "--task-name") -> None:
    """Refuse a custom task name that is a built-in task's or holds other than letters, digits, ``_.-``."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name) or name in TASKS:
        raise SoftpromptError(
            f"{flag} {name!r} is not usable: start with a letter, then letters, digits, '_', '.' or '-' "
            f"(at most 64), and do not reuse a built-in task's name ({', '.join(TASKS)})"
        )


def custom_task(
    input_template: str,
    label_column: str | None = None,
    label_words: Mapping[str, str] | None = None,
    target_column: str | None = None,
    metric: str | None = None,
    name: str = "custom",
) -> Task:
    """A user task: classification (label column + label words) or generation (target column).

    ``label_words`` maps the raw label value, as text (``"0"``, ``"True"``, ``"spam"``), to the
    word the model emits. ``metric``, the primary metric (validation, best-step selection, reports), defaults to
    accuracy (classification) or BLEU (generation); it must be one the evaluation computes for the task's kind
    (``classification_metric_names``, ``GENERATION_METRICS``).
    ``name`` labels the task in reports, run metadata and the server: letters, digits, ``_.-``,
    and not a built-in task's name. Custom tasks have no hub dataset: their rows always come from
    local files.
    """
    check_custom_name(name)
    template_fields(input_template)
    hint = "check --input-template, --label-column and --target-column"
    if (label_column is None) == (target_column is None):
        raise SoftpromptError(
            "a custom task needs exactly one of --label-column (classification, with "
            "--label-words) or --target-column (generation)"
        )
    if target_column is not None:
        if label_words:
            raise SoftpromptError("--label-words only applies to classification; drop it or use --label-column")
        metric = _check_metric(metric or "bleu", GENERATION_METRICS, "a generation task")
        return Task(
            name, "generation", (), metric, None, dict(HUB_SPLITS), input_template, target_column, column_hint=hint
        )
    if not label_words or len(label_words) < 2:
        raise SoftpromptError(
            "a classification task needs at least two label words, e.g. --label-words 0=negative,1=positive"
        )
    words = tuple(label_words.values())
    if len(set(words)) < len(words):
        raise SoftpromptError(f"label words {', '.join(words)} repeat a word; rank classification needs distinct ones")
    metric = _check_metric(
        metric or "accuracy", classification_metric_names(len(words)), f"a {len(words)}-class classification task"
    )
    return Task(
        name,
        "classification",
        words,
        metric,
        None,
        dict(HUB_SPLITS),
        input_template,
        label_column,
        class_names=tuple(map(str, label_words)),
        labels_as_text=True,
        column_hint=hint,
    )


def _check_metric(metric: str, allowed: tuple[str, ...], task: str) -> str:
    """Return ``metric`` if it is one of the ``allowed`` metrics of ``task`` (in words, for the message)."""
    if metric not in allowed:
        raise SoftpromptError(f"--task-metric {metric!r} does not fit {task}; choose one of {', '.join(allowed)}")
    return metric
