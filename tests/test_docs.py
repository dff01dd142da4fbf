"""The documentation stays true. Every ``softprompt`` command in a fenced shell block of README.md and of
the guide's pages (docs/*.md), and in the scripts that regenerate the guide's figures (scripts/*.sh), names a
real command, and every option it passes is one that command accepts (a renamed or removed option fails here,
not in a user's terminal); so does every ``python -m softprompt.…`` module and ``python -m benchmarks.…`` script
they run; every test that docs/errors.md names exists; every page of the guide is in mkdocs.yml's nav; the
README stays a front page; and the product speaks to its users, never of one host's limits. The dated records
in reports/ are exempt: they say what happened, where."""

import functools
import re
import shlex
import subprocess
import sys
from pathlib import Path

import click
import pytest

from softprompt.cli.app import cli
from tests.conftest import ROOT

PAGES = sorted((ROOT / "docs").glob("*.md"))  # the guide (mkdocs.yml's docs_dir)
DOCS = [ROOT / "README.md", *PAGES, *sorted((ROOT / "scripts").glob("*.sh")), *sorted((ROOT / "tools").glob("*.sh"))]
FENCE = re.compile(r"^```(?:bash|sh|shell)\n(.*?)^```", re.M | re.S)
CALL = re.compile(r"(?:^|[\s;&|(])softprompt(?:\.cli)? ([a-z][a-z-]*)(.*)")
PROGRAM = re.compile(r"(?:^|[\s;&|(])python3? -m ((?:softprompt\.(?!cli\b)|benchmarks\.)[\w.]+)(.*)")


def shell_lines(path: Path) -> list[str]:
    """Logical lines of a script, or of a Markdown file's fenced shell blocks: continuations joined, comments dropped."""
    text, lines = path.read_text(), []
    for block in [text] if path.suffix == ".sh" else FENCE.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _options(rest: str) -> list[str]:
    """The ``--options`` of the rest of a command line, up to the next ``&&``, ``;`` or pipe."""
    rest = re.split(r"\s(?:&&|\|\||;|\|)\s", rest)[0].replace("$", "")
    try:
        words = shlex.split(rest, comments=False)
    except ValueError:  # a call quoted inside a message, e.g. echo "... (build it: python -m ... --out DIR)"
        words = rest.split()
    return [w.split("=")[0] for w in words if w.startswith("--")]


def documented_calls() -> list[tuple[str, str, list[str]]]:
    """(document, command, options) of every softprompt call in the docs' shell blocks and the scripts."""
    return [
        (path.name, match.group(1), _options(match.group(2)))
        for path in DOCS
        for line in shell_lines(path)
        for match in CALL.finditer(line)
    ]


def documented_programs() -> list[tuple[str, str, list[str]]]:
    """(document, module or script, options) of every ``python -m softprompt.…`` / ``python -m benchmarks.…`` call."""
    return [
        (path.name, match.group(1), _options(match.group(2)))
        for path in DOCS
        for line in shell_lines(path)
        for match in PROGRAM.finditer(line)
    ]


CALLS = documented_calls()
PROGRAMS = documented_programs()


@functools.cache
def accepted_options(program: str) -> set[str]:
    """The options in the usage block of a module's or script's ``--help`` (argparse lists every option there; the
    descriptions below it may mention options of other programs)."""
    command = [sys.executable, "-m", program, "--help"]
    shown = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    assert shown.returncode == 0, f"{program} --help failed: {shown.stderr[-500:]}"
    return set(re.findall(r"--[a-z][\w-]*", shown.stdout.split("\n\n", 1)[0]))


@pytest.mark.parametrize(
    "document, program, options", PROGRAMS, ids=[f"{d}:{p}:{i}" for i, (d, p, _) in enumerate(PROGRAMS)]
)
def test_documented_modules_and_scripts_take_their_options(document, program, options):
    assert not set(options) - accepted_options(program), (
        f"{document}: `{program}` has no option(s) {sorted(set(options) - accepted_options(program))}"
    )


def test_the_docs_have_commands_to_check():
    assert len(CALLS) >= 30 and {"train", "ensemble-eval", "serve", "sweep", "demo"} <= {c for _, c, _ in CALLS}


@pytest.mark.parametrize("document, command, options", CALLS, ids=[f"{d}:{c}:{i}" for i, (d, c, _) in enumerate(CALLS)])
def test_documented_command_and_options_exist(document, command, options):
    assert command in cli.commands, f"{document} runs `softprompt {command}`, which is no command"
    accepted = {
        opt
        for param in cli.commands[command].params
        if isinstance(param, click.Option)
        for opt in param.opts + param.secondary_opts
    } | {"--help"}
    assert not set(options) - accepted, (
        f"{document}: `softprompt {command}` has no option(s) {sorted(set(options) - accepted)}"
    )


def test_every_test_the_error_catalogue_names_exists():
    """docs/errors.md names, per bad input, the test that checks its message: each one must exist."""
    defined = {
        name
        for path in (ROOT / "tests").rglob("*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(), re.M)
    }
    named = set(re.findall(r"`(test_\w+)", (ROOT / "docs" / "errors.md").read_text()))
    assert len(named) >= 90 and not named - defined, sorted(named - defined)


def test_every_page_of_the_guide_is_in_the_nav():
    """mkdocs.yml's nav lists every page in docs/ and only pages that exist (CI's ``mkdocs build --strict`` checks
    links too; this runs with the tests, without the docs extra)."""
    nav = re.findall(r"^\s+- [^:\n]+: (\S+\.md)$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert sorted(nav) == sorted(page.name for page in PAGES) and len(nav) == len(set(nav)), nav


def test_the_readme_is_a_front_page():
    """At most 300 lines and 20 KB, and a newcomer meets training, ensembles, neighbours, scale curves and serving
    within its first 150 lines."""
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 300 and len(text.encode()) <= 20_000
    first = "\n".join(text.splitlines()[:150])
    for command in ("train", "ensemble-eval", "neighbors", "plot-scale", "serve"):
        assert f"softprompt {command} " in first, f"`softprompt {command}` is not in the README's first 150 lines"


# what a user of softprompt never needs to read: one machine's limits on runs, transfers and output folders
HOST_LIMITS = re.compile(
    r"(?-i:\$\{?OUT\b)|device (?:call|run|tool|time)|(?:minutes|files|MiB) per (?:device )?(?:call|run)"
    r"|files come back|(?:brought|brings|bring) back|files_at|a call carries|carried by the call"
    r"|lent (?:a |an |one |the )?(?:GPU|H100|H200|machine)|give_back|can_start_another",
    re.I,
)
PRODUCT = [
    ROOT / "README.md",
    ROOT / "CHANGELOG.md",
    ROOT / "mkdocs.yml",
    *(ROOT / "docs").rglob("*"),
    *(ROOT / "benchmarks").rglob("*"),
    *(ROOT / "scripts").rglob("*"),
    *(ROOT / "tools").rglob("*"),
    *(ROOT / "softprompt").rglob("*.py"),
    *(ROOT / "ensembles").rglob("*.py"),
    *(ROOT / "analysis").rglob("*.py"),
]


def test_the_product_does_not_speak_of_a_hosts_limits():
    """README, the guide, benchmarks, scripts and docstrings speak to any user on any machine: no minutes per run,
    files or MiB a run may bring back, output folders of one host (reports/ is exempt: dated records)."""
    hits = [
        f"{path.relative_to(ROOT)}:{number}: {match.group(0)!r}"
        for path in PRODUCT
        if path.is_file()
        and path.suffix in {".md", ".py", ".sh", ".yml", ".txt", ""}
        and "__pycache__" not in path.parts
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        for match in [HOST_LIMITS.search(line)]
        if match
    ]
    assert not hits, "speaks of one host's limits:\n" + "\n".join(hits)


@pytest.mark.parametrize(
    "line",
    [
        "gpu.sh --pack: a device call brings back at most 8 files",
        'out="${OUT:-./gpu-results}"',
        "write the results to $OUT",
        "about 15 minutes per call",
        "bash tools/gpu_pretrain.sh --join FILES_AT /work/lineage",
    ],
)
def test_the_host_limits_check_would_catch(line):
    assert HOST_LIMITS.search(line)


@pytest.mark.parametrize("line", ["one K/V copy per row vs per call", "results in ./gpu-results", "--out DIR"])
def test_the_host_limits_check_leaves_ordinary_words(line):
    assert not HOST_LIMITS.search(line)
