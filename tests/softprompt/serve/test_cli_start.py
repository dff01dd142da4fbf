"""``softprompt serve`` refusing to start: one line on stderr, exit code 2, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from softprompt.model.loading import save_model_dir
from softprompt.model.random_models import random_t5
from tests.softprompt.cli.helpers import assert_one_line_error, run_cli
from tests.softprompt.serve.harness import write_run


def test_unset_api_key_variable(serve_runs, monkeypatch):
    monkeypatch.delenv("SOFTPROMPT_NO_SUCH_KEY", raising=False)
    result = run_cli("serve", "--prompts", serve_runs["cb"], "--api-key-env", "SOFTPROMPT_NO_SUCH_KEY")
    assert_one_line_error(
        result,
        "--api-key-env SOFTPROMPT_NO_SUCH_KEY: the environment variable $SOFTPROMPT_NO_SUCH_KEY is unset or empty",
    )


def test_runs_of_different_models(serve_runs, tmp_path):
    save_model_dir(random_t5(d_model=48), tmp_path / "wide")
    wide = write_run(tmp_path / "wide_run", str(tmp_path / "wide"), "cb", 1, seed=0)
    result = run_cli("serve", "--prompts", serve_runs["cb"], "--prompts", wide)
    assert_one_line_error(result, "pool only runs trained on the same model")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--max-rows", "0"], "--max-rows must be a positive integer, got 0"),
        (["--max-tokens", "0"], "--max-tokens must be a positive integer, got 0"),
        (["--max-wait-ms", "-1"], "--max-wait-ms must be a finite number of 0 or more, got -1"),
        (
            ["--max-wait-ms", "nan"],
            "--max-wait-ms must be a finite number of 0 or more, got nan",
        ),  # the worker would wait forever
        (["--port", "70000"], "--port must lie in 0..65535"),
        (["--max-inputs", "0"], "--max-inputs must be a positive integer"),
    ],
)
def test_bad_settings(serve_runs, args, message):
    assert_one_line_error(run_cli("serve", "--prompts", serve_runs["cb"], *args), message)


def test_not_a_run(tmp_path):
    assert_one_line_error(run_cli("serve", "--prompts", str(tmp_path)), "is not a softprompt run")


def test_port_in_use(serve_runs):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", "--prompts", serve_runs["cb"], "--port", port, "--device", "cpu")
    assert_one_line_error(result, f"cannot listen on 127.0.0.1:{port} (Address already in use); pick another --port")


def test_host_that_does_not_resolve(serve_runs):
    """A bad --host names the resolver's reason (it used to read "Unknown error -2")."""
    result = run_cli("serve", "--prompts", serve_runs["cb"], "--host", "999.1.1.1", "--no-auth", "--device", "cpu")
    line = assert_one_line_error(result, "cannot resolve --host 999.1.1.1 (", "); give an address of this machine")
    assert "Unknown error" not in line


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.7", "::", "my-server.example"])
def test_a_bind_other_machines_reach_needs_a_key_or_no_auth(serve_runs, host):
    result = run_cli("serve", "--prompts", serve_runs["cb"], "--host", host)
    assert_one_line_error(result, f"--host {host} accepts other machines", "--api-key-env VAR", "--no-auth")


def test_no_auth_and_a_key_contradict(serve_runs, monkeypatch):
    monkeypatch.setenv("SOFTPROMPT_TEST_KEY", "secret")
    result = run_cli("serve", "--prompts", serve_runs["cb"], "--no-auth", "--api-key-env", "SOFTPROMPT_TEST_KEY")
    assert_one_line_error(result, "--no-auth and --api-key-env contradict each other")


@pytest.mark.parametrize("hidden", [("uvicorn",), ("fastapi", "prometheus_client")])
def test_serve_without_the_extra_names_the_install_command(serve_runs, hidden):
    """A real process in which the serve extra's modules cannot be imported (as without ``softprompt[serve]``)."""
    code = (
        f"import sys\nfor name in {hidden!r}: sys.modules[name] = None  # import of name raises ImportError\n"
        "from softprompt.cli.app import main\nsys.argv[0] = 'softprompt'\nmain()"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, "serve", "--prompts", serve_runs["cb"], "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert lines == [
        f"error: softprompt serve needs the serve extra ({', '.join(hidden)} not installed); "
        'install it with: pip install "softprompt[serve]"'
    ]
