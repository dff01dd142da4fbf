"""Reference answers computed with the library itself (the code behind ``ensemble-eval``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ensembles.pool import load_pool
from ensembles.voting import CLASSIFICATION_RULES, GENERATION_RULES
from softprompt.data.tasks import get_task
from softprompt.model.loading import load_frozen_t5
from softprompt.runner.scoring import generate_texts, score_choices


class Reference:
    """The runs pooled in the server's order, scored in-process with ``ensembles``."""

    def __init__(self, run_dirs: Sequence[str], model: str) -> None:
        self.pool = load_pool(list(run_dirs), load_frozen_t5(model), mixed_tasks=True)
        self.ids = {name: i for i, name in enumerate(self.pool.names)}

    def classify(self, task: str, rows: list[dict[str, Any]], prompts: Sequence[str]) -> np.ndarray:
        """(N, M, K) summed log-likelihoods of ``prompts`` on labeled ``rows`` of ``task``."""
        examples = get_task(task).to_examples(rows)
        return score_choices(self.pool.model, examples, [self.ids[p] for p in prompts]).log_likelihood

    def generate(
        self, task: str, rows: list[dict[str, Any]], prompts: Sequence[str], **decoding
    ) -> tuple[list[list[str]], np.ndarray]:
        """Texts (N × M) and length-normalised scores (N, M)."""
        examples = get_task(task).to_examples(rows, grouped=True)
        gens = generate_texts(self.pool.model, examples, [self.ids[p] for p in prompts], **decoding)
        return gens.texts, gens.scores


def check_classification(answer: dict[str, Any], log_probs: np.ndarray, vote: str | None, tol: float = 1e-5) -> None:
    """The server's classification answer equals the library's scores, per-prompt labels and vote."""
    n, m, _ = log_probs.shape
    assert len(answer["answers"]) == m
    winners = CLASSIFICATION_RULES[vote](log_probs) if vote else log_probs[0].argmax(axis=1)
    for j, item in enumerate(answer["answers"]):
        assert item["label_index"] == winners[j]
        per_prompt = item["votes"] if vote else [item]
        assert len(per_prompt) == n
        for p, prompt_answer in enumerate(per_prompt):
            finite = np.isfinite(log_probs[p, j])
            np.testing.assert_allclose(prompt_answer["scores"], log_probs[p, j][finite], rtol=0, atol=tol)
            if vote:
                assert prompt_answer["label_index"] == log_probs[p, j].argmax()


def check_generation(answer: dict[str, Any], texts: list[list[str]], scores: np.ndarray, vote: str | None) -> None:
    """The server's generation answer equals the library's outputs, scores and vote."""
    n, m = scores.shape
    winners = GENERATION_RULES[vote](texts, scores) if vote else texts[0]
    for j, item in enumerate(answer["answers"]):
        assert item["text"] == winners[j]
        per_prompt = item["votes"] if vote else [item]
        assert [v["text"] for v in per_prompt] == [texts[p][j] for p in range(n)]
        np.testing.assert_allclose([v["score"] for v in per_prompt], scores[:, j], rtol=0, atol=1e-5)
