"""Per-input answers of N prompts and their vote, as ``softprompt serve`` and ``softprompt predict``
give them: what the vote picks, the mean candidate probabilities, and every prompt's own answer.

>>> import numpy as np
>>> log_probs = np.log([[[0.9, 0.1]], [[0.4, 0.6]], [[0.8, 0.2]]])  # (N=3 prompts, M=1 input, K=2)
>>> classification_answers(["p0", "p1", "p2"], [("no", "yes")], log_probs, "majority")[0]["label"]
'no'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensembles.voting import CLASSIFICATION_RULES, GENERATION_RULES, candidate_probs


def classification_answers(
    prompts: Sequence[str], choices: Sequence[Sequence[str]], log_probs: np.ndarray, vote: str | None
) -> list[dict[str, Any]]:
    """One answer per input from (N, M, K) candidate log-likelihoods (-inf pads inputs with fewer
    candidates). With a ``vote`` rule: its label, the prompts' mean probabilities and every prompt's
    vote; without: the first prompt's label, scores and probabilities."""
    probs = candidate_probs(log_probs)  # (N, M, K)
    winners = CLASSIFICATION_RULES[vote](log_probs) if vote else log_probs[0].argmax(axis=1)  # (M,)
    answers = []
    for j, candidates in enumerate(choices):
        size = len(candidates)
        answer = {"label": candidates[int(winners[j])], "label_index": int(winners[j]), "candidates": list(candidates)}
        if vote:
            answer["probs"] = probs[:, j, :size].mean(axis=0).tolist()
            answer["votes"] = [
                {"prompt": name, **_prompt_answer(candidates, log_probs[p, j, :size], probs[p, j, :size])}
                for p, name in enumerate(prompts)
            ]
        else:
            answer |= {"scores": log_probs[0, j, :size].tolist(), "probs": probs[0, j, :size].tolist()}
        answers.append(answer)
    return answers


def _prompt_answer(candidates: Sequence[str], scores: np.ndarray, probs: np.ndarray) -> dict[str, Any]:
    """One prompt's vote on one input: its argmax candidate, log-likelihoods and probabilities (K,)."""
    best = int(scores.argmax())
    return {"label": candidates[best], "label_index": best, "scores": scores.tolist(), "probs": probs.tolist()}


def generation_answers(
    prompts: Sequence[str], outputs: Sequence[Sequence[str]], scores: np.ndarray, vote: str | None
) -> list[dict[str, Any]]:
    """One answer per input from N × M generated texts and their (N, M) length-normalised
    log-probabilities. With a ``vote`` rule: its text, the mean score of the prompts that generated it,
    and every prompt's text and score; without: the first prompt's text and score."""
    m = len(outputs[0])
    if not vote:
        return [{"text": outputs[0][j], "score": float(scores[0, j])} for j in range(m)]
    winners = GENERATION_RULES[vote](outputs, scores)
    answers = []
    for j, winner in enumerate(winners):
        backers = [
            float(scores[p, j]) for p in range(len(prompts)) if outputs[p][j] == winner
        ]  # the vote picks one of the texts
        answers.append(
            {
                "text": winner,
                "score": sum(backers) / len(backers),
                "votes": [
                    {"prompt": name, "text": outputs[p][j], "score": float(scores[p, j])}
                    for p, name in enumerate(prompts)
                ],
            }
        )
    return answers
