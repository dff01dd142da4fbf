"""The training settings declared by concern (softprompt.training.settings): TrainConfig is all of them, the groupings
that resumes compare fall out of the concerns, and the choices written out agree with the modules that own them."""

import subprocess
import sys
from dataclasses import fields

from softprompt.model.attention import SITES
from softprompt.model.reparam import REPARAMS
from softprompt.training import settings
from softprompt.training.config import TrainConfig
from softprompt.training.optim import OPTIMIZERS


def test_train_config_is_every_concern_in_order_and_each_setting_has_help():
    declared = [f.name for concern in settings.CONCERNS for f in fields(concern)]
    assert [f.name for f in fields(TrainConfig)] == declared and len(set(declared)) == len(declared) == 57
    assert tuple(reversed(TrainConfig.__bases__)) == settings.CONCERNS
    for concern in settings.CONCERNS:
        assert concern.__doc__
        for item in fields(concern):
            assert item.metadata["help"].strip(), item.name


def test_the_groupings_fall_out_of_the_concerns():
    assert settings.PREFIX_ONLY == (
        "prefix_length",
        "prefix_sites",
        "prefix_init",
        "reparam_dim",
        "reparam_hidden",
        "keep_reparam",
        "prefix_optimizer",
        "prefix_lr",
    )
    assert settings.PROMPT_ONLY == ("init", "optimizer", "lr")
    assert settings.AUTO_ONLY == ("library", "probe_steps") and settings.LOGGING_ONLY == ("log_every", "report_to")


def test_an_input_prompt_init_counts_only_when_either_run_trains_input_prompts():
    prefixes_only = TrainConfig(deep_prefix=True, prompt_length=0, init="sampled-vocab").to_dict()
    assert TrainConfig(deep_prefix=True, prompt_length=0, init="class-label").differences(prefixes_only) == []
    with_prompts = TrainConfig(prompt_length=4, init="sampled-vocab").to_dict()
    assert TrainConfig(prompt_length=4, init="class-label").differences(with_prompts) == ["init"]


def test_choices_written_out_agree_with_their_modules():
    assert settings.OPTIMIZERS == OPTIMIZERS and settings.SITES == SITES and settings.REPARAMS == REPARAMS


def test_prefix_sites_take_a_comma_separated_string_or_names():
    assert TrainConfig(deep_prefix=True, prefix_sites="encoder, cross").prefix_sites == ("encoder", "cross")
    assert TrainConfig(deep_prefix=True, prefix_sites=["decoder"]).prefix_sites == ("decoder",)


def test_the_declarations_import_no_torch():
    """The command line builds its options from these fields at start-up, before any torch import."""
    code = "import sys, softprompt.training.settings, ensembles.settings; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
