"""Text-to-text task registry: how each dataset row becomes a model input and a target.

Every task turns stored rows into ``Example``s in three steps:

1. ``expand`` reshapes one stored row into flat rows (MultiRC paragraphs -> one row per answer,
   E2E meaning representations -> linearised text, ...; ``softprompt.data.rows``); most tasks keep
   the row as it is.
2. ``template`` (``str.format`` over column names) builds the model input.
3. ``target_column`` gives the label (classification, choice) or the reference text (generation).

Labels are normalised so that local files and the Hugging Face hub agree: an int is the class
index, a bool is ``int(bool)`` and a string is the class *name* (``"not_entailment"``) or, written in
decimal digits as csv/tsv cells hold it, the class index (``"1"``).

Each built-in task names its hub dataset as a ``HubSource`` (id, config, revision, data files): the
arguments ``datasets.load_dataset`` needs with datasets >= 4, which no longer runs loading scripts
(script-only datasets load from the hub's parquet export, ``refs/convert/parquet``).
"""

from __future__ import annotations

import difflib
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from typing import Any

from softprompt.data.rows import (
    BadRow,
    InputRow,
    Row,
    expand_e2e,
    expand_webnlg,
    flatten_multirc,
    keep_row,
    lift_wsc_target,
    row_text,
    row_value,
)
from softprompt.errors import SoftpromptError

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
GENERATION_METRICS = (
    "bleu",
    "chrf",
    *ROUGE_TYPES,
)  # what softprompt.runner.metrics.generation_metrics computes, in order
HUB_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
PARQUET_EXPORT = "refs/convert/parquet"  # branch of the hub's own parquet conversion of a dataset


def classification_metric_names(n_classes: int) -> tuple[str, ...]:
    """What ``softprompt.runner.metrics.classification_metrics`` computes for ``n_classes`` classes, in order: binary F1 (of
    class 1) only for two classes.

    >>> classification_metric_names(3)
    ('accuracy', 'macro_f1', 'balanced_accuracy', 'mcc')
    """
    binary = ("f1",) if n_classes == 2 else ()
    return ("accuracy", "macro_f1", "balanced_accuracy", *binary, "mcc")


@dataclass(frozen=True)
class HubSource:
    """Where a task's data lives on the Hugging Face hub, as ``datasets.load_dataset`` arguments.

    >>> HubSource("tuetschek/e2e_nlg", revision=PARQUET_EXPORT).load_kwargs("train")
    {'path': 'tuetschek/e2e_nlg', 'split': 'train', 'revision': 'refs/convert/parquet'}
    """

    dataset: str  # hub id, e.g. "aps/super_glue"
    config: str | None = None  # configuration name; None: the dataset's default one
    revision: str | None = None  # branch, tag or commit; None: the default branch (main)
    data_files: tuple[tuple[str, str], ...] = ()  # (hub split, file pattern at that revision)

    def load_kwargs(self, split: str) -> dict[str, Any]:
        """``datasets.load_dataset`` keyword arguments for one hub split; unset ones left out."""
        kwargs = {
            "path": self.dataset,
            "name": self.config,
            "split": split,
            "revision": self.revision,
            "data_files": dict(self.data_files) or None,
        }
        return {key: value for key, value in kwargs.items() if value is not None}

    def describe(self) -> str:
        """``GEM/web_nlg (config default, revision refs/convert/parquet)``, for messages."""
        config, revision = self.config or "default", self.revision or "main"
        return f"{self.dataset} (config {config}, revision {revision})"


@dataclass(frozen=True)
class Example:
    """One model input with its target; rank classification scores every string in ``choices``.

    ``rows`` and ``idx`` tell where it came from and take no part in equality: the 0-based positions, among
    the rows given to ``Task.to_examples``, of the stored rows it was built from (one per reference, in order,
    for a grouped generation Example), and the ``idx`` column of its (first) flat row, the dataset's own id
    where there is one (GLUE/SuperGLUE; MultiRC: its paragraph, question and answer ids).
    """

    source: str
    target: str
    choices: tuple[str, ...] = ()
    label: int | None = None
    references: tuple[str, ...] = ()
    rows: tuple[int, ...] = field(default=(), compare=False, repr=False)
    idx: Any = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Task:
    """A text-to-text task: input template, targets, official metric and where its data lives."""

    name: str
    kind: str  # "classification" | "choice" | "generation"
    label_words: tuple[str, ...]  # verbalizers the model emits, index = class id
    metric: str  # primary metric: one of classification_metric_names(classes) or GENERATION_METRICS
    hub: HubSource | None  # None: local files only (custom tasks)
    splits: dict[str, str]  # our split name -> hub split name
    template: str  # model input, str.format over the (expanded) row's columns
    target_column: str  # label (classification, choice) or reference text (generation)
    class_names: tuple[str, ...] = ()  # label values as stored in data; default: label_words
    choice_columns: tuple[str, ...] = ()  # "choice" kind: columns holding the candidates
    expand: Callable[[Row], list[Row]] = keep_row  # stored row -> flat rows
    labels_as_text: bool = False  # custom tasks: match str(label) against class_names
    column_hint: str = ""  # how to fix a missing column, for error messages

    def to_examples(self, rows: Sequence[Row], grouped: bool = False, origin: str = "data") -> list[Example]:
        """Convert rows into Examples, validating columns and labels.

        Generation tasks give one Example per (input, reference) row for teacher-forced training;
        with ``grouped=True`` they give one Example per distinct input whose ``references`` holds
        every reference, in order (multi-reference evaluation). ``grouped`` is a no-op otherwise.
        ``origin`` names the data (e.g. a file path) in error messages; rows count from 1.
        """
        examples = [
            example for number, row in enumerate(rows, start=1) for example in self._row_examples(row, number, origin)
        ]
        return _group_references(examples) if grouped and self.kind == "generation" else examples

    def to_inputs(self, rows: Sequence[Row], origin: str = "input") -> list[Example]:
        """One Example per unlabelled row, for inference (``softprompt predict``, ``serve``): the label
        or target column is not needed (a placeholder fills it) and each row must be one model input."""
        placeholder = "" if self.kind == "generation" else self.class_names[0] if self.labels_as_text else 0
        needed = (*template_fields(self.template), *self.choice_columns)
        task = replace(
            self, column_hint=f"inputs to {self.name} need column{'s' * (len(needed) > 1)} {', '.join(needed)}"
        )
        inputs = []
        for number, row in enumerate(rows, start=1):
            examples = task._row_examples(InputRow(row, self.target_column, placeholder), number, origin)
            if len(examples) != 1:
                raise SoftpromptError(
                    f"{origin} row {number} expands to {len(examples)} model inputs; give one flat row per input"
                )
            inputs.append(examples[0])
        return inputs

    def _row_examples(self, row: Row, number: int, origin: str) -> list[Example]:
        """The Examples of stored row ``number`` of ``origin``; a bad row is a one-line error naming both."""
        try:
            return [replace(self._example(flat), rows=(number - 1,), idx=flat.get("idx")) for flat in self.expand(row)]
        except BadRow as error:
            raise SoftpromptError(f"{origin} row {number}: {error}") from None

    def _example(self, row: Row) -> Example:
        """Build the Example for one flat row."""
        source = _render(self.template, row, self.column_hint)
        if self.kind == "generation":
            target = row_text(row, self.target_column, self.column_hint)
            return Example(source, target, references=(target,))
        if self.kind == "choice":
            choices = tuple(row_text(row, c, self.column_hint) for c in self.choice_columns)
            label = self._label(row, len(choices), ())
            return Example(source, choices[label], choices=choices, label=label)
        label = self._label(row, len(self.label_words), self.class_names or self.label_words)
        return Example(source, self.label_words[label], choices=self.label_words, label=label)

    def _label(self, row: Row, count: int, names: tuple[str, ...]) -> int:
        """Normalise a raw label (int index, bool, class name, or an index as text: csv's ``"1"``) to an index below ``count``."""
        raw = row_value(row, self.target_column, self.column_hint)
        if self.labels_as_text:
            raw = str(raw)
        elif isinstance(raw, bool):
            raw = int(raw)
        elif isinstance(raw, str) and raw not in names and raw.removeprefix("-").isdecimal() and raw == str(int(raw)):
            raw = int(raw)  # an int as text ("1", "-1"), not "1.0", "01" or " 1"
        if isinstance(raw, str) and raw in names:
            return names.index(raw)
        if isinstance(raw, int) and 0 <= raw < count:
            return raw
        allowed = names if self.labels_as_text else (*map(str, range(count)), *names)
        if raw in (-1, "-1"):  # how GLUE and SuperGLUE mark their unlabeled test rows
            fix = "unlabeled rows (e.g. a GLUE test split) cannot be used, pass a labeled split or file"
        elif self.labels_as_text:
            fix = "add it to --label-words (LABEL=WORD) or drop the row"
        else:
            fix = "fix the row or drop it"
        raise BadRow(
            f"label {raw!r} in column {self.target_column!r} is not a {self.name} label; allowed: {', '.join(allowed)} — {fix}"
        )


def _group_references(examples: list[Example]) -> list[Example]:
    """Merge generation Examples (one reference and row each) with the same source; the first reference is the
    target, ``rows`` keeps each reference's row and ``idx`` is the first Example's."""
    groups: dict[str, list[Example]] = {}
    for example in examples:
        groups.setdefault(example.source, []).append(example)
    return [
        Example(
            source,
            group[0].target,
            references=tuple(ref for e in group for ref in e.references),
            rows=tuple(row for e in group for row in e.rows),
            idx=group[0].idx,
        )
        for source, group in groups.items()
    ]


# ----------------------------------------------------------------------------- row helpers


@cache
def template_fields(template: str) -> tuple[str, ...]:
    """The column names a ``str.format`` template refers to, e.g. ``("sentence",)``.

    Fields are plain column names: a conversion (``{x!r}``), format spec (``{x:d}``), attribute
    (``{x.y}``) or index (``{x[0]}``) is refused, as it would crash or silently change the input.
    """
    try:
        fields = [parsed[1:] for parsed in string.Formatter().parse(template) if parsed[1] is not None]
    except ValueError as error:
        raise SoftpromptError(
            f"malformed input template {template!r} ({error}); write columns as {{name}} "
            "and literal braces as {{ }}"
        ) from None
    for name, spec, conversion in fields:
        if spec or conversion or "." in name or "[" in name:
            written = f"{{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            raise SoftpromptError(
                f"input template {template!r} has field {written}; write columns as plain {{name}}, without "
                "'!conversion', ':format', '.attribute' or '[index]', and literal braces as {{ }}"
            )
    names = [name for name, _, _ in fields]
    if not names or any(not name or name.isdigit() for name in names):
        raise SoftpromptError(f"input template {template!r} must name columns, e.g. 'review: {{sentence}}'")
    return tuple(dict.fromkeys(names))


def _render(template: str, row: Row, hint: str) -> str:
    """Fill the template with the row's columns."""
    return template.format_map({name: row_text(row, name, hint) for name in template_fields(template)})


# ----------------------------------------------------------------------------- registry


def _builtin(
    name: str,
    kind: str,
    template: str,
    target: str,
    hub: HubSource,
    metric: str,
    label_words: tuple[str, ...] = (),
    **extra: Any,
) -> Task:
    """A built-in task; its column hint lists the columns its template and target use."""
    columns = (*template_fields(template), *extra.get("choice_columns", ()), target)
    hint = f"the {name} task needs columns {', '.join(columns)}"
    return Task(name, kind, label_words, metric, hub, dict(HUB_SPLITS), template, target, column_hint=hint, **extra)


def _classify(
    name: str, template: str, label_words: tuple[str, ...], hub: HubSource, metric: str = "accuracy", **extra: Any
) -> Task:
    """A built-in classification task with a ``label`` column; class names = label words."""
    return _builtin(name, "classification", template, "label", hub, metric, label_words, **extra)


BOOL = ("False", "True")
SUPERGLUE = "aps/super_glue"  # parquet files per configuration on the default branch
GLUE = "nyu-mll/glue"  # parquet files per configuration on the default branch
# script-only on main: their parquet export has one default config with train/validation/test
E2E_HUB = HubSource("tuetschek/e2e_nlg", revision=PARQUET_EXPORT)
XSUM_HUB = HubSource("EdinburghNLP/xsum", revision=PARQUET_EXPORT)
# GEM's export holds en/ and ru/ configs and challenge_* splits: name the English splits exactly
WEBNLG_HUB = HubSource(
    "GEM/web_nlg",
    revision=PARQUET_EXPORT,
    data_files=tuple((split, f"en/{split}/*.parquet") for split in ("train", "validation", "test")),
)

TASKS: dict[str, Task] = {
    task.name: task
    for task in [
        _classify("boolq", "boolq question: {question} passage: {passage}", BOOL, HubSource(SUPERGLUE, "boolq")),
        _classify(
            "cb",
            "cb hypothesis: {hypothesis} premise: {premise}",
            ("entailment", "contradiction", "neutral"),
            HubSource(SUPERGLUE, "cb"),
            "macro_f1",
        ),
        _builtin(
            "copa",
            "choice",
            "copa premise: {premise} question: {question}",
            "label",
            HubSource(SUPERGLUE, "copa"),
            "accuracy",
            choice_columns=("choice1", "choice2"),
        ),
        _classify(
            "rte",
            "rte sentence1: {premise} sentence2: {hypothesis}",
            ("entailment", "not_entailment"),
            HubSource(SUPERGLUE, "rte"),
        ),
        _classify(
            "wic", "wic sentence1: {sentence1} sentence2: {sentence2} word: {word}", BOOL, HubSource(SUPERGLUE, "wic")
        ),
        _classify(
            "wsc",
            "wsc text: {text} pronoun: {span2_text} candidate: {span1_text}",
            BOOL,
            HubSource(SUPERGLUE, "wsc.fixed"),
            expand=lift_wsc_target,
        ),
        _classify(
            "multirc",
            "multirc question: {question} answer: {answer} paragraph: {paragraph}",
            BOOL,
            HubSource(SUPERGLUE, "multirc"),
            "f1",
            expand=flatten_multirc,
        ),
        _classify("sst2", "sst2 sentence: {sentence}", ("negative", "positive"), HubSource(GLUE, "sst2")),
        _classify(
            "mrpc",
            "mrpc sentence1: {sentence1} sentence2: {sentence2}",
            ("not_equivalent", "equivalent"),
            HubSource(GLUE, "mrpc"),
            "f1",
        ),
        _classify(
            "qqp",
            "qqp question1: {question1} question2: {question2}",
            ("not_duplicate", "duplicate"),
            HubSource(GLUE, "qqp"),
            "f1",
        ),
        _builtin("e2e_nlg", "generation", "{mr}", "ref", E2E_HUB, "bleu", expand=expand_e2e),
        _builtin("webnlg", "generation", "{triples}", "text", WEBNLG_HUB, "bleu", expand=expand_webnlg),
        _builtin("xsum", "generation", "summarize: {document}", "summary", XSUM_HUB, "rougeL"),
    ]
}


def get_task(name: str) -> Task:
    """The built-in task called ``name`` (any case); an unknown name suggests the closest one.

    >>> task = get_task("boolq")
    >>> task.label_words, task.metric  # T5's own verbalizers
    (('False', 'True'), 'accuracy')
    >>> task.to_examples([{"question": "is it raining", "passage": "It rains.", "label": True}])[0]
    Example(source='boolq question: is it raining passage: It rains.', target='True', choices=('False', 'True'), label=1, references=())
    """
    task = TASKS.get(name.lower())
    if task is not None:
        return task
    close = closest_task(name)
    guess = f"did you mean {close!r}? " if close else ""
    raise SoftpromptError(
        f"unknown task {name!r}; {guess}available tasks: {', '.join(TASKS)} "
        "(or define a custom task with --input-template)"
    )


def closest_task(name: str) -> str | None:
    """The built-in task name closest to ``name`` (a likely typo), or None."""
    close = difflib.get_close_matches(name.lower(), TASKS, n=1)
    return close[0] if close else None


def at_revision(task: Task, revision: str) -> Task:
    """``task`` reading its hub dataset at ``revision`` (branch, tag or commit) instead of its own.

    >>> at_revision(get_task("rte"), "main").hub.revision
    'main'
    """
    if task.hub is None:
        raise SoftpromptError(
            f"--dataset-revision applies to tasks read from the Hugging Face hub; {task.name} "
            "tasks read local files (--train-file/--validation-file/--data-file) — drop it"
        )
    if not revision.strip():
        raise SoftpromptError("--dataset-revision must name a branch, tag or commit, e.g. main")
    return replace(task, hub=replace(task.hub, revision=revision.strip()))
