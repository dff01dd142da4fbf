"""Data parallelism: `accelerate launch --num_processes 2 --cpu` (gloo) equals one process.

Tiny random T5 saved locally (built in-process), real RTE data. The global batch (6) is split over
the two processes; per-prompt losses are normalised by the global token count and gradients
summed, so the trained prompts must match a single-process run up to float summation order.
"""

import json
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import TEST_DATA

RTE = TEST_DATA / "superglue" / "rte"
LAUNCH = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--num_processes",
    "2",
    "--cpu",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
    "-m",
    "softprompt.cli",
]
SINGLE = [sys.executable, "-m", "softprompt.cli"]


def _run(prefix, *args):
    done = subprocess.run([*prefix, *map(str, args)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir):
    tmp = tmp_path_factory.mktemp("dist")
    train = [
        "train",
        "--model",
        tiny_model_dir,
        "--task",
        "rte",
        "--train-file",
        RTE / "train.jsonl",
        "--validation-file",
        RTE / "val.jsonl",
        "--train-size",
        32,
        "--eval-size",
        9,
        "--n-prompts",
        2,
        "--prompt-length",
        3,
        "--steps",
        4,
        "--batch-size",
        6,
        "--eval-every",
        2,
        "--max-source-length",
        64,
        "--device",
        "cpu",
        "--quiet",
    ]
    _run(SINGLE, *train, "--output-dir", tmp / "one")
    _run(LAUNCH, *train, "--output-dir", tmp / "two")
    _run(LAUNCH, *train, "--max-tokens", 100, "--output-dir", tmp / "two-micro")  # a pass or two per process's 6 rows
    return tmp


def test_two_process_training_equals_one_process(runs):
    one = load_file(runs / "one" / "prompts.safetensors")["prompts"]
    two = load_file(runs / "two" / "prompts.safetensors")["prompts"]
    assert torch.allclose(one, two, atol=1e-5)
    best = [json.loads((runs / name / "softprompt.json").read_text())["best"] for name in ("one", "two")]
    assert best[0] == best[1]  # validation gathered across processes gives the same scores


def test_two_process_micro_passes_equal_one_process(runs):
    """--max-tokens in each process: the token count is summed across processes before the passes."""
    one = load_file(runs / "one" / "prompts.safetensors")["prompts"]
    micro = load_file(runs / "two-micro" / "prompts.safetensors")["prompts"]
    assert torch.allclose(one, micro, atol=1e-5)


def test_two_process_ensemble_eval_writes_the_same_table(runs):
    evaluate = [
        "ensemble-eval",
        "--prompts",
        runs / "one",
        "--task",
        "rte",
        "--data-file",
        RTE / "val.jsonl",
        "--limit",
        11,
        "--device",
        "cpu",
        "--quiet",
    ]
    _run(SINGLE, *evaluate, "--output", runs / "e1" / "report.json")
    _run(LAUNCH, *evaluate, "--output", runs / "e2" / "report.json")
    reports = [json.loads((runs / name / "report.json").read_text()) for name in ("e1", "e2")]
    assert reports[0] == reports[1]
    predictions = [(runs / name / "report.predictions.jsonl").read_text() for name in ("e1", "e2")]
    assert predictions[0] == predictions[1]
