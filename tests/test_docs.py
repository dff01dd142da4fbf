"""The documentation stays true. Every ``softprompt`` command in a fenced shell block
of README.md and docs/*.md, and in the scripts that regenerate the README's figures (scripts/*.sh),
names a real command, and every option it passes is one that command accepts (a renamed or removed
option fails here, not in a user's terminal); and every test that docs/errors.md names exists."""

import re
import shlex
from pathlib import Path

import click
import pytest

from softprompt.cli import cli
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "scripts").glob("*.sh"))]
FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)
CALL = re.compile(r"(?:^|[\s;&|(])softprompt(?:\.cli)? ([a-z][a-z-]*)(.*)")


def shell_lines(path: Path) -> list[str]:
    """Logical lines of a script, or of a Markdown file's fenced shell blocks: continuations joined, comments dropped."""
    text, lines = path.read_text(), []
    for block in [text] if path.suffix == ".sh" else FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def documented_calls() -> list[tuple[str, str, list[str]]]:
    """(document, command, options) of every softprompt call in the docs' shell blocks and the scripts."""
    calls = []
    for path in DOCS:
        for line in shell_lines(path):
            for match in CALL.finditer(line):
                rest = re.split(r"\s(?:&&|\|\||;|\|)\s", match.group(2))[0]
                words = shlex.split(rest.replace("$", ""), comments=False)
                calls.append((path.name, match.group(1), [w.split("=")[0] for w in words if w.startswith("--")]))
    return calls


CALLS = documented_calls()


def test_the_docs_have_commands_to_check():
    assert len(CALLS) >= 30 and {"train", "ensemble-eval", "serve", "sweep", "demo"} <= {c for _, c, _ in CALLS}


@pytest.mark.parametrize("document, command, options", CALLS, ids=[f"{d}:{c}:{i}" for i, (d, c, _) in enumerate(CALLS)])
def test_documented_command_and_options_exist(document, command, options):
    assert command in cli.commands, f"{document} runs `softprompt {command}`, which is no command"
    accepted = {opt for param in cli.commands[command].params if isinstance(param, click.Option)
                for opt in param.opts + param.secondary_opts} | {"--help"}
    assert not set(options) - accepted, f"{document}: `softprompt {command}` has no option(s) {sorted(set(options) - accepted)}"


def test_every_test_the_error_catalogue_names_exists():
    """docs/errors.md names, per bad input, the test that checks its message: each one must exist."""
    defined = {name for path in (ROOT / "tests").rglob("*.py") for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)}
    named = set(re.findall(r"`(test_\w+)", (ROOT / "docs" / "errors.md").read_text()))
    assert len(named) >= 90 and not named - defined, sorted(named - defined)
