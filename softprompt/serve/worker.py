"""The batching worker: one thread owns the model and answers rows of many requests per pass.

Requests queue as lists of rows (one formatted input with one prompt's bank id each). The worker
takes the oldest request's lane (scoring, or generation with its decoding settings: different
lanes never share a pass), waits at most ``max_wait_ms`` after that request arrived for more rows
of the lane, then runs one pass over up to ``max_rows`` rows taken in arrival order, with a
prompt id per row, whatever prompts and tasks they belong to (for scoring, rows whose candidate
sets differ in shape run as separate model calls of the pass: padding a 2-class row to another
task's 3 candidates or longer label words costs more on CPU than the call; rows are sorted by
length, longest first, and split so that a call holds at most ``max_tokens`` tokens, counted as in
``softprompt.runner.passes``). A request larger than
``max_rows`` spans several passes; its future resolves when all its rows are answered, with the
answers in its own row order. With ``batching=False`` every pass holds one request's rows only.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from softprompt.model.prompted import PromptedT5
from softprompt.runner.passes import pad_ids, plan_passes, token_budget, tokenize
from softprompt.runner.scoring import encode_choices, generate_rows, score_rows
from softprompt.serve.config import MAX_ROWS

SCORE = ("score",)
SHAPE_CACHE = 10_000  # candidate sets whose token shape is remembered (label words; COPA rows bring their own)


@dataclass(frozen=True)
class Row:
    """One model row: a formatted input, its candidates (scoring) and the prompt's bank id."""

    source: str
    choices: tuple[str, ...]
    bank_id: int


class PassObserver(Protocol):
    """Told about every pass (metrics)."""

    def on_pass(self, kind: str, rows: int, queue_seconds: Sequence[float], seconds: float) -> None: ...


@dataclass(eq=False)
class _Job:
    lane: tuple
    rows: Sequence[Row]
    future: Future
    enqueued: float = field(default_factory=time.monotonic)
    results: list[Any] = field(default_factory=list)
    taken: int = 0  # rows handed to passes so far
    done: int = 0  # rows answered so far

    def __post_init__(self) -> None:
        self.results = [None] * len(self.rows)


class WorkerStopped(RuntimeError):
    """A request arrived after the worker was told to stop."""


class BatchingWorker:
    """Dynamic batching across requests on one ``PromptedT5`` (pooled banks of many tasks).

    >>> from ensembles.pool import load_pool
    >>> from softprompt.model.loading import load_frozen_t5
    >>> pool = load_pool(["runs/sst2"], load_frozen_t5("t5-nano"))
    >>> with BatchingWorker(pool.model, max_rows=128, max_wait_ms=10) as worker:  # Row(input, candidates, bank row)
    ...     scores = worker.score([Row("sst2 sentence: great", ("negative", "positive"), 0)]).result()
    ...     texts = worker.generate([Row("sst2 sentence: great", (), 2)], max_new_tokens=4).result()
    >>> scores[0].shape, len(texts)  # log-likelihood of each candidate; (text, score) per row
    ((2,), 1)
    """

    def __init__(
        self,
        model: PromptedT5,
        max_rows: int = MAX_ROWS,
        max_wait_ms: float = 10.0,
        batching: bool = True,
        max_length: int = 512,
        observer: PassObserver | None = None,
        max_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.max_rows = max_rows
        self.max_tokens = max_tokens or token_budget(model.model.get_input_embeddings().weight.device)
        self.max_wait = max_wait_ms / 1000
        self.batching = batching
        self.max_length = max_length
        self.observer = observer
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._shapes: dict[tuple[str, ...], tuple[int, int]] = {}
        self._thread = threading.Thread(target=self._loop, name="softprompt-batching-worker", daemon=True)

    def start(self) -> BatchingWorker:
        """Start the worker thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop taking requests, answer every queued row, then end the thread."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join()

    def __enter__(self) -> BatchingWorker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def score(self, rows: Sequence[Row]) -> Future:
        """Rank-classification scores: resolves to one float64 array per row, the summed
        log-likelihood of each of the row's candidates (in the row's candidate order)."""
        return self._submit(SCORE, rows)

    def generate(self, rows: Sequence[Row], max_new_tokens: int = 32, num_beams: int = 1) -> Future:
        """Generation: resolves to one ``(text, length-normalised log-probability)`` per row."""
        return self._submit(("generate", max_new_tokens, num_beams), rows)

    def queued_rows(self) -> int:
        """Rows waiting for a pass (all lanes)."""
        with self._cond:
            return sum(len(job.rows) - job.taken for job in self._queue)

    def _submit(self, lane: tuple, rows: Sequence[Row]) -> Future:
        future: Future = Future()
        if not rows:
            future.set_result([])
            return future
        with self._cond:
            if self._stopping:
                raise WorkerStopped("the server is shutting down; retry on another instance")
            self._queue.append(_Job(lane, list(rows), future))
            self._cond.notify_all()
        return future

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if not self._queue:
                    return  # stopping, and every queued row answered
                oldest = self._queue[0]
                if self.batching:
                    deadline = oldest.enqueued + self.max_wait
                    while not self._stopping and self._waiting_rows(oldest.lane) < self.max_rows:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            break
                        self._cond.wait(left)
                taken = self._take(oldest.lane)
            self._run_pass(oldest.lane, taken)

    def _waiting_rows(self, lane: tuple) -> int:
        return sum(len(job.rows) - job.taken for job in self._queue if job.lane == lane)

    def _take(self, lane: tuple) -> list[tuple[_Job, int]]:
        """Up to ``max_rows`` (job, row index) pairs of ``lane`` in arrival order; fully taken jobs
        leave the queue (they finish when their pass does)."""
        taken: list[tuple[_Job, int]] = []
        for job in list(self._queue):
            if job.future.cancelled():  # its client went away: skip the rows nobody waits for
                self._queue.remove(job)
                continue
            if job.lane != lane:
                continue
            if taken and not self.batching:
                break
            count = min(len(job.rows) - job.taken, self.max_rows - len(taken))
            taken += [(job, i) for i in range(job.taken, job.taken + count)]
            job.taken += count
            if job.taken == len(job.rows):
                self._queue.remove(job)
            if len(taken) == self.max_rows:
                break
        return taken

    def _run_pass(self, lane: tuple, taken: list[tuple[_Job, int]]) -> None:
        start = time.monotonic()
        jobs = list(dict.fromkeys(job for job, _ in taken))
        rows = [job.rows[i] for job, i in taken]
        try:
            results = self._answer(lane, rows)
        except Exception as error:  # noqa: BLE001 - a failed pass fails its requests, never the worker
            with self._cond:
                for job in jobs:
                    if job in self._queue:
                        self._queue.remove(job)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        if self.observer is not None:
            first = [start - job.enqueued for job in jobs if job.done == 0]
            self.observer.on_pass(lane[0], len(rows), first, time.monotonic() - start)
        for (job, index), result in zip(taken, results):
            job.results[index] = result
            job.done += 1
            if job.done == len(job.rows) and not job.future.done():
                job.future.set_result(job.results)

    @torch.no_grad()
    def _answer(self, lane: tuple, rows: list[Row]) -> list[Any]:
        """One pass over ``rows`` (mixed prompts and tasks): per-row answers."""
        if lane == SCORE:
            return self._score(rows)
        _, max_new_tokens, num_beams = lane
        answers: list[Any] = [None] * len(rows)
        for members, input_ids, mask, prompt_ids in self._calls(rows, range(len(rows)), num_beams):
            texts, scores = generate_rows(
                self.model, input_ids, mask, prompt_ids, max_new_tokens=max_new_tokens, num_beams=num_beams
            )
            for j, text, score in zip(members, texts, np.asarray(scores)):
                answers[j] = (text, float(score))
        return answers

    def _score(self, rows: list[Row]) -> list[np.ndarray]:
        """Score the pass's rows, one model call per candidate shape (count, longest in tokens): rows
        of any prompts and tasks whose candidates have the same shape share a call, and no row is
        padded to another task's candidate count or label length (on CPU that padding costs more
        than the extra call)."""
        groups: dict[tuple[int, int], list[int]] = {}
        for j, row in enumerate(rows):
            groups.setdefault(self._shape(row.choices), []).append(j)
        answers: list[np.ndarray] = [np.empty(0)] * len(rows)
        for (k, _), group in groups.items():
            for members, input_ids, mask, prompt_ids in self._calls(rows, group, k):
                choice_ids, choice_mask = encode_choices(
                    self.model.tokenizer, [rows[j].choices for j in members], k
                )  # (R, K, S)
                device = input_ids.device
                table = score_rows(
                    self.model, input_ids, mask, prompt_ids, choice_ids.to(device), choice_mask.to(device)
                )  # (R, K)
                for j, scores in zip(members, table):
                    answers[j] = scores
        return answers

    def _calls(
        self, rows: list[Row], members: Sequence[int], copies: int
    ) -> Iterator[tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Model calls over ``rows[members]``: sorted by length, longest first, split so that rows ×
        padded length × ``copies`` stays within ``max_tokens``; yields (row positions, (R, T) ids,
        mask, (R,) prompt ids)."""
        device = self.model.model.get_input_embeddings().weight.device
        ids = tokenize(self.model.tokenizer, [rows[j].source for j in members], self.max_length)
        lengths = [len(tokens) + self.model.prompt_length for tokens in ids]
        for plan in plan_passes(lengths, 1, self.max_tokens, copies):
            part = [members[i] for i in plan.examples]
            input_ids, mask = pad_ids(self.model.tokenizer, [ids[i] for i in plan.examples], device)
            yield part, input_ids, mask, torch.tensor([rows[j].bank_id for j in part], device=device)

    def _shape(self, choices: tuple[str, ...]) -> tuple[int, int]:
        """(number of candidates, longest candidate in tokens with EOS), cached per candidate set."""
        shape = self._shapes.get(choices)
        if shape is None:
            shape = (len(choices), max(len(ids) for ids in self.model.tokenizer(list(choices)).input_ids))
            if len(self._shapes) < SHAPE_CACHE:
                self._shapes[choices] = shape
        return shape
