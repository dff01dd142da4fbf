"""Task formatting on real SuperGLUE/GLUE/E2E/XSum rows, label normalisation and errors."""

from __future__ import annotations

import csv
import dataclasses
import json

import pytest

from softprompt.data.custom import custom_task
from softprompt.data.tasks import TASKS, Example, get_task
from softprompt.errors import SoftpromptError
from tests.conftest import TEST_DATA


def jsonl(relative: str, n: int | None = None) -> list[dict]:
    """The first ``n`` rows of a jsonl file under tests/data."""
    with open(TEST_DATA / relative, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle][:n]


def csv_rows(relative: str) -> list[dict]:
    """All rows of a csv file under tests/data."""
    with open(TEST_DATA / relative, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


# ----------------------------------------------------------------------------- registry


def test_registry_lists_every_builtin_task():
    expected = {
        "boolq",
        "cb",
        "copa",
        "rte",
        "wic",
        "wsc",
        "multirc",
        "sst2",
        "mrpc",
        "qqp",
        "e2e_nlg",
        "webnlg",
        "xsum",
    }
    assert set(TASKS) == expected
    assert get_task("BoolQ") is TASKS["boolq"]


PARQUET = "refs/convert/parquet"


@pytest.mark.parametrize(
    "name, kind, metric, hub",
    [
        ("boolq", "classification", "accuracy", ("aps/super_glue", "boolq", None)),
        ("cb", "classification", "macro_f1", ("aps/super_glue", "cb", None)),
        ("copa", "choice", "accuracy", ("aps/super_glue", "copa", None)),
        ("multirc", "classification", "f1", ("aps/super_glue", "multirc", None)),
        ("sst2", "classification", "accuracy", ("nyu-mll/glue", "sst2", None)),
        ("mrpc", "classification", "f1", ("nyu-mll/glue", "mrpc", None)),
        ("qqp", "classification", "f1", ("nyu-mll/glue", "qqp", None)),
        ("e2e_nlg", "generation", "bleu", ("tuetschek/e2e_nlg", None, PARQUET)),
        ("webnlg", "generation", "bleu", ("GEM/web_nlg", None, PARQUET)),
        ("xsum", "generation", "rougeL", ("EdinburghNLP/xsum", None, PARQUET)),
    ],
)
def test_task_metadata(name, kind, metric, hub):
    task = get_task(name)
    assert (task.kind, task.metric, (task.hub.dataset, task.hub.config, task.hub.revision)) == (kind, metric, hub)
    assert task.splits["validation"] == "validation"
    assert bool(task.label_words) == (kind == "classification")


def test_unknown_task_suggests_closest_name():
    with pytest.raises(SoftpromptError, match=r"unknown task 'bolq'; did you mean 'boolq'\?") as err:
        get_task("bolq")
    assert "available tasks: boolq, cb" in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_task_without_close_match_lists_tasks():
    with pytest.raises(SoftpromptError, match="available tasks") as err:
        get_task("zzzzzz")
    assert "did you mean" not in str(err.value)


# ----------------------------------------------------------------------------- SuperGLUE


def test_boolq_real_rows():
    rows = jsonl("superglue/boolq/train32.jsonl", 5)
    examples = get_task("boolq").to_examples(rows)
    first, row = examples[0], rows[0]
    assert first.source == f"boolq question: {row['question']} passage: {row['passage']}"
    assert first.choices == ("False", "True")
    for example, row in zip(examples, rows):
        assert example.label == int(row["label"])  # bool True -> 1
        assert example.target == str(row["label"])


def test_cb_real_rows_map_label_names():
    rows = jsonl("superglue/cb/val.jsonl", 3)
    examples = get_task("cb").to_examples(rows)
    assert [e.target for e in examples] == [r["label"] for r in rows]
    assert [e.label for e in examples] == [0, 1, 2]  # entailment, contradiction, neutral
    assert examples[0].source == (
        "cb hypothesis: she wondered if the meeting had started premise: She hesitated at the door. "
        "Maybe the meeting has already started, she whispered."
    )


def test_copa_real_rows_rank_the_two_choices():
    rows = jsonl("superglue/copa/val.jsonl", 3)
    first = get_task("copa").to_examples(rows)[0]
    assert first == Example(
        source="copa premise: The man turned on the faucet. question: effect",
        target="Water flowed from the spout.",
        choices=("The toilet filled with water.", "Water flowed from the spout."),
        label=1,
    )


def test_rte_real_rows_map_label_names():
    rows = jsonl("superglue/rte/train.jsonl", 4)
    examples = get_task("rte").to_examples(rows)
    assert [r["label"] for r in rows] == ["entailment", "entailment", "not_entailment", "not_entailment"]
    assert [(e.label, e.target) for e in examples] == [(0, "entailment")] * 2 + [(1, "not_entailment")] * 2
    assert examples[0].source == (
        "rte sentence1: A local teenager won the regional chess championship without losing a single game. "
        "sentence2: A teenager won the chess championship."
    )


def test_wic_real_rows():
    first = get_task("wic").to_examples(jsonl("superglue/wic/val.jsonl", 1))[0]
    assert first.source == (
        "wic sentence1: She sat on the bank of the river. sentence2: He deposited the cheque at the bank. word: bank"
    )
    assert (first.label, first.target) == (0, "False")


def test_wsc_real_rows_lift_nested_spans():
    rows = jsonl("superglue/wsc/train32.jsonl", 2)
    first = get_task("wsc").to_examples(rows)[0]
    assert first.source == f"wsc text: {rows[0]['text']} pronoun: it candidate: Tina"
    assert (first.label, first.target) == (1, "True")


def test_multirc_real_paragraphs_flatten_to_one_example_per_answer():
    rows = jsonl("superglue/multirc/val.jsonl")
    examples = get_task("multirc").to_examples(rows)
    assert len(rows) == 2 and len(examples) == 13 == sum(
        len(q["answers"]) for r in rows for q in r["passage"]["questions"]
    )
    passage = rows[0]["passage"]
    question, answer = passage["questions"][0], passage["questions"][0]["answers"][0]
    assert examples[0].source == (
        f"multirc question: {question['question']} answer: {answer['text']} paragraph: {passage['text']}"
    )
    assert examples[0].label == answer["label"]
    flat = [
        (n, {"paragraph": r["idx"], "question": q["idx"], "answer": a["idx"]})
        for n, r in enumerate(rows)
        for q in r["passage"]["questions"]
        for a in q["answers"]
    ]
    assert [(e.rows, e.idx) for e in examples] == [
        ((n,), idx) for n, idx in flat
    ]  # the paragraph's row, SuperGLUE's ids


def test_multirc_hub_rows_are_already_flat():
    row = {"paragraph": "P.", "question": "Q?", "answer": "A", "idx": {"answer": 0}, "label": 1}
    example = get_task("multirc").to_examples([row])[0]
    assert example.source == "multirc question: Q? answer: A paragraph: P."
    assert (example.label, example.target, example.idx) == (1, "True", {"answer": 0})


def test_wsc_hub_rows_have_top_level_spans():
    row = {"text": "T.", "span1_text": "Tina", "span2_text": "it", "span1_index": 0, "span2_index": 1, "label": 0}
    example = get_task("wsc").to_examples([row])[0]
    assert example.source == "wsc text: T. pronoun: it candidate: Tina"
    assert example.label == 0


@pytest.mark.parametrize(
    "name, hub_label, target",
    [
        ("rte", 0, "entailment"),
        ("rte", 1, "not_entailment"),
        ("cb", 1, "contradiction"),
        ("cb", 2, "neutral"),
        ("boolq", 1, "True"),
        ("boolq", False, "False"),
    ],
)
def test_int_and_bool_labels_are_class_indices(name, hub_label, target):
    row = {"premise": "p", "hypothesis": "h", "question": "q", "passage": "p", "label": hub_label}
    assert get_task(name).to_examples([row])[0].target == target


@pytest.mark.parametrize(
    "name, text_label, target",
    [
        ("sst2", "1", "positive"),
        ("sst2", "0", "negative"),
        ("rte", "1", "not_entailment"),
        ("cb", "2", "neutral"),
        ("boolq", "1", "True"),
        ("boolq", "False", "False"),
        ("copa", "1", "b"),
    ],
)
def test_int_labels_written_as_text_are_class_indices(name, text_label, target):
    """A csv/tsv cell is text: GLUE's dev.tsv label "1" is class 1, as the int 1 is."""
    row = {
        "sentence": "s",
        "premise": "p",
        "hypothesis": "h",
        "question": "cause",
        "passage": "p",
        "choice1": "a",
        "choice2": "b",
        "label": text_label,
    }
    assert get_task(name).to_examples([row])[0].target == target


@pytest.mark.parametrize(
    "label, shown",
    [("1.0", "'1.0'"), ("01", "'01'"), (" 1", "' 1'"), ("+1", "'+1'"), ("\u0661", "'\u0661'"), ("2", "2")],
)
def test_text_labels_that_are_not_class_indices_are_refused(label, shown):
    """Only an int written as text is an index ("2" is refused as the int 2 is); no float, padding or other digits."""
    with pytest.raises(SoftpromptError) as err:
        get_task("sst2").to_examples([{"sentence": "s", "label": label}])
    assert str(err.value) == (
        f"data row 1: label {shown} in column 'label' is not a sst2 label; "
        "allowed: 0, 1, negative, positive — fix the row or drop it"
    )


def test_a_text_minus_one_is_an_unlabeled_glue_row():
    with pytest.raises(SoftpromptError, match=r"label -1 .* pass a labeled split or file$"):
        get_task("sst2").to_examples([{"sentence": "s", "label": "-1"}])


def test_custom_labels_match_as_text_whether_int_or_text():
    task = custom_task("review: {text}", "label", {"0": "negative", "1": "positive"})
    rows = [{"text": "a", "label": "1"}, {"text": "b", "label": 1}, {"text": "c", "label": "0"}]
    assert [e.label for e in task.to_examples(rows)] == [1, 1, 0]
    with pytest.raises(SoftpromptError, match=r"label '1.0' .* allowed: 0, 1 — add it to --label-words"):
        task.to_examples([{"text": "a", "label": 1.0}])


# ----------------------------------------------------------------------------- GLUE


def test_sst2_real_rows():
    with open(TEST_DATA / "glue/sst2/dev.tsv", encoding="utf-8") as handle:
        next(handle)
        rows = [dict(zip(("sentence", "label"), line.rstrip("\n").split("\t"))) for line in handle]
    rows = [{**row, "label": int(row["label"])} for row in rows[:4]]
    examples = get_task("sst2").to_examples(rows)
    assert examples[0].source == f"sst2 sentence: {rows[0]['sentence']}"
    assert [e.target for e in examples] == [("negative", "positive")[r["label"]] for r in rows]


def test_mrpc_and_qqp_formats():
    mrpc = get_task("mrpc").to_examples([{"sentence1": "a", "sentence2": "b", "label": 1}])[0]
    assert (mrpc.source, mrpc.target) == ("mrpc sentence1: a sentence2: b", "equivalent")
    qqp = get_task("qqp").to_examples([{"question1": "a?", "question2": "b?", "label": 0}])[0]
    assert (qqp.source, qqp.target) == ("qqp question1: a? question2: b?", "not_duplicate")


# ----------------------------------------------------------------------------- generation


def test_e2e_real_rows_group_references_by_mr():
    rows = csv_rows("e2e/testset_w_refs.csv")
    task = get_task("e2e_nlg")
    training = task.to_examples(rows)
    grouped = task.to_examples(rows, grouped=True)
    assert len(training) == len(rows) == 28
    assert len(grouped) == len({row["mr"] for row in rows}) == 8
    assert sum(len(e.references) for e in grouped) == len(rows)
    first = grouped[0]
    assert first.source == "name : Blue Spice | eatType : coffee shop | area : city centre"
    same_mr = [row["ref"] for row in rows if row["mr"] == rows[0]["mr"]]
    assert first.references == tuple(same_mr) and first.target == same_mr[0]
    assert training[0] == Example(
        first.source, same_mr[0], references=(same_mr[0],)
    )  # where it came from is not compared
    assert first.rows == tuple(n for n, row in enumerate(rows) if row["mr"] == rows[0]["mr"]) and training[1].rows == (
        1,
    )


def test_e2e_accepts_hub_column_names():
    row = {"meaning_representation": "name[Aromi], area[riverside]", "human_reference": "Aromi."}
    example = get_task("e2e_nlg").to_examples([row])[0]
    assert (example.source, example.target) == ("name : Aromi | area : riverside", "Aromi.")


def test_webnlg_triples_and_multiple_texts():
    rows = [
        {
            "triples": [["Abilene_Regional_Airport", "cityServed", "Abilene"], ["Abilene", "isPartOf", "Texas"]],
            "text": ["Abilene airport serves Abilene, Texas.", "It serves Abilene in Texas."],
        },
        {"triples": [["Aarhus", "leader", "Jacob_Bundsgaard"]], "text": "Aarhus is led by Jacob."},
    ]
    task = get_task("webnlg")
    training = task.to_examples(rows)
    grouped = task.to_examples(rows, grouped=True)
    assert len(training) == 3 and len(grouped) == 2
    assert grouped[0].source == ("Abilene Regional Airport : cityServed : Abilene | Abilene : isPartOf : Texas")
    assert grouped[0].references == tuple(rows[0]["text"])
    assert grouped[1].references == ("Aarhus is led by Jacob.",)
    assert (grouped[0].rows, grouped[1].rows) == ((0, 0), (1,))  # one row per reference
    with pytest.raises(SoftpromptError, match="data row 2: malformed triples"):
        task.to_examples([rows[1], {"triples": [["only", "two"]], "text": "x"}])


def test_xsum_real_rows():
    rows = jsonl("xsum/test.jsonl", 2)
    example = get_task("xsum").to_examples(rows, grouped=True)[0]
    assert example.source == f"summarize: {rows[0]['document']}"
    assert example.target == rows[0]["summary"] and example.references == (rows[0]["summary"],)
    assert example.label is None and example.choices == ()


# ----------------------------------------------------------------------------- row errors


def test_missing_column_names_column_file_and_available_columns():
    rows = [{"sentence": "fine", "label": 0}, {"sentence": "ok", "labl": 1}]
    with pytest.raises(SoftpromptError) as err:
        get_task("sst2").to_examples(rows, origin="data/train.csv")
    assert str(err.value) == (
        "data/train.csv row 2: column 'label' not found; available columns: sentence, labl — "
        "the sst2 task needs columns sentence, label"
    )


@pytest.mark.parametrize("label, shown", [(-1, "-1"), ("positive!", "'positive!'"), (2, "2")])
def test_label_outside_classes_is_rejected(label, shown):
    with pytest.raises(SoftpromptError) as err:
        get_task("rte").to_examples([{"premise": "p", "hypothesis": "h", "label": label}])
    message = str(err.value)
    assert message.startswith(f"data row 1: label {shown} in column 'label' is not a rte label")
    assert message.endswith("pass a labeled split or file" if label == -1 else "— fix the row or drop it")
    assert "allowed: 0, 1, entailment, not_entailment" in message
    assert "\n" not in message


def test_a_custom_label_outside_the_label_words_asks_for_them():
    task = custom_task("review: {text}", "label", {"bad": "negative", "good": "positive"})
    with pytest.raises(
        SoftpromptError,
        match=r"label 'neutral' .* allowed: bad, good — add it to --label-words \(LABEL=WORD\) or drop the row$",
    ):
        task.to_examples([{"text": "so-so", "label": "neutral"}])


def test_copa_label_must_index_a_choice():
    row = {"premise": "p", "question": "cause", "choice1": "a", "choice2": "b", "label": 2}
    with pytest.raises(SoftpromptError, match="label 2 .* allowed: 0, 1 "):
        get_task("copa").to_examples([row])


def test_a_json_object_or_list_in_a_text_column_is_refused():
    for value, kind in (({"a": 1}, "object"), (["a", "b"], "list")):
        with pytest.raises(
            SoftpromptError, match=rf"row 1: column 'sentence' holds a JSON {kind}, not text; give it as a string"
        ):
            get_task("sst2").to_inputs([{"sentence": value}], origin="new.jsonl")


def test_empty_cell_is_rejected():
    with pytest.raises(
        SoftpromptError, match=r"row 1: column 'sentence' is empty \(columns with values in this row: sentense, label\)"
    ):
        get_task("sst2").to_examples([{"sentence": None, "sentense": "a misspelt column in a later row", "label": 0}])


def test_multirc_paragraph_missing_answers_is_reported():
    row = {"idx": 0, "passage": {"text": "P.", "questions": [{"question": "Q?"}]}}
    with pytest.raises(SoftpromptError, match="row 1: column 'answers' not found"):
        get_task("multirc").to_examples([row])


def test_examples_are_immutable():
    example = Example("in", "out")
    with pytest.raises(dataclasses.FrozenInstanceError):
        example.source = "changed"  # type: ignore[misc]


def test_to_inputs_needs_no_label_and_one_model_input_per_row():
    """Inference rows (``predict``, ``serve``): no label column needed, a label present is ignored,
    generation gets an empty target (E2E rows in the hub's columns too); a row that expands to several inputs or lacks a template
    column is a one-line error naming its origin and 1-based row."""
    sst2, xsum, multirc = get_task("sst2"), get_task("xsum"), get_task("multirc")
    inputs = sst2.to_inputs([{"sentence": "a gem"}, {"sentence": "dull", "label": "not a label"}])
    assert [(e.source, e.choices) for e in inputs] == [
        ("sst2 sentence: a gem", ("negative", "positive")),
        ("sst2 sentence: dull", ("negative", "positive")),
    ]
    assert xsum.to_inputs([{"document": "The news."}]) == [Example("summarize: The news.", "", references=("",))]
    paragraph = jsonl("superglue/multirc/val.jsonl", 1)
    with pytest.raises(
        SoftpromptError, match=r"^new.jsonl row 1 expands to \d+ model inputs; give one flat row per input$"
    ):
        multirc.to_inputs(paragraph, origin="new.jsonl")
    e2e = get_task("e2e_nlg")
    for row in (
        {"mr": "name[The Eagle]"},
        {"meaning_representation": "name[The Eagle]"},
    ):  # official csv and hub columns
        assert e2e.to_inputs([row]) == [Example("name : The Eagle", "", references=("",))]
    with pytest.raises(
        SoftpromptError,
        match=r"^new.csv row 2: column 'sentence' not found; available columns: text — "
        r"inputs to sst2 need column sentence$",
    ):  # not the label placeholder
        sst2.to_inputs([{"sentence": "ok"}, {"text": "no"}], origin="new.csv")
    with pytest.raises(
        SoftpromptError,
        match=r"column 'choice1' not found; .* — inputs to copa need columns premise, question, "
        r"choice1, choice2$",
    ):
        get_task("copa").to_inputs([{"premise": "p", "question": "cause"}])


# ----------------------------------------------------------------------------- templates


@pytest.mark.parametrize(
    "template, field",
    [
        ("review: {sentence:d}", "{sentence:d}"),  # ValueError: Unknown format code 'd'
        ("review: {sentence!x}", "{sentence!x}"),  # ValueError: Unknown conversion specifier x
        ("review: {sentence!r}", "{sentence!r}"),  # would quote the input
        ("review: {sentence:>40}", "{sentence:>40}"),  # would pad the input
        ("{sentence!s:{width}}", "{sentence!s:{width}}"),
        ("{row.text}", "{row.text}"),
        ("{choices[0]} or {choices[1]}", "{choices[0]}"),
    ],
)
def test_a_template_field_with_a_conversion_format_or_attribute_is_refused(template, field):
    with pytest.raises(SoftpromptError) as err:
        custom_task(template, target_column="y")
    assert str(err.value) == (
        f"input template {template!r} has field {field}; write columns as plain {{name}}, without "
        "'!conversion', ':format', '.attribute' or '[index]', and literal braces as {{ }}"
    )


def test_plain_fields_and_literal_braces_still_render():
    task = custom_task("{{json}} {sentence:} {label_text}", target_column="y")
    row = {"sentence": "{x!r}", "label_text": "3.10", "y": "z"}
    assert task.to_examples([row])[0].source == "{json} {x!r} 3.10"
