"""ensemble-eval end to end on real data with tiny random T5s (built in-process, saved locally).

Covers: pooling runs, the report files, identical numbers on re-runs, mismatch errors, domain
transfer, a generation task (E2E) with BLEU/chrF/ROUGE-L per prompt, mean, best and rules, and the
predictions lines' input and row index back into the data file (subsampled, MultiRC, grouped E2E).
"""

import json

import pytest
import torch

from ensembles.evaluate import read_report
from ensembles.pipeline import check_settings, run_ensemble_eval, write_outputs
from ensembles.pool import load_pool, read_pool_metas, task_difference
from ensembles.settings import EvalConfig, resolve_settings
from softprompt.data.loading import load_examples, read_file
from softprompt.data.tasks import get_task
from softprompt.errors import SoftpromptError
from softprompt.model.decoding import DECODING_DEFAULTS
from softprompt.model.loading import load_frozen_t5, save_model_dir
from softprompt.model.random_models import random_t5
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from tests.conftest import TEST_DATA

CB = TEST_DATA / "superglue" / "cb"
E2E = TEST_DATA / "e2e"
MULTIRC = TEST_DATA / "superglue" / "multirc"


def _prediction_lines(core: dict, output) -> list[dict]:
    """The predictions JSONL that ``write_outputs`` writes beside ``output``, parsed."""
    write_outputs(core, output)
    return [json.loads(line) for line in output.with_suffix(".predictions.jsonl").read_text().splitlines()]


def _train(tmp_path, name, model_dir, task_name, train_file, val_file, **overrides):
    task = get_task(task_name)
    settings = dict(
        model=str(model_dir),
        task=task_name,
        output_dir=str(tmp_path / name),
        n_prompts=2,
        prompt_length=3,
        init="sampled-vocab",
        steps=2,
        batch_size=4,
        eval_every=2,
        max_source_length=64,
        max_target_length=24,
        decoding={"max_new_tokens": 8},
    )
    cfg = TrainConfig(**(settings | overrides))
    frozen = load_frozen_t5(str(model_dir))
    train(
        cfg,
        frozen,
        task,
        load_examples(task, "train", str(train_file), 16, 0),
        load_examples(task, "validation", str(val_file), 8, 0, grouped=True),
        progress=False,
    )
    return cfg.output_dir


@pytest.fixture(scope="module")
def cb_runs(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("cb")
    return [
        _train(tmp, f"run{i}", tiny_model_dir, "cb", CB / "train.jsonl", CB / "val.jsonl", seed=i) for i in range(2)
    ]


def test_pooled_runs_write_identical_reports_on_rerun(tmp_path, cb_runs, tiny_model_dir):
    task = get_task("cb")
    examples = load_examples(task, "validation", str(CB / "val.jsonl"), 12, 0)
    frozen = load_frozen_t5(str(tiny_model_dir))
    reports = []
    for attempt in range(2):
        core = run_ensemble_eval(load_pool(cb_runs, frozen), task, examples, "validation", ["majority", "confidence"])
        paths = write_outputs(core, tmp_path / f"eval{attempt}.json")
        assert all(p.is_file() for p in paths)
        reports.append(read_report(paths[0]))
    assert reports[0] == reports[1]
    report = reports[0]
    assert [row["prompt"] for row in report["per_prompt"]] == ["run0#0", "run0#1", "run1#0", "run1#1"]
    assert report["primary"] == "macro_f1" and set(report["ensembles"]) == {"majority", "confidence"}
    assert report["settings"]["n_prompts"] == 4 and report["n_examples"] == 12
    assert report["settings"]["max_length"] == 64  # the Python API, like the CLI: the runs' --max-source-length
    lines = (tmp_path / "eval0.predictions.jsonl").read_text().splitlines()
    assert len(lines) == 12 and set(json.loads(lines[0])["prompts"]) == {"run0#0", "run0#1", "run1#0", "run1#1"}


def test_predictions_carry_the_input_and_the_data_row_of_subsampled_examples(tmp_path, cb_runs, tiny_model_dir):
    """--limit picks 5 of CB's 12 rows: each line's index is that example's row in the file, its input the row
    formatted as the model saw it, its gold the row's label and its idx the row's own idx."""
    task, rows = get_task("cb"), read_file(str(CB / "val.jsonl"))
    examples = load_examples(task, "validation", str(CB / "val.jsonl"), 5, seed=0)
    core = run_ensemble_eval(
        load_pool(cb_runs, load_frozen_t5(str(tiny_model_dir))), task, examples, "validation", ["majority"]
    )
    lines = _prediction_lines(core, tmp_path / "eval.json")
    assert [line["input"] for line in lines] == [e.source for e in examples]
    assert [line["index"] for line in lines] != list(range(5))  # rows, not positions among the evaluated examples
    for line in lines:
        (from_row,) = task.to_examples([rows[line["index"]]])
        assert (line["input"], line["gold"], line["idx"]) == (
            from_row.source,
            from_row.label,
            rows[line["index"]]["idx"],
        )
        assert list(line)[:3] == ["index", "idx", "input"] and {"prompts", "ensembles"} <= set(line)


def test_multirc_predictions_name_the_paragraph_row_and_the_question_and_answer_ids(tmp_path, tiny_model_dir):
    """A MultiRC file row is a paragraph of many questions and answers: each line's index is its paragraph's row, idx
    the SuperGLUE paragraph/question/answer ids, and the input the example built from that answer."""
    task, rows = get_task("multirc"), read_file(str(MULTIRC / "val.jsonl"))
    run = _train(tmp_path, "multirc", tiny_model_dir, "multirc", MULTIRC / "train32.jsonl", MULTIRC / "val.jsonl")
    examples = load_examples(task, "validation", str(MULTIRC / "val.jsonl"), 7, seed=0)
    core = run_ensemble_eval(
        load_pool([run], load_frozen_t5(str(tiny_model_dir))), task, examples, "validation", ["majority"]
    )
    lines = _prediction_lines(core, tmp_path / "eval.json")
    assert len(lines) == 7 and {line["index"] for line in lines} == {0, 1}
    for line in lines:
        paragraph = rows[line["index"]]
        assert line["idx"]["paragraph"] == paragraph["idx"]
        question = next(q for q in paragraph["passage"]["questions"] if q["idx"] == line["idx"]["question"])
        answer = next(a for a in question["answers"] if a["idx"] == line["idx"]["answer"])
        assert (
            line["input"]
            == f"multirc question: {question['question']} answer: {answer['text']} paragraph: {paragraph['passage']['text']}"
        )
        assert line["gold"] == answer["label"]


def test_pooling_refuses_other_models_and_tasks(tmp_path, cb_runs, tiny_model_dir):
    other_model = tmp_path / "wide"
    save_model_dir(random_t5(d_model=48), other_model)
    wide_run = _train(tmp_path, "wide_run", other_model, "cb", CB / "train.jsonl", CB / "val.jsonl")
    with pytest.raises(SoftpromptError, match="same model"):
        read_pool_metas([cb_runs[0], wide_run])
    rte = TEST_DATA / "superglue" / "rte"
    rte_run = _train(tmp_path, "rte_run", tiny_model_dir, "rte", rte / "train.jsonl", rte / "val.jsonl")
    with pytest.raises(SoftpromptError, match="were trained on tasks 'cb' and 'rte'; pool only runs of one task"):
        read_pool_metas([rte_run, cb_runs[0]])
    longer = _train(tmp_path, "long", tiny_model_dir, "cb", CB / "train.jsonl", CB / "val.jsonl", prompt_length=5)
    with pytest.raises(SoftpromptError, match="prompt length"):
        read_pool_metas([cb_runs[0], longer])


def test_transfer_needs_flag_and_same_class_count(cb_runs, tiny_model_dir):
    frozen = load_frozen_t5(str(tiny_model_dir))
    rte = get_task("rte")
    examples = load_examples(rte, "validation", str(TEST_DATA / "superglue" / "rte" / "val.jsonl"), 4, 0)
    with pytest.raises(SoftpromptError, match="--transfer"):
        run_ensemble_eval(load_pool(cb_runs[:1], frozen), rte, examples, "validation", ["majority"])
    with pytest.raises(SoftpromptError, match="number of classes"):  # CB has 3 classes, RTE 2
        run_ensemble_eval(load_pool(cb_runs[:1], frozen), rte, examples, "validation", ["majority"], transfer=True)


def test_qqp_to_mrpc_transfer_scores_qqp_label_words(tmp_path, tiny_model_dir):
    def rows(a, b):
        return "".join(json.dumps({a: f"first {i}", b: f"second {i}", "label": i % 2}) + "\n" for i in range(6))

    qqp_file, mrpc_file = tmp_path / "qqp.jsonl", tmp_path / "mrpc.jsonl"
    qqp_file.write_text(rows("question1", "question2"))
    mrpc_file.write_text(rows("sentence1", "sentence2"))
    run = _train(tmp_path, "qqp_run", tiny_model_dir, "qqp", qqp_file, qqp_file)
    mrpc = get_task("mrpc")
    core = run_ensemble_eval(
        load_pool([run], load_frozen_t5(str(tiny_model_dir))),
        mrpc,
        load_examples(mrpc, "validation", str(mrpc_file)),
        "validation",
        ["majority"],
        transfer=True,
    )
    note = " ".join(core["report"]["notes"])
    assert "domain transfer" in note and "equivalent→duplicate" in note
    assert core["report"]["n_examples"] == 6


def test_generation_on_e2e_reports_bleu_chrf_rouge(tmp_path, tiny_model_dir):
    run = _train(
        tmp_path, "e2e", tiny_model_dir, "e2e_nlg", E2E / "devset.csv", E2E / "testset_w_refs.csv", eval_every=2
    )
    task = get_task("e2e_nlg")
    examples = load_examples(task, "test", str(E2E / "testset_w_refs.csv"), 6, 0, grouped=True)
    assert all(len(e.references) > 1 for e in examples)  # multi-reference grouping
    core = run_ensemble_eval(
        load_pool([run], load_frozen_t5(str(tiny_model_dir))),
        task,
        examples,
        "test",
        ["majority", "mbr", "best_score"],
        EvalConfig(max_new_tokens=8),
    )
    report = core["report"]
    assert report["kind"] == "generation" and report["primary"] == "bleu"
    for metric in ("bleu", "chrf", "rougeL"):
        assert metric in report["mean"] and metric in report["best"]
        assert all(metric in row for row in report["per_prompt"])
    assert set(report["ensembles"]) == {"majority", "mbr", "best_score"}
    rows = read_file(str(E2E / "testset_w_refs.csv"))
    for line, example in zip(_prediction_lines(core, tmp_path / "eval.json"), examples, strict=True):
        assert line["input"] == example.source and line["index"] == line["rows"][0]
        assert [rows[n]["ref"] for n in line["rows"]] == line["references"]  # each reference's own row
        assert {task.to_examples([rows[n]])[0].source for n in line["rows"]} == {line["input"]}


def test_mixed_task_serving_pool_routes_each_row_to_its_prompt(tmp_path, cb_runs, tiny_model_dir):
    rte = TEST_DATA / "superglue" / "rte"
    rte_run = _train(tmp_path, "rte_serve", tiny_model_dir, "rte", rte / "train.jsonl", rte / "val.jsonl")
    frozen = load_frozen_t5(str(tiny_model_dir))
    pool = load_pool([cb_runs[0], rte_run], frozen, mixed_tasks=True)
    assert pool.names == ["run0#0", "run0#1", "rte_serve#0", "rte_serve#1"]
    batch = frozen.tokenizer(
        ["cb hypothesis: a premise: b", "rte sentence1: c sentence2: d"], return_tensors="pt", padding=True
    )
    mixed = pool.model.generate(
        batch.input_ids, batch.attention_mask, torch.tensor([1, 2]), max_new_tokens=4, min_new_tokens=4
    )
    for row, prompt in enumerate([1, 2]):
        alone = pool.model.generate(
            batch.input_ids[row : row + 1],
            batch.attention_mask[row : row + 1],
            torch.tensor([prompt]),
            max_new_tokens=4,
            min_new_tokens=4,
        )
        assert torch.equal(mixed[row], alone[0])


def test_pool_takes_each_run_once_names_clashing_runs_by_path_and_says_why_layouts_differ(
    tmp_path, cb_runs, tiny_model_dir
):
    frozen = load_frozen_t5(str(tiny_model_dir))
    assert load_pool(cb_runs[0], frozen).names == ["run0#0", "run0#1"]  # one folder on its own, not its characters
    with pytest.raises(SoftpromptError, match=r"run .*run0/ is given twice \(also as .*run0\); give each run once"):
        read_pool_metas([cb_runs[0], cb_runs[1], cb_runs[0] + "/"])
    clash = _train(tmp_path / "other", "run1", tiny_model_dir, "cb", CB / "train.jsonl", CB / "val.jsonl", seed=5)
    assert load_pool([cb_runs[0], cb_runs[1], clash], frozen).names == [  # only the clashing folder names become paths
        "run0#0",
        "run0#1",
        f"{cb_runs[1]}#0",
        f"{cb_runs[1]}#1",
        f"{clash}#0",
        f"{clash}#1",
    ]
    longer = _train(tmp_path, "longer", tiny_model_dir, "cb", CB / "train.jsonl", CB / "val.jsonl", prompt_length=4)
    with pytest.raises(
        SoftpromptError,
        match=r"longer has 4-token prompts but .*run0 3-token prompts; one pool \(and one "
        r"`softprompt serve`\) takes runs of one prompt length and prefix layout",
    ):
        read_pool_metas([cb_runs[0], longer])


def test_generation_uses_the_runs_recorded_decoding_and_refuses_to_guess_between_runs():
    """ensemble-eval and predict generate as the runs were validated (their --max-new-tokens ...), unless told;
    runs that disagree must be told which; --length-normalise, a rank-classification option, is refused for generation."""

    def meta(**decoding):
        return {"train_args": {"decoding": decoding}}

    def decoding(metas, given=EvalConfig()):
        return resolve_settings(metas, "generation", given).decoding

    assert decoding([meta(max_new_tokens=32, num_beams=4), meta(max_new_tokens=32, num_beams=4)]) == {
        "max_new_tokens": 32,
        "num_beams": 4,
        "no_repeat_ngram_size": 0,
    }
    # a run from before --no-repeat-ngram-size decoded without it: it pools with a new run recording 0, not with one recording 3
    old = meta(max_new_tokens=32, num_beams=1)
    assert decoding([old, meta(max_new_tokens=32, num_beams=1, no_repeat_ngram_size=0)])["no_repeat_ngram_size"] == 0
    with pytest.raises(SoftpromptError, match=r"^the runs were trained with different --no-repeat-ngram-size \(0, 3\)"):
        decoding([old, meta(max_new_tokens=32, num_beams=1, no_repeat_ngram_size=3)])
    assert decoding([{"train_args": {}}, {}]) == DECODING_DEFAULTS  # e.g. PEFT imports: the defaults apply
    with pytest.raises(
        SoftpromptError,
        match=r"^the runs were trained with different --num-beams \(1, 4\); give --num-beams "
        r"to generate with one value$",
    ):
        decoding([meta(max_new_tokens=32, num_beams=4), meta(max_new_tokens=32, num_beams=1)])
    # a setting the caller gives is not read from the runs, so runs that differ in it are no problem
    assert decoding(
        [meta(max_new_tokens=32, num_beams=4), meta(max_new_tokens=32, num_beams=1)], EvalConfig(num_beams=2)
    ) == {
        "max_new_tokens": 32,
        "num_beams": 2,
        "no_repeat_ngram_size": 0,
    }
    # a classification task reads no decoding from its runs
    assert resolve_settings([meta(max_new_tokens=32, num_beams=4)], "classification").decoding == DECODING_DEFAULTS
    with pytest.raises(
        SoftpromptError, match="^--length-normalise applies to rank classification; drop it for a generation task$"
    ):
        check_settings(["mbr"], "generation", EvalConfig(max_new_tokens=8, length_normalise=True))


def test_evaluation_reads_the_input_length_the_runs_were_validated_at_unless_told():
    """--max-length: the runs' --max-source-length (the longest of them; 512 for runs that record none, as PEFT imports),
    or the caller's; a bad value fails with its option's name."""
    runs = [{"train_args": {"max_source_length": 64}}, {"train_args": {"max_source_length": 128}}]
    assert resolve_settings(runs).max_length == 128
    assert resolve_settings([{"train_args": {}}]).max_length == 512
    assert resolve_settings(runs, given=EvalConfig(max_length=32, max_tokens=4096)) == EvalConfig(
        max_length=32, max_tokens=4096, **DECODING_DEFAULTS
    )
    for flag, settings in (("--max-length", {"max_length": 0}), ("--max-tokens", {"max_tokens": -5})):
        with pytest.raises(SoftpromptError, match=f"^{flag} must be a positive integer, got -?[05]$"):
            EvalConfig(**settings)
    with pytest.raises(SoftpromptError, match="^--num-beams must be a positive integer, got 0$"):
        EvalConfig(num_beams=0)


def test_custom_tasks_of_one_name_differ_by_their_recorded_templates():
    """Every custom task is 'custom' unless trained with --task-name: a summarisation run and a QA run used to pool,
    all scored with the first run's template."""

    def custom(template, target):
        return {
            "task": {"name": "custom", "kind": "generation", "label_words": []},
            "train_args": {"task": "custom", "input_template": template, "target_column": target},
        }

    summaries, answers = custom("summarize: {document}", "summary"), custom("question: {question}", "answer")
    assert task_difference(summaries, custom("summarize: {document}", "summary")) is None
    assert task_difference(summaries, answers) == (
        "both say task 'custom' but format its inputs differently (template 'summarize: {document}', column 'summary' "
        "vs template 'question: {question}', column 'answer')"
    )


def test_custom_runs_scored_by_different_primary_metrics_do_not_pool():
    """Runs of one custom task trained with different --task-metric picked their best steps by different metrics: they do
    not pool (nor serve together); a run from before the option records its kind's default, so it pools with an explicit one."""

    def run(metric, **options):
        return {
            "task": {"name": "custom", "kind": "generation", "label_words": [], "metric": metric},
            "train_args": {
                "task": "custom",
                "input_template": "summarize: {document}",
                "target_column": "summary",
                **options,
            },
        }

    assert task_difference(run("rougeL", task_metric="rougeL"), run("bleu")) == (
        "both say task 'custom' but were scored by different primary metrics (rougeL vs bleu: --task-metric)"
    )
    assert task_difference(run("bleu", task_metric="bleu"), run("bleu")) is None
