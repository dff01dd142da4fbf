"""Ensemble rules that combine the predictions of N prompts on M examples.

Classification (rank classification) rules take ``log_probs`` of shape (N, M, K): the
log-likelihood prompt n gives candidate k of example m. Examples with fewer than K
candidates are padded with -inf; a padded candidate never wins. Every rule is pure and
deterministic, and every argmax breaks ties towards the lowest index.

Generation rules take ``outputs[n][m]`` (the string prompt n produced for example m) and,
for ``best_score``, ``scores`` of shape (N, M): the length-normalised model score.
"""

from __future__ import annotations

import string
from collections import Counter
from collections.abc import Callable, Sequence

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

from softprompt.errors import SoftpromptError

Outputs = Sequence[Sequence[str]]
TIE_TOLERANCE = 1e-12  # mean probabilities closer than this are tied in ``majority_vote``


def check_log_probs(log_probs: np.ndarray) -> np.ndarray:
    """Validate a (N, M, K) log-likelihood table and return it as float64; raises SoftpromptError."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.ndim != 3 or 0 in log_probs.shape:
        raise SoftpromptError(
            f"log_probs must have shape (prompts, examples, candidates) with no empty axis, "
            f"got {log_probs.shape}; stack one (examples, candidates) table per prompt"
        )
    if np.isnan(log_probs).any() or np.isposinf(log_probs).any():
        raise SoftpromptError("log_probs contain NaN or +inf; recompute the candidate log-likelihoods")
    if not np.isfinite(log_probs).any(axis=2).all():
        raise SoftpromptError(
            "some (prompt, example) rows of log_probs are all -inf; pad only missing candidates with -inf"
        )
    return log_probs


def candidate_probs(log_probs: np.ndarray) -> np.ndarray:
    """Softmax over the K candidates of each (prompt, example): (N, M, K) -> (N, M, K); pads get 0."""
    return _softmax(check_log_probs(log_probs))


def _softmax(log_probs: np.ndarray) -> np.ndarray:
    shifted = log_probs - log_probs.max(axis=2, keepdims=True)  # (N, M, K), each max is finite
    probs = np.exp(shifted)  # exp(-inf) = 0 for padded candidates
    return probs / probs.sum(axis=2, keepdims=True)


def majority_vote(log_probs: np.ndarray) -> np.ndarray:
    """Each prompt votes for its argmax candidate; the candidate with the most votes wins: (N, M, K) -> (M,).

    Tie-break: among the candidates tied on votes, the one with the highest mean probability
    across prompts (softmax over each prompt's candidate set, see ``candidate_probs``); if still
    tied (mean probabilities within ``TIE_TOLERANCE``, i.e. equal up to float rounding), the
    lowest index.

    >>> log_probs = np.log([[[0.9, 0.1]], [[0.4, 0.6]], [[0.45, 0.55]]])  # (N=3 prompts, M=1 example, K=2)
    >>> majority_vote(log_probs)  # two of three prompts pick candidate 1
    array([1])
    """
    log_probs = check_log_probs(log_probs)
    n_candidates = log_probs.shape[2]
    votes = log_probs.argmax(axis=2)  # (N, M)
    counts = (votes[..., None] == np.arange(n_candidates)).sum(axis=0)  # (M, K)
    mean_probs = _softmax(log_probs).mean(axis=0)  # (M, K)
    tied_probs = np.where(counts == counts.max(axis=1, keepdims=True), mean_probs, -np.inf)  # (M, K)
    still_tied = tied_probs >= tied_probs.max(axis=1, keepdims=True) - TIE_TOLERANCE  # (M, K)
    return still_tied.argmax(axis=1)  # first True = lowest index


def confidence_vote(log_probs: np.ndarray) -> np.ndarray:
    """Argmax of the mean over prompts of the candidate probabilities: (N, M, K) -> (M,).

    >>> log_probs = np.log([[[0.9, 0.1]], [[0.4, 0.6]], [[0.45, 0.55]]])  # (N=3 prompts, M=1 example, K=2)
    >>> confidence_vote(log_probs)  # mean probabilities 0.58 / 0.42: the one confident prompt wins
    array([0])
    """
    return candidate_probs(log_probs).mean(axis=0).argmax(axis=1)


def logprob_sum_vote(log_probs: np.ndarray) -> np.ndarray:
    """Argmax of the sum over prompts of the log-likelihoods (product of likelihoods): (N, M, K) -> (M,)."""
    return check_log_probs(log_probs).sum(axis=0).argmax(axis=1)


def check_outputs(outputs: Outputs) -> tuple[int, int]:
    """Validate ``outputs[n][m]`` as a rectangular table of strings and return (N, M); raises SoftpromptError."""
    if isinstance(outputs, str) or len(outputs) == 0:
        raise SoftpromptError("outputs must be a non-empty list with one list of strings per prompt")
    n_examples = len(outputs[0])
    if n_examples == 0 or any(len(row) != n_examples for row in outputs):
        lengths = sorted({len(row) for row in outputs})
        raise SoftpromptError(
            f"every prompt must have one output per example, got output counts {lengths}; "
            f"regenerate the missing outputs"
        )
    if not all(isinstance(text, str) for row in outputs for text in row):
        raise SoftpromptError("outputs must contain only strings; decode the generated token ids first")
    return len(outputs), n_examples


_STRIP = string.punctuation + string.whitespace


def normalize_text(s: str) -> str:
    """Lowercase, collapse whitespace runs to one space, strip leading/trailing ASCII punctuation and whitespace.

    " The  Cat sat. " -> "the cat sat"; inner punctuation is kept ("u.s. army" stays).
    """
    return " ".join(s.lower().split()).strip(_STRIP)


def string_vote(outputs: Outputs) -> list[str]:
    """Per example, the most frequent output after ``normalize_text``.

    Ties go to the group whose first member has the lowest prompt index; the returned string is
    that first member's original (un-normalised) output.
    """
    n_prompts, n_examples = check_outputs(outputs)
    winners = []
    for m in range(n_examples):
        first: dict[str, int] = {}  # normalised output -> lowest prompt index, in first-seen order
        counts: Counter[str] = Counter()
        for n in range(n_prompts):
            key = normalize_text(outputs[n][m])
            first.setdefault(key, n)
            counts[key] += 1
        best = max(first, key=lambda key: counts[key])  # max keeps the first-seen of equal counts
        winners.append(outputs[first[best]][m])
    return winners


SIMILARITIES: dict[str, Callable[[], BLEU | CHRF]] = {
    "chrf": CHRF,
    "bleu": lambda: BLEU(effective_order=True),
}


def mbr_select(outputs: Outputs, similarity: str = "chrf") -> list[str]:
    """Minimum-Bayes-risk selection: per example, the output most similar on average to the other prompts' outputs.

    ``similarity`` is "chrf" (sacrebleu sentence chrF) or "bleu" (sacrebleu sentence BLEU with
    effective order); the candidate is the hypothesis, each other output one reference.
    Ties go to the lowest prompt index; with one prompt its output is returned.
    """
    if similarity not in SIMILARITIES:
        raise SoftpromptError(f"unknown MBR similarity {similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
    n_prompts, n_examples = check_outputs(outputs)
    if n_prompts == 1:
        return list(outputs[0])
    metric = SIMILARITIES[similarity]()
    winners = []
    for m in range(n_examples):
        column = [outputs[n][m] for n in range(n_prompts)]
        sim = np.zeros((n_prompts, n_prompts))  # (N, N), sim[i, j] = similarity(hyp=i, ref=j)
        for i in range(n_prompts):
            for j in range(n_prompts):
                if i != j:
                    sim[i, j] = metric.sentence_score(column[i], [column[j]]).score
        utility = sim.sum(axis=1) / (n_prompts - 1)  # (N,), the diagonal is 0
        winners.append(column[int(utility.argmax())])
    return winners


def best_score_select(outputs: Outputs, scores: np.ndarray) -> list[str]:
    """Per example, the output with the highest length-normalised model score; ties go to the lowest prompt index."""
    n_prompts, n_examples = check_outputs(outputs)
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n_prompts, n_examples):
        raise SoftpromptError(
            f"scores must have shape (prompts, examples) = {(n_prompts, n_examples)}, got {scores.shape}"
        )
    if np.isnan(scores).any():
        raise SoftpromptError("scores contain NaN; recompute the length-normalised generation scores")
    best = scores.argmax(axis=0)  # (M,)
    return [outputs[n][m] for m, n in enumerate(best)]


CLASSIFICATION_RULES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "majority": majority_vote,
    "confidence": confidence_vote,
    "logprob_sum": logprob_sum_vote,
}

GENERATION_RULES: dict[str, Callable[[Outputs, np.ndarray], list[str]]] = {
    "majority": lambda outputs, scores: string_vote(outputs),
    "mbr": lambda outputs, scores: mbr_select(outputs),
    "best_score": best_score_select,
}

VOTE_RULES: dict[str, dict[str, Callable]] = {
    "classification": CLASSIFICATION_RULES,
    "generation": GENERATION_RULES,
}


DEFAULT_RULES: dict[str, str] = {"classification": "majority,confidence", "generation": "majority,mbr"}


def parse_rules(spec: str | Sequence[str], kind: str) -> list[str]:
    """Validate rule names ("majority,confidence" or a list) for a task kind; returns them de-duplicated, in order."""
    if kind not in VOTE_RULES:
        raise SoftpromptError(f"unknown task kind {kind!r}; choose one of: {', '.join(VOTE_RULES)}")
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [name.strip() for name in names if name.strip()]
    valid = VOTE_RULES[kind]
    unknown = [name for name in names if name not in valid]
    if unknown:
        raise SoftpromptError(f"unknown {kind} vote rule(s): {', '.join(unknown)}; valid rules are: {', '.join(valid)}")
    return list(dict.fromkeys(names))
