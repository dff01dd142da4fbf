"""Resumable training checkpoints: tensors in safetensors, everything else in JSON.

``<run>/checkpoint/state-<step>-<digest>.safetensors`` holds the banks, the best-so-far banks and the
optimiser's tensors; ``state.json`` the step, the best metrics, the optimiser's scalars, the history,
and the name and sha256 of that tensor file. Both are written atomically (temp file, fsync, rename).

A save writes the new tensor file under a new name first and only then replaces ``state.json``: that
rename is the commit. Until it happens ``state.json`` still names the previous tensor file, which is
still there, so a process killed at any point leaves a loadable checkpoint (the previous one or the
new one). Superseded tensor files and temp files left by killed writes are removed after the commit.
Loading only parses JSON and safetensors; nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write, atomic_write_text

DIRECTORY = "checkpoint"
STATE = "state.json"
LEGACY_TENSORS = "state.safetensors"  # checkpoints written before tensor files were versioned
_TENSORS = re.compile(r"state-\d+-[0-9a-f]{16}\.safetensors")
_STALE = re.compile(r"state-\d+-[0-9a-f]{16}\.safetensors|state\.safetensors|\.state[-.].*\.tmp")


def save_checkpoint(
    run_dir: str | Path,
    banks: dict[str, torch.Tensor],
    best: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Write a checkpoint of bank tensors, best-so-far tensors, optimiser state and ``state``."""
    directory = Path(run_dir) / DIRECTORY
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {f"bank.{k}": v for k, v in banks.items()} | {f"best.{k}": v for k, v in best.items()}
    scalars: dict[str, dict[str, Any]] = {}
    for index, param_state in optimizer.state_dict()["state"].items():
        for key, value in param_state.items():
            if torch.is_tensor(value):
                tensors[f"opt.{index}.{key}"] = value
            else:
                scalars.setdefault(str(index), {})[key] = value
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    data = safetensors.torch.save(tensors)
    digest = hashlib.sha256(data).hexdigest()
    # content-addressed: never the name of the committed file unless the bytes are the same
    name = f"state-{int(state['step']):08d}-{digest[:16]}.safetensors"
    atomic_write(directory / name, lambda tmp: Path(tmp).write_bytes(data))
    record = {**state, "optimizer_scalars": scalars, "tensors_file": name, "tensors_sha256": digest}
    atomic_write_text(directory / STATE, json.dumps(record, indent=1))  # the commit
    for path in directory.iterdir():  # a kill from here on only leaves litter for the next save
        if path.name != name and _STALE.fullmatch(path.name):
            path.unlink(missing_ok=True)


def has_checkpoint(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a committed checkpoint (what ``--resume`` continues from)."""
    return (Path(run_dir) / DIRECTORY / STATE).is_file()


def checkpoint_step(run_dir: str | Path) -> int | str:
    """The step of the committed checkpoint in ``run_dir`` ("none" without one), for messages."""
    path = Path(run_dir) / DIRECTORY / STATE
    return json.loads(path.read_text())["step"] if path.is_file() else "none"


def load_checkpoint(run_dir: str | Path, optimizer: torch.optim.Optimizer) -> tuple[dict, dict, dict[str, Any]] | None:
    """(bank tensors, best tensors, state) of the run's checkpoint, with ``optimizer`` restored;
    None when the run has no checkpoint."""
    directory = Path(run_dir) / DIRECTORY
    if not has_checkpoint(run_dir):
        return None
    try:
        state = json.loads((directory / STATE).read_text())
        if not isinstance(state, dict):
            raise ValueError("state.json does not hold a JSON object")
        missing = [key for key in ("step", "config", "optimizer_scalars", "tensors_sha256") if key not in state]
        if missing:
            raise ValueError(f"state.json lacks {', '.join(missing)}")
        name = state.get("tensors_file", LEGACY_TENSORS)
        if name != LEGACY_TENSORS and not (isinstance(name, str) and _TENSORS.fullmatch(name)):
            raise ValueError(f"state.json names an invalid tensor file {name!r}")
        data = (directory / name).read_bytes()
    except (OSError, ValueError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SoftpromptError(f"checkpoint in {directory} is unreadable ({error}); restart without --resume") from None
    if hashlib.sha256(data).hexdigest() != state.get("tensors_sha256"):
        raise SoftpromptError(
            f"checkpoint in {directory} is inconsistent (tensor digest mismatch); restart without --resume"
        )
    try:
        tensors = safetensors.torch.load(data)  # parses a JSON header and raw buffers; never unpickles
    except (safetensors.SafetensorError, ValueError) as error:
        raise SoftpromptError(
            f"checkpoint in {directory} is corrupted: {name} is not a safetensors file "
            f"({str(error).splitlines()[0]}); restart without --resume"
        ) from None
    banks = {k[5:]: v for k, v in tensors.items() if k.startswith("bank.")}
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    optimizer_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, field = key.split(".", 2)
            optimizer_state.setdefault(int(index), {})[field] = value
    for index, values in state.pop("optimizer_scalars").items():
        optimizer_state.setdefault(int(index), {}).update(values)
    state.pop("tensors_file", None)
    state.pop("tensors_sha256")
    optimizer.load_state_dict({"state": optimizer_state, "param_groups": optimizer.state_dict()["param_groups"]})
    return banks, best, state
