"""Prompt retrieval for ``train --init-from auto`` (SPoT, Vu et al. 2022): a short probe run ranks a
library of trained prompts, and the closest ones start the new run."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

from analysis.similarity import load_run_vectors, rank_library
from softprompt.data.tasks import Example, Task
from softprompt.errors import SoftpromptError
from softprompt.model import distributed
from softprompt.model.loading import FrozenT5
from softprompt.training.config import TrainConfig
from softprompt.training.loop import train
from softprompt.training.transfer import InitChoice


def pick_source(
    cfg: TrainConfig,
    frozen: FrozenT5,
    task: Task,
    train_examples: Sequence[Example],
    val_examples: Sequence[Example],
    progress: bool = True,
) -> InitChoice:
    """SPoT retrieval for ``--init-from auto``: train one target prompt for ``cfg.probe_steps`` steps
    (the run's own settings and first seed, in a temporary directory), rank ``cfg.library``'s prompts
    by ``cosine-mean`` similarity to it, and start new prompt k from the k-th closest one.

    The banks compared are input prompts when the run trains them, else deep prefixes.

    Example::

        cfg = TrainConfig(task="sst2", n_prompts=1, init_from=("auto",), library=("runs/boolq", "runs/rte"))
        choice = pick_source(cfg, frozen, task, train_examples, val_examples)
        train(cfg, frozen, task, train_examples, val_examples, init_choice=choice)
    """
    if distributed.world_size() > 1:
        raise SoftpromptError(
            "--init-from auto runs in one process; retrieve with `softprompt retrieve`, then pass --init-from RUN#i"
        )
    bank = "prompts" if cfg.prompt_length else "prefixes"
    library = load_run_vectors(cfg.library, bank)  # bad library runs fail before the probe trains
    if sum(len(lib.vectors) for lib in library) < cfg.n_prompts:
        raise SoftpromptError(
            f"--init-from auto starts each of the {cfg.n_prompts} prompts from another library prompt, but the library holds "
            f"{sum(len(lib.vectors) for lib in library)}; add runs to --library or lower --n-prompts"
        )
    with tempfile.TemporaryDirectory(prefix="softprompt-probe-") as probe_dir:
        steps = cfg.probe_steps
        probe = TrainConfig(
            **(
                cfg.to_dict()
                | {
                    "output_dir": probe_dir,
                    "n_prompts": 1,
                    "prompt_seeds": list(cfg.prompt_seeds[:1]),
                    "steps": steps,
                    "eval_every": steps,
                    "checkpoint_every": steps,
                    "patience": None,
                    "init_from": [],
                    "library": [],
                    "report_to": [],
                }
            )
        )
        result = train(probe, frozen, task, train_examples, val_examples, progress=progress)
        target = load_run_vectors([probe_dir], bank)[0]
    target.run = target.label = "probe"
    ranking = rank_library(target, 0, library, "cosine-mean")
    picked = ranking[: cfg.n_prompts]
    note = {
        "metric": "cosine-mean",
        "bank": bank,
        "probe": {"steps": steps, task.metric: result.best_metric[0]},
        "picked": [r["name"] for r in picked],
        "ranking": [{k: r[k] for k in ("rank", "run", "index", "task", "score")} for r in ranking],
    }
    return InitChoice(tuple(f"{r['run']}#{r['index']}" for r in picked), note)
