"""What a server has loaded: every prompt of the pooled runs, grouped by task, and how a
request's inputs become model rows.

A request names one prompt (``"boolq#2"``, a row of the pooled bank) or a task (all of the task's
prompts, as an ensemble). Inputs are either rows with the task's columns, formatted by the task's
template exactly as ``ensemble-eval`` formats data files, or already formatted texts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensembles.pool import Pool, load_pool, task_difference
from softprompt.data.custom import recorded_task
from softprompt.data.tasks import Task, template_fields
from softprompt.errors import SoftpromptError
from softprompt.model.loading import FrozenT5

_SEPARATE = "serve them from separate servers, or (custom tasks) train them under different --task-name values"


class ServeError(SoftpromptError):
    """A request the server refuses: ``status`` is the HTTP status, the message one line."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class TaskInfo:
    """A task served by some of the loaded prompts."""

    name: str
    kind: str  # "classification" | "choice" | "generation"
    label_words: tuple[str, ...]
    prompts: tuple[str, ...]  # prompt names, in bank order
    bank_ids: tuple[int, ...]
    template: (
        Task | None
    )  # the task that formats input rows (built-in, or custom as its runs recorded it); None: only texts

    @property
    def generates(self) -> bool:
        return self.kind == "generation"


@dataclass(frozen=True)
class Target:
    """What one request addresses: one prompt or a task's prompts (an ensemble)."""

    task: TaskInfo
    prompts: tuple[str, ...]
    bank_ids: tuple[int, ...]
    ensemble: bool


@dataclass(frozen=True)
class Input:
    """One formatted model input and the candidates rank classification scores for it."""

    source: str
    choices: tuple[str, ...]  # () for generation


class Catalog:
    """The pooled prompts of several runs (any tasks, one model) and their tasks.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> catalog = Catalog.load(["runs/sst2"], load_frozen_t5("t5-nano"))  # runs of one task or several
    >>> target = catalog.resolve(prompt=None, task="sst2")  # the sst2 prompts as an ensemble
    >>> target.prompts, target.ensemble
    (('sst2#0', 'sst2#1', 'sst2#2'), True)
    >>> catalog.inputs(target.task, rows=[{"sentence": "a fine film"}], texts=None, max_chars=4000)
    [Input(source='sst2 sentence: a fine film', choices=('negative', 'positive'))]
    """

    def __init__(self, pool: Pool, run_dirs: Sequence[str]) -> None:
        self.pool = pool
        self.model_meta = dict(pool.metas[0]["model"])
        self.prompt_task: dict[str, str] = {}
        self.prompt_run: dict[str, str] = {}
        tasks: dict[str, dict[str, Any]] = {}
        bank_id = 0
        for run_dir, meta in zip(run_dirs, pool.metas):
            task, template = meta["task"], recorded_task(meta)
            entry = tasks.setdefault(
                task["name"], {"meta": meta, "template": template, "run": run_dir, "prompts": [], "ids": []}
            )
            difference = task_difference(meta, entry["meta"])
            if difference:
                raise SoftpromptError(f"{run_dir} and {entry['run']} {difference}; {_SEPARATE}")
            for _ in range(meta["n_prompts"]):
                name = pool.names[bank_id]
                entry["prompts"].append(name)
                entry["ids"].append(bank_id)
                self.prompt_task[name] = task["name"]
                self.prompt_run[name] = str(run_dir)
                bank_id += 1
        self.tasks = {
            name: TaskInfo(
                name,
                e["meta"]["task"]["kind"],
                tuple(e["meta"]["task"].get("label_words") or ()),
                tuple(e["prompts"]),
                tuple(e["ids"]),
                e["template"],
            )
            for name, e in tasks.items()
        }
        self.bank_id = {name: i for i, name in enumerate(pool.names)}

    @classmethod
    def load(cls, run_dirs: Sequence[str], frozen: FrozenT5) -> Catalog:
        """Pool the runs' prompts on ``frozen`` (same model and prompt layout, any tasks)."""
        run_dirs = [str(Path(d)) for d in run_dirs]
        return cls(load_pool(run_dirs, frozen, mixed_tasks=True), run_dirs)

    def describe(self) -> dict[str, Any]:
        """The ``GET /v1/prompts`` document: every prompt, every task and the model fingerprint."""
        prompts = [
            {
                "name": name,
                "task": task.name,
                "kind": task.kind,
                "label_words": list(task.label_words),
                "run": self.prompt_run[name],
            }
            for task in self.tasks.values()
            for name in task.prompts
        ]
        tasks = [
            {
                "name": t.name,
                "kind": t.kind,
                "label_words": list(t.label_words),
                "prompts": list(t.prompts),
                "accepts": ["inputs", "texts"] if t.template else ["texts"],
            }
            | ({"columns": _columns(t.template)} if t.template else {})
            for t in self.tasks.values()
        ]
        return {"model": self.model_meta, "prompts": prompts, "tasks": tasks}

    def resolve(self, prompt: str | None, task: str | None) -> Target:
        """The prompt or task a request names; 404 naming what is loaded when it is unknown."""
        if (prompt is None) == (task is None):
            raise ServeError(
                422, 'name exactly one of "prompt" (one prompt, e.g. "boolq#0") or "task" (its prompts as an ensemble)'
            )
        if prompt is not None:
            if prompt not in self.bank_id:
                raise ServeError(404, f"unknown prompt {prompt!r}; loaded prompts: {', '.join(self.bank_id)}")
            info = self.tasks[self.prompt_task[prompt]]
            return Target(info, (prompt,), (self.bank_id[prompt],), ensemble=False)
        if task not in self.tasks:
            raise ServeError(404, f"unknown task {task!r}; loaded tasks: {', '.join(self.tasks)}")
        info = self.tasks[task]
        return Target(info, info.prompts, info.bank_ids, ensemble=True)

    def inputs(
        self, task: TaskInfo, rows: Sequence[Mapping[str, Any]] | None, texts: Sequence[str] | None, max_chars: int
    ) -> list[Input]:
        """Format a request's ``inputs`` rows (task template) or take its ``texts``; 422 on bad input."""
        if (rows is None) == (texts is None):
            raise ServeError(
                422, 'send exactly one of "inputs" (rows with the task\'s columns) or "texts" (formatted inputs)'
            )
        if rows is not None:
            if task.template is None:
                raise ServeError(
                    422,
                    f'task {task.name!r} is a custom task whose runs do not record its input template (e.g. imported from PEFT); send "texts" (formatted inputs)',
                )
            sources = [_format_row(task, row, index) for index, row in enumerate(rows)]
        else:
            if task.kind == "choice":
                raise ServeError(
                    422,
                    f'task {task.name!r} scores per-input candidates; send "inputs" rows with columns {", ".join(_columns(task.template))}',
                )
            sources = [Input(text, task.label_words) for text in texts]
        for index, item in enumerate(sources):
            if len(item.source) > max_chars:
                raise ServeError(
                    422,
                    f"input {index} is {len(item.source)} characters long after formatting; the limit is "
                    f"{max_chars} (--max-input-chars)",
                )
        return sources


def _columns(task: Task) -> list[str]:
    """The columns a row needs: the template's fields and any per-input candidate columns."""
    return [*template_fields(task.template), *task.choice_columns]


def _format_row(task: TaskInfo, row: Mapping[str, Any], index: int) -> Input:
    """One row through the task's own conversion for unlabelled inputs (``Task.to_inputs``)."""
    try:
        example = task.template.to_inputs([row], origin="input")[0]
    except SoftpromptError as error:
        raise ServeError(422, str(error).replace("input row 1", f"input {index}", 1)) from None
    return Input(example.source, example.choices)
