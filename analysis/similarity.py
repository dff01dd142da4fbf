"""Task similarity and prompt retrieval through trained prompts (Vu et al. 2022, SPoT §4).

A folder of runs is a prompt library. Two prompts are compared by the cosine similarity of their
average token vectors (``cosine-mean``, SPoT's "cosine similarity of average tokens") or by the
largest cosine similarity over all pairs of their token vectors (``cosine-max``). Two runs (tasks)
are compared by the mean similarity over all pairs of their prompts (on the diagonal: every prompt
of the run with every other and with itself).

Input prompts are compared in the model's embedding space, (N, P, d). Deep prefixes are compared as
(N, Pp, D) "token" vectors too: each prefix position's keys and values of every site, layer and head
concatenated (D = sum over sites of L·2·H·d_kv), so the same metrics apply.

Example::

    runs = load_run_vectors(["runs/boolq", "runs/rte", "runs/sst2"], "prompts")
    report = similarity_report(runs, "cosine-mean")
    print(format_similarity(report))
    ranking = rank_library(runs[2], None, runs[:2], "cosine-mean")  # closest source prompts first
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from analysis.figures import check_plot_path, save_png_and_svg
from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write_text, ensure_parent
from softprompt.io.store import read_bank_tensors, read_meta
from softprompt.paths import parse_spec

METRICS = ("cosine-mean", "cosine-max")
BANKS = ("prompts", "prefixes")
_EPS = 1e-12  # norm clamp: a zero vector gets similarity 0 to everything instead of NaN


# ----------------------------------------------------------------------------- pure functions on tensors


def prompt_similarity(a: torch.Tensor, b: torch.Tensor, metric: str = "cosine-mean") -> torch.Tensor:
    """Similarity of every prompt of ``a`` (Na, Pa, D) to every prompt of ``b`` (Nb, Pb, D): (Na, Nb).

    ``cosine-mean``: cosine of the two prompts' average token vectors; ``cosine-max``: the largest
    cosine over all (token of a, token of b) pairs. Prompt lengths may differ.

    >>> a, b = torch.randn(2, 20, 192), torch.randn(3, 5, 192)
    >>> prompt_similarity(a, b).shape, prompt_similarity(a, a).diagonal().round(decimals=6).tolist()  # (Na, Nb); each prompt to itself: 1
    (torch.Size([2, 3]), [1.0, 1.0])
    """
    if metric not in METRICS:
        raise SoftpromptError(f"unknown similarity metric {metric!r}; use one of: {', '.join(METRICS)}")
    if a.dim() != 3 or b.dim() != 3 or a.shape[-1] != b.shape[-1]:
        raise SoftpromptError(
            f"prompts must have shapes (N, P, D) with one D, got {tuple(a.shape)} and {tuple(b.shape)}; "
            "compare prompts of the same model and bank"
        )
    a, b = a.detach().double(), b.detach().double()  # float64: hand-checkable values, stable ranking ties
    if metric == "cosine-mean":
        return _unit(a.mean(dim=1)) @ _unit(b.mean(dim=1)).T  # (Na, Nb)
    pairs = torch.einsum("ipd,jqd->ijpq", _unit(a), _unit(b))  # (Na, Nb, Pa, Pb)
    return pairs.flatten(2).amax(dim=2)  # (Na, Nb)


def block_means(matrix: torch.Tensor, row_sizes: Sequence[int], col_sizes: Sequence[int]) -> torch.Tensor:
    """Mean of each block of ``matrix`` (ΣR, ΣC) cut by ``row_sizes`` × ``col_sizes``: (len(R), len(C))."""
    rows = torch.split(matrix, list(row_sizes), dim=0)
    return torch.stack([torch.stack([block.mean() for block in torch.split(r, list(col_sizes), dim=1)]) for r in rows])


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(_EPS)


# ----------------------------------------------------------------------------- runs


@dataclass
class RunVectors:
    """One run's prompts as token vectors: ``vectors`` (N, P, D) of ``bank``, with the run's labels."""

    run: str
    label: str
    task: str
    model_hash: str | None
    bank: str
    vectors: torch.Tensor
    note: str | None = None  # e.g. a DePT run: only its prompt part is analysed

    def names(self) -> list[str]:
        """Prompt names, ``label#k``."""
        return [f"{self.label}#{k}" for k in range(len(self.vectors))]


def bank_vectors(
    prompts: torch.Tensor | None, prefixes: dict[str, torch.Tensor] | None, bank: str
) -> torch.Tensor | None:
    """(N, P, D) token vectors of a run's ``bank`` from ``store.read_bank_tensors`` output; None if absent.

    Prefixes: site -> (N, L, 2, H, Pp, d_kv) become (N, Pp, Σ L·2·H·d_kv), sites in the stored order.
    """
    if bank == "prompts":
        return prompts
    if prefixes is None:
        return None
    n, length = next(iter(prefixes.values())).shape[0], next(iter(prefixes.values())).shape[4]
    return torch.cat([kv.permute(0, 4, 1, 2, 3, 5).reshape(n, length, -1) for kv in prefixes.values()], dim=-1)


def dept_note(run: str | Path, meta: dict[str, Any]) -> str | None:
    """The note a DePT run's analysis carries: the prompt part is analysed, not the run's low-rank update."""
    if not meta.get("dept"):
        return None
    return (
        f"note: {run} is a DePT run; this analyses its prompt part only, not its rank-{meta['dept']['rank']} update "
        "of the input token embeddings"
    )


def load_run_vectors(run_dirs: Sequence[str], bank: str = "prompts") -> list[RunVectors]:
    """The ``bank`` token vectors of each run (no model is loaded), checked to share one model."""
    if bank not in BANKS:
        raise SoftpromptError(f"unknown bank {bank!r}; use one of: {', '.join(BANKS)}")
    if not run_dirs:
        raise SoftpromptError("no runs given; pass one or more run directories written by `softprompt train`")
    names = [Path(run).name for run in run_dirs]
    labels = names if len(set(names)) == len(names) else [str(run) for run in run_dirs]
    runs = []
    for run, label in zip(run_dirs, labels):
        meta = read_meta(run)
        vectors = bank_vectors(*read_bank_tensors(run, meta), bank)
        if vectors is None:
            other = "input prompts (--prompt-length > 0)" if bank == "prompts" else "deep prefixes (--deep-prefix)"
            raise SoftpromptError(
                f"{run} has no {bank}; choose --bank {'prefixes' if bank == 'prompts' else 'prompts'} or runs trained with {other}"
            )
        runs.append(
            RunVectors(
                str(run),
                label,
                meta["task"]["name"],
                meta["model"].get("config_hash"),
                bank,
                vectors.float(),
                dept_note(run, meta) if bank == "prompts" else None,
            )
        )
    check_same_model(runs)
    return runs


def check_same_model(runs: Sequence[RunVectors]) -> None:
    """Refuse runs of different models (or prefixes of different sites): their vectors are not comparable."""
    first = runs[0]
    for other in runs[1:]:
        if other.model_hash != first.model_hash:
            raise SoftpromptError(
                f"{other.run} and {first.run} were trained on different models (fingerprints {other.model_hash} and "
                f"{first.model_hash}); compare only runs of the same model"
            )
        if other.vectors.shape[-1] != first.vectors.shape[-1]:
            raise SoftpromptError(
                f"{other.run} and {first.run} have {first.bank} of different widths ({other.vectors.shape[-1]} and "
                f"{first.vectors.shape[-1]}: other prefix sites); compare runs with the same --prefix-sites"
            )


# ----------------------------------------------------------------------------- similarity matrices


def similarity_report(runs: Sequence[RunVectors], metric: str = "cosine-mean") -> dict[str, Any]:
    """JSON-ready task-by-task and prompt-by-prompt similarity matrices of ``runs``."""
    vectors = [r.vectors for r in runs]
    sizes = [len(v) for v in vectors]
    # run by run: prompts of different lengths cannot share one tensor
    prompts = torch.cat(
        [torch.cat([prompt_similarity(a, b, metric) for b in vectors], dim=1) for a in vectors]
    )  # (ΣN, ΣN)
    return {
        "format": "softprompt.similarity/1",
        "metric": metric,
        "bank": runs[0].bank,
        "runs": [{"run": r.run, "label": r.label, "task": r.task, "n_prompts": n} for r, n in zip(runs, sizes)],
        "tasks": block_means(prompts, sizes, sizes).tolist(),
        "prompt_names": [name for r in runs for name in r.names()],
        "prompts": prompts.tolist(),
        "notes": [r.note for r in runs if r.note],
    }


def format_similarity(report: dict[str, Any]) -> str:
    """Plain-text matrices: tasks (runs), then prompts when some run holds more than one."""
    labels = [r["label"] for r in report["runs"]]
    lines = [
        f"task similarity ({report['metric']} of {report['bank']}, mean over prompt pairs):",
        *_matrix_lines(labels, report["tasks"]),
    ]
    if len(report["prompt_names"]) > len(labels):
        lines += ["", "prompt similarity:", *_matrix_lines(report["prompt_names"], report["prompts"])]
    return "\n".join(lines + report.get("notes", []))


def _matrix_lines(names: Sequence[str], matrix: Sequence[Sequence[float]]) -> list[str]:
    width = max(6, *(len(n) for n in names))
    lines = ["  " + " " * width + "".join(f"{n:>{width + 1}}" for n in names)]
    return lines + [
        f"  {name:<{width}}" + "".join(f"{v:>{width + 1}.3f}" for v in row) for name, row in zip(names, matrix)
    ]


def write_similarity(report: dict[str, Any], path: str | Path) -> list[Path]:
    """The report as JSON at ``path`` (.json) and as a long CSV beside it (level,row,column,similarity),
    each written atomically; returns both paths."""
    out = Path(path)
    if out.suffix.lower() != ".json":
        raise SoftpromptError(f"--output must end with .json (a .csv is written beside it), got {str(path)!r}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["level", "row", "column", "similarity"])
    labels = [r["label"] for r in report["runs"]]
    for level, names, matrix in (
        ("task", labels, report["tasks"]),
        ("prompt", report["prompt_names"], report["prompts"]),
    ):
        writer.writerows([level, a, b, f"{v:.6f}"] for a, row in zip(names, matrix) for b, v in zip(names, row))
    ensure_parent(out, "the report", "--output")
    atomic_write_text(out, json.dumps(report, indent=1) + "\n")
    atomic_write_text(out.with_suffix(".csv"), buffer.getvalue())
    return [out, out.with_suffix(".csv")]


def plot_similarity(report: dict[str, Any], path: str | Path) -> None:
    """Labelled heatmap of the task matrix (and of the prompt matrix beside it when some run holds
    several prompts); writes ``path`` (.png or .svg) and the other format beside it."""
    out = check_plot_path(path)
    labels = [r["label"] for r in report["runs"]]
    panels = [("tasks", labels, report["tasks"])]
    if len(report["prompt_names"]) > len(labels):
        panels.append(("prompts", report["prompt_names"], report["prompts"]))
    fig = Figure(figsize=(5.5 * len(panels) + 1, 5.2))
    FigureCanvasAgg(fig)
    values = np.array([v for _, _, m in panels for row in m for v in row])
    low, high = float(values.min()), float(values.max())
    for index, (title, names, matrix) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), index + 1)
        image = ax.imshow(np.array(matrix), cmap="viridis", vmin=low, vmax=high if high > low else low + 1e-6)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        if len(names) <= 12:
            middle = (low + high) / 2
            for i, row in enumerate(matrix):
                for j, v in enumerate(row):
                    ax.text(
                        j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="black" if v > middle else "white"
                    )
        ax.set_title(f"{title} ({report['metric']}, {report['bank']})", fontsize=10)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    save_png_and_svg(fig, out, "--plot")


# ----------------------------------------------------------------------------- retrieval


def rank_library(
    target: RunVectors, target_index: int | None, library: Sequence[RunVectors], metric: str = "cosine-mean"
) -> list[dict[str, Any]]:
    """Every library prompt ranked by similarity to the target prompt ``target_index`` of ``target``
    (None: mean over the target's prompts), most similar first; ties keep library order."""
    check_same_model([target, *library])
    if target_index is not None and not 0 <= target_index < len(target.vectors):
        raise SoftpromptError(
            f"--target {target.run}#{target_index}: the run has {len(target.vectors)} prompt(s), indices 0..{len(target.vectors) - 1}"
        )
    query = target.vectors if target_index is None else target.vectors[target_index : target_index + 1]  # (n, P, D)
    rows = [
        {"run": lib.run, "label": lib.label, "index": k, "name": name, "task": lib.task, "score": float(score)}
        for lib in library
        for k, (name, score) in enumerate(zip(lib.names(), prompt_similarity(query, lib.vectors, metric).mean(dim=0)))
    ]
    ranked = sorted(rows, key=lambda row: -row["score"])  # stable
    return [{"rank": i + 1, **row} for i, row in enumerate(ranked)]


def format_ranking(ranking: Sequence[dict[str, Any]], top: int) -> str:
    """``rank  score  prompt  task`` lines of the ``top`` first entries."""
    width = max(6, *(len(r["name"]) for r in ranking[:top]))
    lines = [f"{'rank':>4}  {'score':>7}  {'prompt':<{width}}  task"]
    return "\n".join(
        lines + [f"{r['rank']:>4}  {r['score']:>7.4f}  {r['name']:<{width}}  {r['task']}" for r in ranking[:top]]
    )


def retrieve(
    target: str, library: Sequence[str], metric: str = "cosine-mean", bank: str = "prompts"
) -> list[dict[str, Any]]:
    """``rank_library`` for a target spec (``RUN#i`` or ``RUN``) and library run directories.

    >>> ranking = retrieve("runs/sst2#0", ["runs/sst2"])  # library: any runs on the same model
    >>> [(r["name"], round(r["score"], 3)) for r in ranking][:1]  # the closest library prompt: itself
    [('sst2#0', 1.0)]
    """
    run, index = parse_spec(target, "--target")
    return rank_library(load_run_vectors([run], bank)[0], index, load_run_vectors(library, bank), metric)
