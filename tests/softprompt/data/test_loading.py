"""Loading rows from local files (never the hub: it is intercepted, with its real argument names), file errors
and deterministic subsampling."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import datasets
import pytest
from huggingface_hub import constants as hub_constants

from softprompt.data import loading as data
from softprompt.data.custom import custom_task
from softprompt.data.loading import load_examples, load_rows, read_file, subsample
from softprompt.data.tasks import get_task
from softprompt.errors import SoftpromptError
from tests.conftest import TEST_DATA, hub_answering

SENTIMENT = custom_task("review: {text}", label_column="label", label_words={"0": "negative", "1": "positive"})


@pytest.fixture(autouse=True)
def no_hub(monkeypatch):
    """Any attempt to reach the hub fails the test; local files never need it."""
    real = datasets.load_dataset

    def local_only(path, *args, **kwargs):
        assert path in ("json", "csv"), f"tests must not load {path!r} from the hub"
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data.datasets, "load_dataset", local_only)
    monkeypatch.setattr(data, "ask_hub", hub_answering())  # a hub that answers


def write(path, text: str) -> str:
    """Write ``text`` to ``path`` and return the path as a string."""
    path.write_text(text, encoding="utf-8")
    return str(path)


# ----------------------------------------------------------------------------- custom files


def test_custom_task_from_csv(tmp_path):
    file = write(tmp_path / "train.csv", 'text,label\n"good, really",1\nbad,0\n')
    examples = load_examples(SENTIMENT, "train", file)
    assert [(e.source, e.target, e.label) for e in examples] == [
        ("review: good, really", "positive", 1),
        ("review: bad", "negative", 0),
    ]


def test_custom_task_from_tsv_keeps_quotes(tmp_path):
    file = write(tmp_path / "train.tsv", 'text\tlabel\nsays "hi\t1\nno\t0\n')
    examples = load_examples(SENTIMENT, "train", file)
    assert [e.source for e in examples] == ['review: says "hi', "review: no"]


def test_custom_task_from_jsonl_and_json(tmp_path):
    rows = [{"text": "yes", "label": "1"}, {"text": "no", "label": "0"}]
    jsonl = write(tmp_path / "rows.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    array = write(tmp_path / "rows.json", json.dumps(rows))
    assert load_rows(SENTIMENT, "train", jsonl) == rows == load_rows(SENTIMENT, "train", array)
    assert [e.label for e in load_examples(SENTIMENT, "train", jsonl)] == [1, 0]


def test_custom_generation_from_jsonl(tmp_path):
    task = custom_task("translate: {en}", target_column="de")
    file = write(tmp_path / "dev.jsonl", '{"en": "house", "de": "Haus"}\n')
    assert load_examples(task, "validation", file)[0].references == ("Haus",)


def test_local_loading_leaves_the_datasets_cache_alone(tmp_path, monkeypatch):
    cache = tmp_path / "hf-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    read_file(write(tmp_path / "a.jsonl", '{"text": "x", "label": 0}\n'))
    assert not cache.exists()


def test_edited_file_is_reread(tmp_path):
    file = tmp_path / "a.jsonl"
    write(file, '{"text": "old", "label": 0}\n')
    assert read_file(str(file))[0]["text"] == "old"
    write(file, '{"text": "new", "label": 0}\n')
    assert read_file(str(file))[0]["text"] == "new"


def test_csv_and_tsv_cells_are_read_as_written(tmp_path):
    """No type or missing-value guessing (pandas would give 3.1, 7.0, 1234.0, 0.5 and four missing values)."""
    cells = ["3.10", "007", "01234", "0.50", "NA", "None", "null", "nan", "1e5", "TRUE"]
    csv_file = write(tmp_path / "cells.csv", "text,label\n" + "".join(f"{cell},{cell}\n" for cell in cells))
    tsv_file = write(tmp_path / "cells.tsv", "text\tlabel\n" + "".join(f"{cell}\t{cell}\n" for cell in cells))
    for file in (csv_file, tsv_file):
        assert read_file(file) == [{"text": cell, "label": cell} for cell in cells]


def test_generation_targets_and_predict_inputs_keep_their_text(tmp_path):
    task = custom_task("version: {version}", target_column="next")
    file = write(tmp_path / "dev.csv", "version,next\n3.9,3.10\n007,008\n")
    examples = load_examples(task, "validation", file)
    assert [(e.source, e.target) for e in examples] == [("version: 3.9", "3.10"), ("version: 007", "008")]
    assert [e.source for e in task.to_inputs(read_file(file))] == ["version: 3.9", "version: 007"]


def test_csv_dialect_bom_crlf_quoted_newlines_and_blank_lines(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes('\ufefftext,label\r\n"two\r\nlines, quoted",1\r\n\r\n"say ""hi""",0\r\n'.encode("utf-8"))
    assert read_file(str(path)) == [{"text": "two\r\nlines, quoted", "label": "1"}, {"text": 'say "hi"', "label": "0"}]


def test_a_csv_field_longer_than_csvs_default_limit_is_read(tmp_path):
    document = "word " * 40_000  # 200,000 characters; csv.reader refuses fields over 131,072 by default
    file, limit = write(tmp_path / "long.csv", f'document,summary\n"{document}",short\n'), csv.field_size_limit()
    assert read_file(file) == [{"document": document, "summary": "short"}]
    assert csv.field_size_limit() == limit  # the process-wide limit is left as it was


def test_an_empty_cell_is_missing_and_blamed_on_its_own_row(tmp_path):
    """An empty cell is None (a missing value); it no longer turns the other labels into floats."""
    custom = write(tmp_path / "train.csv", "text,label\ngood,1\nmeh,\nbad,0\n")
    glue = write(tmp_path / "train.tsv", "sentence\tlabel\ngood\t1\nmeh\t\nbad\t0\n")
    assert read_file(custom)[1] == {"text": "meh", "label": None}
    for task, file, column in ((SENTIMENT, custom, "text"), (get_task("sst2"), glue, "sentence")):
        with pytest.raises(
            SoftpromptError,
            match=rf"train.(csv|tsv) row 2: column 'label' is empty \(columns with values "
            rf"in this row: {column}\) — fill it in or drop the row$",
        ):
            load_examples(task, "train", file)


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "twice.csv",
            "question,question,label\na,b,1\n",
            r"twice.csv line 1: the header names column 'question' more than "
            r"once; give each column its own name$",
        ),
        (
            "twice.tsv",
            "a\tb\ta\tb\n1\t2\t3\t4\n",
            r"twice.tsv line 1: the header names columns 'a', 'b' more than once",
        ),
        (
            "index.csv",
            ",text,label\n0,good,1\n",
            r"index.csv line 1: column 1 of the header has no name; name every column "
            r"or drop the unnamed one \(pandas writes its index there: save with index=False\)$",
        ),
    ],
)
def test_csv_header_names_each_column_once(tmp_path, name, text, message):
    with pytest.raises(SoftpromptError, match=message):
        read_file(write(tmp_path / name, text))


def test_a_csv_that_is_not_utf8_names_its_line(tmp_path):
    csv_file, jsonl_file = tmp_path / "latin1.csv", tmp_path / "latin1.jsonl"
    csv_file.write_bytes("text,label\nfine,1\ncaf\u00e9,0\n".encode("latin-1"))
    jsonl_file.write_bytes('{"text": "fine"}\n\n{"text": "caf\u00e9"}\n'.encode("latin-1"))
    for path in (csv_file, jsonl_file):
        with pytest.raises(
            SoftpromptError, match=rf"could not read .*{path.name} \(line 3 is not UTF-8 text\); save it as UTF-8$"
        ):
            read_file(str(path))


def test_jsonl_values_keep_their_json_types(tmp_path):
    """datasets' json builder would make a column holding 2 and 2.5 all floats (2 -> 2.0)."""
    rows = [{"text": "a", "label": 1, "score": 2, "note": None}, {"text": "b", "label": 0, "score": 2.5, "extra": "x"}]
    file = write(tmp_path / "rows.jsonl", "\ufeff" + "\r\n".join(json.dumps(row) for row in rows) + "\r\n")
    assert read_file(file) == rows
    assert [e.label for e in load_examples(SENTIMENT, "train", file)] == [1, 0]


def test_local_files_are_read_without_datasets(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("local files are parsed by softprompt.data.loading itself")

    monkeypatch.setattr(data.datasets, "load_dataset", refuse)
    for name, text in (
        ("a.csv", "text,label\nx,1\n"),
        ("a.tsv", "text\tlabel\nx\t1\n"),
        ("a.jsonl", '{"text": "x", "label": "1"}\n'),
        ("a.json", '[{"text": "x", "label": "1"}]'),
        ("b.json", '{"text": ["x"], "label": ["1"]}'),
        ("c.json", '{"text": "x", "label": "1"}'),
        ("d.json", '{"text": "x", "label": "1"}\n\n'),
    ):
        assert read_file(write(tmp_path / name, text)) == [{"text": "x", "label": "1"}], name


def test_json_values_keep_their_json_types_in_every_layout(tmp_path):
    """An array, columns or JSON Lines in a .json file: 2 stays 2 beside 2.5 and null stays None (datasets' json
    builder made the column floats), with a byte-order mark too."""
    rows = [{"text": "a", "score": 2, "note": None}, {"text": "b", "score": 2.5, "note": "x"}]
    columns = {key: [row[key] for row in rows] for key in rows[0]}
    for name, text in (
        ("array.json", json.dumps(rows)),
        ("columns.json", json.dumps(columns)),
        ("lines.json", "\ufeff" + "\n".join(json.dumps(row) for row in rows)),
    ):
        assert read_file(write(tmp_path / name, text)) == rows, name


@pytest.mark.parametrize(
    "text, message",
    [
        ("[1, 2]", r"the JSON value is an array holding a non-object\); give an array of objects"),
        ('"text"', r"the JSON value is str\); give an array of objects"),
        (
            '[{"text": "a"},',
            r"line 1 is not valid JSON \(.*\)\); check that it is valid json: an array of objects, or one object per line",
        ),
    ],
)
def test_json_that_holds_no_rows_is_one_line(tmp_path, text, message):
    with pytest.raises(SoftpromptError, match=r"could not read .*bad.json \(" + message):
        read_file(write(tmp_path / "bad.json", text))


# ----------------------------------------------------------------------------- real data


def test_sst2_tsv_labels_are_ints():
    examples = load_examples(get_task("sst2"), "validation", str(TEST_DATA / "glue/sst2/dev.tsv"))
    assert len(examples) == 32
    assert examples[0].source == (
        "sst2 sentence: it 's a charming and often affecting journey through the lives of three sisters "
        "who never quite learned to talk to each other . "
    )
    assert (examples[0].label, examples[0].target) == (1, "positive")
    rows = read_file(str(TEST_DATA / "glue/sst2/dev.tsv"))
    assert {row["label"] for row in rows} == {"0", "1"}  # the file's text; the task maps it to class indices
    assert [e.label for e in examples] == [int(row["label"]) for row in rows]


def test_boolq_bool_labels_survive_loading():
    file = str(TEST_DATA / "superglue/boolq/train32.jsonl")
    rows = load_rows(get_task("boolq"), "train", file)
    examples = load_examples(get_task("boolq"), "train", file)
    assert len(examples) == 12
    assert [e.label for e in examples] == [int(row["label"]) for row in rows] == [0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1]


def test_multirc_nested_paragraphs_survive_loading():
    file = str(TEST_DATA / "superglue/multirc/train32.jsonl")
    assert len(load_rows(get_task("multirc"), "train", file)) == 2  # paragraphs
    examples = load_examples(get_task("multirc"), "train", file)
    assert len(examples) == 11  # one per answer
    assert examples[0].source.startswith("multirc question: ")


def test_e2e_csv_grouped_for_evaluation():
    file = str(TEST_DATA / "e2e/testset_w_refs.csv")
    task = get_task("e2e_nlg")
    assert len(load_examples(task, "test", file)) == 28
    grouped = load_examples(task, "test", file, grouped=True)
    assert len(grouped) == 8  # distinct meaning representations
    assert len(load_examples(task, "test", file, limit=5, grouped=True)) == 5


# ----------------------------------------------------------------------------- file errors


def test_missing_file(tmp_path):
    with pytest.raises(
        SoftpromptError,
        match=r"data file .*nope.csv not found; check the path "
        r"given to --train-file/--validation-file",
    ):
        load_rows(SENTIMENT, "train", str(tmp_path / "nope.csv"))


@pytest.mark.parametrize(
    "name, text",
    [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n \n"),
        ("header_only.csv", "text,label\n"),
        ("header_only.tsv", "text\tlabel\n"),
        ("empty_list.json", "[]"),
    ],
)
def test_file_without_rows(tmp_path, name, text):
    with pytest.raises(SoftpromptError, match=f"data file .*{name} has no rows"):
        load_rows(SENTIMENT, "train", write(tmp_path / name, text))


def test_unsupported_extension(tmp_path):
    with pytest.raises(
        SoftpromptError,
        match=r"unsupported file type '.txt' .* use a .jsonl, "
        r".json, .csv, .tsv file",
    ):
        load_rows(SENTIMENT, "train", write(tmp_path / "train.txt", "text,label\na,1\n"))


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "extra.csv",
            'sentence\nfoo, bar\n"baz, qux"\n',
            r"extra.csv line 2 has 2 fields but the header has 1 \(sentence\); quote fields that hold commas",
        ),
        (
            "short.csv",
            "sentence,label\na fine film,1\n\nno label\n",
            r"short.csv line 4 has 1 fields but the header has 2 \(sentence, label\)",
        ),
        (
            "extra.tsv",
            "sentence\tlabel\na\tb\t1\n",
            r"extra.tsv line 2 has 3 fields but the header has 2 .*a tab inside a field splits it",
        ),
    ],
)
def test_csv_rows_must_have_the_headers_fields(tmp_path, name, text, message):
    """Without this check, pandas takes the extra leading field of every row as an index and drops it, silently."""
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SoftpromptError, match=message):
        read_file(str(path))


def test_malformed_json(tmp_path):
    file = write(tmp_path / "bad.jsonl", '{"text": "a", "label": 1}\n\n{"text": \n')
    with pytest.raises(
        SoftpromptError,
        match=r"could not read .*bad.jsonl \(line 3 is not valid JSON \(Expecting value\)\); "
        r"check that it is valid jsonl",
    ) as err:
        load_rows(SENTIMENT, "train", file)
    assert "\n" not in str(err.value)


def test_a_folder_given_as_data_file(tmp_path):
    with pytest.raises(
        SoftpromptError, match=r"data file .* is a folder; pass a file \(.jsonl, .json, .csv or .tsv\) with --data-file"
    ):
        read_file(str(tmp_path), "--data-file")


def test_missing_column_names_the_file(tmp_path):
    file = write(tmp_path / "train.csv", "sentence,label\ngood,1\n")
    with pytest.raises(SoftpromptError) as err:
        load_examples(SENTIMENT, "train", file)
    assert str(err.value) == (
        f"{file} row 1: column 'text' not found; available columns: sentence, label — "
        "check --input-template, --label-column and --target-column"
    )


def test_unlabeled_glue_test_rows_are_rejected(tmp_path):
    file = write(tmp_path / "test.tsv", "sentence\tlabel\nfine .\t-1\n")
    with pytest.raises(SoftpromptError, match="row 1: label -1 .* pass a labeled split or file"):
        load_examples(get_task("sst2"), "test", file)


# ----------------------------------------------------------------------------- hub errors


def test_task_without_hub_asks_for_files():
    with pytest.raises(
        SoftpromptError, match="task custom has no hub dataset; pass local files with --train-file/--validation-file"
    ):
        load_rows(custom_task("{x}", target_column="y"), "train")


def test_unknown_split():
    with pytest.raises(SoftpromptError, match="unknown split 'dev' for rte; choose one of train, validation, test"):
        load_rows(get_task("rte"), "dev")


def test_unreachable_hub_is_one_line(monkeypatch):
    calls = []

    def offline(*args, **kwargs):
        calls.append((args, kwargs))
        raise ConnectionError("Couldn't reach 'aps/super_glue' on the Hub (LocalEntryNotFoundError)\nmore detail")

    monkeypatch.setattr(data.datasets, "load_dataset", offline)
    with pytest.raises(SoftpromptError) as err:
        load_examples(get_task("rte"), "validation")
    assert calls == [((), {"path": "aps/super_glue", "name": "rte", "split": "validation"})]
    assert str(err.value) == (
        "could not load the validation split of aps/super_glue (config rte, revision main) from the Hugging Face hub "
        "(Couldn't reach 'aps/super_glue' on the Hub (LocalEntryNotFoundError)); pass local files with "
        "--train-file/--validation-file (--data-file for ensemble-eval), or pin another revision with --dataset-revision"
    )


def test_with_the_hub_out_of_reach_datasets_reads_only_the_cache(monkeypatch):
    """One request found no hub: datasets runs in offline mode (the local cache, or an error at once, instead of
    half a minute of retries), and the message says the hub is out of reach and the split is not cached."""
    modes = []

    def not_cached(*args, **kwargs):
        modes.append((hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE))
        raise ConnectionError("Couldn't reach 'aps/super_glue' on the Hub (OfflineModeIsEnabled)")

    monkeypatch.setattr(data, "ask_hub", hub_answering("unreachable", "ConnectError: no route"))
    monkeypatch.setattr(data.datasets, "load_dataset", not_cached)
    offline = hub_constants.HF_HUB_OFFLINE
    with pytest.raises(SoftpromptError) as err:
        load_examples(get_task("rte"), "validation")
    assert modes == [(True, True)] and hub_constants.HF_HUB_OFFLINE == datasets.config.HF_HUB_OFFLINE == offline
    assert str(err.value) == (
        "cannot reach the Hugging Face hub (ConnectError: no route) and the validation split of aps/super_glue (config "
        "rte, revision main) is not in the local cache; pass local files with --train-file/--validation-file "
        "(--data-file for ensemble-eval), or load the dataset once while online"
    )
    cached = [{"premise": "p", "hypothesis": "h", "label": 0, "idx": 0}]
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args, **kwargs: datasets.Dataset.from_list(cached))
    assert load_examples(get_task("rte"), "validation")[0].target == "entailment"  # a cached split loads


def test_train_on_a_hub_dataset_out_of_reach_is_one_line_without_retries(tmp_path):
    """The command as a user runs it offline (the hub at an address where nothing listens, an empty cache): one
    stderr line, no huggingface_hub retry warnings, nothing written."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "PYTHONWARNINGS")}
    env.update(HF_ENDPOINT="http://127.0.0.1:1", HF_HOME=str(tmp_path / "hf"))
    process = subprocess.run(
        [
            sys.executable,
            "-m",
            "softprompt.cli",
            "train",
            "--model",
            "t5-nano",
            "--task",
            "rte",
            "--steps",
            "1",
            "--output-dir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=300,
    )
    assert process.returncode == 2 and process.stdout == ""
    assert process.stderr.splitlines() == [process.stderr.strip()], process.stderr
    assert process.stderr.startswith("error: cannot reach the Hugging Face hub (")
    assert "the train split of aps/super_glue (config rte, revision main) is not in the local cache" in process.stderr
    assert not (tmp_path / "out").exists()


def test_hub_rows_become_examples(monkeypatch):
    hub_rows = [{"premise": "p", "hypothesis": "h", "label": 0, "idx": 0}]
    monkeypatch.setattr(data.datasets, "load_dataset", lambda *args, **kwargs: datasets.Dataset.from_list(hub_rows))
    assert load_examples(get_task("rte"), "train")[0].target == "entailment"


# ----------------------------------------------------------------------------- subsampling


def test_subsample_is_deterministic_nested_and_ordered():
    items = list(range(1000))
    small, large = subsample(items, 50, seed=3), subsample(items, 100, seed=3)
    assert small == subsample(items, 50, seed=3)
    assert small != subsample(items, 50, seed=4)
    assert set(small) <= set(large)
    assert small == sorted(small) and len(small) == 50


def test_subsample_limits():
    assert subsample([1, 2, 3], None) == [1, 2, 3]
    assert subsample([1, 2, 3], 10) == [1, 2, 3]
    with pytest.raises(SoftpromptError, match="must be positive, got 0"):
        subsample([1, 2, 3], 0)


def test_limit_in_load_rows_and_load_examples(tmp_path):
    rows = "".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(40))
    file = write(tmp_path / "train.jsonl", rows)
    first = load_rows(SENTIMENT, "train", file, limit=10, seed=1)
    assert first == load_rows(SENTIMENT, "train", file, limit=10, seed=1)
    assert first != load_rows(SENTIMENT, "train", file, limit=10, seed=2)
    examples = load_examples(SENTIMENT, "train", file, limit=10, seed=1)
    assert [e.source for e in examples] == [f"review: {row['text']}" for row in first]


def test_limit_counts_examples_not_paragraphs():
    file = str(TEST_DATA / "superglue/multirc/train32.jsonl")
    assert len(load_examples(get_task("multirc"), "train", file, limit=5, seed=0)) == 5  # 2 paragraphs, 11 answers
