"""Training curves: the run's history every ``--log-every`` steps, and experiment trackers.

Every step adds each prompt's training loss and gradient norm (before clipping) to a window; every
``log_every`` steps, and at every validation, the window's means, the learning rates and (at
validations) each prompt's validation metric become one history entry, keyed by its step. The
history and the window live in the checkpoint's ``state.json``, so a resumed run continues exactly
where the checkpoint left off: entries after it are lost with the rest of the killed run and redone,
never duplicated, and nothing is skipped.

``--report-to`` sends the same entries, one series per prompt (``train_loss/prompt_0``, ...), to
experiment trackers through accelerate's tracking API (``Accelerator(log_with=...)``), with the run's
settings as hyper-parameters; accelerate starts trackers and logs on the main process only. Local logs go to
``<run>/logs/``. A resumed run tells TensorBoard to purge the killed run's events after the
checkpoint (``purge_step``), so its curves have no duplicated steps either.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from softprompt.errors import SoftpromptError

PROJECT = "softprompt"  # tracker project (W&B project, MLflow experiment, TensorBoard sub-folder)
LOG_DIR = "logs"  # <run>/logs: where trackers with local files write
# accelerate's tracker names -> the package each needs
PACKAGES = {
    "tensorboard": "tensorboard",
    "wandb": "wandb",
    "mlflow": "mlflow",
    "comet_ml": "comet-ml",
    "aim": "aim",
    "clearml": "clearml",
    "dvclive": "dvclive",
    "swanlab": "swanlab",
    "trackio": "trackio",
}
EXTRA = ("tensorboard", "wandb", "mlflow")  # what the tracking extra installs (setup.cfg)
INSTALL = 'pip install "softprompt[tracking]"'


def parse_report_to(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tensorboard,wandb"`` (or a sequence of names) -> ("tensorboard", "wandb"); ``"none"`` -> ();
    ``"all"`` -> ("all",). Unknown names raise a one-line ``SoftpromptError``.

    >>> parse_report_to("tensorboard, wandb")
    ('tensorboard', 'wandb')
    """
    items = value.split(",") if isinstance(value, str) else list(value or ())
    names = tuple(dict.fromkeys(n.strip().lower() for n in items if n.strip()))
    unknown = [n for n in names if n not in PACKAGES and n not in ("all", "none")]
    if unknown:
        raise SoftpromptError(
            f"unknown --report-to {unknown[0]!r}; use none, all or a comma-separated list of: {', '.join(PACKAGES)}"
        )
    if len(names) > 1 and ("none" in names or "all" in names):
        raise SoftpromptError(f"--report-to {','.join(names)}: 'none' and 'all' cannot be combined with other trackers")
    return () if names == ("none",) else names


def available_trackers() -> list[str]:
    """Names of the trackers whose packages are installed (accelerate's own check)."""
    from accelerate.tracking import get_available_trackers

    return [str(tracker) for tracker in get_available_trackers()]


def installed_trackers(names: Sequence[str]) -> list[str]:
    """``names`` with ``all`` expanded to every installed tracker; a tracker whose package is missing
    is a one-line error naming the ``tracking`` extra."""
    available = available_trackers()
    if tuple(names) == ("all",):
        if not available:
            raise SoftpromptError(f"--report-to all found no experiment tracker installed; {INSTALL}")
        return available
    for name in names:
        if name not in available:
            how = (
                f"{INSTALL} (or pip install {PACKAGES[name]})"
                if name in EXTRA
                else f"pip install {PACKAGES[name]} ({INSTALL} covers {', '.join(EXTRA)})"
            )
            raise SoftpromptError(
                f"--report-to {name} needs the {PACKAGES[name]} package, which is not installed; {how}"
            )
    return list(names)


def hyperparameters(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` flattened to the scalar values every tracker accepts: nested dicts as ``a.b`` keys,
    lists as comma-separated strings, None as "none"."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in hyperparameters(value).items()})
        elif isinstance(value, (list, tuple)):
            flat[key] = ",".join(map(str, value))
        else:
            flat[key] = "none" if value is None else value
    return flat


class TrainingLog:
    """Writes history entries into a run's training ``state`` and sends them to trackers.

    Example (what ``softprompt.training.loop.train`` does once per optimiser step)::

        log = TrainingLog(state, log_every=10, metric="accuracy", report_to=["tensorboard"],
                          output_dir="runs/boolq", config=cfg.to_dict())
        state["step"] += 1
        log.record(losses, grad_norms, learning_rates, metrics=None)  # metrics: at validations
        log.close()
    """

    def __init__(
        self,
        state: dict[str, Any],
        log_every: int,
        metric: str,
        report_to: Sequence[str] = (),
        output_dir: str | Path = ".",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.state, self.log_every, self.metric = state, log_every, metric
        state.setdefault("history", [])
        state.setdefault("window", {"steps": 0, "train_loss": None, "grad_norm": None})
        self.accelerator = (
            self._start(installed_trackers(report_to), Path(output_dir), config or {}) if report_to else None
        )

    def _start(self, trackers: list[str], output_dir: Path, config: dict[str, Any]):
        from accelerate import Accelerator

        accelerator = Accelerator(log_with=trackers, project_dir=str(output_dir / LOG_DIR))
        init_kwargs: dict[str, dict[str, Any]] = {
            "wandb": {"name": output_dir.name},
            "mlflow": {"run_name": output_dir.name},
        }
        if self.state["step"]:  # resumed: hide the killed run's events after the checkpoint
            init_kwargs["tensorboard"] = {"purge_step": self.state["step"] + 1}
        accelerator.init_trackers(PROJECT, config=hyperparameters(config), init_kwargs=init_kwargs)
        return accelerator

    def record(
        self,
        losses: Sequence[float],
        grad_norms: Sequence[float],
        learning_rates: Sequence[float],
        metrics: Sequence[float] | None = None,
    ) -> dict[str, Any] | None:
        """Add one step's (N,) losses and gradient norms to the window; at ``state["step"]`` divisible by
        ``log_every`` or with validation ``metrics``, append an entry of window means and return it."""
        window = self.state["window"]
        window["train_loss"] = _add(window["train_loss"], losses)
        window["grad_norm"] = _add(window["grad_norm"], grad_norms)
        window["steps"] += 1
        step = self.state["step"]
        if step % self.log_every and metrics is None:
            return None
        entry: dict[str, Any] = {
            "step": step,
            "train_loss": [v / window["steps"] for v in window["train_loss"]],
            "grad_norm": [v / window["steps"] for v in window["grad_norm"]],
            "lr": [float(lr) for lr in learning_rates],
        }
        if metrics is not None:
            entry[self.metric] = [float(m) for m in metrics]
        self.state["history"].append(entry)
        self.state["window"] = {"steps": 0, "train_loss": None, "grad_norm": None}
        if self.accelerator is not None:
            self.accelerator.log(tracker_values(entry, self.metric), step=step)
        return entry

    def close(self) -> None:
        """Let the trackers finish (flush and close their files or runs)."""
        if self.accelerator is not None:
            # what Accelerator.end_training() does, minus destroying the process group the run still uses
            for tracker in self.accelerator.trackers:
                tracker.finish()
            self.accelerator = None


def tracker_values(entry: dict[str, Any], metric: str) -> dict[str, float]:
    """A history entry as tracker scalars: one series per prompt (``train_loss/prompt_0``,
    ``grad_norm/prompt_0``, ``val_<metric>/prompt_0``) and ``lr`` (``lr/group_<i>`` for several groups)."""
    values: dict[str, float] = {}
    for key, name in (("train_loss", "train_loss"), ("grad_norm", "grad_norm"), (metric, f"val_{metric}")):
        for i, value in enumerate(entry.get(key, ())):
            values[f"{name}/prompt_{i}"] = value
    lrs = entry["lr"]
    values.update({"lr": lrs[0]} if len(lrs) == 1 else {f"lr/group_{i}": lr for i, lr in enumerate(lrs)})
    return values


def _add(total: list[float] | None, values: Sequence[float]) -> list[float]:
    return [float(v) for v in values] if total is None else [t + float(v) for t, v in zip(total, values)]
