"""Helpers to write prompt runs with random banks and to drive a real ``softprompt serve``
subprocess over HTTP with the standard library (used by tests/softprompt/serve and benchmarks/serve_bench.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from softprompt.data.tasks import get_task
from softprompt.io.store import model_fingerprint, save_run
from softprompt.model.loading import load_frozen_t5
from softprompt.model.prefixes import PrefixBank, PrefixShape
from softprompt.model.prompts import PromptBank

ROOT = (
    Path(__file__).resolve().parents[3]
)  # the repository (benchmarks/serve_bench.py imports this file outside pytest)
PREFIX_LENGTH = 2


def write_run(
    directory: Path,
    model: str,
    task_name: str,
    n_prompts: int,
    seed: int,
    prefixes: bool = True,
    prompt_length: int = 3,
) -> str:
    """A run directory with random prompts (and deep prefixes) for ``task_name`` on ``model``."""
    frozen = load_frozen_t5(model)
    task = get_task(task_name)
    generator = torch.Generator().manual_seed(seed)
    bank = PromptBank(n_prompts, prompt_length, frozen.config.d_model)
    bank.weight.data = torch.randn(bank.weight.shape, generator=generator) * 0.5
    prefix_bank = None
    if prefixes:
        prefix_bank = PrefixBank(n_prompts, PrefixShape.for_config(frozen.config, PREFIX_LENGTH))
        for kv in prefix_bank.kv.values():
            kv.data = torch.randn(kv.shape, generator=generator) * 0.5
    meta = {
        "model": {"name": model, **model_fingerprint(frozen.config)},
        "task": {"name": task.name, "kind": task.kind, "label_words": list(task.label_words), "metric": task.metric},
        "n_prompts": n_prompts,
        "seeds": list(range(seed, seed + n_prompts)),
        "prompts": {"length": prompt_length, "init": "random-uniform"},
        "prefixes": {
            "length": PREFIX_LENGTH,
            "sites": ["encoder", "decoder", "cross"],
            "init": "random",
            "reparam_dim": 0,
        }
        if prefixes
        else None,
    }
    save_run(directory, meta, bank, prefix_bank)
    return str(directory)


class Server:
    """A running ``softprompt serve`` subprocess and a JSON client for it."""

    def __init__(self, process: subprocess.Popen, url: str, key: str | None) -> None:
        self.process, self.url, self.key = process, url, key

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        raw: bytes | None = None,
        key: str | None = "default",
        timeout: float = 60,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        """(status, parsed JSON or text) of one HTTP request; ``key=None`` sends no API key."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type}
        key = self.key if key == "default" else key
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, payload, kind = response.status, response.read(), response.headers.get("content-type", "")
        except urllib.error.HTTPError as error:
            status, payload, kind = error.code, error.read(), error.headers.get("content-type", "")
        return status, json.loads(payload) if "json" in kind else payload.decode()

    def post(self, path: str, body: Any, **kw) -> tuple[int, Any]:
        return self.request("POST", path, body, **kw)

    def get(self, path: str, **kw) -> tuple[int, Any]:
        return self.request("GET", path, **kw)


@contextmanager
def running_server(run_dirs: list[str], *args: str, key: str | None = None, threads: int = 1) -> Iterator[Server]:
    """Start ``softprompt serve`` on a free port with ``threads`` torch threads; always killed at the end."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1", "SERVE_TEST_KEY": key or ""}
    command = [sys.executable, "-m", "softprompt.cli", "serve", "--port", "0", "--device", "cpu", *args]
    command += [part for run in run_dirs for part in ("--prompts", run)]
    if key:
        command += ["--api-key-env", "SERVE_TEST_KEY"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"on (http://\S+) ", line)
        if not match:
            process.kill()
            raise RuntimeError(f"server did not start: {line!r} {process.stderr.read()[-2000:]}")
        yield Server(process, match.group(1), key)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        process.stdout.close()
        process.stderr.close()


def stop(server: Server, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
    """Send ``sig`` and wait for the exit: (exit code, rest of stdout)."""
    server.process.send_signal(sig)
    deadline = time.monotonic() + timeout
    while server.process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return server.process.wait(timeout=5), server.process.stdout.read()
