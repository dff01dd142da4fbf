"""``import softprompt`` exposes the documented entry points (``__all__``), loaded on first use."""

import importlib
import subprocess
import sys

import pytest

import softprompt
from softprompt.cli.app import cli


@pytest.mark.parametrize("name", sorted(set(softprompt.__all__) - {"SoftpromptError", "__version__"}))
def test_each_public_name_is_the_object_its_module_defines(name):
    module = importlib.import_module(softprompt._EXPORTS[name])
    assert getattr(softprompt, name) is getattr(module, name)
    assert getattr(module, name).__doc__, f"{name} has no docstring"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'load_frozen_t6'"):
        softprompt.load_frozen_t6  # noqa: B018


def test_import_softprompt_is_cheap_and_the_cli_prints_the_version():
    code = (
        "import sys, softprompt; print(softprompt.__version__, 'torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [softprompt.__version__, "False", "False"]
    from click.testing import CliRunner

    assert CliRunner().invoke(cli, ["--version"]).output == f"softprompt, version {softprompt.__version__}\n"
