"""Prompt artefacts on disk: safetensors for tensors, JSON for metadata, never pickle.

A run directory holds ``softprompt.json`` and ``prompts.safetensors`` (the (N, P, d) bank) and/or
``prefixes.safetensors`` (folded deep prefixes, one (N, L, 2, H, Pp, d_kv) tensor per site);
``prefixes_reparam.safetensors`` keeps the unfolded reparameterisation when asked for. Residual prompts
(``softprompt.model.reparam``) are stored folded, as plain prompts; ``prompts_reparam.safetensors`` keeps their MLPs
when asked for. A DePT run adds ``dept.safetensors`` (``softprompt.model.dept``: A (N, s, r) and B (N, r, d)). Every
file is written atomically (temp file, fsync, rename).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch
import transformers

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write, atomic_write_text
from softprompt.model.dept import DeptBank
from softprompt.model.families import family_name, geometry_of
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompts import PromptBank
from softprompt.model.reparam import ResidualPromptBank
from softprompt.version import __version__

FORMAT_VERSION = 1
META = "softprompt.json"
PROMPTS = "prompts.safetensors"
PREFIXES = "prefixes.safetensors"
PREFIXES_REPARAM = "prefixes_reparam.safetensors"
PROMPTS_REPARAM = "prompts_reparam.safetensors"
DEPT = "dept.safetensors"
REQUIRED = ("format_version", "model", "task", "n_prompts", "seeds")
_HASH_IGNORED = {
    "_name_or_path",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_attn_implementation",
    "architectures",
}


def model_fingerprint(config) -> dict[str, Any]:
    """What an artefact must match in a model: its family (``softprompt.model.families``), shapes, and a hash of the
    architecture config."""
    fields = {k: v for k, v in sorted(config.to_dict().items()) if k not in _HASH_IGNORED}
    digest = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:16]
    geometry = geometry_of(config)
    encoder, decoder = geometry.sites["encoder"], geometry.sites["decoder"]
    return {  # heads and head size: the encoder's key/value heads (T5: num_heads, d_kv); load_banks checks each site
        "family": family_name(config),
        "config_hash": digest,
        "d_model": geometry.d_model,
        "vocab_size": geometry.vocab_size,
        "num_layers": encoder.layers,
        "num_decoder_layers": decoder.layers,
        "num_heads": encoder.heads,
        "d_kv": encoder.head_dim,
        "input_scale": geometry.input_scale,  # prompts are stored in table space (PEFT's: the embedding layer's output)
    }


def library_versions() -> dict[str, str]:
    """Versions recorded in every artefact."""
    return {
        "softprompt": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def save_run(
    directory: str | os.PathLike,
    meta: dict[str, Any],
    prompts: PromptBank | None,
    prefixes: PrefixBank | None,
    keep_reparam: bool = False,
    dept: DeptBank | None = None,
) -> None:
    """Write the banks and ``meta`` (completed with format and library versions) to ``directory``: residual prompts
    and reparameterised prefixes folded (their MLPs kept too with ``keep_reparam``), a DePT bank as it is."""
    directory = Path(directory)
    meta = {**meta, "format_version": FORMAT_VERSION, "library": library_versions()}
    try:
        directory.mkdir(parents=True, exist_ok=True)
        files = {}
        if prompts is not None:
            if isinstance(prompts, ResidualPromptBank):
                if keep_reparam:
                    files[PROMPTS_REPARAM] = _save_tensors(directory / PROMPTS_REPARAM, dict(prompts.state_dict()))
                prompts = prompts.fold()
            files[PROMPTS] = _save_tensors(directory / PROMPTS, {"prompts": prompts.weight})
        if prefixes is not None:
            folded = prefixes.fold() if prefixes.reparameterised else prefixes
            files[PREFIXES] = _save_tensors(directory / PREFIXES, {f"kv.{site}": kv for site, kv in folded.kv.items()})
            if keep_reparam and prefixes.reparameterised:
                files[PREFIXES_REPARAM] = _save_tensors(directory / PREFIXES_REPARAM, dict(prefixes.state_dict()))
        if dept is not None:
            files[DEPT] = _save_tensors(directory / DEPT, {"a": dept.a, "b": dept.b})
        meta["files"] = files  # SHA-256 per tensor file: a reader never pairs new tensors with old metadata
        atomic_write_text(directory / META, json.dumps(meta, indent=2) + "\n")  # last: marks the run complete
    except OSError as error:  # disk full, read-only or vanished directory: every file is written atomically
        raise SoftpromptError(
            f"cannot write the run to {directory} ({error.strerror or error}); free disk space or choose a "
            "writable directory, then rerun (with --resume if a checkpoint was written)"
        ) from None


def read_meta(directory: str | os.PathLike) -> dict[str, Any]:
    """The validated metadata of a run directory."""
    path = Path(directory) / META
    if not path.is_file():
        raise SoftpromptError(
            f"{str(directory)!r} is not a softprompt run (no {META}); pass a directory written by `softprompt train`"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SoftpromptError(f"{path} is not valid JSON ({error}); re-run training or restore the file") from None
    if not isinstance(meta, dict):
        raise SoftpromptError(f"{path} does not hold a JSON object; re-run training or restore the file")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise SoftpromptError(f"{path} lacks field(s) {', '.join(missing)}; re-run training or restore the file")
    if not isinstance(meta["format_version"], int) or meta["format_version"] > FORMAT_VERSION:
        raise SoftpromptError(
            f"{path} has format version {meta['format_version']!r}, newer than this softprompt reads "
            f"({FORMAT_VERSION}); upgrade softprompt"
        )
    return meta


def check_model(meta: dict[str, Any], config, where: str) -> None:
    """Fail when the artefact's model family or shapes differ from ``config``'s. Artefacts written before families
    were recorded were all trained on t5."""
    expected, actual = meta["model"], model_fingerprint(config)
    trained_on = expected.get("family", "t5")
    if trained_on != actual["family"]:
        raise SoftpromptError(
            f"{where} was trained on a {trained_on} model ({expected.get('name')!r}) but this is a "
            f"{actual['family']} model; prompts do not carry over between families: load it with the model it was "
            f"trained on"
        )
    for key in ("d_model", "vocab_size") + (
        ("num_layers", "num_decoder_layers", "num_heads", "d_kv") if meta.get("prefixes") else ()
    ):
        if expected.get(key) != actual[key]:
            raise SoftpromptError(
                f"{where} was trained on a model with {key}={expected.get(key)} but this model has "
                f"{key}={actual[key]}; load it with the model it was trained on ({expected.get('name')!r})"
            )


def load_banks(directory: str | os.PathLike, config) -> tuple[dict[str, Any], PromptBank | None, PrefixBank | None]:
    """Metadata and banks of a run, checked against the model ``config``.

    >>> from softprompt.model.loading import load_frozen_t5
    >>> meta, prompts, prefixes = load_banks("runs/sst2", load_frozen_t5("t5-nano").config)  # a finished run
    >>> meta["task"]["name"], prompts.weight.shape, prefixes
    ('sst2', torch.Size([3, 8, 192]), None)
    """
    directory = Path(directory)
    meta = read_meta(directory)
    check_model(meta, config, str(directory))
    weight, kvs = read_bank_tensors(directory, meta)
    prompts = prefixes = None
    if weight is not None:
        prompts = PromptBank(*weight.shape)
        prompts.weight.data.copy_(weight)
    if kvs is not None:
        spec = meta["prefixes"]
        shape = PrefixShape.for_config(config, spec["length"], spec["sites"])
        prefixes = PrefixBank(meta["n_prompts"], shape)
        for site in shape.sites:
            if tuple(kvs[site].shape) != tuple(prefixes.kv[site].shape):
                raise SoftpromptError(
                    f"{directory / PREFIXES} does not match the model's prefix shape at {site!r}; retrain"
                )
            prefixes.kv[site].data.copy_(kvs[site])
    return meta, prompts, prefixes


def load_dept(directory: str | os.PathLike, meta: dict[str, Any]) -> DeptBank | None:
    """A run's DePT updates (None for a run without them); ``meta`` is the run's ``read_meta``.

    >>> load_dept("runs/sst2", read_meta("runs/sst2")) is None  # a run of plain prompts
    True
    """
    spec = meta.get("dept")
    if not spec:
        return None
    path = Path(directory) / DEPT
    tensors = load_tensors(path, meta)
    a, b = tensors.get("a"), tensors.get("b")
    n, positions, rank = meta["n_prompts"], spec["positions"], spec["rank"]
    d_model = meta["model"].get("d_model")
    if a is None or b is None or tuple(a.shape) != (n, positions, rank) or tuple(b.shape) != (n, rank, d_model):
        raise SoftpromptError(f"{path} does not hold the DePT updates softprompt.json describes; retrain or restore it")
    bank = DeptBank(n, positions, rank, d_model)
    with torch.no_grad():
        bank.a.copy_(a)
        bank.b.copy_(b)
    return bank


def read_bank_tensors(
    directory: str | os.PathLike, meta: dict[str, Any]
) -> tuple[torch.Tensor | None, dict[str, torch.Tensor] | None]:
    """A run's stored banks without a model: prompts (N, P, d) and folded prefixes site -> (N, L, 2, H, Pp, d_kv)
    (None for a bank the run does not have); ``meta`` is the run's ``read_meta``."""
    directory = Path(directory)
    prompts = prefixes = None
    if meta.get("prompts"):
        prompts = load_tensors(directory / PROMPTS, meta).get("prompts")
        if prompts is None or prompts.dim() != 3 or prompts.shape[0] != meta["n_prompts"]:
            raise SoftpromptError(
                f"{directory / PROMPTS} does not hold the {meta['n_prompts']} prompts softprompt.json describes; retrain or restore it"
            )
    if meta.get("prefixes"):
        tensors = load_tensors(directory / PREFIXES, meta)
        prefixes = {site: tensors.get(f"kv.{site}") for site in meta["prefixes"]["sites"]}
        if any(kv is None or kv.dim() != 6 or kv.shape[0] != meta["n_prompts"] for kv in prefixes.values()):
            raise SoftpromptError(
                f"{directory / PREFIXES} does not hold the prefixes softprompt.json describes; retrain or restore it"
            )
    return prompts, prefixes


def _save_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> str:
    """Write ``tensors`` atomically; returns the file's SHA-256 (recorded in softprompt.json)."""
    data = safetensors.torch.save({name: t.detach().float().cpu().contiguous() for name, t in tensors.items()})
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))
    return hashlib.sha256(data).hexdigest()


def load_tensors(path: Path, meta: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Tensors of a run file, checked against the SHA-256 that softprompt.json records for it."""
    if not path.is_file():
        raise SoftpromptError(f"{path} is missing; the run directory is incomplete — retrain or restore it")
    data = path.read_bytes()
    expected = meta.get("files", {}).get(path.name)
    if expected is not None and hashlib.sha256(data).hexdigest() != expected:
        raise SoftpromptError(
            f"{path} is corrupted or truncated (its SHA-256 differs from the one softprompt.json records, "
            "e.g. after an interrupted save); retrain or restore it"
        )
    try:
        return safetensors.torch.load(data)
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise SoftpromptError(
            f"{path} is corrupted or truncated ({str(error).splitlines()[0]}); retrain or restore it"
        ) from None
