"""One declaration per option: train's and sweep's options are generated from the settings dataclasses (so their shared
options read alike), and ``--config`` recipes (YAML or TOML) give option values that the command line overrides.

Training runs use a tiny random T5 saved to a local directory (built in-process) and the RTE fixture."""

from dataclasses import fields

import click
import pytest

from ensembles.settings import EvalConfig
from softprompt.cli.app import SWEEP_ALIASES, SWEPT, cli
from softprompt.cli.config_options import config_defaults
from softprompt.io.store import read_meta
from softprompt.model.decoding import DECODING_DEFAULTS
from softprompt.training.config import TrainConfig
from tests.softprompt.cli.helpers import RTE, assert_one_line_error, run_cli

# by nature: sweep's --output-dir holds results/ and runs/ of many cells, train's one run
DIFFERENT_BY_NATURE = {"out_dir", "output_dir"}


def _help_records(command: str) -> dict[str, tuple[str, str]]:
    """Each option of ``command`` (by name) and the two columns ``--help`` shows for it."""
    command = cli.commands[command]
    with click.Context(command, info_name=command.name) as ctx:
        return {
            param.name: param.get_help_record(ctx)
            for param in command.params
            if isinstance(param, click.Option) and param.name not in DIFFERENT_BY_NATURE
        }


def test_train_and_sweep_show_identical_help_for_every_shared_option():
    train, sweep = _help_records("train"), _help_records("sweep")
    shared = train.keys() & sweep.keys()
    assert len(shared) >= 40  # every training setting sweep does not sweep
    assert {name: train[name] for name in shared} == {name: sweep[name] for name in shared}
    assert train.keys() - shared == {*SWEPT, "resume", "overwrite"} - DIFFERENT_BY_NATURE


def test_every_option_of_train_is_a_setting_declared_once():
    """train's options are TrainConfig's fields (but prompt_seeds and decoding, given by --max-new-tokens and its
    siblings) plus the command's own; ensemble-eval's evaluation options are EvalConfig's."""
    options = {param.name for param in cli.commands["train"].params if isinstance(param, click.Option)}
    settings = {f.name for f in fields(TrainConfig)} - {"prompt_seeds", "decoding"}
    assert options - settings == {*DECODING_DEFAULTS, "config", "dataset_revision", "resume", "overwrite", "quiet"}
    assert settings <= options
    evaluation = {param.name for param in cli.commands["ensemble-eval"].params}
    assert {f.name for f in fields(EvalConfig)} <= evaluation


def _train(tiny_model_dir, out, *extra):
    return run_cli(
        "train",
        "--model",
        tiny_model_dir,
        "--train-file",
        RTE / "train.jsonl",
        "--validation-file",
        RTE / "val.jsonl",
        "--output-dir",
        out,
        "--quiet",
        *extra,
    )


RECIPE_YAML = """\
# a recipe: option names with - or _
task: rte
n_prompts: 2
prompt-length: 3
init: sampled-vocab
steps: 2
batch_size: 4
eval-every: 2
train_size: 16
eval_size: 8
max_source_length: 64
lr: 0.25
prefix_sites: [encoder, cross]   # a list for a comma-separated option
"""

RECIPE_TOML = """\
task = "rte"
n-prompts = 2
prompt_length = 3
init = "sampled-vocab"
steps = 2
batch-size = 4
eval_every = 2
train_size = 16
eval_size = 8
max_source_length = 64
optimizer = "adamw"
"""


@pytest.mark.parametrize("suffix, text", [(".yaml", RECIPE_YAML), (".toml", RECIPE_TOML)])
def test_a_config_file_gives_option_values_and_the_command_line_wins(tmp_path, tiny_model_dir, suffix, text):
    recipe = tmp_path / f"recipe{suffix}"
    recipe.write_text(text)
    result = _train(tiny_model_dir, tmp_path / "run", "--config", recipe, "--n-prompts", "3")
    assert result.exit_code == 0, result.stderr
    args = read_meta(tmp_path / "run")["train_args"]  # the resolved settings, recorded as for any run
    assert (args["task"], args["prompt_length"], args["init"], args["steps"], args["batch_size"]) == (
        "rte",
        3,
        "sampled-vocab",
        2,
        4,
    )
    assert args["n_prompts"] == 3  # the command line over the file's 2
    if suffix == ".yaml":
        assert (args["lr"], args["prefix_sites"]) == (0.25, ["encoder", "cross"])
    else:
        assert (args["optimizer"], args["lr"]) == ("adamw", 1e-3)  # adamw's default lr follows from the file's choice


def test_an_unknown_config_key_is_one_line_naming_the_nearest_option(tmp_path, tiny_model_dir):
    recipe = tmp_path / "typo.yaml"
    recipe.write_text("prompt_lenght: 100\n")
    line = assert_one_line_error(
        _train(tiny_model_dir, tmp_path / "run", "--config", recipe), "no option 'prompt_lenght' in train"
    )
    assert "the nearest is --prompt-length" in line
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("recipe.json", "{}", "give a .yaml, .yml or .toml file"),
        ("missing.yaml", None, "cannot read it"),
        ("bad.yaml", "steps: [1,\n", "is not valid YAML"),
        ("bad.toml", "steps = \n", "is not valid TOML"),
        ("list.yaml", "- steps\n", "must hold option: value pairs"),
        ("table.toml", "[steps]\nvalue = 3\n", "steps takes a value, not a table"),
        ("type.yaml", "steps: many\n", "'many' is not a valid integer"),
    ],
)
def test_a_bad_config_file_is_one_line(tmp_path, tiny_model_dir, name, text, message):
    recipe = tmp_path / name
    if text is not None:
        recipe.write_text(text)
    assert_one_line_error(_train(tiny_model_dir, tmp_path / "run", "--config", recipe), message)


def test_sweep_reads_a_train_recipe_by_its_swept_lists():
    """A train recipe's model, prompt length, init and training size are the sweep's lists (a grid of one each)."""
    given = {"model": "t5-lm-xl", "prompt_length": 100, "init": "class-label", "train_size": 32, "lr": 0.3}
    assert config_defaults(cli.commands["sweep"], given, "recipe.yaml", SWEEP_ALIASES) == {
        "models": "t5-lm-xl",
        "prompt_lengths": 100,
        "inits": "class-label",
        "train_sizes": 32,
        "lr": 0.3,
    }


def test_config_values_take_the_form_of_their_option():
    """A list for a comma-separated option is joined, one value for a repeatable option listed, null left out."""
    given = {"prefix-sites": ["encoder", "cross"], "init_from": "runs/rte", "patience": None, "deep_prefix": True}
    assert config_defaults(cli.commands["train"], given, "recipe.yaml", {}) == {
        "prefix_sites": "encoder,cross",
        "init_from": ["runs/rte"],
        "deep_prefix": True,
    }
