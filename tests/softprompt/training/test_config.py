"""TrainConfig's mode-dependent defaults (no model needed)."""

import pytest

from softprompt.errors import SoftpromptError
from softprompt.model.decoding import DECODING_DEFAULTS
from softprompt.training.config import TrainConfig


@pytest.mark.parametrize(
    "deep_prefix, prompt_length, bank, recipe",
    [
        (False, 20, "prompts", ("adafactor", 0.3)),  # input prompts: Lester et al.
        (
            True,
            0,
            "prefixes",
            ("adamw", 3e-4),
        ),  # deep prefixes: Li & Liang's optimiser (Adafactor 0.3 wrecks the prefix MLP)
        (True, 20, "prompts", ("adafactor", 0.3)),  # both together: each bank keeps its own recipe
        (True, 20, "prefixes", ("adamw", 3e-4)),
    ],
)
def test_default_optimizer_and_lr_follow_what_is_trained(deep_prefix, prompt_length, bank, recipe):
    cfg = TrainConfig(deep_prefix=deep_prefix, prompt_length=prompt_length)
    assert cfg.recipes()[bank] == recipe


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


def test_each_bank_recipe_can_be_overridden_alone():
    cfg = TrainConfig(deep_prefix=True, prompt_length=20, prefix_optimizer="adafactor")
    assert cfg.recipes() == {"prompts": ("adafactor", 0.3), "prefixes": ("adafactor", 0.3)}
    cfg = TrainConfig(deep_prefix=True, prompt_length=20, optimizer="adamw", prefix_lr=1e-2)
    assert cfg.recipes() == {"prompts": ("adamw", 1e-3), "prefixes": ("adamw", 1e-2)}
    with pytest.raises(SoftpromptError, match="unknown --prefix-optimizer 'sgd'"):
        TrainConfig(deep_prefix=True, prefix_optimizer="sgd")
    with pytest.raises(SoftpromptError, match="--prefix-lr must be > 0"):
        TrainConfig(deep_prefix=True, prefix_lr=0.0)


def test_differences_count_each_recipe_only_when_its_bank_is_trained():
    both = TrainConfig(deep_prefix=True, prompt_length=20).to_dict()
    assert TrainConfig(deep_prefix=True, prompt_length=20, prefix_lr=1e-3).differences(both) == ["prefix_lr"]
    assert TrainConfig(deep_prefix=True, prompt_length=20, lr=0.1).differences(both) == ["lr"]
    prefixes_only = TrainConfig(deep_prefix=True, prompt_length=0).to_dict()
    assert TrainConfig(deep_prefix=True, prompt_length=0, optimizer="adamw", lr=0.1).differences(prefixes_only) == []
    assert TrainConfig(prompt_length=20, prefix_lr=0.5).differences(TrainConfig(prompt_length=20).to_dict()) == []


def test_differences_read_a_run_from_before_per_bank_recipes_as_one_recipe_for_every_bank():
    legacy = {
        k: v for k, v in TrainConfig(deep_prefix=True, prompt_length=0).to_dict().items() if not k.startswith("prefix_")
    }
    legacy |= {
        "optimizer": "adamw",
        "lr": 3e-4,
        "prefix_length": 10,
        "prefix_sites": ["encoder", "decoder", "cross"],
        "prefix_init": "random",
    }
    assert (
        TrainConfig(deep_prefix=True, prompt_length=0).differences(legacy) == []
    )  # its prefixes trained with AdamW 3e-4
    both = legacy | {"prompt_length": 20}  # old joint runs stepped the prompts with the prefixes' AdamW too
    assert TrainConfig(deep_prefix=True, prompt_length=20).differences(both) == ["lr", "optimizer"]


def test_task_metric_is_a_training_setting_and_runs_from_before_it_used_the_default():
    legacy = {key: value for key, value in TrainConfig().to_dict().items() if key != "task_metric"}
    assert TrainConfig().differences(legacy) == []
    assert TrainConfig(task_metric="mcc").differences(legacy) == [
        "task_metric"
    ]  # it picks the best steps: no resume across it


def test_group_by_length_is_off_by_default_and_must_match_on_resume():
    assert TrainConfig().group_by_length is False
    assert TrainConfig(group_by_length=True).differences(TrainConfig().to_dict()) == ["group_by_length"]
    legacy = {k: v for k, v in TrainConfig().to_dict().items() if k != "group_by_length"}
    assert TrainConfig().differences(legacy) == []  # runs written before the option drew plain shuffled batches
    assert TrainConfig(group_by_length=True).differences(legacy) == ["group_by_length"]
    with pytest.raises(SoftpromptError, match="--group-by-length is a flag"):
        TrainConfig(group_by_length="yes")


def test_decoding_is_recorded_whole_and_a_run_from_before_no_repeat_ngram_size_resumes():
    """The API's default decoding is the CLI's (one table, softprompt.model.decoding), a partial one is completed, and a
    stored run that records no --no-repeat-ngram-size (it decoded without) does not differ from 0."""
    assert TrainConfig().decoding == DECODING_DEFAULTS
    assert TrainConfig(decoding={"num_beams": 4}).decoding == {**DECODING_DEFAULTS, "num_beams": 4}
    old = TrainConfig().to_dict() | {"decoding": {"max_new_tokens": 64, "num_beams": 1}}
    assert TrainConfig().differences(old) == []
    assert TrainConfig(decoding={"no_repeat_ngram_size": 3}).differences(old) == ["decoding"]
