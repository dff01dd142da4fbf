"""A run's record and its resume check: the metadata ``softprompt.json`` keeps (model, task, data sources, banks,
best steps, settings), and which settings a ``--resume`` may change from its checkpoint's."""

from __future__ import annotations

from typing import Any

from softprompt.data.tasks import Task
from softprompt.errors import SoftpromptError
from softprompt.io.store import model_fingerprint
from softprompt.model.loading import FrozenT5
from softprompt.training.config import TrainConfig

RESUMABLE_CHANGES = {
    "steps",
    "device",
    "device_map",
    "gradient_checkpointing",
    "max_tokens",
    "output_dir",
    "checkpoint_every",
    "keep_reparam",
}  # settings a resumed run may change (e.g. train longer)


def check_resume(cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """Refuse to resume the checkpoint state ``saved`` with settings that differ from its own (beyond
    ``RESUMABLE_CHANGES``) or with ``--steps`` short of its step."""
    differing = cfg.differences(saved["config"], ignore=RESUMABLE_CHANGES)
    if differing:
        given = cfg.to_dict()
        changes = ", ".join(_change(key, saved["config"].get(key), given.get(key)) for key in differing)
        raise SoftpromptError(
            f"--resume with settings that differ from the checkpoint in {cfg.output_dir} ({changes}); "
            "rerun with the original settings"
        )
    if saved["step"] > cfg.steps:
        raise SoftpromptError(
            f"--resume: the checkpoint in {cfg.output_dir} is at step {saved['step']}, past --steps {cfg.steps}; "
            f"give --steps {saved['step']} or more"
        )


def _change(key: str, stored: Any, given: Any) -> str:
    """``key: stored → given`` for a one-line message; a dict setting names its changed entries (decoding.num_beams: 1 → 4),
    and long values are shortened only where the shortened forms still differ."""
    if isinstance(stored, dict) and isinstance(given, dict):
        return ", ".join(
            _change(f"{key}.{k}", stored.get(k), given.get(k))
            for k in dict.fromkeys([*stored, *given])
            if stored.get(k) != given.get(k)
        )
    old, new = repr(stored), repr(given)
    short = [text if len(text) <= 60 else text[:28] + "…" + text[-28:] for text in (old, new)]
    return f"{key}: " + " → ".join(short if short[0] != short[1] else (old, new))


def _data_sources(cfg: TrainConfig, task: Task) -> dict[str, Any]:
    """Where each split came from: the local file, or the hub dataset with its config and revision."""
    hub = (
        {"dataset": task.hub.dataset, "config": task.hub.config, "revision": task.hub.revision or "main"}
        if task.hub
        else None
    )
    return {
        split: {"file": path} if path else {"hub": hub}
        for split, path in (("train", cfg.train_file), ("validation", cfg.validation_file))
    }


def run_meta(cfg: TrainConfig, frozen: FrozenT5, task: Task, state: dict[str, Any], trainable: int) -> dict[str, Any]:
    """What ``softprompt.json`` records of a finished run: model, task, data sources, banks, best steps, settings."""
    return {
        "model": {"name": cfg.model, **model_fingerprint(frozen.config), "parameters": frozen.parameter_count()},
        "trainable_parameters": trainable,
        "task": {"name": task.name, "kind": task.kind, "label_words": list(task.label_words), "metric": task.metric},
        "data": _data_sources(cfg, task),
        "n_prompts": cfg.n_prompts,
        "seeds": list(cfg.prompt_seeds),
        "prompts": (
            {"length": cfg.prompt_length, "init": cfg.init, "reparam": cfg.prompt_reparam}
            if cfg.prompt_length
            else None
        ),  # residual prompts are stored folded: plain prompts to every reader
        "dept": {"rank": cfg.dept_rank, "positions": cfg.max_source_length} if cfg.dept_rank else None,
        "prefixes": (
            {
                "length": cfg.prefix_length,
                "sites": list(cfg.prefix_sites),
                "init": cfg.prefix_init,
                "reparam_dim": cfg.reparam_dim,
            }
            if cfg.deep_prefix
            else None
        ),
        "init_from": state.get("init_from"),  # prompt transfer: source run and prompt of each prompt
        "best": [
            {"prompt": i, "step": s, task.metric: m}
            for i, (s, m) in enumerate(zip(state["best_step"], state["best_metric"]))
        ],
        "train_args": cfg.to_dict(),
    }
