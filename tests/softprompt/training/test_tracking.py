"""Training curves: ``--log-every`` history entries, ``--report-to`` trackers (accelerate), resumes.

* A run with ``--report-to tensorboard`` writes event files that TensorBoard's own reader
  (``EventAccumulator``) loads with one series per prompt per quantity, at exactly the history's
  steps and values, and the run's settings as hyper-parameters.
* SIGKILLed mid-step (after TensorBoard already got steps the checkpoint does not hold) and resumed,
  a run ends with a history identical to an uninterrupted run's, no gaps, no duplicated steps, and
  TensorBoard shows every step once (the resumed writer purges the killed run's later events).
* A tracker whose package is missing is refused with one line naming the ``tracking`` extra.

Runs go through the fork server of test_crash_safety (real ``softprompt train`` processes).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from tests.conftest import TEST_DATA
from tests.softprompt.io.test_crash_safety import _Runs

RTE = TEST_DATA / "superglue" / "rte"
STEPS = 12
# history entries every 2 steps, validations at 4, 8, 12, checkpoints at 5, 10, 12
ARGS = [
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
    "5",
    "--log-every",
    "2",
    "--max-source-length",
    "64",
    "--seed",
    "3",
    "--quiet",
    "--report-to",
    "tensorboard",
]
LOG_STEPS = list(range(2, STEPS + 1, 2))
VAL_STEPS = [4, 8, 12]


def _args(model_dir: Path, out: Path, resume: bool = False) -> list[str]:
    return ["train", "--model", str(model_dir), "--output-dir", str(out), *ARGS] + (["--resume"] if resume else [])


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def _scalars(run: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar series of the run's TensorBoard logs, read by TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(run / "logs" / "softprompt"))
    accumulator.Reload()
    return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def _hparams(run: Path) -> dict:
    """The hyper-parameters accelerate stored through TensorBoard's hparams plugin."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    (folder,) = [p for p in (run / "logs" / "softprompt").iterdir() if p.is_dir() and list(p.glob("events.*"))]
    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    content = accumulator.SummaryMetadata("_hparams_/session_start_info").plugin_data.content
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind")) for k, v in hparams.items()}


def _assert_matches_history(scalars: dict, history: list[dict]) -> None:
    """TensorBoard holds each history entry once per prompt, at its step (values as float32)."""
    expected: dict[str, list[tuple[int, float]]] = {}
    for entry in history:
        for key, tag in (("train_loss", "train_loss"), ("grad_norm", "grad_norm"), ("accuracy", "val_accuracy")):
            for i, value in enumerate(entry.get(key, ())):
                expected.setdefault(f"{tag}/prompt_{i}", []).append((entry["step"], value))
        expected.setdefault("lr", []).append((entry["step"], entry["lr"][0]))
    assert sorted(scalars) == sorted(expected)
    for tag, points in expected.items():
        assert [s for s, _ in scalars[tag]] == [s for s, _ in points], tag
        for (_, got), (_, want) in zip(scalars[tag], points):
            assert math.isclose(got, want, rel_tol=1e-6), (tag, got, want)


@pytest.fixture
def runs(tmp_path):
    runs = _Runs(tmp_path)
    yield runs
    runs.close()


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory) -> Path:
    """An uninterrupted run with --report-to tensorboard."""
    directory = tmp_path_factory.mktemp("reference")
    runs = _Runs(directory)
    try:
        runs.start(_args(tiny_model_dir, directory / "run"))
        code, output = runs.wait()
    finally:
        runs.close()
    assert code == 0, output[-3000:]
    return directory / "run"


def test_tensorboard_reader_loads_per_prompt_series_at_the_history_steps(reference):
    history = _history(reference)
    assert [e["step"] for e in history] == LOG_STEPS
    assert [e["step"] for e in history if "accuracy" in e] == VAL_STEPS
    for entry in history:
        assert len(entry["train_loss"]) == len(entry["grad_norm"]) == 2 and entry["lr"] == [0.3]
        assert all(v > 0 for v in entry["train_loss"] + entry["grad_norm"])
    scalars = _scalars(reference)
    assert {"train_loss/prompt_0", "train_loss/prompt_1", "grad_norm/prompt_1", "val_accuracy/prompt_1", "lr"} <= set(
        scalars
    )
    _assert_matches_history(scalars, history)
    hparams = _hparams(reference)
    assert hparams["lr"] == 0.3 and hparams["n_prompts"] == 2 and hparams["log_every"] == 2
    assert hparams["task"] == "rte" and hparams["report_to"] == "tensorboard" and hparams["decoding.num_beams"] == 1


def test_history_survives_sigkill_and_resume_without_gaps_or_duplicates(tiny_model_dir, reference, runs, tmp_path):
    out = tmp_path / "run"
    # killed inside step 8: checkpoint 5 is the last; TensorBoard already got step 6, which the resume redoes
    runs.start(_args(tiny_model_dir, out), crash_at="step:8", ready=tmp_path / "ready")
    runs.kill_when_ready(tmp_path / "ready")
    runs.killed("mid-step kill")
    assert [e["step"] for e in _history(out)] == [2, 4]  # the history of checkpoint 5, never ahead of it
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 5
    assert [s for s, _ in _scalars(out)["train_loss/prompt_0"]] == [2, 4, 6]

    runs.start(_args(tiny_model_dir, out, resume=True))
    code, output = runs.wait()
    assert code == 0, output[-3000:]
    history = _history(out)
    assert history == _history(reference)  # same steps, same values (CPU, fp32, same seed and data order)
    assert [e["step"] for e in history] == LOG_STEPS
    _assert_matches_history(_scalars(out), history)  # step 6 once: the killed run's copy is purged


def _log(log_every: int, state: dict | None = None):
    from softprompt.training.tracking import TrainingLog

    state = {"step": 0} if state is None else state
    return state, TrainingLog(state, log_every, "accuracy")


def _step(state, log, n: int, metrics=None):
    state["step"] += 1
    return log.record([float(n), 2.0 * n], [0.1 * n, 0.2], [0.3], metrics)


def test_history_entries_average_the_steps_since_the_previous_entry_and_resume_exactly():
    state, log = _log(3)
    assert _step(state, log, 1) is None and _step(state, log, 2) is None
    entry = _step(state, log, 3)
    assert entry == {
        "step": 3,
        "train_loss": [2.0, 4.0],
        "grad_norm": [pytest.approx(0.2), pytest.approx(0.2)],
        "lr": [0.3],
    }
    entry = _step(state, log, 4, metrics=[0.5, 0.75])  # a validation between log steps: an entry of its own
    assert entry["step"] == 4 and entry["train_loss"] == [4.0, 8.0] and entry["accuracy"] == [0.5, 0.75]
    _step(state, log, 5)
    saved = json.loads(json.dumps(state))  # a checkpoint mid-window (after step 5) ...

    for n in range(6, 10):
        _step(state, log, n)
    state2, log2 = _log(3, saved)  # ... resumed from JSON
    for n in range(6, 10):
        _step(state2, log2, n)
    assert state2["history"] == state["history"]
    assert [e["step"] for e in state["history"]] == [3, 4, 6, 9]
    assert state["history"][2]["train_loss"] == [5.5, 11.0]  # steps 5 and 6


def test_report_to_parsing():
    from softprompt.errors import SoftpromptError
    from softprompt.training.tracking import parse_report_to

    assert parse_report_to("none") == () and parse_report_to(None) == () and parse_report_to(()) == ()
    assert parse_report_to("all") == ("all",)
    assert parse_report_to(" TensorBoard, wandb,tensorboard") == ("tensorboard", "wandb")
    with pytest.raises(SoftpromptError, match="unknown --report-to 'tensorbord'; use none, all or"):
        parse_report_to("tensorbord")
    with pytest.raises(SoftpromptError, match="'none' and 'all' cannot be combined"):
        parse_report_to("all,wandb")


def test_a_missing_tracker_package_names_the_extra(monkeypatch):
    import softprompt.training.tracking as tracking
    from softprompt.errors import SoftpromptError

    missing = [name for name in tracking.PACKAGES if importlib.util.find_spec(name) is None]
    if missing:  # honestly missing here (wandb, mlflow, ... are not installed with the test extra)
        name = missing[0]
        assert name not in tracking.available_trackers()
        with pytest.raises(
            SoftpromptError,
            match=rf'--report-to {name} needs the .* package, which is not installed; pip install "softprompt\[tracking\]"',
        ):
            tracking.installed_trackers([name])
    assert tracking.installed_trackers(["tensorboard"]) == ["tensorboard"]  # installed with the test extra
    monkeypatch.setattr(tracking, "available_trackers", lambda: [])  # as on a machine without any tracker
    with pytest.raises(
        SoftpromptError,
        match=r'--report-to tensorboard needs the tensorboard package, which is not installed; pip install "softprompt\[tracking\]"',
    ):
        tracking.installed_trackers(["tensorboard"])
    with pytest.raises(SoftpromptError, match=r"--report-to all found no experiment tracker installed"):
        tracking.installed_trackers(["all"])


def test_hyperparameters_are_flat_scalars():
    from softprompt.training.tracking import hyperparameters

    assert hyperparameters({"lr": 0.3, "sites": ["encoder", "cross"], "x": None, "decoding": {"num_beams": 1}}) == {
        "lr": 0.3,
        "sites": "encoder,cross",
        "x": "none",
        "decoding.num_beams": 1,
    }


def test_only_the_main_process_reports_under_accelerate_launch(tiny_model_dir, tmp_path):
    """Two CPU processes (gloo): one TensorBoard event file, every step once, and the same history
    as the main process writes alone."""
    import subprocess

    from tests.softprompt.model.test_distributed import LAUNCH

    out = tmp_path / "run"
    args = [a for a in _args(tiny_model_dir, out) if a != "train"]
    done = subprocess.run(
        [*LAUNCH, "train", *args, "--steps", "8", "--checkpoint-every", "4"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    history = _history(out)
    assert [e["step"] for e in history] == [2, 4, 6, 8]
    event_files = sorted(p.name for p in (out / "logs" / "softprompt").glob("events.out.tfevents.*"))
    assert len(event_files) == 1, event_files
    _assert_matches_history(_scalars(out), history)
