"""The hub path of every built-in task, with ``datasets.load_dataset`` intercepted (no network).

For each task the fake hub records the call's real arguments (bound to ``load_dataset``'s own
signature) and answers with a small in-memory ``datasets.Dataset`` that has the hub's real column
names, feature types and split names. The tests assert the arguments (id, config, revision,
data_files) and the Examples the rows become, so a task that loses its revision, gains a wrong
config or maps a column wrongly fails here. Expected values are written out literally, never read
back from ``softprompt.data.tasks``.
"""

from __future__ import annotations

import inspect
import json
import re
from dataclasses import dataclass
from pathlib import Path

import datasets
import pytest

from softprompt.cli.options import TASK_HELP
from softprompt.data import loading as data
from softprompt.data.custom import task_from_options
from softprompt.data.loading import load_examples
from softprompt.data.tasks import TASKS, Example, get_task, template_fields
from softprompt.errors import SoftpromptError
from tests.conftest import ROOT, hub_answering
from tests.softprompt.cli.helpers import assert_one_line_error, run_cli

TASK_TABLE = ROOT / "docs" / "training.md"  # the guide's table of built-in tasks
PARQUET = "refs/convert/parquet"
BOOL = ("False", "True")
ARGUMENTS = ("path", "name", "revision", "data_files")  # what a task's hub source decides
S, I32 = datasets.Value("string"), datasets.Value("int32")


def _labels(*names: str) -> datasets.ClassLabel:
    return datasets.ClassLabel(names=list(names))


@dataclass
class Hub:
    """One hub dataset as the fake serves it, and what each task must make of it."""

    call: dict  # expected load_dataset arguments (ARGUMENTS), split excluded
    features: dict  # the hub's columns and feature types
    splits: dict[str, list[dict]]  # hub split -> rows
    train: list[Example]  # load_examples(task, "train")
    validation: list[Example]  # load_examples(task, "validation", grouped=True)


def _call(path: str, name: str | None = None, revision: str | None = None, data_files=None) -> dict:
    return {"path": path, "name": name, "revision": revision, "data_files": data_files}


def _cls(source: str, target: str, words: tuple[str, ...], label: int) -> Example:
    return Example(source, target, choices=words, label=label)


RTE_WORDS = ("entailment", "not_entailment")
CB_WORDS = ("entailment", "contradiction", "neutral")
WEBNLG_FILES = {"train": "en/train/*.parquet", "validation": "en/validation/*.parquet", "test": "en/test/*.parquet"}

HUB: dict[str, Hub] = {
    "boolq": Hub(
        _call("aps/super_glue", "boolq"),
        {"question": S, "passage": S, "idx": I32, "label": _labels(*BOOL)},
        {
            "train": [{"question": "is water wet", "passage": "Water is wet.", "idx": 0, "label": 1}],
            "validation": [{"question": "do fish fly", "passage": "Fish swim.", "idx": 0, "label": 0}],
        },
        [_cls("boolq question: is water wet passage: Water is wet.", "True", BOOL, 1)],
        [_cls("boolq question: do fish fly passage: Fish swim.", "False", BOOL, 0)],
    ),
    "cb": Hub(
        _call("aps/super_glue", "cb"),
        {"premise": S, "hypothesis": S, "idx": I32, "label": _labels(*CB_WORDS)},
        {
            "train": [{"premise": "It rained.", "hypothesis": "It was dry.", "idx": 0, "label": 1}],
            "validation": [{"premise": "He left.", "hypothesis": "He may return.", "idx": 0, "label": 2}],
        },
        [_cls("cb hypothesis: It was dry. premise: It rained.", "contradiction", CB_WORDS, 1)],
        [_cls("cb hypothesis: He may return. premise: He left.", "neutral", CB_WORDS, 2)],
    ),
    "copa": Hub(
        _call("aps/super_glue", "copa"),
        {"premise": S, "choice1": S, "choice2": S, "question": S, "idx": I32, "label": _labels("choice1", "choice2")},
        {
            "train": [
                {
                    "premise": "The man fell.",
                    "choice1": "He tripped.",
                    "choice2": "He sang.",
                    "question": "cause",
                    "idx": 0,
                    "label": 0,
                }
            ],
            "validation": [
                {
                    "premise": "The ice melted.",
                    "choice1": "It froze.",
                    "choice2": "It got warm.",
                    "question": "cause",
                    "idx": 0,
                    "label": 1,
                }
            ],
        },
        [
            Example(
                "copa premise: The man fell. question: cause",
                "He tripped.",
                choices=("He tripped.", "He sang."),
                label=0,
            )
        ],
        [
            Example(
                "copa premise: The ice melted. question: cause",
                "It got warm.",
                choices=("It froze.", "It got warm."),
                label=1,
            )
        ],
    ),
    "rte": Hub(
        _call("aps/super_glue", "rte"),
        {"premise": S, "hypothesis": S, "idx": I32, "label": _labels(*RTE_WORDS)},
        {
            "train": [{"premise": "A cat sat.", "hypothesis": "An animal sat.", "idx": 0, "label": 0}],
            "validation": [{"premise": "A dog ran.", "hypothesis": "A cat ran.", "idx": 0, "label": 1}],
        },
        [_cls("rte sentence1: A cat sat. sentence2: An animal sat.", "entailment", RTE_WORDS, 0)],
        [_cls("rte sentence1: A dog ran. sentence2: A cat ran.", "not_entailment", RTE_WORDS, 1)],
    ),
    "wic": Hub(
        _call("aps/super_glue", "wic"),
        {
            "word": S,
            "sentence1": S,
            "sentence2": S,
            "start1": I32,
            "start2": I32,
            "end1": I32,
            "end2": I32,
            "idx": I32,
            "label": _labels(*BOOL),
        },
        {
            "train": [
                {
                    "word": "bank",
                    "sentence1": "The river bank.",
                    "sentence2": "The bank loan.",
                    "start1": 10,
                    "start2": 4,
                    "end1": 14,
                    "end2": 8,
                    "idx": 0,
                    "label": 0,
                }
            ],
            "validation": [
                {
                    "word": "run",
                    "sentence1": "I run.",
                    "sentence2": "They run.",
                    "start1": 2,
                    "start2": 5,
                    "end1": 5,
                    "end2": 8,
                    "idx": 0,
                    "label": 1,
                }
            ],
        },
        [_cls("wic sentence1: The river bank. sentence2: The bank loan. word: bank", "False", BOOL, 0)],
        [_cls("wic sentence1: I run. sentence2: They run. word: run", "True", BOOL, 1)],
    ),
    "wsc": Hub(
        _call("aps/super_glue", "wsc.fixed"),
        {
            "text": S,
            "span1_index": I32,
            "span2_index": I32,
            "span1_text": S,
            "span2_text": S,
            "idx": I32,
            "label": _labels(*BOOL),
        },
        {
            "train": [
                {
                    "text": "Mark told Pete he won.",
                    "span1_index": 0,
                    "span2_index": 3,
                    "span1_text": "Mark",
                    "span2_text": "he",
                    "idx": 0,
                    "label": 1,
                }
            ],
            "validation": [
                {
                    "text": "The cup fell off the table because it was round.",
                    "span1_index": 5,
                    "span2_index": 8,
                    "span1_text": "the table",
                    "span2_text": "it",
                    "idx": 0,
                    "label": 0,
                }
            ],
        },
        [_cls("wsc text: Mark told Pete he won. pronoun: he candidate: Mark", "True", BOOL, 1)],
        [
            _cls(
                "wsc text: The cup fell off the table because it was round. pronoun: it candidate: the table",
                "False",
                BOOL,
                0,
            )
        ],
    ),
    "multirc": Hub(
        _call("aps/super_glue", "multirc"),
        {
            "paragraph": S,
            "question": S,
            "answer": S,
            "idx": {"paragraph": I32, "question": I32, "answer": I32},
            "label": _labels(*BOOL),
        },
        {
            "train": [
                {
                    "paragraph": "Sue baked bread.",
                    "question": "What did Sue bake?",
                    "answer": "bread",
                    "idx": {"paragraph": 0, "question": 0, "answer": 0},
                    "label": 1,
                },
                {
                    "paragraph": "Sue baked bread.",
                    "question": "What did Sue bake?",
                    "answer": "a cake",
                    "idx": {"paragraph": 0, "question": 0, "answer": 1},
                    "label": 0,
                },
            ],
            "validation": [
                {
                    "paragraph": "Tom swam.",
                    "question": "Who swam?",
                    "answer": "Tom",
                    "idx": {"paragraph": 0, "question": 0, "answer": 0},
                    "label": 1,
                }
            ],
        },
        [
            _cls("multirc question: What did Sue bake? answer: bread paragraph: Sue baked bread.", "True", BOOL, 1),
            _cls("multirc question: What did Sue bake? answer: a cake paragraph: Sue baked bread.", "False", BOOL, 0),
        ],
        [_cls("multirc question: Who swam? answer: Tom paragraph: Tom swam.", "True", BOOL, 1)],
    ),
    "sst2": Hub(
        _call("nyu-mll/glue", "sst2"),
        {"sentence": S, "label": _labels("negative", "positive"), "idx": I32},
        {
            "train": [{"sentence": "a gem .", "label": 1, "idx": 0}],
            "validation": [{"sentence": "a mess .", "label": 0, "idx": 0}],
        },
        [_cls("sst2 sentence: a gem .", "positive", ("negative", "positive"), 1)],
        [_cls("sst2 sentence: a mess .", "negative", ("negative", "positive"), 0)],
    ),
    "mrpc": Hub(
        _call("nyu-mll/glue", "mrpc"),
        {"sentence1": S, "sentence2": S, "label": _labels("not_equivalent", "equivalent"), "idx": I32},
        {
            "train": [{"sentence1": "He left.", "sentence2": "He went away.", "label": 1, "idx": 0}],
            "validation": [{"sentence1": "It is hot.", "sentence2": "It is cold.", "label": 0, "idx": 0}],
        },
        [_cls("mrpc sentence1: He left. sentence2: He went away.", "equivalent", ("not_equivalent", "equivalent"), 1)],
        [
            _cls(
                "mrpc sentence1: It is hot. sentence2: It is cold.",
                "not_equivalent",
                ("not_equivalent", "equivalent"),
                0,
            )
        ],
    ),
    "qqp": Hub(
        _call("nyu-mll/glue", "qqp"),
        {"question1": S, "question2": S, "label": _labels("not_duplicate", "duplicate"), "idx": I32},
        {
            "train": [{"question1": "How old is Rome?", "question2": "What is Rome's age?", "label": 1, "idx": 0}],
            "validation": [
                {"question1": "Why is the sky blue?", "question2": "Why is grass green?", "label": 0, "idx": 0}
            ],
        },
        [
            _cls(
                "qqp question1: How old is Rome? question2: What is Rome's age?",
                "duplicate",
                ("not_duplicate", "duplicate"),
                1,
            )
        ],
        [
            _cls(
                "qqp question1: Why is the sky blue? question2: Why is grass green?",
                "not_duplicate",
                ("not_duplicate", "duplicate"),
                0,
            )
        ],
    ),
    "e2e_nlg": Hub(
        _call("tuetschek/e2e_nlg", revision=PARQUET),
        {"meaning_representation": S, "human_reference": S},
        {
            "train": [
                {
                    "meaning_representation": "name[The Eagle], food[French]",
                    "human_reference": "The Eagle serves French food.",
                }
            ],
            "validation": [
                {
                    "meaning_representation": "name[The Mill], area[riverside]",
                    "human_reference": "The Mill is by the river.",
                },
                {
                    "meaning_representation": "name[The Mill], area[riverside]",
                    "human_reference": "The Mill is on the riverside.",
                },
            ],
        },
        [
            Example(
                "name : The Eagle | food : French",
                "The Eagle serves French food.",
                references=("The Eagle serves French food.",),
            )
        ],
        [
            Example(
                "name : The Mill | area : riverside",
                "The Mill is by the river.",
                references=("The Mill is by the river.", "The Mill is on the riverside."),
            )
        ],
    ),
    "webnlg": Hub(
        _call("GEM/web_nlg", revision=PARQUET, data_files=WEBNLG_FILES),
        {
            "gem_id": S,
            "input": datasets.List(S),
            "target": S,
            "references": datasets.List(S),
            "category": S,
            "webnlg_id": S,
        },
        # GEM: train has one row per text and empty references; validation/test one row per input
        {
            "train": [
                {
                    "gem_id": "web_nlg_en-train-0",
                    "input": ["Aarhus | leader | Jacob_Bundsgaard"],
                    "target": "Aarhus is led by Jacob Bundsgaard.",
                    "references": [],
                    "category": "City",
                    "webnlg_id": "train/City/1/Id1",
                },
                {
                    "gem_id": "web_nlg_en-train-1",
                    "input": ["Aarhus | leader | Jacob_Bundsgaard"],
                    "target": "Jacob Bundsgaard leads Aarhus.",
                    "references": [],
                    "category": "City",
                    "webnlg_id": "train/City/1/Id1",
                },
            ],
            "validation": [
                {
                    "gem_id": "web_nlg_en-validation-0",
                    "input": ["Alan_Bean | birthPlace | Wheeler,_Texas", "Alan_Bean | occupation | Test_pilot"],
                    "target": "Alan Bean, a test pilot, was born in Wheeler, Texas.",
                    "references": [
                        "Alan Bean, a test pilot, was born in Wheeler, Texas.",
                        "Test pilot Alan Bean was born in Wheeler, Texas.",
                    ],
                    "category": "Astronaut",
                    "webnlg_id": "dev/Astronaut/2/Id1",
                }
            ],
            "test": [
                {
                    "gem_id": "web_nlg_en-test-0",
                    "input": ["Rome | country | Italy"],
                    "target": "Rome is in Italy.",
                    "references": ["Rome is in Italy."],
                    "category": "City",
                    "webnlg_id": "test/City/1/Id1",
                }
            ],
        },
        [
            Example(
                "Aarhus : leader : Jacob Bundsgaard",
                "Aarhus is led by Jacob Bundsgaard.",
                references=("Aarhus is led by Jacob Bundsgaard.",),
            ),
            Example(
                "Aarhus : leader : Jacob Bundsgaard",
                "Jacob Bundsgaard leads Aarhus.",
                references=("Jacob Bundsgaard leads Aarhus.",),
            ),
        ],
        [
            Example(
                "Alan Bean : birthPlace : Wheeler, Texas | Alan Bean : occupation : Test pilot",
                "Alan Bean, a test pilot, was born in Wheeler, Texas.",
                references=(
                    "Alan Bean, a test pilot, was born in Wheeler, Texas.",
                    "Test pilot Alan Bean was born in Wheeler, Texas.",
                ),
            )
        ],
    ),
    "xsum": Hub(
        _call("EdinburghNLP/xsum", revision=PARQUET),
        {"document": S, "summary": S, "id": S},
        {
            "train": [{"document": "Rain fell all day in Leeds.", "summary": "Leeds had rain.", "id": "1"}],
            "validation": [
                {"document": "The club won the cup final 2-0.", "summary": "The club won the cup.", "id": "2"}
            ],
        },
        [Example("summarize: Rain fell all day in Leeds.", "Leeds had rain.", references=("Leeds had rain.",))],
        [
            Example(
                "summarize: The club won the cup final 2-0.",
                "The club won the cup.",
                references=("The club won the cup.",),
            )
        ],
    ),
}
SIGNATURE = inspect.signature(datasets.load_dataset)


class FakeHub:
    """Stands in for ``datasets.load_dataset``: records each call's bound arguments, serves HUB."""

    def __init__(self, error: Exception | None = None):
        self.calls: list[dict] = []
        self.error = error

    def __call__(self, *args, **kwargs):
        bound = SIGNATURE.bind(*args, **kwargs)  # a misspelled argument lands in config_kwargs
        self.calls.append(dict(bound.arguments))
        if self.error is not None:
            raise self.error
        args = bound.arguments
        key = (args["path"], args.get("name"))
        hub = next(h for h in HUB.values() if (h.call["path"], h.call["name"]) == key)
        features = datasets.Features(hub.features)
        splits = {name: datasets.Dataset.from_list(rows, features=features) for name, rows in hub.splits.items()}
        if args.get("split") is None:
            return datasets.DatasetDict(splits)
        if args["split"] not in splits:  # datasets' own words for a split the data lacks
            raise ValueError(f'Unknown split "{args["split"]}". Should be one of {list(splits)}.')
        return splits[args["split"]]


@pytest.fixture(autouse=True)
def answering_hub(monkeypatch) -> None:
    """The one request ``softprompt.model.hub.ask_hub`` makes before a load finds a hub that answers (no network)."""
    monkeypatch.setattr(data, "ask_hub", hub_answering())


@pytest.fixture
def hub(monkeypatch) -> FakeHub:
    fake = FakeHub()
    monkeypatch.setattr(data.datasets, "load_dataset", fake)
    return fake


def _decided(call: dict) -> dict:
    """The arguments a hub source decides (absent = the default, None)."""
    return {name: call.get(name) for name in ARGUMENTS}


# ----------------------------------------------------------------------------- every task


def test_every_builtin_task_has_a_hub_case():
    assert set(HUB) == set(list(TASKS))


@pytest.mark.parametrize("name", list(TASKS))
def test_hub_call_and_column_mapping(name, hub):
    expected = HUB[name]  # a new built-in task fails here until it gets a case
    task = get_task(name)
    assert load_examples(task, "train") == expected.train
    assert load_examples(task, "validation", grouped=True) == expected.validation
    assert [call["split"] for call in hub.calls] == ["train", "validation"]
    for call in hub.calls:
        assert _decided(call) == expected.call
        assert set(call) <= {"split", *ARGUMENTS}, f"unexpected load_dataset arguments: {call}"


def test_webnlg_ungrouped_validation_gives_one_example_per_reference(hub):
    examples = load_examples(get_task("webnlg"), "validation")
    assert [e.target for e in examples] == list(HUB["webnlg"].validation[0].references)
    assert {e.source for e in examples} == {HUB["webnlg"].validation[0].source}


def test_webnlg_local_jsonl_and_hub_rows_agree(monkeypatch, tmp_path):
    local = tmp_path / "val.jsonl"
    local.write_text(
        '{"triples": [["Alan_Bean", "birthPlace", "Wheeler,_Texas"], '
        '["Alan_Bean", "occupation", "Test_pilot"]], "text": '
        '["Alan Bean, a test pilot, was born in Wheeler, Texas.", '
        '"Test pilot Alan Bean was born in Wheeler, Texas."]}\n'
    )
    gem = tmp_path / "gem.jsonl"  # a GEM row saved locally reads like the hub's
    gem.write_text(
        datasets.Dataset.from_list(HUB["webnlg"].splits["validation"]).to_pandas().to_json(orient="records", lines=True)
    )
    task = get_task("webnlg")
    from_file = load_examples(task, "validation", str(local), grouped=True)
    assert load_examples(task, "validation", str(gem), grouped=True) == from_file
    monkeypatch.setattr(data.datasets, "load_dataset", FakeHub())
    assert from_file == load_examples(task, "validation", grouped=True) == HUB["webnlg"].validation


# ----------------------------------------------------------------------------- overrides, errors


def test_dataset_revision_override_replaces_the_task_revision(hub):
    for name, revision in [("xsum", "v1.0"), ("rte", "0123abcd"), ("webnlg", "main")]:
        load_examples(task_from_options(name, dataset_revision=revision), "train")
        assert hub.calls[-1]["revision"] == revision
        assert _decided(hub.calls[-1]) == {**HUB[name].call, "revision": revision}
    assert get_task("xsum").hub.revision == PARQUET  # the registry is untouched


def test_dataset_revision_needs_a_hub_task():
    with pytest.raises(
        SoftpromptError,
        match="--dataset-revision applies to tasks read from the Hugging Face hub; custom tasks read local files",
    ):
        task_from_options("custom", "review: {sentence}", target_column="summary", dataset_revision="main")
    with pytest.raises(SoftpromptError, match="must name a branch, tag or commit"):
        task_from_options("rte", dataset_revision=" ")


def test_hub_failure_is_one_line_naming_the_source(monkeypatch):
    fake = FakeHub(ConnectionError("Couldn't reach 'GEM/web_nlg' on the Hub (ConnectError)\nmore"))
    monkeypatch.setattr(data.datasets, "load_dataset", fake)
    with pytest.raises(SoftpromptError) as err:
        load_examples(get_task("webnlg"), "validation")
    assert str(err.value) == (
        "could not load the validation split of GEM/web_nlg (config default, revision "
        "refs/convert/parquet) from the Hugging Face hub (Couldn't reach 'GEM/web_nlg' on the Hub "
        "(ConnectError)); pass local files with --train-file/--validation-file (--data-file for "
        "ensemble-eval), or pin another revision with --dataset-revision"
    )
    assert _decided(fake.calls[0]) == HUB["webnlg"].call


# ----------------------------------------------------------------------------- through the CLI

TINY = [
    "--n-prompts",
    "2",
    "--prompt-length",
    "3",
    "--steps",
    "2",
    "--batch-size",
    "2",
    "--eval-every",
    "2",
    "--max-source-length",
    "32",
    "--max-new-tokens",
    "4",
    "--quiet",
]


@pytest.fixture(scope="module")
def webnlg_hub_run(tiny_model_dir, tmp_path_factory) -> tuple[Path, list[dict]]:
    """``softprompt train --task webnlg --dataset-revision pinned`` on the fake hub, no files."""
    fake = FakeHub()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data.datasets, "load_dataset", fake)
        out = tmp_path_factory.mktemp("hub-runs") / "webnlg"
        result = run_cli(
            "train",
            "--model",
            tiny_model_dir,
            "--task",
            "webnlg",
            "--dataset-revision",
            "pinned",
            *TINY,
            "--output-dir",
            out,
        )
    assert result.exit_code == 0, result.stderr
    return out, fake.calls


def test_train_reads_the_hub_at_the_given_revision(webnlg_hub_run):
    out, calls = webnlg_hub_run
    assert [call["split"] for call in calls] == ["train", "validation"]
    assert all(_decided(c) == {**HUB["webnlg"].call, "revision": "pinned"} for c in calls)
    hub = {"dataset": "GEM/web_nlg", "config": None, "revision": "pinned"}
    assert json.loads((out / "softprompt.json").read_text())["data"] == {
        "train": {"hub": hub},
        "validation": {"hub": hub},
    }


def test_ensemble_eval_reads_the_hub_at_the_given_revision(webnlg_hub_run, hub, tmp_path):
    run, _ = webnlg_hub_run
    result = run_cli(
        "ensemble-eval",
        "--prompts",
        run,
        "--task",
        "webnlg",
        "--split",
        "test",
        "--dataset-revision",
        "v2",
        "--vote",
        "majority,mbr",
        "--max-new-tokens",
        "4",
        "--quiet",
        "--output",
        tmp_path / "eval.json",
    )
    assert result.exit_code == 0, result.stderr
    assert [(c["split"], c["revision"]) for c in hub.calls] == [("test", "v2")]
    assert _decided(hub.calls[0]) == {**HUB["webnlg"].call, "revision": "v2"}
    assert (tmp_path / "eval.json").is_file()


def test_sweep_passes_the_revision_and_fails_in_one_line(tiny_model_dir, monkeypatch, tmp_path):
    fake = FakeHub(ConnectionError("Couldn't reach 'aps/super_glue' on the Hub (ConnectError)"))
    monkeypatch.setattr(data.datasets, "load_dataset", fake)
    result = run_cli(
        "sweep",
        "--models",
        tiny_model_dir,
        "--task",
        "rte",
        "--dataset-revision",
        "v9",
        "--steps",
        "1",
        "--eval-every",
        "1",
        "--out-dir",
        tmp_path / "sweep",
        "--quiet",
    )
    assert_one_line_error(
        result,
        "could not load the validation split of aps/super_glue (config rte, revision v9)",
        "--train-file/--validation-file",
    )
    assert _decided(fake.calls[0]) == {**HUB["rte"].call, "revision": "v9"}


# ----------------------------------------------------------------------------- the real loader


def _parquet(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows).to_parquet(str(path))


def test_parquet_export_layouts_load_with_these_arguments(tmp_path):
    """A local copy of each export's layout, read by the real ``datasets.load_dataset`` with the
    task's own arguments (the path made local, the revision dropped): WebNLG's data_files keep
    only the English train/validation/test files, E2E's default patterns find all three splits."""
    gem = tmp_path / "web_nlg"
    for folder in (
        "en/train",
        "en/validation",
        "en/test",
        "en/challenge_train_sample",
        "en/challenge_validation_sample",
        "ru/train",
        "ru/validation",
    ):
        _parquet(gem / folder / "0000.parquet", [{"input": [f"{folder} | p | o"], "target": folder}])
    kwargs = get_task("webnlg").hub.load_kwargs("validation")
    loaded = datasets.load_dataset(**{**kwargs, "path": str(gem), "revision": None}, cache_dir=str(tmp_path / "cache"))
    assert loaded.to_list() == [{"input": ["en/validation | p | o"], "target": "en/validation"}]

    e2e = tmp_path / "e2e_nlg"
    for split in ("train", "validation", "test"):
        _parquet(
            e2e / "default" / split / "0000.parquet",
            [{"meaning_representation": f"name[{split}]", "human_reference": split}],
        )
    kwargs = get_task("e2e_nlg").hub.load_kwargs("test")
    loaded = datasets.load_dataset(**{**kwargs, "path": str(e2e), "revision": None}, cache_dir=str(tmp_path / "cache"))
    assert loaded.to_list() == [{"meaning_representation": "name[test]", "human_reference": "test"}]


# ----------------------------------------------------------------------------- docs agree


def _task_table_rows() -> dict[str, str]:
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| (.+)$", TASK_TABLE.read_text(), flags=re.MULTILINE)
    return {name: rest for name, rest in rows if name in list(TASKS)}


@pytest.mark.parametrize("name", list(TASKS))
def test_the_guides_task_table_matches_the_registry(name):
    task, row = get_task(name), _task_table_rows().get(name)
    assert row is not None, f"the task table of docs/training.md has no row for {name}"
    metric, source, columns = [cell.strip() for cell in row.rstrip("| ").split(" | ")][:3]
    assert metric == task.metric
    assert source.startswith(f"`{task.hub.dataset}`")
    assert f"(`{task.hub.config}`)" in source if task.hub.config else "(`" not in source
    assert f"@ `{task.hub.revision or 'main'}`" in source
    if task.hub.data_files:  # one pattern per split, written once with the splits in braces
        braced = {
            pattern.replace(split, "{" + ",".join(dict(task.hub.data_files)) + "}")
            for split, pattern in task.hub.data_files
        }
        assert len(braced) == 1 and f"files `{braced.pop()}`" in source
    else:
        assert "files" not in source
    needed = (*template_fields(task.template), *task.choice_columns, task.target_column)
    assert all(re.search(rf"\b{column}\b", columns) for column in needed), (needed, columns)


def test_task_help_lists_every_builtin_task():
    listed = re.search(r"\(([^)]*)\)", TASK_HELP).group(1)
    assert [n.strip() for n in listed.split(",")] == list(TASKS)
