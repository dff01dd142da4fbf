"""Resumable training checkpoints: tensors in safetensors, everything else in JSON.

``<run>/checkpoint/state.safetensors`` holds the banks, the best-so-far banks and the optimiser's
tensors; ``state.json`` the step, the best metrics, the optimiser's scalars and the history.
Both are written atomically; ``state.json`` is written last and names the tensor file's digest, so
a reader never pairs a new JSON with an old tensor file (or the reverse).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import safetensors.torch
import torch

from softprompt.atomic import atomic_write, atomic_write_text
from softprompt.errors import SoftpromptError

DIRECTORY = "checkpoint"


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
    atomic_write(directory / "state.safetensors", lambda tmp: Path(tmp).write_bytes(data))
    record = {**state, "optimizer_scalars": scalars, "tensors_sha256": hashlib.sha256(data).hexdigest()}
    atomic_write_text(directory / "state.json", json.dumps(record, indent=1))


def load_checkpoint(run_dir: str | Path, optimizer: torch.optim.Optimizer) -> tuple[dict, dict, dict[str, Any]] | None:
    """(bank tensors, best tensors, state) of the run's checkpoint, with ``optimizer`` restored;
    None when the run has no checkpoint."""
    directory = Path(run_dir) / DIRECTORY
    if not (directory / "state.json").is_file():
        return None
    try:
        state = json.loads((directory / "state.json").read_text())
        data = (directory / "state.safetensors").read_bytes()
    except (OSError, json.JSONDecodeError) as error:
        raise SoftpromptError(f"checkpoint in {directory} is unreadable ({error}); restart without --resume") from None
    if hashlib.sha256(data).hexdigest() != state.get("tensors_sha256"):
        raise SoftpromptError(f"checkpoint in {directory} is inconsistent (tensor digest mismatch); restart without --resume")
    tensors = safetensors.torch.load(data)
    banks = {k[5:]: v for k, v in tensors.items() if k.startswith("bank.")}
    best = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    optimizer_state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("opt."):
            _, index, name = key.split(".", 2)
            optimizer_state.setdefault(int(index), {})[name] = value
    for index, values in state.pop("optimizer_scalars").items():
        optimizer_state.setdefault(int(index), {}).update(values)
    optimizer.load_state_dict({"state": optimizer_state, "param_groups": optimizer.state_dict()["param_groups"]})
    return banks, best, state
