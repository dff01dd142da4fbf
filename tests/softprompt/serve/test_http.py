"""The real server over real HTTP (a ``softprompt serve`` subprocess on a free port, tiny random
T5 runs of four tasks): answers equal the library's / ``ensemble-eval``'s, also under 64
concurrent clients whose passes mix prompts and tasks; every error case, the server answering
correctly after each; the API key; Prometheus metrics."""

from __future__ import annotations

import http.client
import json
import random
import re
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from click.testing import CliRunner

from softprompt.cli.app import cli
from tests.softprompt.serve.harness import running_server
from tests.softprompt.serve.reference import Reference, check_classification, check_generation
from tests.softprompt.serve.rows import CB, COPA, E2E, SST2, unlabeled

KEY = "s3cret-key"
TASK_ROWS = {"sst2": SST2, "cb": CB, "copa": COPA}
CLASSIFY_TASKS = {
    "sst2": ["sst2_a#0", "sst2_a#1", "sst2_a#2", "sst2_b#0", "sst2_b#1"],
    "cb": ["cb#0", "cb#1", "cb#2"],
    "copa": ["copa#0", "copa#1"],
}


@pytest.fixture(scope="module")
def run_list(serve_runs):
    return [serve_runs[name] for name in ("sst2_a", "sst2_b", "cb", "copa", "e2e")]


@pytest.fixture(scope="module")
def server(run_list):
    with running_server(run_list, "--max-inputs", "8", "--max-input-chars", "300", "--max-wait-ms", "20", key=KEY) as s:
        yield s


@pytest.fixture(scope="module")
def reference(run_list, tiny_model_dir):
    return Reference(run_list, str(tiny_model_dir))


def test_lists_every_loaded_prompt_with_its_task(server):
    status, doc = server.get("/v1/prompts")
    assert status == 200
    assert [p["name"] for p in doc["prompts"]] == [
        *CLASSIFY_TASKS["sst2"],
        *CLASSIFY_TASKS["cb"],
        *CLASSIFY_TASKS["copa"],
        "e2e#0",
        "e2e#1",
        "e2e#2",
    ]
    tasks = {t["name"]: t for t in doc["tasks"]}
    assert (
        tasks["cb"]["label_words"] == ["entailment", "contradiction", "neutral"]
        and tasks["e2e_nlg"]["kind"] == "generation"
    )
    assert doc["model"]["d_model"] == 32 and len(doc["model"]["config_hash"]) == 16


def test_openapi_docs_open_without_the_key_and_declare_it(server):
    """A browser cannot send the key to /docs: the page and its document are open, and the document declares the
    bearer key for every endpoint but /health, so that the page's "Authorize" button sends it."""
    status, page = server.get("/docs", key=None)
    assert status == 200 and "swagger" in page.lower()
    status, spec = server.get("/openapi.json", key=None)
    assert status == 200 and {"/v1/classify", "/v1/generate", "/v1/prompts", "/health", "/metrics"} <= set(
        spec["paths"]
    )
    assert "ClassifyRequest" in spec["components"]["schemas"]
    assert spec["components"]["securitySchemes"] == {"apiKey": {"type": "http", "scheme": "bearer"}}
    assert spec["paths"]["/health"]["get"]["security"] == []
    assert (
        spec["paths"]["/v1/classify"]["post"]["security"]
        == spec["paths"]["/metrics"]["get"]["security"]
        == [{"apiKey": []}]
    )


@pytest.mark.parametrize("task", ["sst2", "cb", "copa"])
def test_single_prompts_and_ensembles_equal_the_library(server, reference, task):
    rows, prompts = TASK_ROWS[task], CLASSIFY_TASKS[task]
    log_probs = reference.classify(task, rows, prompts)  # (N, M, K)
    for vote in ("majority", "confidence"):
        status, answer = server.post("/v1/classify", {"task": task, "vote": vote, "inputs": unlabeled(rows)})
        assert status == 200 and answer["prompts"] == prompts and answer["vote"] == vote
        check_classification(answer, log_probs, vote)
    status, answer = server.post("/v1/classify", {"prompt": prompts[-1], "inputs": unlabeled(rows)})
    assert status == 200 and "votes" not in answer["answers"][0]
    check_classification(answer, log_probs[-1:], None)


def test_texts_are_scored_like_formatted_rows(server):
    status, by_rows = server.post("/v1/classify", {"prompt": "sst2_a#1", "inputs": unlabeled(SST2[:2])})
    texts = [f"sst2 sentence: {row['sentence']}" for row in SST2[:2]]
    status2, by_texts = server.post("/v1/classify", {"prompt": "sst2_a#1", "texts": texts})
    assert status == status2 == 200 and by_rows == by_texts


def test_answers_equal_ensemble_eval_predictions(server, serve_runs, tmp_path):
    data = tmp_path / "sst2.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in SST2))
    result = CliRunner().invoke(
        cli,
        [
            "ensemble-eval",
            "--prompts",
            serve_runs["sst2_a"],
            "--prompts",
            serve_runs["sst2_b"],
            "--task",
            "sst2",
            "--data-file",
            str(data),
            "--vote",
            "majority,confidence,logprob_sum",
            "--output",
            str(tmp_path / "eval.json"),
            "--device",
            "cpu",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    predictions = [json.loads(line) for line in (tmp_path / "eval.predictions.jsonl").read_text().splitlines()]
    for vote in ("majority", "confidence", "logprob_sum"):
        status, answer = server.post("/v1/classify", {"task": "sst2", "vote": vote, "inputs": unlabeled(SST2)})
        assert status == 200
        assert [a["label_index"] for a in answer["answers"]] == [p["ensembles"][vote] for p in predictions]
        for a, p in zip(answer["answers"], predictions):
            assert {v["prompt"]: v["label_index"] for v in a["votes"]} == p["prompts"]


def test_length_normalised_answers_equal_predicts(server, serve_runs, tmp_path):
    """ "length_normalise": true ranks by mean token log-likelihood, exactly as `predict --length-normalise`."""
    data = tmp_path / "sst2.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in unlabeled(SST2)))
    result = CliRunner().invoke(
        cli,
        [
            "predict",
            "--prompts",
            serve_runs["sst2_a"],
            "--prompts",
            serve_runs["sst2_b"],
            "--input",
            str(data),
            "--vote",
            "confidence",
            "--length-normalise",
            "--output",
            str(tmp_path / "p.jsonl"),
            "--device",
            "cpu",
            "--quiet",
        ],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    predicted = [json.loads(line) for line in (tmp_path / "p.jsonl").read_text().splitlines()]
    status, answer = server.post(
        "/v1/classify", {"task": "sst2", "vote": "confidence", "inputs": unlabeled(SST2), "length_normalise": True}
    )
    assert status == 200 and [a["label"] for a in answer["answers"]] == [p["label"] for p in predicted]
    for a, p in zip(answer["answers"], predicted):
        np.testing.assert_allclose([v["scores"] for v in a["votes"]], [v["scores"] for v in p["votes"]], atol=1e-5)
    _, summed = server.post("/v1/classify", {"task": "sst2", "vote": "confidence", "inputs": unlabeled(SST2)})
    assert summed["answers"][0]["votes"][0]["scores"] != answer["answers"][0]["votes"][0]["scores"]


@pytest.mark.parametrize("vote", [None, "majority", "mbr", "best_score"])
def test_generation_equals_the_library(server, reference, vote):
    prompts = ["e2e#0", "e2e#1", "e2e#2"] if vote else ["e2e#2"]
    texts, scores = reference.generate("e2e_nlg", E2E, prompts, max_new_tokens=6, num_beams=2)
    body = {"inputs": unlabeled(E2E), "max_new_tokens": 6, "num_beams": 2}
    body |= {"task": "e2e_nlg", "vote": vote} if vote else {"prompt": "e2e#2"}
    status, answer = server.post("/v1/generate", body)
    assert status == 200, answer
    check_generation(answer, texts, scores, vote)


def _rows_metric(metrics: str, bucket: str) -> float:
    pattern = rf'softprompt_pass_rows_bucket{{kind="score",le="{re.escape(bucket)}"}} (\S+)'
    return float(re.search(pattern, metrics).group(1))


def test_64_concurrent_clients_get_their_own_answers_from_mixed_passes(server, reference):
    expected = {task: reference.classify(task, TASK_ROWS[task], CLASSIFY_TASKS[task]) for task in TASK_ROWS}
    rng = random.Random(0)
    jobs = []  # (body, task, prompt indices, input indices, vote)
    for _client in range(64):
        for _ in range(3):
            task = rng.choice(list(TASK_ROWS))
            picked = rng.sample(range(len(TASK_ROWS[task])), 2)  # every request: at most 3 prompts × 2 inputs = 6 rows
            inputs = [unlabeled(TASK_ROWS[task])[i] for i in picked]
            if rng.random() < 0.5 and task != "sst2":  # sst2 has 5 prompts: its ensembles would exceed 6 rows
                jobs.append(({"task": task, "vote": "confidence", "inputs": inputs}, task, None, picked, "confidence"))
            else:
                p = rng.randrange(len(CLASSIFY_TASKS[task]))
                jobs.append(({"prompt": CLASSIFY_TASKS[task][p], "inputs": inputs}, task, p, picked, None))
    _, before = server.get("/metrics")
    small_before, all_before = _rows_metric(before, "8.0"), _rows_metric(before, "+Inf")

    def client(index: int) -> list:
        return [server.post("/v1/classify", body) for body, *_ in jobs[index * 3 : (index + 1) * 3]]

    with ThreadPoolExecutor(64) as pool:
        answers = [a for chunk in pool.map(client, range(64)) for a in chunk]
    for (_body, task, p, picked, vote), (status, answer) in zip(jobs, answers):
        assert status == 200, answer
        table = expected[task][:, picked] if vote else expected[task][p : p + 1, picked]
        check_classification(answer, table, vote)
    _, after = server.get("/metrics")
    passes = _rows_metric(after, "+Inf") - all_before
    over_one_request = passes - (_rows_metric(after, "8.0") - small_before)
    assert passes < len(jobs) / 4, f"{passes} passes for {len(jobs)} requests: no batching"
    assert over_one_request > 0, "no pass held more rows than one request: requests were not mixed"


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"prompt": "nope#0", "texts": ["x"]}, 404, "unknown prompt 'nope#0'; loaded prompts: sst2_a#0, sst2_a#1"),
        ({"task": "boolq", "texts": ["x"]}, 404, "unknown task 'boolq'; loaded tasks: sst2, cb, copa, e2e_nlg"),
        ({"task": "sst2", "texts": ["x"] * 9}, 413, "the limit is 8 (--max-inputs)"),
        ({"task": "sst2", "texts": ["x" * 301]}, 422, "the limit is 300 (--max-input-chars)"),
        ({"task": "sst2", "texts": "x"}, 422, "texts: Input should be a valid list"),
        ({"task": "sst2", "texts": ["x"], "colour": 1}, 422, "colour: Extra inputs are not permitted"),
        ({"task": "sst2", "prompt": "cb#0", "texts": ["x"]}, 422, 'exactly one of "prompt"'),
        ({"task": "sst2"}, 422, 'exactly one of "inputs"'),
        ({"task": "sst2", "texts": []}, 422, "no inputs"),
        (
            {"task": "sst2", "inputs": [{"sentense": "typo"}]},
            422,
            "input 0: column 'sentence' not found; available columns: sentense",
        ),
        ({"task": "sst2", "vote": "loudest", "texts": ["x"]}, 422, "unknown vote 'loudest'"),
        ({"prompt": "cb#0", "vote": "majority", "texts": ["x"]}, 422, '"vote" applies to task ensembles'),
        ({"task": "e2e_nlg", "texts": ["x"]}, 422, "send it to /v1/generate"),
        ({"task": "copa", "texts": ["x"]}, 422, "scores per-input candidates"),
    ],
)
def test_bad_classify_requests_get_one_line_errors(server, reference, body, status, message):
    got, answer = server.post("/v1/classify", body)
    assert got == status and message in answer["error"] and "\n" not in answer["error"], answer
    _answers_still_right(server, reference)


@pytest.mark.parametrize(
    "path, body, raw, status, message",
    [
        ("/v1/classify", None, b'{"task": "sst2", "texts": [', 400, "not valid JSON"),
        ("/v1/classify", None, b"[1, 2]", 422, "must be a JSON object"),
        (
            "/v1/generate",
            {"task": "e2e_nlg", "texts": ["x"], "max_new_tokens": 0},
            None,
            422,
            "max_new_tokens: Input should be greater than or equal to 1",
        ),
        (
            "/v1/generate",
            {"task": "e2e_nlg", "texts": ["x"], "num_beams": 99},
            None,
            422,
            "num_beams 99 is over the server's limit of 8 (--max-beams)",
        ),
        ("/v1/generate", {"task": "sst2", "texts": ["x"]}, None, 422, "send it to /v1/classify"),
        (
            "/v1/nothing",
            {},
            None,
            404,
            "no route POST /v1/nothing; endpoints: /health, /metrics, /v1/prompts, /v1/classify, /v1/generate (described at /docs)",
        ),
    ],
)
def test_malformed_and_oversized_requests(server, reference, path, body, raw, status, message):
    got, answer = server.request("POST", path, body, raw=raw)
    assert got == status and message in answer["error"], answer
    _answers_still_right(server, reference)


def test_an_oversized_body_is_refused_from_its_length_alone(server, reference):
    """The 413 comes from the Content-Length header, before any of the body is read: the client sends
    the header only (a client still sending a large body may see the connection close under it)."""
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(server.url).netloc, timeout=60)
    try:
        connection.putrequest("POST", "/v1/classify")
        for name, value in (
            ("Content-Type", "application/json"),
            ("Content-Length", "3000000"),
            ("Authorization", f"Bearer {server.key}"),
        ):
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        answer = json.loads(response.read())
    finally:
        connection.close()
    assert response.status == 413 and "request body of 3000000 bytes; the limit is" in answer["error"], answer
    _answers_still_right(server, reference)


def test_a_body_without_json_content_type_is_refused_with_the_fix(server, reference):
    got, answer = server.request(
        "POST", "/v1/classify", raw=b"task=sst2", content_type="application/x-www-form-urlencoded"
    )
    assert got == 422 and "header 'Content-Type: application/json'" in answer["error"]
    _answers_still_right(server, reference)


def test_api_key_is_required_and_compared(server, reference):
    for key in (None, "wrong", KEY + "x", ""):
        status, answer = server.post("/v1/classify", {"task": "sst2", "texts": ["x"]}, key=key)
        assert status == 401 and "API key" in answer["error"]
    assert server.get("/v1/prompts", key=None)[0] == 401 and server.get("/metrics", key="no")[0] == 401
    assert server.get("/health", key=None) == (200, {"status": "ok", "prompts": 13, "queued_rows": 0})
    _answers_still_right(server, reference)


def test_metrics_count_requests_and_passes(server):
    server.post("/v1/classify", {"task": "cb", "texts": ["x"]})
    status, text = server.get("/metrics")
    assert status == 200
    assert re.search(r'softprompt_requests_total{endpoint="/v1/classify",status="200"} [1-9]', text)
    for name in (
        "softprompt_request_latency_seconds_bucket",
        "softprompt_queue_seconds_count",
        "softprompt_pass_seconds_sum",
    ):
        assert name in text


def _answers_still_right(server, reference):
    status, answer = server.post("/v1/classify", {"task": "cb", "vote": "majority", "inputs": unlabeled(CB[:2])})
    assert status == 200
    check_classification(answer, reference.classify("cb", CB[:2], CLASSIFY_TASKS["cb"]), "majority")
