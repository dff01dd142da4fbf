"""Every recipe in recipes/ loads and trains: ``softprompt train --config RECIPE`` for 2 steps on a tiny random T5
(built in-process, saved locally) and the task's small fixture in tests/data, the model, steps and data given on the
command line; the run records every other setting as the recipe gives it."""

import json

import pytest
import yaml

from softprompt.cli.app import SWEEP_ALIASES, cli
from softprompt.cli.config_options import config_defaults
from softprompt.io.store import read_meta
from softprompt.model.decoding import DECODING_DEFAULTS
from tests.conftest import ROOT, TEST_DATA
from tests.softprompt.cli.helpers import run_cli

RECIPES = sorted((ROOT / "recipes").glob("*/*.yaml"))
SUPERGLUE = TEST_DATA / "superglue"
WEBNLG_ROWS = [
    {"triples": [["Aarhus_Airport", "cityServed", "Aarhus"]], "text": "Aarhus Airport serves the city of Aarhus."},
    {"triples": [["Alan_Bean", "occupation", "Test_pilot"]], "text": "Alan Bean was a test pilot."},
]


def _fixture(task: str, tmp_path) -> tuple:
    """(training file, validation file) of ``task`` from tests/data (WebNLG: two rows written here)."""
    if task == "webnlg":
        path = tmp_path / "webnlg.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in WEBNLG_ROWS))
        return path, path
    if task == "e2e_nlg":
        return TEST_DATA / "e2e" / "devset.csv", TEST_DATA / "e2e" / "testset_w_refs.csv"
    if task == "xsum":
        return TEST_DATA / "xsum" / "test.jsonl", TEST_DATA / "xsum" / "test.jsonl"
    folder = SUPERGLUE / task
    train = [path for path in (folder / "train.jsonl", folder / "train32.jsonl") if path.is_file()]
    return (train or [folder / "val.jsonl"])[0], folder / "val.jsonl"


def test_the_recipes_cover_both_papers():
    assert {path.parent.name for path in RECIPES} == {"lester2021", "li-liang2021"}
    assert {path.stem for path in RECIPES} == {
        "boolq",
        "cb",
        "copa",
        "multirc",
        "rte",
        "wic",
        "wsc",
        "e2e",
        "webnlg",
        "xsum",
    }
    for path in RECIPES:  # each setting's source is cited beside it
        assert "arxiv.org/abs/" in path.read_text()


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_sweep_takes_every_recipe_as_a_grid_of_one(recipe):
    """``softprompt sweep --config RECIPE``: the recipe's model, prompt length and init become the swept lists."""
    settings = yaml.safe_load(recipe.read_text())
    defaults = config_defaults(cli.commands["sweep"], settings, str(recipe), SWEEP_ALIASES)
    assert (defaults["models"], defaults["prompt_lengths"]) == (settings["model"], settings["prompt_length"])


@pytest.mark.parametrize("recipe", RECIPES, ids=[f"{p.parent.name}/{p.stem}" for p in RECIPES])
def test_every_recipe_trains_two_steps_on_a_tiny_model(recipe, tmp_path, tiny_model_dir):
    settings = yaml.safe_load(recipe.read_text())
    train_file, validation_file = _fixture(settings["task"], tmp_path)
    overrides = {
        "model": tiny_model_dir,
        "steps": 2,
        "batch_size": 2,
        "train_size": 4,
        "eval_size": 2,
        "max_new_tokens": 4,  # a random model's outputs run to the limit
        "train_file": train_file,
        "validation_file": validation_file,
        "output_dir": tmp_path / "run",
    }
    args = [part for name, value in overrides.items() for part in ("--" + name.replace("_", "-"), value)]
    result = run_cli("train", "--config", recipe, *args, "--quiet")
    assert result.exit_code == 0, result.stderr
    recorded = read_meta(tmp_path / "run")["train_args"]
    assert (recorded["model"], recorded["steps"]) == (str(tiny_model_dir), 2)  # the command line wins
    for key, value in settings.items():  # the rest: as the recipe gives it
        if key in overrides:
            continue
        stored = recorded["decoding"][key] if key in DECODING_DEFAULTS else recorded[key]
        assert stored == value, key
