"""The wheel holds what it should: the runtime packages and the t5-nano assets, nothing else."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

RUNTIME = ["model", "data", "runner", "training", "io", "serve", "cli"]  # softprompt's packages
ASSETS = ["t5-nano", "t5-nano-s", "t5-nano-m"]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory) -> list[str]:
    """Build the wheel from a copy of the project (no build isolation: setuptools of the test extra)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for package in ("softprompt", "ensembles", "analysis"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = out.glob("softprompt-*.whl")
    return zipfile.ZipFile(wheel).namelist()


def test_the_wheel_ships_the_runtime_and_the_embedded_models(wheel_names):
    top = {name.split("/")[0] for name in wheel_names if not name.split("/")[0].endswith(".dist-info")}
    assert top == {"softprompt", "ensembles", "analysis"}
    for package in RUNTIME:
        assert f"softprompt/{package}/__init__.py" in wheel_names, package
    for name in ASSETS:
        assert {f"softprompt/assets/{name}/config.json", f"softprompt/assets/{name}/model.safetensors"} <= set(
            wheel_names
        ), name
    assert "softprompt/assets/t5-tokenizer/tokenizer.json" in wheel_names


def test_the_wheel_leaves_out_the_tools_that_made_t5_nano(wheel_names):
    assert not [name for name in wheel_names if name.startswith("softprompt/nano/")]
    assert Path(ROOT / "softprompt" / "nano" / "corpus.py").is_file()  # they stay in the repository
