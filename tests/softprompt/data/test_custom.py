"""Custom tasks (``softprompt.data.custom``): templates, labels as text, names, the options'
errors, and rebuilding a run's recorded task."""

from __future__ import annotations

import pytest

from softprompt.data.custom import (
    MAX_LABEL_CLASSES,
    custom_task,
    label_words_from_rows,
    parse_label_words,
    recorded_task,
    task_from_options,
    template_task,
)
from softprompt.data.tasks import Example
from softprompt.errors import SoftpromptError


def test_custom_classification_matches_labels_as_text():
    task = custom_task("review: {sentence}", label_column="stars", label_words={"1": "bad", "2": "good"})
    rows = [{"sentence": "meh", "stars": 1}, {"sentence": "wow", "stars": "2"}]
    examples = task.to_examples(rows)
    assert (task.kind, task.metric, task.hub) == ("classification", "accuracy", None)
    assert [e.source for e in examples] == ["review: meh", "review: wow"]
    assert [(e.label, e.target) for e in examples] == [(0, "bad"), (1, "good")]
    assert examples[0].choices == ("bad", "good")
    with pytest.raises(SoftpromptError, match="label '3' .* allowed: 1, 2 —"):
        task.to_examples([{"sentence": "x", "stars": 3}])


def test_custom_generation_task():
    task = custom_task("question: {q} context: {c}", target_column="a", metric="rougeL")
    example = task.to_examples([{"q": "who?", "c": "me.", "a": "me"}])[0]
    assert (task.kind, task.metric) == ("generation", "rougeL")
    assert example == Example("question: who? context: me.", "me", references=("me",))


def test_custom_task_missing_template_column_points_at_flags():
    task = custom_task("review: {text}", label_column="label", label_words={"0": "no", "1": "yes"})
    with pytest.raises(
        SoftpromptError, match="column 'text' not found; available columns: sentence, label — check --input-template"
    ):
        task.to_examples([{"sentence": "s", "label": 0}], origin="train.csv")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"input_template": "{x}"}, "exactly one of --label-column"),
        ({"input_template": "{x}", "label_column": "y", "target_column": "z"}, "exactly one of"),
        ({"input_template": "{x}", "label_column": "y"}, "at least two label words"),
        ({"input_template": "{x}", "label_column": "y", "label_words": {"0": "a", "1": "a"}}, "repeat a word"),
        (
            {"input_template": "{x}", "target_column": "y", "label_words": {"0": "a", "1": "b"}},
            "--label-words only applies to classification",
        ),
        (
            {"input_template": "{x}", "target_column": "y", "metric": "accuracy"},
            "^--task-metric 'accuracy' does not fit a generation task; choose one of bleu, chrf, rouge1, rouge2, rougeL$",
        ),
        (
            {"input_template": "{x}", "label_column": "y", "label_words": {"0": "a", "1": "b"}, "metric": "rougeL"},
            "^--task-metric 'rougeL' does not fit a 2-class classification task; choose one of accuracy, macro_f1, "
            "balanced_accuracy, f1, mcc$",
        ),
        (
            {
                "input_template": "{x}",
                "label_column": "y",
                "label_words": {"0": "a", "1": "b", "2": "c"},
                "metric": "f1",
            },
            "^--task-metric 'f1' does not fit a 3-class classification task; choose one of accuracy, macro_f1, "
            "balanced_accuracy, mcc$",
        ),  # binary F1 is computed for two classes only
        (
            {"input_template": "review: {x", "target_column": "y"},
            r"malformed input template .* literal braces as \{\{ \}\}$",
        ),
        ({"input_template": "review: {}", "target_column": "y"}, "must name columns"),
        ({"input_template": "no fields", "target_column": "y"}, "must name columns"),
        ({"input_template": "{x}", "target_column": "y", "name": "sst2"}, "--task-name 'sst2' is not usable.*built-in"),
        (
            {"input_template": "{x}", "target_column": "y", "name": "spam#2"},
            "--task-name 'spam#2' is not usable: start with a letter",
        ),
        ({"input_template": "{x}", "target_column": "y", "name": ""}, "--task-name '' is not usable"),
    ],
)
def test_custom_task_errors(kwargs, message):
    with pytest.raises(SoftpromptError, match=message):
        custom_task(**kwargs)


def test_custom_task_name_is_recorded_and_rebuilt():
    """--task-name names a custom task; a run's softprompt.json records it and the task is rebuilt under that name."""
    task = task_from_options("custom", "sms: {text}", "label", "no=ham,yes=spam", task_name="spam-filter")
    assert (task.name, task.label_words) == ("spam-filter", ("ham", "spam"))
    meta = {
        "task": {"name": "spam-filter", "kind": "classification", "label_words": ["ham", "spam"]},
        "train_args": {
            "task": "custom",
            "input_template": "sms: {text}",
            "label_column": "label",
            "label_words": "no=ham,yes=spam",
            "task_name": "spam-filter",
        },
    }
    assert recorded_task(meta) == task
    assert recorded_task(meta | {"task": meta["task"] | {"name": "custom"}}) is None  # name and options disagree
    with pytest.raises(SoftpromptError, match="apply to --task custom, not 'rte'"):
        task_from_options("rte", task_name="spam-filter")


def test_task_metric_is_recorded_and_rebuilt_and_older_runs_keep_the_default():
    """--task-metric is a custom task's primary metric; a run records it among the task options and is rebuilt with it,
    and a run from before the option (no task_metric in its train_args) keeps accuracy or BLEU."""
    options = {"task": "custom", "input_template": "summarize: {text}", "target_column": "summary"}
    meta = {
        "task": {"name": "custom", "kind": "generation", "label_words": []},
        "train_args": options | {"task_metric": "rougeL"},
    }
    assert recorded_task(meta) == task_from_options(**options, task_metric="rougeL")
    assert recorded_task(meta).metric == "rougeL"
    assert recorded_task(meta | {"train_args": options}).metric == "bleu"
    words = {
        "task": "custom",
        "input_template": "sms: {text}",
        "label_column": "label",
        "label_words": "no=ham,yes=spam",
    }
    old = {"task": {"name": "custom", "kind": "classification", "label_words": ["ham", "spam"]}, "train_args": words}
    assert recorded_task(old).metric == "accuracy"
    assert recorded_task(old | {"train_args": words | {"task_metric": "mcc"}}).metric == "mcc"


@pytest.mark.parametrize("task, official", [("rte", "accuracy"), ("xsum", "rougeL")])
def test_task_metric_is_refused_for_built_in_tasks(task, official):
    with pytest.raises(
        SoftpromptError,
        match=f"^--task-metric applies to --task custom; '{task}' is scored by its official "
        f"metric, {official}: drop --task-metric$",
    ):
        task_from_options(task, task_metric="bleu")


def test_template_task_rebuilds_a_recorded_task_in_a_given_format():
    """predict's --input-template alone: the run's kind and label words, its name unless a built-in one, rows without labels."""
    task = template_task(
        "sms: {text}", {"name": "spam-filter", "kind": "classification", "label_words": ["ham", "spam"]}
    )
    assert (task.name, task.kind, task.label_words) == ("spam-filter", "classification", ("ham", "spam"))
    assert [e.source for e in task.to_inputs([{"text": "win now"}])] == ["sms: win now"]
    generation = template_task("{document}", {"name": "rte", "kind": "generation", "label_words": []})
    assert (generation.name, generation.kind) == ("custom", "generation")  # a built-in name is not reused
    with pytest.raises(
        SoftpromptError, match="--input-template cannot rebuild a choice task; name the task with --task"
    ):
        template_task("{premise}", {"name": "copa", "kind": "choice", "label_words": []})


def test_parse_label_words():
    assert parse_label_words("0=negative, 1 = positive") == {"0": "negative", "1": "positive"}
    assert parse_label_words("spam=junk,ham=fine") == {"spam": "junk", "ham": "fine"}


@pytest.mark.parametrize(
    "spec, message",
    [
        ("0:negative,1:positive", r"bad item '0:negative'"),
        ("0=negative,", r"bad item ''"),
        ("=negative,1=positive", r"bad item '=negative'"),
        ("0=,1=positive", r"bad item '0='"),
        ("", r"bad item ''"),
        ("0=a,0=b", r"label '0' appears twice"),
    ],
)
def test_parse_label_words_errors(spec, message):
    with pytest.raises(SoftpromptError, match=message) as err:
        parse_label_words(spec)
    assert "\n" not in str(err.value)


def test_label_words_from_rows_are_the_columns_words_naming_themselves():
    """A label column that holds words gives them, sorted, each naming itself; missing values are skipped; the
    result parses as --label-words and builds a task whose examples keep the file's labels."""
    rows = [
        {"text": "win", "label": "spam"},
        {"text": "hi", "label": "ham"},
        {"text": "?", "label": None},
        {"text": "free", "label": "spam"},
    ]
    words = label_words_from_rows(rows, "label", "sms.csv")
    assert words == "ham=ham,spam=spam"
    task = task_from_options("custom", "sms: {text}", "label", words)
    assert [(e.label, e.target) for e in task.to_examples([rows[0], rows[1]])] == [(1, "spam"), (0, "ham")]


@pytest.mark.parametrize(
    "labels, column, message",
    [
        (
            [0, 1, 1],
            "label",
            r"^the label column 'label' of f.jsonl holds 0, 1, not words: give each label the word the "
            r"model should emit, e.g. --label-words 0=negative,1=positive$",
        ),
        (
            ["0", "1", "2"],
            "label",
            r"holds 0, 1, 2, not words: .* e.g. --label-words 0=negative,1=positive$",
        ),  # csv text
        ([True, False], "label", r"holds False, True, not words: .* --label-words False=negative,True=positive$"),
        (["-1", "2.5"], "label", "not words"),
        (["spam", "spam"], "label", r"holds 1 distinct value\(s\) \(spam\); a classification task has 2 to 32 classes"),
        (
            [f"w{i}" for i in range(MAX_LABEL_CLASSES + 1)],
            "label",
            r"holds 33 distinct value\(s\) \(w0, w1, w10, w11, w12, \.\.\.\)",
        ),
        (
            ["good", "bad"],
            "stars",
            r"^--label-column 'stars' is not a column of f.jsonl \(its columns: text, label\); check --label-column$",
        ),
        (["a,b", "c"], "label", r"^label 'a,b' of f.jsonl cannot name itself .* --label-words LABEL=WORD"),
        (["x=1", "c"], "label", "label 'x=1' of f.jsonl cannot name itself"),
        ([" pos", "neg"], "label", "label ' pos' of f.jsonl cannot name itself"),
    ],
    ids=[
        "json-numbers",
        "csv-numbers",
        "booleans",
        "signed-and-decimal",
        "one-class",
        "too-many-classes",
        "missing-column",
        "comma",
        "equals",
        "spaces",
    ],
)
def test_label_words_from_rows_refuses_what_cannot_name_itself(labels, column, message):
    rows = [{"text": "t", "label": label} for label in labels]
    with pytest.raises(SoftpromptError, match=message):
        label_words_from_rows(rows, column, "f.jsonl")
