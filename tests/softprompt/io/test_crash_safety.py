"""Crash safety and reproducibility (production hardening §4).

* ``softprompt train`` runs in separate processes (forked from a server that has done the imports)
  and is SIGKILLed at deterministic points: mid-step (by a signal from the test), inside a checkpoint
  save between its two renames, while a temp file is half written, and between the final artefacts'
  renames. After each kill every file under a final name is complete, and the last ``--resume``
  reaches prompts, best-so-far tensors, optimiser state, history and metadata bit-identical to an
  uninterrupted run (a fresh ``python -m softprompt.cli train``) with the same seed (CPU, fp32).
* Loading never unpickles: a pickle whose ``__reduce__`` would create a marker file, planted as
  ``prompts.safetensors`` or as the checkpoint's tensor file, is refused with a clear one-line
  error, and the marker never appears. The package sources contain no unpickling call.

Models are a tiny random T5 saved to a local directory; data is real SuperGLUE RTE.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch
import torch

from tests.conftest import ROOT, TEST_DATA

RTE = TEST_DATA / "superglue" / "rte"
STEPS = 12

# Checkpoints at 3, 6, 9, 12 and validations at 4, 8, 12: a kill between two checkpoints also throws
# away a validation (and maybe a best-so-far update), which the resumed run must redo identically.
TRAIN_ARGS = [
    "--task",
    "rte",
    "--train-file",
    str(RTE / "train.jsonl"),
    "--validation-file",
    str(RTE / "val.jsonl"),
    "--train-size",
    "32",
    "--eval-size",
    "8",
    "--n-prompts",
    "2",
    "--prompt-length",
    "3",
    "--steps",
    str(STEPS),
    "--batch-size",
    "4",
    "--eval-every",
    "4",
    "--checkpoint-every",
    "3",
    "--max-source-length",
    "64",
    "--optimizer",
    "adafactor",
    "--seed",
    "7",
    "--quiet",
]

# A fork server for the interrupted runs: it imports what `softprompt train` imports once, then forks
# one child per run, which calls the console script's entry point (softprompt.cli.app.main) with the
# run's arguments and is SIGKILLed at a chosen point (a fresh interpreter per run would spend ~4 s of
# each run's ~5 s on imports). Each run is a separate process: nothing of a killed run survives but
# its files. CRASH_AT "point:N" wraps one function so that its N-th call kills the process; with a
# "ready" path the child instead creates that file and waits there for a SIGKILL from outside.
ZYGOTE = r"""
import json, os, signal, sys, time, traceback

import datasets, transformers  # noqa: F401  (what the train command loads, imported once)
import softprompt.io.checkpoint as checkpoint
import softprompt.cli.app as cli
import softprompt.training.config, softprompt.data.loading, softprompt.model.loading  # noqa: F401
import softprompt.io.store as store
import softprompt.training.loop as train


def child(request):
    log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    point, _, nth = (request.get("crash_at") or "").partition(":")
    calls = 0

    def die():
        sys.stdout.flush()
        sys.stderr.flush()
        if request.get("ready"):  # stop here; the test delivers the SIGKILL from outside
            open(request["ready"], "w").close()
            time.sleep(600)
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(module, name, around=None):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            nonlocal calls
            calls += 1
            if calls == int(nth):
                if around is None:
                    die()
                return around(original, *args, **kwargs)
            return original(*args, **kwargs)

        setattr(module, name, wrapper)

    def half_written(original, path, write):  # the temp file written, cut in half, never renamed
        def partial(tmp):
            write(tmp)
            os.truncate(tmp, os.path.getsize(tmp) // 2)
            die()

        return original(path, partial)

    if point == "step":  # inside a training step: after backward, before the optimiser step
        wrap(train, "clip_grad_norm_per_prompt")
    elif point == "checkpoint-commit":  # checkpoint tensors renamed into place, state.json not yet replaced
        wrap(checkpoint, "atomic_write_text")
    elif point == "checkpoint-write":  # a checkpoint's tensor temp file half written
        wrap(checkpoint, "atomic_write", around=half_written)
    elif point == "final-commit":  # prompts.safetensors renamed into place, softprompt.json not yet written
        wrap(store, "atomic_write_text")
    elif point:
        raise SystemExit(f"unknown crash point {point!r}")
    sys.argv = ["softprompt", *request["argv"]]
    code = 0
    try:
        cli.main()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


print(json.dumps({"ready": True}), flush=True)
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:
        try:
            child(request)
        finally:
            os._exit(1)
    print(json.dumps({"pid": pid}), flush=True)
    print(json.dumps({"code": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}), flush=True)
"""


def _env() -> dict[str, str]:
    return dict(
        os.environ,
        OMP_NUM_THREADS="1",
        MKL_NUM_THREADS="1",
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        PYTHONPATH=str(ROOT),
    )


def _train_args(model_dir: Path, out: Path, resume: bool = False) -> list[str]:
    return ["train", "--model", str(model_dir), "--output-dir", str(out), *TRAIN_ARGS] + (
        ["--resume"] if resume else []
    )


class _Runs:
    """Client of the fork server: ``start`` one run, ``wait`` for its exit code (negative: killed)."""

    def __init__(self, directory: Path):
        self.directory, self.count, self.pid = directory, 0, None
        self.proc = subprocess.Popen(
            [sys.executable, "-c", ZYGOTE],
            cwd=directory,
            env=_env(),
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.replies: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.replies.put(line)
        self.replies.put("")

    def _reply(self, key: str, timeout: float = 300) -> Any:
        while True:  # skip anything else the server prints (import-time warnings)
            line = self.replies.get(timeout=timeout)
            assert line, f"the fork server died (exit code {self.proc.wait()})"
            reply = json.loads(line) if line.startswith("{") else {}
            if key in reply:
                return reply[key]

    def _ended(self) -> bool:
        """Whether the current run has exited (its exit code is put back for ``wait``)."""
        while not self.replies.empty():
            line = self.replies.get()
            if not line or line.startswith('{"code"'):
                self.replies.put(line)
                return True
        return False

    def start(self, args: list[str], crash_at: str | None = None, ready: Path | None = None) -> None:
        if self.count == 0:
            self._reply("ready")
        self.count += 1
        self.log = self.directory / f"run{self.count}.log"
        request = {"argv": args, "crash_at": crash_at, "ready": str(ready) if ready else None, "log": str(self.log)}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        self.pid = self._reply("pid")

    def wait(self) -> tuple[int, str]:
        code = self._reply("code")
        self.pid = None
        return code, self.log.read_text()

    def killed(self, what: str) -> None:
        code, output = self.wait()
        assert code == -signal.SIGKILL, f"{what}: expected death by SIGKILL, got exit code {code}:\n{output[-3000:]}"

    def kill_when_ready(self, ready: Path, timeout: float = 300) -> None:
        """Wait until the run has stopped at its crash point, then SIGKILL it from this process."""
        deadline = time.monotonic() + timeout
        while not ready.exists():
            assert not self._ended(), f"run ended before its crash point:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "crash point never reached"
            time.sleep(0.01)
        os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        if self.pid is not None and not self._ended():  # a run left at its crash point by a failed test
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        self.proc.kill()  # idle between runs: nothing to lose
        self.proc.wait()


def _committed(out: Path) -> tuple[dict, Path]:
    """state.json of the committed checkpoint and the tensor file it names."""
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    return state, out / "checkpoint" / state.get("tensors_file", "state.safetensors")


def _assert_consistent(out: Path, expect_step: int | None = None) -> None:
    """What a reader sees after a kill: every file under a final name is complete, and the committed
    checkpoint's tensors are the ones its state.json names (only dot-named temp files may be partial)."""
    for path in sorted(out.rglob("*")):
        if path.is_dir() or path.name.startswith("."):
            continue
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            safetensors.torch.load(path.read_bytes())
    state, tensor_file = _committed(out)
    assert hashlib.sha256(tensor_file.read_bytes()).hexdigest() == state["tensors_sha256"], "checkpoint torn"
    if expect_step is not None:
        assert state["step"] == expect_step


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    """An uninterrupted run in a fresh interpreter (``python -m softprompt.cli train``), started at once
    so that it runs beside the fork server's start-up; call it to wait for the run directory."""
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "softprompt.cli", *_train_args(tiny_model_dir, out)],
        cwd=out.parent,
        env=_env(),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    done: list[Path] = []

    def wait() -> Path:
        if not done:
            output = proc.communicate(timeout=300)[0]
            assert proc.returncode == 0, output[-3000:]
            done.append(out)
        return done[0]

    yield wait
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture
def runs(tmp_path):
    runs = _Runs(tmp_path)
    yield runs
    runs.close()


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load(path.read_bytes())


def _assert_bit_identical(run: Path, ref: Path) -> None:
    for a, b in (
        (_tensors(run / "prompts.safetensors"), _tensors(ref / "prompts.safetensors")),
        (_tensors(_committed(run)[1]), _tensors(_committed(ref)[1])),
    ):  # banks, best-so-far, optimiser
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].dtype == b[name].dtype == torch.float32, name
            assert torch.equal(a[name], b[name]), f"{name} differs from the uninterrupted run"
    meta, ref_meta = (json.loads((d / "softprompt.json").read_text()) for d in (run, ref))
    for m in (meta, ref_meta):
        m["train_args"].pop("output_dir")
    assert meta == ref_meta  # best metric and step per prompt, settings, versions
    state, ref_state = (_committed(d)[0] for d in (run, ref))
    for s in (state, ref_state):
        s["config"].pop("output_dir")
    assert state == ref_state  # step, best metrics, since_best, optimiser scalars, history, tensor digest
    assert json.loads((run / "history.json").read_text()) == json.loads((ref / "history.json").read_text())


def test_sigkill_anywhere_then_resume_is_bit_identical(tiny_model_dir, reference, runs, tmp_path):
    out = tmp_path / "run"

    # 1. mid-step, by a signal from outside: the run stops inside step 5 (after backward, before the
    #    optimiser step) and this process SIGKILLs it; checkpoint 3 is the last one, and the validation
    #    at step 4 (with its best-so-far update) is lost and must be redone
    runs.start(_train_args(tiny_model_dir, out), crash_at="step:5", ready=tmp_path / "ready")
    runs.kill_when_ready(tmp_path / "ready")
    runs.killed("mid-step kill")
    _assert_consistent(out, expect_step=3)
    assert not (out / "softprompt.json").exists()

    # 2. mid-save: checkpoint 6's tensor file is renamed into place, state.json (still step 3) is not:
    #    the step-3 checkpoint must still be loadable
    runs.start(_train_args(tiny_model_dir, out, resume=True), crash_at="checkpoint-commit:1")
    runs.killed("kill between the checkpoint's renames")
    _assert_consistent(out, expect_step=3)

    # 3. mid-write: checkpoint 6 commits, then checkpoint 9's temp file is half written when the process
    #    dies; the temp file is left behind (the next commit removes it)
    runs.start(_train_args(tiny_model_dir, out, resume=True), crash_at="checkpoint-write:2")
    runs.killed("kill mid checkpoint write")
    _assert_consistent(out, expect_step=6)
    assert list((out / "checkpoint").glob(".*.tmp")), "the half-written temp file should be left behind"

    # 4. mid final save: checkpoint 12 committed, prompts.safetensors renamed into place, softprompt.json
    #    not written: the directory is not (yet) a readable run
    runs.start(_train_args(tiny_model_dir, out, resume=True), crash_at="final-commit:1")
    runs.killed("kill between the final artefacts' renames")
    _assert_consistent(out, expect_step=STEPS)
    assert (out / "prompts.safetensors").is_file() and not (out / "softprompt.json").exists()

    # 5. the last resume trains nothing more and writes the artefacts
    runs.start(_train_args(tiny_model_dir, out, resume=True))
    code, output = runs.wait()
    assert code == 0, output[-3000:]
    _assert_consistent(out, expect_step=STEPS)
    ref = reference()
    _assert_bit_identical(out, ref)
    listing = sorted(p.name for p in (out / "checkpoint").iterdir())
    assert listing == sorted(p.name for p in (ref / "checkpoint").iterdir()), f"stale checkpoint files: {listing}"


def _tiny_checkpoint(run_dir: Path, step: int):
    from softprompt.io.checkpoint import save_checkpoint
    from softprompt.training.optim import make_optimizer

    weight = torch.nn.Parameter(torch.arange(12.0).view(2, 2, 3))
    optimizer = make_optimizer("adafactor", [weight], 0.3, 1e-5)
    weight.grad = torch.ones_like(weight)
    optimizer.step()
    state = {
        "step": step,
        "best_metric": [0.5, 0.25],
        "best_step": [step, 0],
        "since_best": 0,
        "history": [],
        "config": {},
    }
    save_checkpoint(run_dir, {"prompts.weight": weight.data}, {"prompts.weight": weight.data * 2}, optimizer, state)
    return weight, optimizer


def test_checkpoint_commit_removes_superseded_files_and_legacy_layout_still_loads(tmp_path):
    from softprompt.io.checkpoint import load_checkpoint
    from softprompt.training.optim import make_optimizer

    directory = tmp_path / "checkpoint"
    _tiny_checkpoint(tmp_path, 3)
    (directory / ".state-00000006-0123456789abcdef.safetensors.x1.tmp").write_bytes(b"half")  # killed writes
    (directory / "state-00000006-0123456789abcdef.safetensors").write_bytes(b"uncommitted")
    weight, optimizer = _tiny_checkpoint(tmp_path, 6)
    state, tensor_file = _committed(tmp_path)
    assert sorted(p.name for p in directory.iterdir()) == sorted([tensor_file.name, "state.json"])

    # the layout before tensor files were versioned: state.safetensors, and no "tensors_file" in state.json
    tensor_file.rename(directory / "state.safetensors")
    del state["tensors_file"]
    (directory / "state.json").write_text(json.dumps(state))
    fresh = make_optimizer("adafactor", [torch.nn.Parameter(torch.zeros(2, 2, 3))], 0.3, 1e-5)
    banks, best, loaded = load_checkpoint(tmp_path, fresh)
    assert torch.equal(banks["prompts.weight"], weight.data) and torch.equal(best["prompts.weight"], weight.data * 2)
    assert loaded["step"] == 6 and "tensors_sha256" not in loaded and "optimizer_scalars" not in loaded
    saved, restored = optimizer.state_dict()["state"][0], fresh.state_dict()["state"][0]
    assert saved.keys() == restored.keys() and all(
        torch.equal(saved[k], restored[k]) if torch.is_tensor(saved[k]) else saved[k] == restored[k] for k in saved
    )


# --- loading never unpickles -------------------------------------------------------------------


class _Payload:
    """Unpickling this creates ``marker`` (as any code could run instead)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _malicious(path: Path, marker: Path, torch_format: bool = False) -> None:
    """Overwrite ``path`` with a pickle that would create ``marker``; check first that it really does."""
    probe = marker.with_name(marker.name + ".probe")
    pickle.loads(pickle.dumps(_Payload(probe)))  # positive control: an unpickler runs the payload
    assert probe.exists()
    probe.unlink()
    if torch_format:  # torch.save's zip container (what a .bin/.pt checkpoint looks like)
        torch.save({"prompts": _Payload(marker)}, path)
    else:
        path.write_bytes(pickle.dumps({"prompts": _Payload(marker)}))
    assert not marker.exists()


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """Run the CLI entry point in-process; (exit code, stderr)."""
    from softprompt.cli.app import main

    monkeypatch.setattr(sys, "argv", ["softprompt", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.fixture
def run_copy(reference, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(reference(), copy)
    return copy


@pytest.mark.parametrize("torch_format", [False, True], ids=["pickle", "torch-save"])
def test_pickled_prompts_file_is_refused_by_load_banks(run_copy, tmp_path, torch_format):
    from softprompt.errors import SoftpromptError
    from softprompt.io.store import load_banks
    from softprompt.model.loading import load_frozen_t5

    marker = tmp_path / "pwned"
    _malicious(run_copy / "prompts.safetensors", marker, torch_format)
    config = load_frozen_t5(json.loads((run_copy / "softprompt.json").read_text())["model"]["name"]).config
    with pytest.raises(SoftpromptError, match=r"prompts\.safetensors is corrupted or truncated"):
        load_banks(run_copy, config)
    assert not marker.exists()


def test_pickled_prompts_file_is_refused_by_ensemble_eval(run_copy, tmp_path, monkeypatch, capsys):
    marker = tmp_path / "pwned"
    _malicious(run_copy / "prompts.safetensors", marker)
    code, err = _cli(
        monkeypatch,
        capsys,
        "ensemble-eval",
        "--prompts",
        str(run_copy),
        "--task",
        "rte",
        "--data-file",
        str(RTE / "val.jsonl"),
        "--limit",
        "4",
        "--output",
        str(tmp_path / "eval.json"),
        "--quiet",
    )
    assert code == 2 and re.search(r"^error: .*prompts\.safetensors is corrupted or truncated", err, re.M), err
    assert "Traceback" not in err
    assert not marker.exists() and not (tmp_path / "eval.json").exists()


@pytest.mark.parametrize("digest", ["stale", "matching"])
def test_pickled_checkpoint_is_refused_on_resume(run_copy, tmp_path, monkeypatch, capsys, digest):
    """The tensor file named by state.json replaced by a pickle: with the old digest (refused as
    inconsistent) and with state.json rewritten to the pickle's digest, so that the safetensors
    parser itself must refuse it."""
    marker = tmp_path / "pwned"
    state, tensor_file = _committed(run_copy)
    _malicious(tensor_file, marker)
    if digest == "matching":
        state["tensors_sha256"] = hashlib.sha256(tensor_file.read_bytes()).hexdigest()
        (run_copy / "checkpoint" / "state.json").write_text(json.dumps(state))
    args = ["train", "--model", state["config"]["model"], "--output-dir", str(run_copy), *TRAIN_ARGS, "--resume"]
    code, err = _cli(monkeypatch, capsys, *args)
    assert code == 2 and re.search(r"^error: checkpoint in .* is (inconsistent|corrupted)", err, re.M), err
    assert "Traceback" not in err
    assert not marker.exists()


UNPICKLING = re.compile(
    r"\b(?:c?pickle|dill|cloudpickle|joblib|_pickle)\s*\.\s*(?:load|loads|Unpickler)\b"
    r"|\ballow_pickle\s*=\s*True|\bweights_only\s*=\s*False|\bmarshal\s*\.\s*loads?\b|\bshelve\s*\.\s*open\b"
    r"|\btorch\s*\.\s*jit\s*\.\s*load\b"
    r"|^\s*(?:import|from)\s+(?:c?pickle|_pickle|dill|cloudpickle|joblib|shelve|marshal)\b"
    r"|^\s*from\s+torch(?:\.serialization)?\s+import\s+(?:.*[\s,(])?load\b",
    re.M,
)


def test_package_sources_never_unpickle():
    sources = [p for package in ("softprompt", "ensembles", "analysis") for p in (ROOT / package).rglob("*.py")]
    assert len(sources) > 20
    offences = []
    for path in sources:
        text = path.read_text()
        for match in UNPICKLING.finditer(text):
            offences.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
        for match in re.finditer(r"(?<![\w.])torch\s*\.\s*load\s*\(", text):  # only torch.load(..., weights_only=True)
            depth, end = 1, match.end()
            while depth and end < len(text):
                depth += {"(": 1, ")": -1}.get(text[end], 0)
                end += 1
            if not re.search(r"\bweights_only\s*=\s*True\b", text[match.end() : end]):
                offences.append(f"{path.relative_to(ROOT)}: {text[match.start() : end]}")
    assert not offences, "unpickling calls in package sources:\n" + "\n".join(offences)
