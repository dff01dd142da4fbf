"""softprompt: soft prompts, deep prefixes and prompt ensembles on frozen T5 models.

The public face: every name in ``__all__`` is importable from ``softprompt`` itself and loads its module on
first use (so ``import softprompt`` stays cheap and the layers below never import the ones above).

Example::

    import softprompt

    frozen = softprompt.load_frozen_t5("t5-nano")
    pool = softprompt.load_pool(["runs/sst2"], frozen)
    print(pool.names)
"""

from __future__ import annotations

import importlib
from typing import Any

from softprompt.errors import SoftpromptError
from softprompt.version import __version__

# public name -> the module that defines it
_EXPORTS = {
    # the frozen model and the prompt surgery
    "load_frozen_t5": "softprompt.model.loading",
    "FrozenT5": "softprompt.model.loading",
    "PromptedT5": "softprompt.model.prompted",
    "PromptBank": "softprompt.model.prompts",
    "PrefixBank": "softprompt.model.prefixes",
    "PrefixShape": "softprompt.model.prefixes",
    # tasks and data
    "get_task": "softprompt.data.tasks",
    "load_examples": "softprompt.data.loading",
    # training
    "train": "softprompt.training.loop",
    "TrainConfig": "softprompt.training.config",
    # running N prompts: scoring and generation
    "score_choices": "softprompt.runner.scoring",
    "generate_texts": "softprompt.runner.scoring",
    # pools of runs and ensembles
    "load_pool": "ensembles.pool",
    "Pool": "ensembles.pool",
    "run_ensemble_eval": "ensembles.pipeline",
    "predict": "ensembles.pipeline",
    "EvalConfig": "ensembles.settings",
    "resolve_settings": "ensembles.settings",
    # analysis
    "nearest_neighbors": "analysis.neighbors",
    "plot_scale": "analysis.scale",
    "similarity_report": "analysis.similarity",
    "plot_history": "analysis.history",
    # serving
    "ServeConfig": "softprompt.serve.config",
    "Engine": "softprompt.serve.engine",
}

__all__ = ["SoftpromptError", "__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    """Load a public name's module on first use (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'softprompt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
