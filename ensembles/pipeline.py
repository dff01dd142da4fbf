"""``ensemble-eval`` end to end: pool runs, score every prompt in batched passes, vote, report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ensembles.answers import classification_answers, generation_answers
from ensembles.evaluate import (
    evaluate_classification,
    evaluate_generation,
    make_report,
    prediction_rows,
    write_predictions,
    write_report,
)
from ensembles.pool import Pool
from ensembles.settings import EvalConfig, resolve_settings
from ensembles.voting import parse_rules
from softprompt.data.tasks import TASKS, Example, Task
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import ensure_parent
from softprompt.runner.scoring import generate_texts, score_choices


def transfer_examples(
    pool: Pool, task: Task, examples: Sequence[Example], transfer: bool
) -> tuple[list[Example], list[str]]:
    """Examples to score and notes for the report.

    Prompts trained on another task need ``transfer``. Their own label words are then scored for
    the target task's classes, matched by class index (QQP's not_duplicate/duplicate for MRPC's
    not_equivalent/equivalent, as in Lester et al.'s QQP→MRPC transfer).
    """
    trained = pool.metas[0]["task"]
    if trained["name"] == task.name:
        return list(examples), []
    if not transfer:
        raise SoftpromptError(
            f"prompts were trained on {trained['name']!r}, not {task.name!r}; pass --transfer to evaluate "
            "them across tasks (domain transfer), or pick prompts trained on this task"
            + (
                f" (a custom task named with --task-name: add --task-name {trained['name']})"
                if task.name == "custom" and trained["name"] not in TASKS
                else ""
            )
        )
    note = f"domain transfer: prompts trained on {trained['name']!r}, evaluated on {task.name!r}"
    words = list(trained.get("label_words") or [])
    if task.kind != trained["kind"] or (task.kind == "classification" and len(words) != len(task.label_words)):
        raise SoftpromptError(
            f"--transfer needs tasks of the same kind and number of classes: {trained['name']!r} has label words "
            f"{words}, {task.name!r} has {list(task.label_words)}"
        )
    if task.kind != "classification" or words == list(task.label_words):
        return list(examples), [note]
    mapping = ", ".join(f"{ours}→{theirs}" for ours, theirs in zip(task.label_words, words))
    relabelled = [replace(e, choices=tuple(words), target=words[e.label]) for e in examples]
    return relabelled, [f"{note}; classes scored with the prompts' label words ({mapping})"]


def example_origin(position: int, example: Example, kind: str) -> dict[str, Any]:
    """Where an evaluated example came from, for its predictions line: ``index``, the 0-based row of the data it
    was read from (its first row; its ``position`` among the evaluated examples if it was not read from rows),
    ``rows`` (generation: the row of each reference, in order), ``idx`` (the data's own id, where its rows have
    an idx column; MultiRC: paragraph, question and answer ids) and ``input``, the formatted model input."""
    origin: dict[str, Any] = {"index": example.rows[0] if example.rows else position}
    if kind == "generation":
        origin["rows"] = list(example.rows)
    if example.idx is not None:
        origin["idx"] = example.idx
    return origin | {"input": example.source}


def check_settings(rules: Sequence[str], kind: str, evaluation: EvalConfig | None = None) -> None:
    """An unknown vote rule, or length normalisation of generated text, fails before any scoring (``EvalConfig``
    checks its own settings)."""
    parse_rules(rules, kind)
    if evaluation is not None and evaluation.length_normalise and kind == "generation":
        raise SoftpromptError("--length-normalise applies to rank classification; drop it for a generation task")


def run_ensemble_eval(
    pool: Pool,
    task: Task,
    examples: Sequence[Example],
    split: str,
    rules: Sequence[str],
    evaluation: EvalConfig | None = None,
    transfer: bool = False,
    settings: dict[str, Any] | None = None,
    progress: bool = False,
) -> dict:
    """Evaluate every pooled prompt and each vote rule on ``examples``; returns the report core
    with the full report under ``"report"``. ``evaluation``'s settings left None are the runs' own
    (``ensembles.settings.resolve_settings``); ``settings`` adds entries to the report's settings.

    >>> from ensembles.pool import load_pool
    >>> from softprompt.model.loading import load_frozen_t5
    >>> from softprompt.data.tasks import get_task
    >>> task = get_task("sst2")
    >>> examples = task.to_examples([{"sentence": "a gem", "label": 1}, {"sentence": "a mess", "label": 0}])
    >>> core = run_ensemble_eval(load_pool(["runs/sst2"], load_frozen_t5("t5-nano")), task, examples, "validation", ["majority", "confidence"])
    >>> len(core["per_prompt"]), sorted(core["ensembles"]), sorted(core["mean"])
    (3, ['confidence', 'majority'], ['accuracy', 'balanced_accuracy', 'f1', 'macro_f1', 'mcc'])
    >>> paths = write_outputs(core, "results/example.json")  # report JSON + CSV, predictions JSONL
    """
    if not examples:
        raise SoftpromptError(f"the {split} split of {task.name} is empty; check the data file")
    evaluation = resolve_settings(pool.metas, task.kind, evaluation)
    check_settings(rules, task.kind, evaluation)
    examples, notes = transfer_examples(pool, task, examples, transfer)
    ids = list(range(len(pool.names)))
    max_length, max_tokens = evaluation.max_length, evaluation.max_tokens
    if task.kind == "generation":
        gens = generate_texts(pool.model, examples, ids, max_length, max_tokens, progress, **evaluation.decoding)
        refs = [list(e.references) or [e.target] for e in examples]
        core = evaluate_generation(refs, gens.texts, gens.scores, pool.names, rules, task.metric)
    else:
        scores = score_choices(pool.model, examples, ids, max_length, max_tokens, progress)
        log_probs = scores.normalised() if evaluation.length_normalise else scores.log_likelihood
        gold = np.array([e.label for e in examples])
        core = evaluate_classification(gold, log_probs, pool.names, rules, log_probs.shape[-1], task.metric)
        notes.append(
            "rank classification by "
            + ("mean token log-likelihood" if evaluation.length_normalise else "summed log-likelihood")
        )
    meta = pool.metas[0]
    prompt_part = meta.get("prompts") or {}
    base_settings = {
        "model": meta["model"].get("name"),
        "model_params": meta["model"].get("parameters"),
        "n_prompts": len(pool.names),
        "prompt_length": prompt_part.get("length", 0),
        "init": prompt_part.get("init"),
        "deep_prefix": bool(meta.get("prefixes")),
        "train_size": meta.get("train_args", {}).get("train_size"),
        "seed": meta.get("train_args", {}).get("seed"),
        "max_length": max_length,
        **(
            {"decoding": evaluation.decoding}
            if task.kind == "generation"
            else {"length_normalise": evaluation.length_normalise}
        ),
    }
    core["predictions"]["origins"] = [example_origin(m, e, task.kind) for m, e in enumerate(examples)]
    core["report"] = make_report(core, task.name, split, base_settings | (settings or {}), notes)
    return core


def predict(
    pool: Pool,
    task: Task,
    examples: Sequence[Example],
    vote: str,
    evaluation: EvalConfig | None = None,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Every pooled prompt's answer on unlabelled ``examples`` (``Task.to_inputs``) and their ``vote``,
    one row per example in the given order, as ``softprompt serve`` answers a task ensemble; ``evaluation``
    as for ``run_ensemble_eval``.

    >>> from ensembles.pool import load_pool
    >>> from softprompt.model.loading import load_frozen_t5
    >>> from softprompt.data.tasks import get_task
    >>> task = get_task("sst2")
    >>> rows = predict(load_pool(["runs/sst2"], load_frozen_t5("t5-nano")), task, task.to_inputs([{"sentence": "a gem"}]), "majority")
    >>> rows[0]["input"], rows[0]["label"] in task.label_words, len(rows[0]["votes"])  # one vote per prompt
    ('sst2 sentence: a gem', True, 3)
    """
    if not examples:
        raise SoftpromptError("no inputs to predict; pass a file with at least one row")
    evaluation = resolve_settings(pool.metas, task.kind, evaluation)
    check_settings([vote], task.kind, evaluation)
    transfer_examples(pool, task, examples, transfer=False)  # the runs must have been trained on this task
    ids = list(range(len(pool.names)))
    max_length, max_tokens = evaluation.max_length, evaluation.max_tokens
    if task.kind == "generation":
        gens = generate_texts(pool.model, examples, ids, max_length, max_tokens, progress, **evaluation.decoding)
        answers = generation_answers(pool.names, gens.texts, gens.scores, vote)
    else:
        scores = score_choices(pool.model, examples, ids, max_length, max_tokens, progress)
        log_probs = scores.normalised() if evaluation.length_normalise else scores.log_likelihood  # (N, M, K)
        answers = classification_answers(pool.names, [e.choices for e in examples], log_probs, vote)
    return [
        {"index": m, "input": example.source, **answer} for m, (example, answer) in enumerate(zip(examples, answers))
    ]


def write_outputs(core: dict, output: str | Path) -> list[Path]:
    """Report JSON + CSV at ``output`` and predictions JSONL beside it; returns the paths."""
    output = Path(output)
    predictions = output.with_suffix(".predictions.jsonl")
    ensure_parent(output, "the report", "--output")
    try:
        write_report(core["report"], output)
        write_predictions(predictions, prediction_rows(core))
    except OSError as error:  # a path under a file, read-only or full disk: each file is written atomically
        raise SoftpromptError(
            f"cannot write the report to {output} ({error.strerror or error}); choose a writable --output path"
        ) from None
    return [output, output.with_suffix(".csv"), predictions]
