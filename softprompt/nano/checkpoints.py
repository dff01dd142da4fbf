"""Checkpoints of a t5-nano pre-training run: ``OUT/model`` is a loadable Hugging Face T5 directory plus
the optimiser's moments (``optimizer.safetensors``) and the run's ``state.json``, written through a
temporary directory and renames so that a crash leaves the old or the new checkpoint complete; no pickle."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from transformers import T5ForConditionalGeneration

from softprompt.io.atomic import atomic_write_text
from softprompt.model.loading import load_tokenizer
from softprompt.nano.optim import RMSScaledAdamW


def save_checkpoint(
    out: Path, model: T5ForConditionalGeneration, optimizer: RMSScaledAdamW, state: dict[str, Any]
) -> None:
    """Write ``out/model`` (HF model directory + tokenizer + optimizer.safetensors + state.json) via a
    temporary directory, so a crash leaves either the old or the new checkpoint complete."""
    tmp, final, old = out / "model.tmp", out / "model", out / "model.old"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    load_tokenizer().save_pretrained(tmp)
    names = {id(p): n for n, p in model.named_parameters()}
    tensors = {
        f"{names[id(p)]}.{k}": v.detach().cpu().contiguous() for p, s in optimizer.state.items() for k, v in s.items()
    }
    safetensors.torch.save_file(tensors, tmp / "optimizer.safetensors")
    atomic_write_text(tmp / "state.json", json.dumps({**state, "optimizer_steps": optimizer.steps_taken}, indent=1))
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(out: Path) -> tuple[T5ForConditionalGeneration, dict[str, torch.Tensor], dict[str, Any]] | None:
    """(model, optimiser tensors, state) of the newest complete checkpoint in ``out``, or None."""
    for name in ("model", "model.old"):
        directory = out / name
        if (directory / "state.json").is_file():
            model = T5ForConditionalGeneration.from_pretrained(directory, dtype=torch.float32)
            tensors = safetensors.torch.load_file(directory / "optimizer.safetensors")
            return model, tensors, json.loads((directory / "state.json").read_text())
    return None


def restore_optimizer(
    optimizer: RMSScaledAdamW, model: T5ForConditionalGeneration, tensors: dict[str, torch.Tensor], steps: int
) -> None:
    """Put saved moment estimates back onto ``model``'s parameters."""
    for name, param in model.named_parameters():
        if f"{name}.exp_avg" in tensors:
            optimizer.state[param] = {k: tensors[f"{name}.{k}"].to(param.device) for k in ("exp_avg", "exp_avg_sq")}
    optimizer.steps_taken = steps


def weights_sha256(model_dir: str | Path) -> str:
    """SHA-256 of ``model_dir``'s ``model.safetensors``: how a stage names the weights it started from."""
    return hashlib.sha256((Path(model_dir) / "model.safetensors").read_bytes()).hexdigest()


DIGEST_WHERE_MADE = "weights.sha256"  # ``sha256sum`` line of weights that stayed on the machine that trained them


def digest_where_made(model_dir: str | Path) -> str | None:
    """The SHA-256 that ``model_dir``'s weights had on the machine that trained them, for a stage whose weights
    stayed there (``tools/gpu_pretrain.sh --join`` writes it); None if none is recorded."""
    path = Path(model_dir) / DIGEST_WHERE_MADE
    return path.read_text().split()[0] if path.is_file() else None
