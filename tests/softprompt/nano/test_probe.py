"""Prompt-tuning probes (softprompt.nano.probe)."""

import numpy as np
import pytest

from softprompt.errors import SoftpromptError
from tests.conftest import TEST_DATA


def test_probe_reuses_only_a_finished_run_with_the_same_settings(tmp_path):
    from dataclasses import replace

    from softprompt.data.tasks import get_task
    from softprompt.model.random_models import random_t5
    from softprompt.nano.probe import probe_splits, tune_and_score
    from softprompt.training.config import TrainConfig

    task, sst2 = get_task("sst2"), TEST_DATA / "glue" / "sst2"
    splits = probe_splits(task, sst2 / "train.tsv", sst2 / "dev.tsv", 8, 4, 6, seed=0)
    cfg = TrainConfig(
        model="tiny",
        task="sst2",
        output_dir=str(tmp_path / "run"),
        n_prompts=2,
        prompt_length=2,
        steps=2,
        batch_size=2,
        eval_every=2,
        checkpoint_every=2,
        max_source_length=16,
        max_target_length=4,
    )
    frozen = random_t5()
    first = tune_and_score(frozen, cfg, task, splits)
    assert first.shape == (2, 6, 2)
    meta = tmp_path / "run" / "softprompt.json"
    written = meta.stat().st_mtime_ns
    again = tune_and_score(frozen, cfg, task, splits, reuse=True)  # scored, not retrained
    assert meta.stat().st_mtime_ns == written and np.array_equal(first, again)
    with pytest.raises(SoftpromptError, match="other settings \\(lr\\)"):
        tune_and_score(frozen, replace(cfg, lr=0.1), task, splits, reuse=True)


# ----------------------------------------------------------------------------- supervised mixture (v2)
