"""Exchange input prompts with Hugging Face PEFT prompt-tuning adapters, both ways.

An adapter is a directory with ``adapter_config.json`` and ``adapter_model.safetensors``, in the
format PEFT's ``save_pretrained`` writes for a ``PromptTuningConfig`` (verified against PEFT 0.21):

* ``adapter_config.json``: ``peft_type`` ``PROMPT_TUNING``, ``task_type`` ``SEQ_2_SEQ_LM``,
  ``num_virtual_tokens`` P, ``token_dim`` d_model, ``num_transformer_submodules`` 2 (PEFT's value
  for seq2seq models), ``num_attention_heads`` / ``num_layers`` of the encoder,
  ``prompt_tuning_init`` ``RANDOM``, ``base_model_name_or_path`` and ``inference_mode`` true;
* ``adapter_model.safetensors``: one tensor ``prompt_embeddings`` of shape
  (P · num_transformer_submodules, d_model) = (2P, d) for seq2seq.

PEFT's ``PeftModelForSeq2SeqLM`` (``forward`` and ``generate``) prepends only the first
``num_virtual_tokens`` rows to the encoder's input embeddings, with attention mask 1 — exactly what
``PromptedT5`` does with one prompt. PEFT's rows stand where the embedding layer's output does, softprompt's prompts in
the embedding table's space: they differ by the layer's scale (T5Gemma 2's sqrt(d_model); 1 for the other families),
which export multiplies in and import divides out. Rows P..2P-1 (the "decoder" virtual tokens) are never read
for prompt tuning; an export writes them as zeros and an import ignores them.

Deep prefixes are never exported: PEFT's seq2seq ``PrefixTuning`` only reaches the decoder's KV
cache (no encoder prefixes, cross-attention entries recomputed), uses token_dim / heads as head
size instead of T5's d_kv, and gives prefix keys T5's position bias. A prefix-only run is refused;
a run with an input prompt too exports the prompt, with a note that the prefixes were left out.

Nothing here needs ``peft`` installed: both directions read and write the files directly, and
``adapter_model.bin`` (pickle) is refused rather than unpickled.
"""

from __future__ import annotations

import json
import operator
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import safetensors
import safetensors.torch
import torch

from softprompt.errors import SoftpromptError
from softprompt.io.atomic import atomic_write, atomic_write_text, check_out_dir, write_fresh_dir
from softprompt.io.store import META, PROMPTS, load_tensors, model_fingerprint, read_meta, save_run
from softprompt.model.families import family_of, geometry_of, model_family
from softprompt.model.prompts import PromptBank

CONFIG_NAME = "adapter_config.json"
WEIGHTS_NAME = "adapter_model.safetensors"
PICKLE_WEIGHTS_NAME = "adapter_model.bin"
EMBEDDING_KEY = "prompt_embeddings"
SEQ2SEQ_SUBMODULES = 2  # PeftModel._setup_prompt_encoder: 2 if task_type == SEQ_2_SEQ_LM else 1
PEFT_FORMAT_VERSION = "0.21.2"  # the PEFT release whose format this module writes (recorded as peft_version)


def export_peft(
    run_dir: str | os.PathLike,
    prompt_index: int,
    out_dir: str | os.PathLike,
    base_model_name_or_path: str | None = None,
    overwrite: bool = False,
) -> list[str]:
    """Write prompt ``prompt_index`` of the run in ``run_dir`` as a PEFT prompt-tuning adapter in
    ``out_dir``; returns notes for the user (e.g. that deep prefixes were left out).

    ``base_model_name_or_path`` overrides the model recorded in the run (softprompt aliases such as
    ``t5-xl`` are written as their hub ids, existing local directories and the embedded t5-nano sizes as
    absolute paths).
    ``out_dir`` must be absent or empty; an existing PEFT adapter there is replaced only with
    ``overwrite``, any other content never.

    >>> export_peft("runs/sst2", 0, "adapters/sst2-0")  # prompt 0 of a run; no notes: it has no deep prefixes
    []
    >>> sorted(os.listdir("adapters/sst2-0"))  # what peft.PeftModel.from_pretrained reads
    ['adapter_config.json', 'adapter_model.safetensors']
    """
    meta = read_meta(run_dir)
    check_out_dir(Path(out_dir), overwrite, _is_adapter, "a PEFT adapter", "--output-dir")
    notes: list[str] = []
    prompts_spec, prefixes_spec = meta.get("prompts"), meta.get("prefixes")
    if not prompts_spec:
        sites = ", ".join((prefixes_spec or {}).get("sites", [])) or "none"
        raise SoftpromptError(
            f"{run_dir} holds only deep prefixes (sites: {sites}), which cannot be exported to PEFT: PEFT prefix "
            "tuning never reaches T5's encoder and feeds decoder/cross prefixes through the KV cache with another "
            "head size and position bias; export a run trained with --prompt-length > 0"
        )
    if meta.get("dept"):
        raise SoftpromptError(
            f"{run_dir} is a DePT run: its prompts work only with their low-rank update of the input token embeddings, "
            "which a PEFT prompt-tuning adapter cannot carry; serve it with softprompt, or export a run without --dept-rank"
        )
    if prefixes_spec:
        notes.append(
            f"the run's deep prefixes (sites: {', '.join(prefixes_spec.get('sites', []))}) were left out: PEFT "
            "prompt tuning only carries the input prompt, so the adapter reproduces the input prompt alone, "
            "not the run's prompt+prefix model"
        )
    weight = _run_prompt_weight(run_dir, meta)  # (N, P, d)
    n_prompts = weight.shape[0]
    try:
        index = None if isinstance(prompt_index, bool) else operator.index(prompt_index)
    except TypeError:
        index = None
    if index is None or not 0 <= index < n_prompts:
        raise SoftpromptError(f"--prompt must be an index in 0..{n_prompts - 1} for {run_dir}, got {prompt_index!r}")
    prompt_index = index
    prompt = weight[prompt_index]  # (P, d)
    if not torch.isfinite(prompt).all():
        raise SoftpromptError(
            f"prompt {prompt_index} of {run_dir} holds NaN or infinite values; retrain it or export another prompt"
        )

    model = meta["model"]
    base, note = _base_model_reference(base_model_name_or_path or model.get("name"))
    if note:
        notes.append(note)
    length, d_model = prompt.shape
    config = {
        "auto_mapping": None,
        "base_model_name_or_path": base,
        "inference_mode": True,
        "modules_to_save": None,
        "num_attention_heads": model.get("num_heads"),
        "num_layers": model.get("num_layers"),
        "num_transformer_submodules": SEQ2SEQ_SUBMODULES,
        "num_virtual_tokens": length,
        "peft_type": "PROMPT_TUNING",
        "peft_version": _peft_version(),
        "prompt_tuning_init": "RANDOM",
        "prompt_tuning_init_text": None,
        "revision": None,
        "task_type": "SEQ_2_SEQ_LM",
        "token_dim": d_model,
        "tokenizer_kwargs": None,
        "tokenizer_name_or_path": None,
    }
    embeddings = torch.zeros(length * SEQ2SEQ_SUBMODULES, d_model)
    # the encoder's virtual tokens, as the embedding layer's output; the decoder rows are unused by prompt tuning
    embeddings[:length] = prompt * model.get("input_scale", 1.0)
    provenance = {
        "format": "pt",
        "softprompt_run": str(Path(run_dir).resolve()),
        "softprompt_prompt": str(prompt_index),
        "softprompt_task": str(meta["task"].get("name")) if isinstance(meta.get("task"), dict) else "",
    }

    def write(directory: Path) -> None:
        atomic_write(
            directory / WEIGHTS_NAME,
            lambda tmp: safetensors.torch.save_file({EMBEDDING_KEY: embeddings}, tmp, metadata=provenance),
        )
        atomic_write_text(directory / CONFIG_NAME, json.dumps(config, indent=2, sort_keys=True))

    write_fresh_dir(out_dir, write, overwrite, _is_adapter, "a PEFT adapter", "--output-dir")
    return notes


def _is_adapter(directory: Path) -> bool:
    return (directory / CONFIG_NAME).is_file()


def _is_run(directory: Path) -> bool:
    return (directory / META).is_file()


def _run_prompt_weight(run_dir: str | os.PathLike, meta: dict[str, Any]) -> torch.Tensor:
    """The run's prompt bank (N, P, d), checked against its metadata (no model needed)."""
    path = Path(run_dir) / PROMPTS
    weight = load_tensors(path, meta).get("prompts")
    expected = (meta["n_prompts"], meta["prompts"].get("length"), meta["model"].get("d_model"))
    if weight is None or weight.ndim != 3 or tuple(weight.shape) != expected:
        shape = None if weight is None else tuple(weight.shape)
        raise SoftpromptError(
            f"{path} holds prompts of shape {shape}, but {META} says (n_prompts, length, d_model) = {expected}; retrain or restore the run"
        )
    return weight.float()


def _base_model_reference(name: Any) -> tuple[str | None, str | None]:
    """What PEFT can load the base model from: hub id for a softprompt alias, absolute local path (an
    embedded model's folder in this installation)."""
    from softprompt.model.loading import ALIASES, EMBEDDED

    if not isinstance(name, str) or not name:
        return None, "the run records no model name, so base_model_name_or_path is empty; pass --base-model to set it"
    if name in EMBEDDED:  # no hub id exists; as for any local directory, its path
        return str(EMBEDDED[name].resolve()), None
    if os.path.isdir(name):
        return str(Path(name).resolve()), None
    if name in ALIASES:
        return ALIASES[name], f"base_model_name_or_path is {ALIASES[name]!r} (softprompt alias {name!r})"
    return name, None


def _peft_version() -> str:
    try:
        from peft import __version__
    except ImportError:
        return PEFT_FORMAT_VERSION
    return __version__


def import_peft(
    adapter_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    task_name: str,
    label_words: Sequence[str] | None = None,
    model_name_or_path: str | None = None,
    overwrite: bool = False,
) -> None:
    """Turn a PEFT prompt-tuning adapter into a one-prompt softprompt run in ``out_dir``.

    The prompt is the adapter's first ``num_virtual_tokens`` rows of ``prompt_embeddings`` (what
    PEFT prepends to the encoder input). The run records the model (``model_name_or_path``, else
    the adapter's ``base_model_name_or_path``; its config is read to fingerprint it and check
    d_model) and the task: a built-in task by name, otherwise a custom task that is classification
    with ``label_words`` or generation without. ``out_dir`` must be absent or empty; an existing
    softprompt run there is replaced only with ``overwrite``.

    >>> export_peft("runs/sst2", 1, "adapters/sst2-1")  # any PEFT prompt-tuning adapter of a T5
    []
    >>> import_peft("adapters/sst2-1", "runs/from-peft", task_name="sst2")
    >>> from ensembles.pool import load_pool
    >>> from softprompt.model.loading import load_frozen_t5
    >>> load_pool(["runs/from-peft"], load_frozen_t5("t5-nano")).names  # a one-prompt run, ready for ensemble-eval
    ['from-peft#0']
    """
    adapter = Path(adapter_dir)
    config = _read_adapter_config(adapter)
    check_out_dir(Path(out_dir), overwrite, _is_run, "a softprompt run", "--output-dir")
    length = config["num_virtual_tokens"]
    embeddings = _read_adapter_weights(adapter)
    submodules = config.get("num_transformer_submodules") or (
        SEQ2SEQ_SUBMODULES if config.get("task_type") == "SEQ_2_SEQ_LM" else 1
    )
    expected_rows = length * submodules
    if embeddings.ndim != 2 or embeddings.shape[0] != expected_rows:
        raise SoftpromptError(
            f"{adapter / WEIGHTS_NAME} holds {EMBEDDING_KEY} of shape {tuple(embeddings.shape)}, but {CONFIG_NAME} "
            f"implies ({expected_rows}, token_dim) (num_virtual_tokens {length} x num_transformer_submodules "
            f"{submodules}); re-save the adapter with PEFT"
        )
    token_dim = config.get("token_dim")
    if token_dim is not None and embeddings.shape[1] != token_dim:
        raise SoftpromptError(
            f"{adapter / WEIGHTS_NAME} has embeddings of width {embeddings.shape[1]} but {CONFIG_NAME} says token_dim "
            f"{token_dim}; re-save the adapter with PEFT"
        )
    prompt = embeddings[:length].float()  # the encoder's virtual tokens
    if not torch.isfinite(prompt).all():
        raise SoftpromptError(
            f"{adapter / WEIGHTS_NAME} holds NaN or infinite prompt values; re-train or re-save the adapter"
        )

    name = model_name_or_path or config.get("base_model_name_or_path")
    if not name:
        raise SoftpromptError(
            f"{adapter / CONFIG_NAME} names no base model (base_model_name_or_path); pass --model with the T5 it was trained on"
        )
    model_config = _load_model_config(name)
    geometry = geometry_of(model_config)
    d_model = geometry.d_model
    prompt = prompt / geometry.input_scale  # into the embedding table's space
    if prompt.shape[1] != d_model:
        raise SoftpromptError(
            f"the adapter's prompt vectors have width {prompt.shape[1]} but model {name!r} has d_model="
            f"{d_model}; pass --model with the T5 the adapter was trained on"
        )
    task = _task_meta(task_name, label_words)
    bank = PromptBank(1, length, prompt.shape[1])
    with torch.no_grad():
        bank.weight[0] = prompt
    meta = {
        "model": {"name": name, **model_fingerprint(model_config), "parameters": _parameter_count(model_config)},
        "trainable_parameters": prompt.numel(),
        "task": task,
        "n_prompts": 1,
        "seeds": [None],  # unknown: trained outside softprompt
        "prompts": {"length": length, "init": "peft-import"},
        "prefixes": None,
        "best": [],
        "imported_from": {
            "format": "peft",
            "adapter": str(adapter.resolve()),
            "peft_version": config.get("peft_version"),
            "task_type": config.get("task_type"),
            "prompt_tuning_init": config.get("prompt_tuning_init"),
            "base_model_name_or_path": config.get("base_model_name_or_path"),
        },
    }
    write_fresh_dir(
        out_dir,
        lambda directory: save_run(directory, meta, bank, None),
        overwrite,
        _is_run,
        "a softprompt run",
        "--output-dir",
    )


def _read_adapter_config(adapter: Path) -> dict[str, Any]:
    if not adapter.is_dir():
        raise SoftpromptError(
            f"adapter directory {str(adapter)!r} does not exist; pass a local directory written by PEFT's save_pretrained()"
        )
    path = adapter / CONFIG_NAME
    if not path.is_file():
        raise SoftpromptError(f"{adapter} has no {CONFIG_NAME}; pass a directory written by PEFT's save_pretrained()")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SoftpromptError(f"{path} is not valid JSON ({error}); re-save the adapter with PEFT") from None
    if not isinstance(config, dict):
        raise SoftpromptError(f"{path} does not hold a JSON object; re-save the adapter with PEFT")
    peft_type = config.get("peft_type")
    if peft_type != "PROMPT_TUNING":
        raise SoftpromptError(
            f"{adapter} is a {peft_type or 'untyped'} adapter, not PROMPT_TUNING; only PEFT prompt-tuning "
            "adapters (input soft prompts) can be imported"
        )
    task_type = config.get("task_type")
    if task_type not in (None, "SEQ_2_SEQ_LM"):
        raise SoftpromptError(
            f"{adapter} is a prompt-tuning adapter for task_type {task_type}, not SEQ_2_SEQ_LM; only encoder-decoder "
            "(T5) prompt-tuning adapters can be imported"
        )
    length = config.get("num_virtual_tokens")
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise SoftpromptError(
            f"{path} has num_virtual_tokens {length!r}; expected a positive integer, re-save the adapter with PEFT"
        )
    submodules = config.get("num_transformer_submodules")
    if submodules is not None and (isinstance(submodules, bool) or not isinstance(submodules, int) or submodules < 1):
        raise SoftpromptError(
            f"{path} has num_transformer_submodules {submodules!r}; expected a positive integer, re-save the adapter with PEFT"
        )
    return config


def _read_adapter_weights(adapter: Path) -> torch.Tensor:
    path = adapter / WEIGHTS_NAME
    if not path.is_file():
        if (adapter / PICKLE_WEIGHTS_NAME).is_file():
            raise SoftpromptError(
                f"{adapter} stores its weights as {PICKLE_WEIGHTS_NAME} (pickle), which softprompt never loads; re-save "
                f"it with model.save_pretrained(dir, safe_serialization=True) to get {WEIGHTS_NAME}"
            )
        raise SoftpromptError(f"{adapter} has no {WEIGHTS_NAME}; pass a directory written by PEFT's save_pretrained()")
    try:
        tensors = safetensors.torch.load_file(path)
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise SoftpromptError(
            f"{path} is corrupted or truncated ({str(error).splitlines()[0]}); re-save the adapter with PEFT"
        ) from None
    if EMBEDDING_KEY not in tensors:
        raise SoftpromptError(
            f"{path} has no {EMBEDDING_KEY!r} tensor (found: {', '.join(sorted(tensors)) or 'none'}); re-save the adapter with PEFT"
        )
    return tensors[EMBEDDING_KEY]


def _load_model_config(name: str):
    from transformers import AutoConfig

    from softprompt.model.loading import model_typo_hint, resolve_model_name

    source = resolve_model_name(name)
    try:
        config = AutoConfig.from_pretrained(source)
    except (OSError, ValueError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise SoftpromptError(
            f"cannot load the config of model {name!r} ({first}); {model_typo_hint(name)}pass --model with a local T5 directory, or a hub name while online"
        ) from None
    model_family(config, name)  # a model outside the T5 family: one line naming the supported families
    return config


def _parameter_count(config) -> int:
    """Parameters of the base model (its family's class), counted on the meta device (no weights loaded)."""
    with torch.device("meta"):
        model = family_of(config).model_class(config)
    return sum(p.numel() for p in model.parameters())


def _task_meta(task_name: str, label_words: Sequence[str] | None) -> dict[str, Any]:
    from softprompt.data.custom import check_custom_name
    from softprompt.data.tasks import TASKS

    if not task_name or not isinstance(task_name, str):
        raise SoftpromptError(
            "--task needs a task name (a built-in task such as boolq, or the name of your custom task)"
        )
    words = list(label_words) if label_words else []
    builtin = TASKS.get(task_name.lower())
    if builtin is not None:
        if words and words != list(builtin.label_words):
            raise SoftpromptError(
                f"task {builtin.name!r} has label words {list(builtin.label_words)}, not {words}; drop --label-words "
                "for a built-in task or name a custom task"
            )
        return {
            "name": builtin.name,
            "kind": builtin.kind,
            "label_words": list(builtin.label_words),
            "metric": builtin.metric,
        }
    check_custom_name(task_name, "--task")
    if words:
        if len(words) < 2 or len(set(words)) < len(words):
            raise SoftpromptError(f"label words {words} must be at least two distinct words, e.g. negative,positive")
        return {"name": task_name, "kind": "classification", "label_words": words, "metric": "accuracy"}
    return {"name": task_name, "kind": "generation", "label_words": [], "metric": "bleu"}
