"""Pool the prompts of one or more training runs into one PromptedT5 for batched evaluation."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from softprompt.data.custom import recorded_task
from softprompt.data.tasks import Task
from softprompt.errors import SoftpromptError
from softprompt.io.store import load_banks, load_dept, read_meta
from softprompt.model.dept import concat_dept
from softprompt.model.loading import FrozenT5
from softprompt.model.prefixes import PrefixBank
from softprompt.model.prompted import PromptedT5
from softprompt.model.prompts import PromptBank
from softprompt.paths import each_once


@dataclass
class Pool:
    """All prompts of the given runs in one model; ``names[i]`` labels bank row i (``run#k``)."""

    model: PromptedT5
    names: list[str]
    metas: list[dict[str, Any]]


def read_pool_metas(run_dirs: Sequence[str | Path] | str | Path, mixed_tasks: bool = False) -> list[dict[str, Any]]:
    """Metadata of every run (one folder or a list), each given once, checked to share one model, one
    prompt layout and (unless ``mixed_tasks``, for multi-task serving) one task."""
    run_dirs = run_list(run_dirs)
    if not run_dirs:
        raise SoftpromptError("no prompt runs given; pass --prompts RUN_DIR (repeatable)")
    metas = [read_meta(d) for d in run_dirs]
    first = metas[0]
    for directory, meta in zip(run_dirs[1:], metas[1:]):
        for _what, key in (("model", "config_hash"), ("model", "vocab_size")):
            if meta["model"].get(key) != first["model"].get(key):
                raise SoftpromptError(
                    f"{directory} was trained on model {meta['model'].get('name')!r}, {run_dirs[0]} on "
                    f"{first['model'].get('name')!r}; pool only runs trained on the same model"
                )
        difference = None if mixed_tasks else task_difference(meta, first)
        if difference:
            raise SoftpromptError(
                f"{directory} and {run_dirs[0]} {difference}; pool only runs of one task "
                "(custom tasks: name each with --task-name when training)"
            )
        for part in ("prompts", "prefixes"):
            if _layout(meta.get(part)) != _layout(first.get(part)):
                raise SoftpromptError(
                    f"{directory} has {_describe(part, meta.get(part))} but {run_dirs[0]} {_describe(part, first.get(part))}; "
                    "one pool (and one `softprompt serve`) takes runs of one prompt length and prefix layout: "
                    "train them alike, or pool them separately"
                )
    return metas


def task_difference(meta: dict[str, Any], other: dict[str, Any]) -> str | None:
    """How the tasks of two runs (their ``softprompt.json``) differ, in words; None for one task formatted alike.
    Custom tasks are all named 'custom' unless trained with --task-name: their recorded templates (and primary metrics,
    --task-metric) tell them apart."""
    mine, theirs = meta["task"], other["task"]
    if mine["name"] != theirs["name"]:
        return f"were trained on tasks {mine['name']!r} and {theirs['name']!r}"
    if (mine["kind"], mine.get("label_words")) != (theirs["kind"], theirs.get("label_words")):
        return (
            f"both say task {mine['name']!r} but with different kinds or label words "
            f"({mine.get('label_words')} vs {theirs.get('label_words')})"
        )
    formats = [_input_format(recorded_task(m)) for m in (meta, other)]
    if formats[0] != formats[1]:
        return f"both say task {mine['name']!r} but format its inputs differently ({formats[0]} vs {formats[1]})"
    if mine.get("metric") != theirs.get("metric"):
        return (
            f"both say task {mine['name']!r} but were scored by different primary metrics "
            f"({mine.get('metric')} vs {theirs.get('metric')}: --task-metric)"
        )
    return None


def _input_format(task: Task | None) -> str:
    """How a task formats inputs, for comparison and error messages."""
    return "no recorded template" if task is None else f"template {task.template!r}, column {task.target_column!r}"


def run_list(run_dirs: Sequence[str | Path] | str | Path) -> list[str]:
    """``run_dirs`` as a list of folder names (one folder may be given on its own), each folder given once."""
    return each_once([str(run_dirs)] if isinstance(run_dirs, (str, Path)) else run_dirs, "run")


def load_pool(run_dirs: Sequence[str | Path] | str | Path, frozen: FrozenT5, mixed_tasks: bool = False) -> Pool:
    """Load and concatenate the banks of ``run_dirs`` (same model and layout; same task unless
    ``mixed_tasks``) on ``frozen``; bank row i is ``names[i]``: ``RUN#k`` by the run's folder name,
    or by the path as given for runs whose folder names clash.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> pool = load_pool(["runs/sst2"], load_frozen_t5("t5-nano"))  # runs written by softprompt train
    >>> pool.names, pool.model.n_prompts
    (['sst2#0', 'sst2#1', 'sst2#2'], 3)
    """
    run_dirs = run_list(run_dirs)
    metas = read_pool_metas(run_dirs, mixed_tasks)
    loaded = [load_banks(d, frozen.config) for d in run_dirs]
    folders = Counter(Path(d).name for d in run_dirs)
    labels = [
        Path(d).name if folders[Path(d).name] == 1 else d for d in run_dirs
    ]  # a clash renames only the clashing runs
    names = [f"{label}#{k}" for label, meta in zip(labels, metas) for k in range(meta["n_prompts"])]
    prompts = _concat_prompts([p for _, p, _ in loaded])
    prefixes = _concat_prefixes([x for _, _, x in loaded])
    dept = concat_dept(  # DePT runs' updates, zero rows for the others: one pass still mixes them
        [load_dept(d, meta) for d, meta in zip(run_dirs, metas)],
        [meta["n_prompts"] for meta in metas],
        frozen.geometry.d_model,
    )
    model = PromptedT5(frozen, prompts, prefixes, dept)
    return Pool(model, names, metas)


def _layout(part: dict | None) -> Any:
    if not part:
        return None
    return {k: part[k] for k in ("length", "sites") if k in part}


def _describe(part: str, settings: dict | None) -> str:
    """A run's prompt or prefix layout in words, e.g. "10-token prompts"."""
    if part == "prompts":
        return f"{settings['length']}-token prompts" if settings else "no input prompts"
    return (
        f"{settings['length']}-position deep prefixes at {','.join(settings.get('sites', []))}"
        if settings
        else "no deep prefixes"
    )


def _concat_prompts(banks: list[PromptBank | None]) -> PromptBank | None:
    if banks[0] is None:
        return None
    weight = torch.cat([b.weight.data for b in banks])  # (ΣN, P, d)
    pooled = PromptBank(*weight.shape)
    pooled.weight.data.copy_(weight)
    return pooled


def _concat_prefixes(banks: list[PrefixBank | None]) -> PrefixBank | None:
    if banks[0] is None:
        return None
    pooled = PrefixBank(sum(b.n_prompts for b in banks), banks[0].shape)
    for site in pooled.kv:
        pooled.kv[site].data.copy_(torch.cat([b.kv[site].data for b in banks]))
    return pooled
