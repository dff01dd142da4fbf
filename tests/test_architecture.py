"""The layer rules of ``pyproject.toml`` ([tool.importlinter], docs/architecture.md) hold, and break when they should.

Each broken case copies the three packages into a temporary folder, adds one module with a forbidden
import, and runs ``lint-imports`` on the copy: the contract named must fail.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` on the packages under ``root`` with the repository's contracts."""
    env = {"PYTHONPATH": str(root), "PATH": str(Path(sys.executable).parent), "HOME": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_packages_keep_every_contract():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy_of_packages(tmp_path_factory) -> Path:
    """The three packages' Python files, copied (nothing else is needed to build the import graph)."""
    root = tmp_path_factory.mktemp("layers")
    for package in ("softprompt", "ensembles", "analysis"):
        shutil.copytree(ROOT / package, root / package, ignore=shutil.ignore_patterns("assets", "__pycache__"))
    return root


@pytest.mark.parametrize(
    "module, code, contract",
    [
        ("softprompt/model/upward.py", "import softprompt.training.loop\n", "layers, top to bottom"),
        ("softprompt/serve/upward.py", "from softprompt.cli import main\n", "layers, top to bottom"),
        ("ensembles/trains.py", "from softprompt.training.loop import train\n", "they never train"),
        ("analysis/trains.py", "import softprompt.training.sweep\n", "they never train"),
        ("softprompt/runner/clicky.py", "import click\n", "only softprompt.cli knows click"),
        ("softprompt/nano/circle.py", "import softprompt.nano.pretrain\n", "no import cycles"),
    ],
)
def test_a_forbidden_import_breaks_its_contract(copy_of_packages, module, code, contract):
    path = copy_of_packages / module
    if contract == "no import cycles":  # pretrain imports checkpoints: checkpoints importing circle closes a circle
        checkpoints = copy_of_packages / "softprompt/nano/checkpoints.py"
        original = checkpoints.read_text()
        checkpoints.write_text(original + "\nimport softprompt.nano.circle\n")
    path.write_text(code)
    try:
        result = lint_imports(copy_of_packages)
    finally:
        path.unlink()
        if contract == "no import cycles":
            checkpoints.write_text(original)
    assert result.returncode != 0, result.stdout
    broken = [line for line in result.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert any(contract in line for line in broken), result.stdout
