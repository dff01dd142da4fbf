"""Prompt transfer (Vu et al. 2022, SPoT): start a new run from another run's trained prompts.

``softprompt train --init-from SPEC`` (repeatable). A spec ``RUN#i`` names prompt i of a run
directory, a bare ``RUN`` all of its prompts in order. The specs of one run expand to a list of
source prompts that holds either ONE prompt (broadcast: every new prompt starts from it; the copies
then start identical and see the same batches, so broadcast is meant for ``--n-prompts 1``) or
exactly ONE PER NEW PROMPT (new prompt k starts from source k). ``auto`` instead picks the library
prompt closest to a briefly trained probe of the new task (``softprompt.training.retrieval.pick_source``).

Input prompts are copied when the new run trains them and the source has them, deep prefixes
likewise; a bank the source has must have the same shape as the new run's, and the source must
come from the same model (architecture fingerprint). The copies are exact: the new banks start bit
for bit at the source tensors (reparameterised prefixes through their anchor, ``PrefixBank.init_values``).
A DePT source (``softprompt.model.dept``) brings its update with its prompts, so the new run starts where the
source ended: the new run must train a DePT update of the same rank and positions (a run that would drop it is
refused, since its prompts were trained next to that update); a DePT run started from plain prompts starts its
update at zero, which leaves the source prompts' outputs exactly as they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from softprompt.errors import SoftpromptError
from softprompt.io.store import load_dept, model_fingerprint, read_bank_tensors, read_meta
from softprompt.model.prompted import PromptedT5
from softprompt.paths import parse_spec

AUTO = "auto"


@dataclass
class InitChoice:
    """The concrete sources of a run configured with ``--init-from auto`` and how they were chosen
    (a JSON-ready ``note``: probe, metric, ranking), recorded in the run's ``softprompt.json``."""

    specs: tuple[str, ...]
    note: dict[str, Any]


def check_init_from(specs: Sequence[str], library: Sequence[str]) -> None:
    """Refuse malformed ``--init-from``/``--library`` combinations (no file is read)."""
    if AUTO in specs:
        if len(specs) > 1:
            raise SoftpromptError(
                "--init-from auto picks the source itself; do not combine it with other --init-from runs"
            )
        if not library:
            raise SoftpromptError("--init-from auto needs a prompt library; add --library RUN (repeatable)")
        return
    if library:
        raise SoftpromptError("--library is only used by --init-from auto; add --init-from auto or drop --library")
    for spec in specs:
        parse_spec(spec)


def apply_init_from(
    prompted: PromptedT5, config, specs: Sequence[str], seeds: Sequence[int], choice: InitChoice | None = None
) -> dict[str, Any]:
    """Copy the source prompts of ``specs`` (or of ``choice`` for ``auto``) into the banks of
    ``prompted`` (model ``config``; ``seeds``: the run's prompt seeds, which draw a prefix MLP's weights);
    returns the record stored as ``init_from`` in softprompt.json.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> from softprompt.model.prompts import PromptBank
    >>> frozen = load_frozen_t5("t5-nano")
    >>> prompted = PromptedT5(frozen, PromptBank(1, 8, frozen.config.d_model))
    >>> record = apply_init_from(prompted, frozen.config, ["runs/sst2#2"], seeds=[0])  # start from prompt 2 of a run
    >>> record["sources"][0]
    {'prompt': 0, 'run': 'runs/sst2', 'source_prompt': 2, 'task': 'sst2', 'banks': ['prompts']}
    """
    note = None
    if tuple(specs) == (AUTO,):
        if choice is None:
            raise SoftpromptError(
                "--init-from auto needs a retrieval first; run it through `softprompt train --init-from auto --library ...`"
            )
        specs, note = choice.specs, choice.note
    return {"sources": copy_sources(prompted, config, specs, seeds), "auto": note}


def copy_sources(prompted: PromptedT5, config, specs: Sequence[str], seeds: Sequence[int]) -> list[dict[str, Any]]:
    """Copy the source prompts into ``prompted``'s banks; one record per new prompt."""
    n = prompted.n_prompts
    runs: dict[str, tuple[dict, torch.Tensor | None, dict | None]] = {}
    picks: list[tuple[str, int]] = []
    for spec in specs:
        run, index = parse_spec(spec)
        if run not in runs:
            runs[run] = _load_source(run, config, prompted.name)
        count = runs[run][0]["n_prompts"]
        if index is not None and index >= count:
            raise SoftpromptError(f"--init-from {spec}: {run} has {count} prompt(s), indices 0..{count - 1}")
        picks += [(run, index)] if index is not None else [(run, i) for i in range(count)]
    if len(picks) not in (1, n):
        raise SoftpromptError(
            f"--init-from names {len(picks)} source prompts for {n} new prompts; give one (copied to every prompt) "
            f"or one per prompt (e.g. --n-prompts {len(picks)})"
        )
    picks = picks * n if len(picks) == 1 else picks
    banks = {run: _shared_banks(prompted, run, meta) for run, (meta, _, _) in runs.items()}
    if len({tuple(b) for b in banks.values()}) > 1:
        raise SoftpromptError(
            "the --init-from runs hold different banks ("
            + "; ".join(f"{run}: {', '.join(b)}" for run, b in banks.items())
            + "); take every source prompt from runs with the same banks"
        )
    copied = next(iter(banks.values()))
    with torch.no_grad():
        if "prompts" in copied:  # (N, P, d)
            prompted.prompts.weight.copy_(torch.stack([runs[run][1][i] for run, i in picks]))
        if "prefixes" in copied:  # site -> (N, L, 2, H, Pp, d_kv)
            values = {
                site: torch.stack([runs[run][2][site][i] for run, i in picks]) for site in prompted.prefixes.shape.sites
            }
            prompted.prefixes.init_values(values, seeds)
        if "dept" in copied:  # A (N, s, r), B (N, r, d)
            sources = {run: load_dept(run, runs[run][0]) for run in runs}
            prompted.dept.a.copy_(torch.stack([sources[run].a[i] for run, i in picks]))
            prompted.dept.b.copy_(torch.stack([sources[run].b[i] for run, i in picks]))
    return [
        {"prompt": k, "run": run, "source_prompt": i, "task": runs[run][0]["task"]["name"], "banks": list(copied)}
        for k, (run, i) in enumerate(picks)
    ]


def _load_source(run: str, config, model_name: str) -> tuple[dict, torch.Tensor | None, dict | None]:
    """A source run's metadata and bank tensors, refused unless it was trained on this model."""
    meta = read_meta(run)
    stored, actual = meta["model"].get("config_hash"), model_fingerprint(config)["config_hash"]
    if stored != actual:
        raise SoftpromptError(
            f"--init-from {run} was trained on model {meta['model'].get('name')!r} (fingerprint {stored}), this run uses "
            f"{model_name!r} ({actual}); prompts transfer only between runs of the same model"
        )
    return (meta, *read_bank_tensors(run, meta))


def _shared_banks(prompted: PromptedT5, run: str, meta: dict) -> list[str]:
    """The banks both the new run and ``run`` have; refused when their shapes differ or none is shared."""
    shared = []
    if prompted.prompts is not None and meta.get("prompts"):
        if meta["prompts"]["length"] != prompted.prompts.length:
            raise SoftpromptError(
                f"--init-from {run} has input prompts of length {meta['prompts']['length']}, this run trains "
                f"--prompt-length {prompted.prompts.length}; use --prompt-length {meta['prompts']['length']}"
            )
        shared.append("prompts")
    if prompted.prefixes is not None and meta.get("prefixes"):
        spec, shape = meta["prefixes"], prompted.prefixes.shape
        if spec["length"] != shape.length or tuple(spec["sites"]) != shape.sites:
            raise SoftpromptError(
                f"--init-from {run} has deep prefixes of length {spec['length']} at {','.join(spec['sites'])}, this run "
                f"trains length {shape.length} at {','.join(shape.sites)}; use --prefix-length {spec['length']} "
                f"--prefix-sites {','.join(spec['sites'])}"
            )
        shared.append("prefixes")
    _check_dept(prompted, run, meta.get("dept"), shared)
    if not shared:
        trains = " and ".join(
            b for b, on in (("input prompts", prompted.prompts), ("deep prefixes", prompted.prefixes)) if on is not None
        )
        raise SoftpromptError(f"--init-from {run} holds no {trains}, which this run trains; choose a run that has them")
    return shared


def _check_dept(prompted: PromptedT5, run: str, source: dict | None, shared: list[str]) -> None:
    """Add "dept" to ``shared`` when both runs have a DePT update of one shape; refuse a source whose update
    this run would drop or could not hold. (A DePT run from plain prompts: its update starts at zero.)"""
    if not source or "prompts" not in shared:
        return
    rank, positions = source["rank"], source["positions"]
    if prompted.dept is None:
        raise SoftpromptError(
            f"--init-from {run} trained its prompts next to a DePT update (rank {rank} over {positions} positions) "
            f"that this run would drop; add --dept-rank {rank} --max-source-length {positions}, or start from a run "
            "of plain prompts"
        )
    if (prompted.dept.rank, prompted.dept.positions) != (rank, positions):
        raise SoftpromptError(
            f"--init-from {run} has a DePT update of rank {rank} over {positions} positions, this run trains rank "
            f"{prompted.dept.rank} over {prompted.dept.positions}; use --dept-rank {rank} --max-source-length {positions}"
        )
    shared.append("dept")
