"""Requests in, answers out: the Python API of the server (the HTTP app is a thin layer on it).

A request becomes rows (every input × every addressed prompt), the batching worker answers the
rows together with other requests' rows, and the answers are assembled per input: the label and
candidate scores of each prompt, and for ensembles the vote of the same rules ``ensemble-eval``
uses (``ensembles.voting``).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from ensembles.answers import classification_answers, generation_answers
from ensembles.voting import CLASSIFICATION_RULES, GENERATION_RULES
from softprompt.runner.scoring import encode_choices
from softprompt.serve.catalog import Catalog, Input, ServeError, Target
from softprompt.serve.config import Limits
from softprompt.serve.schema import ClassifyRequest, GenerateRequest, Request
from softprompt.serve.worker import BatchingWorker, Row, WorkerStopped

DEFAULT_VOTE = "majority"


@dataclass
class Pending:
    """A request handed to the worker: ``future`` resolves to its row answers, ``answer`` turns
    them into the response document."""

    future: Future
    answer: Callable[[list[Any]], dict[str, Any]]

    def result(self, timeout: float | None = None) -> dict[str, Any]:
        """Block until the worker has answered, then assemble the response."""
        return self.answer(self.future.result(timeout))


class Engine:
    """Classification and generation requests against a catalog, batched by one worker.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> catalog = Catalog.load(["runs/sst2"], load_frozen_t5("t5-nano"))
    >>> with BatchingWorker(catalog.pool.model, max_rows=128, max_wait_ms=10) as worker:
    ...     engine = Engine(catalog, Limits(), worker)
    ...     answer = engine.classify(ClassifyRequest(task="sst2", texts=["sst2 sentence: a fine film"])).result()
    >>> answer["vote"], len(answer["answers"][0]["votes"])  # what POST /v1/classify returns
    ('majority', 3)
    """

    def __init__(self, catalog: Catalog, limits: Limits, worker: BatchingWorker) -> None:
        self.catalog = catalog
        self.limits = limits
        self.worker = worker

    def classify(self, request: ClassifyRequest) -> Pending:
        """Queue a classification request; 404/413/422 ``ServeError`` before anything is queued."""
        target, inputs = self._prepare(request, generation=False)
        vote = self._vote(request.vote, target, CLASSIFICATION_RULES)
        future = self._submit(lambda: self.worker.score(_rows(target, inputs)))
        lengths = self._choice_lengths(inputs) if request.length_normalise else None
        return Pending(future, lambda results: _classification_answer(target, inputs, vote, results, lengths))

    def generate(self, request: GenerateRequest) -> Pending:
        """Queue a generation request; ensembles vote with the generation rules."""
        target, inputs = self._prepare(request, generation=True)
        vote = self._vote(request.vote, target, GENERATION_RULES)
        for name, value, limit, option in (
            ("max_new_tokens", request.max_new_tokens, self.limits.max_new_tokens, "--max-new-tokens"),
            ("num_beams", request.num_beams, self.limits.max_beams, "--max-beams"),
        ):
            if value > limit:
                raise ServeError(422, f"{name} {value} is over the server's limit of {limit} ({option})")
        future = self._submit(
            lambda: self.worker.generate(_rows(target, inputs), request.max_new_tokens, request.num_beams)
        )
        return Pending(future, lambda results: _generation_answer(target, len(inputs), vote, results))

    def _choice_lengths(self, inputs: list[Input]) -> np.ndarray:
        """(M, K) token counts of every input's candidates, as ``ensemble-eval`` normalises by."""
        _, mask = encode_choices(self.catalog.pool.model.tokenizer, [item.choices for item in inputs])
        return mask.sum(dim=-1).numpy()

    def _prepare(self, request: Request, generation: bool) -> tuple[Target, list[Input]]:
        target = self.catalog.resolve(request.prompt, request.task)
        if target.task.generates != generation:
            what = f"prompt {request.prompt!r}" if request.prompt else f"task {request.task!r}"
            right = "/v1/generate" if target.task.generates else "/v1/classify"
            raise ServeError(
                422,
                f"{what} is a {target.task.kind} {'prompt' if request.prompt else 'task'} "
                f"({target.task.name}); send it to {right}",
            )
        count = len(request.inputs if request.inputs is not None else request.texts or [])
        if count > self.limits.max_inputs:
            raise ServeError(
                413,
                f"{count} inputs in one request; the limit is {self.limits.max_inputs} (--max-inputs): split the request",
            )
        inputs = self.catalog.inputs(target.task, request.inputs, request.texts, self.limits.max_input_chars)
        if not inputs:
            raise ServeError(422, 'no inputs: "inputs" or "texts" must hold at least one item')
        return target, inputs

    @staticmethod
    def _vote(vote: str | None, target: Target, rules: dict[str, Callable]) -> str | None:
        if not target.ensemble:
            if vote is not None:
                raise ServeError(
                    422, '"vote" applies to task ensembles; drop it or address the task instead of one prompt'
                )
            return None
        vote = vote or DEFAULT_VOTE
        if vote not in rules:
            raise ServeError(422, f"unknown vote {vote!r} for {target.task.kind}; choose one of: {', '.join(rules)}")
        return vote

    @staticmethod
    def _submit(submit: Callable[[], Future]) -> Future:
        try:
            return submit()
        except WorkerStopped as error:
            raise ServeError(503, str(error)) from None


def _rows(target: Target, inputs: list[Input]) -> list[Row]:
    """Prompt-major rows: every input for the first prompt, then for the next, ... (N·M rows)."""
    return [Row(item.source, item.choices, bank_id) for bank_id in target.bank_ids for item in inputs]


def _classification_answer(
    target: Target, inputs: list[Input], vote: str | None, results: list[Any], lengths: np.ndarray | None = None
) -> dict[str, Any]:
    n, m = len(target.prompts), len(inputs)
    k = max(len(item.choices) for item in inputs)
    log_probs = np.full((n, m, k), -np.inf)  # (N, M, K), -inf pads for inputs with fewer candidates
    for row, scores in enumerate(results):  # prompt-major rows
        log_probs[row // m, row % m, : len(scores)] = scores
    if lengths is not None:  # mean per-token log-likelihoods (ChoiceScores.normalised)
        log_probs = log_probs / np.maximum(lengths, 1)[None]
    return _envelope(
        target, vote, classification_answers(target.prompts, [item.choices for item in inputs], log_probs, vote)
    )


def _generation_answer(target: Target, m: int, vote: str | None, results: list[Any]) -> dict[str, Any]:
    n = len(target.prompts)
    outputs = [[results[p * m + j][0] for j in range(m)] for p in range(n)]  # N × M
    scores = np.array([[results[p * m + j][1] for j in range(m)] for p in range(n)])  # (N, M)
    return _envelope(target, vote, generation_answers(target.prompts, outputs, scores, vote))


def _envelope(target: Target, vote: str | None, answers: list[dict[str, Any]]) -> dict[str, Any]:
    head = {"task": target.task.name, "kind": target.task.kind, "prompts": list(target.prompts)}
    return head | ({"vote": vote} if vote else {}) | {"answers": answers}
