"""Without any extra (``pip install -e .``), the core commands work: train, ensemble-eval, predict and the
analysis commands run in a real process in which the extras' modules cannot be imported. (The demo needs the
same modules as train and ensemble-eval; ``serve`` names its extra in one line, tests/softprompt/serve.)"""

import subprocess
import sys

import pytest

from tests.softprompt.cli.helpers import eval_args, train_args

# what the extras bring (setup.cfg: test, serve, tracking, docs) that the core must do without
EXTRAS = ("peft", "fastapi", "uvicorn", "prometheus_client", "tensorboard", "wandb", "mlflow", "mkdocs", "pytest")


def without_extras(*args) -> subprocess.CompletedProcess:
    """``softprompt ARGS`` in a fresh interpreter where importing any module of ``EXTRAS`` fails."""
    code = (
        f"import sys\nfor name in {EXTRAS!r}: sys.modules[name] = None  # import of name raises ImportError\n"
        "from softprompt.cli.app import main\nsys.argv[0] = 'softprompt'\nmain()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600, check=False
    )


@pytest.fixture(scope="module")
def core_run(tmp_path_factory, tiny_model_dir, data):
    out = tmp_path_factory.mktemp("core") / "rte"
    done = without_extras(*train_args(tiny_model_dir, out, data, "--deep-prefix", "--prefix-length", "2"))
    assert done.returncode == 0, done.stderr
    return out


def test_train_runs_without_extras(core_run):
    assert (core_run / "prompts.safetensors").is_file() and (core_run / "prefixes.safetensors").is_file()


def test_ensemble_eval_and_predict_run_without_extras(core_run, data, tmp_path):
    done = without_extras(*eval_args(core_run, data, tmp_path / "eval.json"))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "eval.json").is_file()
    inputs = tmp_path / "inputs.jsonl"
    inputs.write_text('{"premise": "A dog runs.", "hypothesis": "An animal moves."}\n')
    done = without_extras("predict", "--prompts", core_run, "--input", inputs, "--output", "-", "--quiet")
    assert done.returncode == 0, done.stderr
    assert '"label"' in done.stdout


def test_analysis_commands_run_without_extras(core_run, tmp_path):
    done = without_extras("neighbors", core_run, "--top-k", "3", "--plot", tmp_path / "n.png")
    assert done.returncode == 0, done.stderr
    done = without_extras("similarity", core_run, "--output", tmp_path / "sim.json")
    assert done.returncode == 0, done.stderr
    done = without_extras("plot-history", core_run, "--output", tmp_path / "curves.png")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "n.png").is_file() and (tmp_path / "curves.png").is_file()
