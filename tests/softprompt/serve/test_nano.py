"""The shipped t5-nano behind a real server: answers equal the library's, and SIGTERM lets every
in-flight request finish (answered correctly) before the process exits cleanly."""

from __future__ import annotations

import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.softprompt.serve.harness import running_server, stop, write_run
from tests.softprompt.serve.reference import Reference, check_classification, check_generation
from tests.softprompt.serve.rows import E2E, SST2, unlabeled

PROMPTS = ["sst2#0", "sst2#1", "sst2#2"]


@pytest.fixture(scope="module")
def nano_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nano-runs")
    return [
        write_run(tmp / "sst2", "t5-nano", "sst2", 3, seed=1),
        write_run(tmp / "e2e", "t5-nano", "e2e_nlg", 2, seed=2),
    ]


@pytest.fixture(scope="module")
def reference(nano_runs):
    return Reference(nano_runs, "t5-nano")


@pytest.fixture(scope="module")
def server(nano_runs):
    with running_server(nano_runs, "--max-wait-ms", "3000") as s:  # requests wait up to 3 s for company
        yield s


def test_t5_nano_answers_equal_the_library(server, reference):
    with ThreadPoolExecutor(3) as pool:  # batched together in one pass
        single, ensemble, generated = pool.map(
            lambda args: server.post(*args),
            [
                ("/v1/classify", {"prompt": "sst2#1", "inputs": unlabeled(SST2)}),
                ("/v1/classify", {"task": "sst2", "vote": "confidence", "inputs": unlabeled(SST2)}),
                (
                    "/v1/generate",
                    {"task": "e2e_nlg", "vote": "majority", "inputs": unlabeled(E2E), "max_new_tokens": 8},
                ),
            ],
        )
    assert single[0] == ensemble[0] == generated[0] == 200
    log_probs = reference.classify("sst2", SST2, PROMPTS)
    check_classification(single[1], log_probs[1:2], None)
    check_classification(ensemble[1], log_probs, "confidence")
    check_generation(
        generated[1], *reference.generate("e2e_nlg", E2E, ["e2e#0", "e2e#1"], max_new_tokens=8), "majority"
    )


def test_sigterm_drains_in_flight_requests_then_exits(server, reference):
    bodies = [{"prompt": PROMPTS[i % 3], "inputs": unlabeled(SST2[i : i + 2])} for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(server.post, "/v1/classify", body) for body in bodies]
        deadline = time.monotonic() + 30
        while server.get("/health")[1]["queued_rows"] < 12 and time.monotonic() < deadline:
            time.sleep(0.02)  # every request has reached the worker's queue
        assert not any(f.done() for f in futures)
        code, out = stop(server)
        answers = [f.result() for f in futures]
    assert code == 0 and "stopped after answering every in-flight request" in out
    log_probs = reference.classify("sst2", SST2, PROMPTS)
    for i, (status, answer) in enumerate(answers):
        assert status == 200
        check_classification(answer, log_probs[i % 3 : i % 3 + 1, i : i + 2], None)
    with pytest.raises(urllib.error.URLError):
        server.get("/health", timeout=5)
