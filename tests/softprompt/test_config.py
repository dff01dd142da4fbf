"""TrainConfig's mode-dependent defaults (no model needed)."""

import pytest

from softprompt.config import TrainConfig


@pytest.mark.parametrize("deep_prefix, prompt_length, optimizer, lr", [
    (False, 20, "adafactor", 0.3),  # input prompts: Lester et al.
    (True, 0, "adamw", 3e-4),  # deep prefixes: Li & Liang's optimiser (Adafactor 0.3 wrecks the prefix MLP)
    (True, 20, "adamw", 3e-4),  # both together: one optimiser, the prefixes' one
])
def test_default_optimizer_and_lr_follow_what_is_trained(deep_prefix, prompt_length, optimizer, lr):
    cfg = TrainConfig(deep_prefix=deep_prefix, prompt_length=prompt_length)
    assert (cfg.optimizer, cfg.lr) == (optimizer, lr)


def test_explicit_optimizer_and_lr_win():
    assert TrainConfig(optimizer="adamw").lr == 1e-3
    assert TrainConfig(deep_prefix=True, optimizer="adafactor").lr == 0.3
    assert TrainConfig(deep_prefix=True, lr=0.01).lr == 0.01


def test_differences_ignore_prefix_settings_unless_prefixes_are_trained():
    prompts_only = TrainConfig(prefix_length=10).to_dict()
    assert TrainConfig(prefix_length=20).differences(prompts_only) == []
    assert TrainConfig(prefix_length=20, steps=5).differences(prompts_only) == ["steps"]
    assert TrainConfig(prefix_length=20, steps=5).differences(prompts_only, ignore={"steps"}) == []
    with_prefixes = TrainConfig(deep_prefix=True, prefix_length=10).to_dict()
    assert TrainConfig(deep_prefix=True, prefix_length=20).differences(with_prefixes) == ["prefix_length"]
    assert "deep_prefix" in TrainConfig(prefix_length=20).differences(with_prefixes)
