"""Task metrics for classification (scikit-learn) and generation (sacrebleu, rouge-score).

Classification metrics are fractions (accuracy in [0, 1], MCC in [-1, 1]); generation
metrics are on the 0-100 scale.

METEOR is deliberately not implemented: there is no maintained offline implementation that
works without downloading nltk data (WordNet) at run time.
"""

from __future__ import annotations

import warnings

import numpy as np
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, recall_score

from softprompt.data.tasks import (  # the metric names: one list, beside the tasks
    ROUGE_TYPES,
    classification_metric_names,
)
from softprompt.errors import SoftpromptError


def classification_metrics(gold: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """Accuracy, macro F1, balanced accuracy, binary F1 of class 1 (only if n_classes == 2) and MCC.

    Macro F1 averages over all ``n_classes`` labels, so a class absent from both gold and
    predictions counts as F1 0. Balanced accuracy is the mean recall over the classes present in
    ``gold`` (identical to ``sklearn.metrics.balanced_accuracy_score``, without its warning when
    ``pred`` contains a class absent from ``gold``). MCC is 0 when it is undefined.
    """
    gold, pred = np.asarray(gold), np.asarray(pred)
    if gold.ndim != 1 or gold.shape != pred.shape or gold.size == 0:
        raise SoftpromptError(
            f"gold and pred must be non-empty 1-D arrays of equal length, got shapes {gold.shape} and {pred.shape}"
        )
    for name, labels in (("gold", gold), ("pred", pred)):
        if labels.min() < 0 or labels.max() >= n_classes:
            raise SoftpromptError(f"{name} labels must lie in [0, {n_classes}); check n_classes or the label mapping")
    labels = list(range(n_classes))
    metrics = {
        "accuracy": accuracy_score(gold, pred),
        "macro_f1": f1_score(gold, pred, labels=labels, average="macro", zero_division=0),
        "balanced_accuracy": recall_score(gold, pred, labels=np.unique(gold), average="macro", zero_division=0),
    }
    if n_classes == 2:
        metrics["f1"] = f1_score(gold, pred, pos_label=1, average="binary", zero_division=0)
    with warnings.catch_warnings():  # one label in gold and pred: MCC is defined as 0, the warning is noise
        warnings.filterwarnings("ignore", message="A single label was found")
        metrics["mcc"] = matthews_corrcoef(gold, pred)
    return {name: float(metrics[name]) for name in classification_metric_names(n_classes)}


def reference_streams(references: list[list[str]]) -> list[list[str | None]]:
    """Transpose per-hypothesis reference lists into sacrebleu reference streams, padding with None.

    sacrebleu drops None references segment by segment, which is its documented way to score a
    variable number of references per hypothesis: [["a"], ["b", "c"]] -> [["a", "b"], [None, "c"]].
    """
    n_streams = max(len(refs) for refs in references)
    return [[refs[i] if i < len(refs) else None for refs in references] for i in range(n_streams)]


def generation_metrics(hypotheses: list[str], references: list[list[str]]) -> dict[str, float]:
    """Corpus BLEU and chrF (sacrebleu, multi-reference) plus ROUGE-1/2/L F-measure (rouge-score), all 0-100.

    BLEU uses sacrebleu's defaults (13a tokenisation, 4-grams); chrF uses character 6-grams,
    beta 2 (not chrF++). ROUGE uses the Porter stemmer; with several references the best
    F-measure over the references is taken per hypothesis, then averaged over hypotheses.
    rouge-score's tokenizer keeps only ASCII letters and digits, so ROUGE is meaningful for
    English-like text only.
    """
    if len(hypotheses) == 0 or len(hypotheses) != len(references):
        raise SoftpromptError(
            f"need one reference list per hypothesis, got {len(hypotheses)} hypotheses and "
            f"{len(references)} reference lists"
        )
    if any(len(refs) == 0 for refs in references):
        raise SoftpromptError("every hypothesis needs at least one reference; drop examples without references")
    hypotheses = list(hypotheses)
    streams = reference_streams(references)
    from rouge_score import rouge_scorer  # imports nltk (~1 s): only when generation is scored

    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)
    rouge = np.zeros((len(hypotheses), len(ROUGE_TYPES)))  # (M, 3)
    for m, (hyp, refs) in enumerate(zip(hypotheses, references)):
        best = scorer.score_multi(refs, hyp)
        rouge[m] = [best[kind].fmeasure for kind in ROUGE_TYPES]
    metrics = {
        "bleu": BLEU().corpus_score(hypotheses, streams).score,
        "chrf": CHRF().corpus_score(hypotheses, streams).score,
        **dict(zip(ROUGE_TYPES, 100.0 * rouge.mean(axis=0))),
    }
    return {name: float(value) for name, value in metrics.items()}
