"""Metrics agree with scikit-learn, sacrebleu and rouge-score called directly."""

import warnings

import numpy as np
import pytest
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, matthews_corrcoef

from softprompt.data.custom import custom_task
from softprompt.data.tasks import GENERATION_METRICS, classification_metric_names
from softprompt.errors import SoftpromptError
from softprompt.runner.metrics import classification_metrics, generation_metrics, reference_streams


@pytest.mark.parametrize("n_classes", [2, 3])
def test_every_primary_metric_a_task_may_name_is_computed(n_classes):
    """softprompt.data.tasks names the metrics a task (a custom one's --task-metric) may pick: exactly those computed here."""
    gold = np.arange(6) % n_classes
    assert tuple(classification_metrics(gold, gold, n_classes)) == classification_metric_names(n_classes)
    assert tuple(generation_metrics(["a cat sat"], [["a cat sat"]])) == GENERATION_METRICS
    for metric in classification_metric_names(n_classes):
        assert custom_task("{x}", "y", {str(i): f"w{i}" for i in range(n_classes)}, metric=metric).metric == metric
    for metric in GENERATION_METRICS:
        assert custom_task("{x}", target_column="y", metric=metric).metric == metric


def test_binary_metrics_match_sklearn():
    gold = np.array([0, 1, 1, 0, 1, 1, 0, 0])
    pred = np.array([0, 1, 0, 0, 1, 1, 1, 1])
    metrics = classification_metrics(gold, pred, n_classes=2)
    assert list(metrics) == ["accuracy", "macro_f1", "balanced_accuracy", "f1", "mcc"]
    assert metrics["accuracy"] == pytest.approx(accuracy_score(gold, pred)) == pytest.approx(5 / 8)
    assert metrics["macro_f1"] == pytest.approx(f1_score(gold, pred, average="macro"))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(gold, pred))
    assert metrics["f1"] == pytest.approx(f1_score(gold, pred)) == pytest.approx(2 * 3 / (2 * 3 + 2 + 1))
    assert metrics["mcc"] == pytest.approx(matthews_corrcoef(gold, pred))
    assert all(type(value) is float for value in metrics.values())


def test_multiclass_absent_class_counts_in_macro_f1():
    gold = np.array([0, 0, 1, 1, 2])
    pred = np.array([0, 1, 1, 1, 2])  # class 3 never appears
    metrics = classification_metrics(gold, pred, n_classes=4)
    assert "f1" not in metrics
    assert metrics["macro_f1"] == pytest.approx(
        f1_score(gold, pred, labels=[0, 1, 2, 3], average="macro", zero_division=0)
    )
    assert metrics["macro_f1"] == pytest.approx(0.75 * f1_score(gold, pred, average="macro"))
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(gold, pred))
    assert metrics["mcc"] == pytest.approx(matthews_corrcoef(gold, pred))


def test_balanced_accuracy_with_predicted_class_absent_from_gold():
    gold = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = balanced_accuracy_score(gold, pred)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert classification_metrics(gold, pred, n_classes=3)["balanced_accuracy"] == pytest.approx(expected)


def test_constant_predictions_give_zero_mcc_without_warning():
    gold = pred = np.zeros(4, dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics = classification_metrics(gold, pred, n_classes=2)
    assert metrics["accuracy"] == 1.0 and metrics["mcc"] == 0.0 and metrics["f1"] == 0.0


@pytest.mark.parametrize(
    "gold, pred, n_classes",
    [([0, 1], [0], 2), ([0, 2], [0, 1], 2), ([0, 1], [0, -1], 2), ([], [], 2)],
)
def test_bad_labels_raise(gold, pred, n_classes):
    with pytest.raises(SoftpromptError):
        classification_metrics(np.array(gold, dtype=int), np.array(pred, dtype=int), n_classes)


def test_reference_streams_pad_with_none():
    assert reference_streams([["a"], ["b", "c"], ["d", "e", "f"]]) == [
        ["a", "b", "d"],
        [None, "c", "e"],
        [None, None, "f"],
    ]


HYPS = ["the cat", "a quick brown dog jumps", "it is raining today in paris"]
REFS = [
    ["the cat sat on a mat"],
    ["the quick brown fox jumps", "a fast brown dog leaps", "one quick brown dog jumped"],
    ["it rains today in paris", "today it is raining in paris"],
]


def test_generation_single_reference_matches_libraries():
    hyps, refs = HYPS[:1] + HYPS[2:], [["the cat sat on a mat"], ["it rains today in paris"]]
    metrics = generation_metrics(hyps, refs)
    stream = [[r[0] for r in refs]]
    assert metrics["bleu"] == pytest.approx(BLEU().corpus_score(hyps, stream).score)
    assert metrics["chrf"] == pytest.approx(CHRF().corpus_score(hyps, stream).score)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for kind in ("rouge1", "rouge2", "rougeL"):
        expected = np.mean([scorer.score(r[0], h)[kind].fmeasure for h, r in zip(hyps, refs)])
        assert metrics[kind] == pytest.approx(100 * expected)


def test_generation_unequal_reference_counts_match_libraries():
    metrics = generation_metrics(HYPS, REFS)
    assert list(metrics) == ["bleu", "chrf", "rouge1", "rouge2", "rougeL"]
    padded = [
        ["the cat sat on a mat", "the quick brown fox jumps", "it rains today in paris"],
        [None, "a fast brown dog leaps", "today it is raining in paris"],
        [None, "one quick brown dog jumped", None],
    ]  # hand-transposed reference streams
    assert metrics["bleu"] == pytest.approx(BLEU().corpus_score(HYPS, padded).score)
    assert metrics["chrf"] == pytest.approx(CHRF().corpus_score(HYPS, padded).score)
    # Duplicating a reference changes neither clipped counts nor the closest length, so padding
    # must score the same as repeating each example's first reference.
    repeated = [[refs[min(i, len(refs) - 1)] for refs in REFS] for i in range(3)]
    assert metrics["bleu"] == pytest.approx(BLEU().corpus_score(HYPS, repeated).score)
    assert metrics["chrf"] == pytest.approx(CHRF().corpus_score(HYPS, repeated).score)
    # Padding with '' would be wrong: the empty reference is the closest length to "the cat".
    empty = [[ref or "" for ref in stream] for stream in padded]
    assert BLEU().corpus_score(HYPS, empty).score != pytest.approx(metrics["bleu"])


def test_generation_rouge_takes_max_over_references_then_mean():
    metrics = generation_metrics(HYPS, REFS)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for kind in ("rouge1", "rouge2", "rougeL"):
        best = [max(scorer.score(ref, hyp)[kind].fmeasure for ref in refs) for hyp, refs in zip(HYPS, REFS)]
        assert metrics[kind] == pytest.approx(100 * np.mean(best))
    assert 0 < metrics["rouge2"] < metrics["rouge1"] <= 100


def test_perfect_generation_scores_100():
    metrics = generation_metrics(["the cat sat on the mat"], [["the cat sat on the mat", "x"]])
    assert all(value == pytest.approx(100.0) for value in metrics.values())


def test_generation_input_errors():
    with pytest.raises(SoftpromptError, match="one reference list per hypothesis"):
        generation_metrics(["a", "b"], [["a"]])
    with pytest.raises(SoftpromptError, match="at least one reference"):
        generation_metrics(["a"], [[]])
