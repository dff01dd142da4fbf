"""The batching worker and engine as a Python API, without HTTP: one pass over requests of
different prompts and tasks, requests split over passes, no-batching mode, draining on stop,
and a failed pass that fails only its own requests."""

from __future__ import annotations

import json
import time

import pytest

from softprompt.errors import SoftpromptError
from softprompt.model.loading import load_frozen_t5
from softprompt.serve.catalog import Catalog, Input, ServeError
from softprompt.serve.config import Limits
from softprompt.serve.engine import Engine
from softprompt.serve.schema import ClassifyRequest, GenerateRequest
from softprompt.serve.worker import BatchingWorker
from tests.softprompt.serve.harness import write_run
from tests.softprompt.serve.reference import Reference, check_classification, check_generation
from tests.softprompt.serve.rows import CB, COPA, E2E, SST2, unlabeled


class Passes:
    """Observer recording (kind, rows) of every pass."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def on_pass(self, kind, rows, queue_seconds, seconds) -> None:
        self.seen.append((kind, rows))


@pytest.fixture(scope="module")
def runs(serve_runs):
    return [serve_runs[name] for name in ("sst2_a", "cb", "copa", "e2e")]


@pytest.fixture(scope="module")
def catalog(runs, tiny_model_dir):
    return Catalog.load(runs, load_frozen_t5(str(tiny_model_dir)))


@pytest.fixture(scope="module")
def reference(runs, tiny_model_dir):
    return Reference(runs, str(tiny_model_dir))


def engine_with(catalog, **settings) -> tuple[Engine, Passes]:
    passes = Passes()
    return Engine(catalog, Limits(), BatchingWorker(catalog.pool.model, observer=passes, **settings)), passes


def test_requests_of_different_tasks_share_one_pass(catalog, reference):
    engine, passes = engine_with(catalog, max_rows=128, max_wait_ms=0)
    pending = [  # queued before the worker starts: its first pass takes them all
        engine.classify(ClassifyRequest(prompt="sst2_a#1", inputs=unlabeled(SST2[:3]))),
        engine.classify(ClassifyRequest(task="cb", vote="confidence", inputs=unlabeled(CB[:2]))),
        engine.classify(ClassifyRequest(task="copa", inputs=unlabeled(COPA))),
        engine.generate(GenerateRequest(task="e2e_nlg", vote="best_score", inputs=unlabeled(E2E), max_new_tokens=5)),
    ]
    with engine.worker:
        answers = [p.result(timeout=60) for p in pending]
    assert passes.seen == [("score", 3 + 6 + 6), ("generate", 6)]  # classification and generation never share a pass
    check_classification(answers[0], reference.classify("sst2", SST2[:3], ["sst2_a#1"]), None)
    check_classification(answers[1], reference.classify("cb", CB[:2], ["cb#0", "cb#1", "cb#2"]), "confidence")
    check_classification(answers[2], reference.classify("copa", COPA, ["copa#0", "copa#1"]), "majority")
    check_generation(
        answers[3], *reference.generate("e2e_nlg", E2E, ["e2e#0", "e2e#1", "e2e#2"], max_new_tokens=5), "best_score"
    )


def test_a_request_larger_than_max_rows_spans_passes(catalog, reference):
    engine, passes = engine_with(catalog, max_rows=4, max_wait_ms=0)
    with engine.worker:
        answer = engine.classify(ClassifyRequest(task="sst2", inputs=unlabeled(SST2[:3]))).result(timeout=60)
    assert passes.seen == [("score", 4), ("score", 4), ("score", 1)]  # 3 prompts × 3 inputs = 9 rows
    check_classification(answer, reference.classify("sst2", SST2[:3], ["sst2_a#0", "sst2_a#1", "sst2_a#2"]), "majority")


def test_a_pass_split_by_the_token_budget_gives_the_same_answers(catalog, reference):
    """max_tokens=1: every row of the pass becomes its own model call (sorted by length), answers unchanged."""
    engine, passes = engine_with(catalog, max_rows=128, max_wait_ms=0, max_tokens=1)
    pending = [
        engine.classify(ClassifyRequest(task="cb", vote="confidence", inputs=unlabeled(CB[:2]))),
        engine.generate(GenerateRequest(task="e2e_nlg", vote="best_score", inputs=unlabeled(E2E), max_new_tokens=5)),
    ]
    with engine.worker:
        answers = [p.result(timeout=60) for p in pending]
    assert passes.seen == [("score", 6), ("generate", 6)]
    check_classification(answers[0], reference.classify("cb", CB[:2], ["cb#0", "cb#1", "cb#2"]), "confidence")
    check_generation(
        answers[1], *reference.generate("e2e_nlg", E2E, ["e2e#0", "e2e#1", "e2e#2"], max_new_tokens=5), "best_score"
    )


def test_without_batching_every_request_gets_its_own_pass(catalog, reference):
    engine, passes = engine_with(catalog, batching=False)
    pending = [engine.classify(ClassifyRequest(prompt=f"cb#{p}", inputs=unlabeled(CB[:2]))) for p in range(3)]
    with engine.worker:
        answers = [p.result(timeout=60) for p in pending]
    assert passes.seen == [("score", 2)] * 3
    for p, answer in enumerate(answers):
        check_classification(answer, reference.classify("cb", CB[:2], [f"cb#{p}"]), None)


def test_stop_answers_queued_requests_then_refuses_new_ones(catalog, reference):
    engine, passes = engine_with(catalog, max_wait_ms=60_000)  # would wait a minute for more rows
    engine.worker.start()
    pending = engine.classify(ClassifyRequest(task="cb", inputs=unlabeled(CB)))
    time.sleep(0.2)
    assert not pending.future.done()
    start = time.monotonic()
    engine.worker.stop()
    assert time.monotonic() - start < 30 and pending.future.done()
    check_classification(pending.result(), reference.classify("cb", CB, ["cb#0", "cb#1", "cb#2"]), "majority")
    with pytest.raises(ServeError) as refused:
        engine.classify(ClassifyRequest(task="cb", inputs=unlabeled(CB)))
    assert refused.value.status == 503


def test_a_failed_pass_fails_its_requests_and_the_worker_goes_on(catalog, reference, monkeypatch):
    engine, passes = engine_with(catalog, max_wait_ms=0)
    original = engine.worker._answer
    calls = []

    def flaky(lane, rows):
        calls.append(len(rows))
        if len(calls) == 1:
            raise RuntimeError("simulated out of memory")
        return original(lane, rows)

    monkeypatch.setattr(engine.worker, "_answer", flaky)
    with engine.worker:
        failed = engine.classify(ClassifyRequest(prompt="cb#0", inputs=unlabeled(CB[:1])))
        with pytest.raises(RuntimeError, match="simulated"):
            failed.result(timeout=60)
        answer = engine.classify(ClassifyRequest(prompt="cb#1", inputs=unlabeled(CB[:2]))).result(timeout=60)
    check_classification(answer, reference.classify("cb", CB[:2], ["cb#1"]), None)


def _as_custom_run(
    directory, model, template: str | None, seed: int = 3, name: str | None = None, words: str = "no=ham,yes=spam"
) -> str:
    """A run of a custom task, by default spam (label values no/yes → words ham/spam) called ``custom``;
    ``template`` None: its softprompt.json records no training options, as a run imported from PEFT."""
    run = write_run(directory, model, "sst2", 2, seed=seed)
    meta_path = directory / "softprompt.json"
    meta = json.loads(meta_path.read_text())
    meta["task"] = {
        "name": name or "custom",
        "kind": "classification",
        "label_words": [pair.split("=")[1] for pair in words.split(",")],
        "metric": "accuracy",
    }
    if template is not None:
        meta["train_args"] = {
            "task": "custom",
            "input_template": template,
            "label_column": "label",
            "label_words": words,
            "target_column": None,
            "task_name": name,
        }
    meta_path.write_text(json.dumps(meta))
    return run


def test_a_custom_task_without_a_recorded_template_takes_texts_but_not_rows(tmp_path, tiny_model_dir):
    run = _as_custom_run(tmp_path / "spam", str(tiny_model_dir), None)
    catalog = Catalog.load([run], load_frozen_t5(str(tiny_model_dir)))
    task = catalog.resolve(None, "custom").task
    assert [i.choices for i in catalog.inputs(task, None, ["win money now"], 100)] == [("ham", "spam")]
    with pytest.raises(ServeError, match="custom task whose runs do not record its input template") as refused:
        catalog.inputs(task, [{"text": "win money now"}], None, 100)
    assert refused.value.status == 422


def test_a_custom_task_formats_rows_with_the_template_its_runs_recorded(tmp_path, tiny_model_dir):
    run = _as_custom_run(tmp_path / "spam", str(tiny_model_dir), "message: {text}")
    catalog = Catalog.load([run], load_frozen_t5(str(tiny_model_dir)))
    task = catalog.resolve(None, "custom").task
    assert catalog.describe()["tasks"][0]["columns"] == ["text"]
    rows = catalog.inputs(task, [{"text": "win money now"}], None, 100)
    assert (
        rows
        == catalog.inputs(task, None, ["message: win money now"], 100)
        == [Input("message: win money now", ("ham", "spam"))]
    )


def test_runs_of_one_custom_task_with_different_templates_are_refused(tmp_path, tiny_model_dir):
    runs = [
        _as_custom_run(tmp_path / "a", str(tiny_model_dir), "message: {text}"),
        _as_custom_run(tmp_path / "b", str(tiny_model_dir), "sms: {text}", seed=5),
    ]
    with pytest.raises(
        SoftpromptError, match="both say task 'custom' but format its inputs differently.*different --task-name"
    ):
        Catalog.load(runs, load_frozen_t5(str(tiny_model_dir)))


def test_custom_tasks_with_their_own_names_are_served_side_by_side(tmp_path, tiny_model_dir):
    """Two custom tasks, named with --task-name, each format rows with their own template and label words."""
    runs = [
        _as_custom_run(tmp_path / "a", str(tiny_model_dir), "message: {text}", name="spam"),
        _as_custom_run(
            tmp_path / "b", str(tiny_model_dir), "ticket: {text}", seed=5, name="urgency", words="0=routine,1=urgent"
        ),
    ]
    catalog = Catalog.load(runs, load_frozen_t5(str(tiny_model_dir)))
    assert [t["name"] for t in catalog.describe()["tasks"]] == ["spam", "urgency"]
    for task, expected in (
        ("spam", Input("message: hi", ("ham", "spam"))),
        ("urgency", Input("ticket: hi", ("routine", "urgent"))),
    ):
        assert catalog.inputs(catalog.resolve(None, task).task, [{"text": "hi"}], None, 100) == [expected]
