"""Every supported T5 family served over real HTTP (issue 43: each family must "serve over HTTP and predict").

Per family of ``FAMILIES``: a tiny random model of the family's own configuration and model classes, with a tokenizer
it can use offline (``tests/softprompt/model/family_helpers.py``'s ``build``: ByT5's byte tokenizer for the ``t5``
family, the vendored SentencePiece T5 vocabulary for mT5, umT5, T5Gemma and T5Gemma 2), saved as a model folder; two runs trained on it by
``softprompt train`` with input prompts AND deep prefixes (sst2, classification; e2e_nlg, generation); ONE real
``softprompt serve`` subprocess on both runs. Over HTTP: the listing shows the family's runs, ``/v1/classify`` (one
prompt, and the task's ensemble under two votes) equals the library's scores, ``/v1/generate`` equals the library's
generation, and ``softprompt predict`` in a subprocess on the same run gives the server's labels.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import ByT5Tokenizer

from softprompt.io.store import read_meta
from softprompt.model.loading import FrozenT5, save_model_dir
from tests.conftest import TEST_DATA
from tests.softprompt.cli.helpers import run_cli
from tests.softprompt.model.family_helpers import build
from tests.softprompt.serve.harness import ROOT, Server, running_server
from tests.softprompt.serve.reference import Reference, check_classification, check_generation
from tests.softprompt.serve.rows import E2E, SST2, unlabeled

# The families served: name -> a tiny random model of the family with a tokenizer it can use offline (family_helpers'
# builders; ByT5 is the t5 family with a byte vocabulary, plain T5 is served by test_http.py). A family is one line.
FAMILIES: dict[str, Callable[[], FrozenT5]] = {
    "byt5": lambda: build("byt5", ids_only=False),
    "mt5": lambda: build("mt5", ids_only=False),
    "umt5": lambda: build("umt5", ids_only=False),
    "t5gemma": lambda: build("t5gemma", ids_only=False),
    "t5gemma2": lambda: build("t5gemma2", ids_only=False),
}

PROMPTS = {"sst2": ["sst2#0", "sst2#1"], "e2e_nlg": ["e2e#0", "e2e#1"]}
# a few steps of prompts and deep prefixes; --max-source-length covers ByT5's bytes of every input here
TRAIN = (
    "--n-prompts 2 --prompt-length 3 --deep-prefix --prefix-length 2 --reparam-dim 4 --reparam-hidden 8 --steps 2 "
    "--batch-size 4 --eval-every 2 --train-size 8 --eval-size 2 --max-source-length 128 --max-target-length 8 "
    "--max-new-tokens 4 --quiet"
).split()
DATA = {
    "sst2": (TEST_DATA / "glue" / "sst2" / "train.tsv", TEST_DATA / "glue" / "sst2" / "dev.tsv"),
    "e2e_nlg": (TEST_DATA / "e2e" / "devset.csv", TEST_DATA / "e2e" / "testset_w_refs.csv"),
}


@dataclass
class Served:
    family: str  # the FAMILIES name
    model_family: str  # the model's family (softprompt.model.families), as the runs record it
    model: Path
    runs: dict[str, str]  # task -> run directory
    server: Server
    reference: Reference
    predictions: list[dict]  # `softprompt predict --vote confidence` on the sst2 run


def _model(family: str) -> FrozenT5:
    """The tiny random model of ``family`` (``FAMILIES``), with its tokenizer. A random ByT5 generates bytes
    above 127, which alone are no UTF-8 and decode to "" (every generated text would be empty): its output rows of
    those bytes and of the extra ids are zeroed, so that it writes ASCII and generated texts can be compared."""
    frozen = FAMILIES[family]()
    if isinstance(frozen.tokenizer, ByT5Tokenizer):
        with torch.no_grad():
            frozen.model.lm_head.weight[frozen.tokenizer.offset + 128 :] = 0
    return frozen


def _train(model: Path, task: str, out: Path) -> str:
    train_file, validation_file = DATA[task]
    result = run_cli(
        "train",
        "--model",
        model,
        "--task",
        task,
        "--train-file",
        train_file,
        "--validation-file",
        validation_file,
        "--output-dir",
        out,
        *TRAIN,
    )
    assert result.exit_code == 0, result.stderr
    return str(out)


def _predict(run: str, tmp: Path) -> subprocess.Popen:
    """``softprompt predict`` on the unlabelled sst2 rows, in its own process (started, not awaited)."""
    inputs = tmp / "sst2-inputs.jsonl"
    inputs.write_text("".join(json.dumps(row) + "\n" for row in unlabeled(SST2)))
    command = [sys.executable, "-m", "softprompt.cli", "predict", "--prompts", run, "--input", str(inputs)]
    command += ["--vote", "confidence", "--output", str(tmp / "predictions.jsonl"), "--device", "cpu", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _start_in_background(stack: ExitStack, pool: ThreadPoolExecutor, context) -> Future:
    """Enter ``context`` (``running_server``: blocks until the server announces its address) on a thread; ``stack``
    exits it. A start that fails has cleaned up after itself and raises from the future."""

    def close() -> None:
        if future.exception() is None:
            context.__exit__(None, None, None)

    future = pool.submit(context.__enter__)
    stack.callback(close)
    return future


def _finish(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.communicate()


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    """Per family: the model folder, its two trained runs, a ``predict`` subprocess and ONE ``serve`` subprocess, both
    started as soon as the runs exist, so that their start-up (importing torch and transformers) overlaps the next
    family's training. name -> (the model's family, model folder, runs, predict process, its output folder, future of
    the server), or the error that stopped the family's preparation (raised by its own tests only: the other families
    still run)."""
    with ThreadPoolExecutor(len(FAMILIES)) as pool, ExitStack() as stack:
        fleet = {}
        for family in FAMILIES:
            try:
                tmp = tmp_path_factory.mktemp(f"serve-{family}")
                model = tmp / "model"
                frozen = _model(family)
                save_model_dir(frozen, model)
                runs = {"sst2": _train(model, "sst2", tmp / "sst2"), "e2e_nlg": _train(model, "e2e_nlg", tmp / "e2e")}
                predicting = _predict(runs["sst2"], tmp)
                stack.callback(_finish, predicting)
                server = _start_in_background(stack, pool, running_server(list(runs.values()), "--max-wait-ms", "50"))
                fleet[family] = (frozen.family, model, runs, predicting, tmp, server)
            except Exception as error:  # noqa: BLE001 - reported by the family's tests
                fleet[family] = error
        yield fleet


@pytest.fixture(scope="module", params=FAMILIES)
def served(request, fleet) -> Served:
    if isinstance(fleet[request.param], Exception):
        raise fleet[request.param]
    model_family, model, runs, predicting, tmp, server = fleet[request.param]
    server = server.result(timeout=120)  # a server that did not start raises here, with its stderr
    _, stderr = predicting.communicate(timeout=120)
    assert predicting.returncode == 0, f"softprompt predict exited {predicting.returncode}: {stderr[-3000:]}"
    predictions = [json.loads(line) for line in (tmp / "predictions.jsonl").read_text().splitlines()]
    reference = Reference(list(runs.values()), str(model))
    return Served(request.param, model_family, model, runs, server, reference, predictions)


def test_the_listing_shows_the_family_and_its_runs(served):
    status, doc = served.server.get("/v1/prompts")
    assert status == 200, doc
    assert doc["model"] == read_meta(served.runs["sst2"])["model"]  # name, family and fingerprint
    assert doc["model"]["family"] == served.model_family and doc["model"]["name"] == str(served.model)
    assert [(p["name"], p["task"], p["run"]) for p in doc["prompts"]] == [
        (name, task, served.runs[task]) for task, names in PROMPTS.items() for name in names
    ]
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert tasks["sst2"]["kind"] == "classification" and tasks["sst2"]["label_words"] == ["negative", "positive"]
    assert tasks["e2e_nlg"]["kind"] == "generation" and tasks["e2e_nlg"]["prompts"] == PROMPTS["e2e_nlg"]
    assert served.server.get("/health")[1]["prompts"] == 4
    for run in served.runs.values():  # what is served: trained input prompts and deep prefixes
        meta = read_meta(run)
        assert meta["prompts"]["length"] == 3 and meta["prefixes"]["length"] == 2
        assert (Path(run) / "prefixes.safetensors").is_file()


def test_classify_one_prompt_and_ensembles_equal_the_library(served):
    log_probs = served.reference.classify("sst2", SST2, PROMPTS["sst2"])  # (N, M, K)
    for vote in ("majority", "confidence"):
        status, answer = served.server.post("/v1/classify", {"task": "sst2", "vote": vote, "inputs": unlabeled(SST2)})
        assert status == 200 and answer["prompts"] == PROMPTS["sst2"], answer
        check_classification(answer, log_probs, vote)
    status, answer = served.server.post("/v1/classify", {"prompt": "sst2#1", "inputs": unlabeled(SST2)})
    assert status == 200, answer
    check_classification(answer, log_probs[1:], None)


@pytest.mark.parametrize("vote, beams", [(None, 1), (None, 2), ("mbr", 2)])
def test_generate_equals_the_library(served, vote, beams):
    prompts = PROMPTS["e2e_nlg"] if vote else ["e2e#1"]
    texts, scores = served.reference.generate("e2e_nlg", E2E, prompts, max_new_tokens=5, num_beams=beams)
    body = {"inputs": unlabeled(E2E), "max_new_tokens": 5, "num_beams": beams}
    body |= {"task": "e2e_nlg", "vote": vote} if vote else {"prompt": "e2e#1"}
    status, answer = served.server.post("/v1/generate", body)
    assert status == 200, answer
    assert all(v["text"] for item in answer["answers"] for v in item.get("votes", [item]))  # ByT5 too: see _model
    check_generation(answer, texts, scores, vote)


def test_predict_in_a_subprocess_gives_the_served_labels(served):
    status, answer = served.server.post(
        "/v1/classify", {"task": "sst2", "vote": "confidence", "inputs": unlabeled(SST2)}
    )
    assert status == 200, answer
    predicted = served.predictions
    assert [p["label"] for p in predicted] == [a["label"] for a in answer["answers"]]
    for served_answer, p in zip(answer["answers"], predicted):
        np.testing.assert_allclose(
            [v["scores"] for v in served_answer["votes"]], [v["scores"] for v in p["votes"]], rtol=0, atol=1e-5
        )


def _passes(server: Server) -> float:
    status, text = server.get("/metrics")
    assert status == 200
    passes = re.search(r'softprompt_pass_rows_count{kind="score"} (\S+)', text)
    return float(passes.group(1)) if passes else 0.0  # no line before the first scoring pass


def test_concurrent_requests_of_both_prompts_share_passes_and_equal_the_library(served):
    """Eight one-prompt requests sent at once (each prompt × four pairs of inputs) are answered in fewer passes, rows
    of both prompts and of different lengths together, beside a generation request: every answer still equals the
    library's."""
    log_probs = served.reference.classify("sst2", SST2, PROMPTS["sst2"])
    texts, scores = served.reference.generate("e2e_nlg", E2E, ["e2e#0"], max_new_tokens=5, num_beams=2)
    pairs = [[i, (i + 3) % len(SST2)] for i in range(4)]
    jobs = [(p, pair) for p in range(2) for pair in pairs]
    together = threading.Barrier(len(jobs) + 1, timeout=60)

    def classify(job):
        p, pair = job
        together.wait()
        inputs = [unlabeled(SST2)[i] for i in pair]
        return served.server.post("/v1/classify", {"prompt": PROMPTS["sst2"][p], "inputs": inputs})

    def generate():
        together.wait()
        body = {"prompt": "e2e#0", "inputs": unlabeled(E2E), "max_new_tokens": 5, "num_beams": 2}
        return served.server.post("/v1/generate", body)

    before = _passes(served.server)
    with ThreadPoolExecutor(len(jobs) + 1) as pool:
        generating = pool.submit(generate)
        answers = list(pool.map(classify, jobs))
    for (p, pair), (status, answer) in zip(jobs, answers):
        assert status == 200, answer
        check_classification(answer, log_probs[p : p + 1, pair], None)
    status, answer = generating.result()
    assert status == 200, answer
    check_generation(answer, texts, scores, None)
    assert _passes(served.server) - before < len(jobs), "every request had a pass of its own: none were batched"
