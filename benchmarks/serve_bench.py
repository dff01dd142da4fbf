"""Benchmark: ``softprompt serve`` under a mixed load, dynamic batching on vs off.

Two real servers (subprocesses, the same model and prompts) are started side by side: one with
dynamic batching (``--max-rows``, ``--max-wait-ms``), one with ``--no-batching`` (every request
its own pass). Each load is ``--requests`` requests from ``--clients`` concurrent HTTP clients
(keep-alive connections, standard library) over ``--tasks`` (default: sst2 and rte classification,
e2e_nlg generation with ``--max-new-tokens``), 5 prompts each: half address one random prompt,
half a task's 5-prompt ensemble (majority vote), each with 1-4 inputs (synthetic sentences of 12-40
words). Every answer is checked (status 200, one answer per input) and the share of answers on
which the two servers agree is reported (labels and texts equal, scores within 1e-4). Loads are
timed interleaved (``--rounds``, order alternating; see ``benchmarks/common.py``) after one untimed
warm-up load of ``--clients`` requests per server. The model is the shipped t5-nano (``--model``:
or random T5s of t5-small's shape / a tiny shape), prompts of ``--prompt-length`` vectors. Reports
wall time, requests/s, p50/p99 latency and rows per pass of both, then one ``RESULT {json}`` line.

    python -m benchmarks.serve_bench [--requests 1000 --clients 64 --threads 2 --tasks sst2,rte,e2e_nlg]
    python -m benchmarks.serve_bench --tasks sst2,rte,cb     # classification only
    python -m benchmarks.serve_bench --quick
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import T5_SMALL, T5_TINY, emit_result, fmt_s, print_table
from softprompt.model.loading import save_model_dir
from softprompt.model.random_models import random_t5
from tests.softprompt.serve.harness import running_server, write_run

GENERATION = {"e2e_nlg"}
WORDS = (
    "the film story cast plot actor scene music light city night river road house garden friend team game "
    "book word idea time year day world life hand eye water fire stone wind voice market station"
).split()
TARGET = 0.5


def make_load(n: int, tasks: list[str], max_new_tokens: int, seed: int) -> list[tuple[str, dict]]:
    """``n`` (path, body) requests: random task, single prompt or 5-prompt ensemble, 1-4 texts."""
    rng = random.Random(seed)
    load = []
    for _ in range(n):
        task = rng.choice(tasks)
        texts = [f"{task} " + " ".join(rng.choices(WORDS, k=rng.randint(12, 40))) for _ in range(rng.randint(1, 4))]
        body = {"task": task, "vote": "majority"} if rng.random() < 0.5 else {"prompt": f"{task}#{rng.randrange(5)}"}
        if task in GENERATION:
            load.append(("/v1/generate", body | {"texts": texts, "max_new_tokens": max_new_tokens}))
        else:
            load.append(("/v1/classify", body | {"texts": texts}))
    return load


def run_load(url: str, bodies: list[tuple[str, dict]], clients: int) -> tuple[float, list[float], list[dict]]:
    """Send the (path, body) requests from ``clients`` threads (one keep-alive connection each): wall seconds,
    per-request latencies and the answers in request order."""
    host, port = url.removeprefix("http://").split(":")
    answers: list[dict] = [{}] * len(bodies)
    latencies = [0.0] * len(bodies)
    next_index = iter(range(len(bodies)))
    lock = threading.Lock()

    def client() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=600)
        while True:
            with lock:
                index = next(next_index, None)
            if index is None:
                break
            path, body = bodies[index]
            start = time.perf_counter()
            connection.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
            response = connection.getresponse()
            payload = json.loads(response.read())
            latencies[index] = time.perf_counter() - start
            if response.status != 200 or len(payload["answers"]) != len(body["texts"]):
                raise RuntimeError(f"request {index} failed: {response.status} {payload}")
            answers[index] = payload
        connection.close()

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return time.perf_counter() - start, latencies, answers


def pass_stats(server) -> tuple[float, float]:
    """(passes, rows) of every pass so far (scoring and generation), from the server's /metrics."""
    text = server.get("/metrics")[1]
    count = sum(float(x) for x in re.findall(r'softprompt_pass_rows_count{kind="\w+"} (\S+)', text))
    total = sum(float(x) for x in re.findall(r'softprompt_pass_rows_sum{kind="\w+"} (\S+)', text))
    return count, total


def agreement(a: list[dict], b: list[dict]) -> float:
    """Share of answers (inputs) on which both servers agree: same label or text, and every
    prompt's scores within 1e-4 (passes pad differently)."""
    same = total = 0
    for x, y in zip(a, b):
        for p, q in zip(x["answers"], y["answers"]):
            total += 1
            if "text" in p:
                same += p["text"] == q["text"] and all(
                    u["text"] == v["text"] and abs(u["score"] - v["score"]) <= 1e-4
                    for u, v in zip(p.get("votes", [p]), q.get("votes", [q]))
                )
            else:
                same += p["label_index"] == q["label_index"] and all(
                    abs(s - t) <= 1e-4
                    for u, v in zip(p.get("votes", [p]), q.get("votes", [q]))
                    for s, t in zip(u["scores"], v["scores"])
                )
    return same / total


def model_dir(name: str, tmp: Path, seed: int) -> str:
    """The model the servers load: the shipped t5-nano, or a random T5 of t5-small's / a tiny shape."""
    if name == "t5-nano":
        return name
    path = tmp / "model"
    save_model_dir(random_t5(**(T5_SMALL if name == "small" else T5_TINY), seed=seed), path)
    return str(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="timed loads per side (interleaved)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each server")
    parser.add_argument("--model", choices=["t5-nano", "small", "tiny"], default="t5-nano")
    parser.add_argument("--tasks", default="sst2,rte,e2e_nlg", help="comma-separated tasks, 5 prompts each")
    parser.add_argument("--max-new-tokens", type=int, default=16, help="generation requests")
    parser.add_argument("--max-rows", type=int, default=128)
    parser.add_argument("--max-wait-ms", type=float, default=10.0)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="tiny model, 200 requests: a smoke run")
    args = parser.parse_args()
    requests, model = (200, "tiny") if args.quick else (args.requests, args.model)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        source = model_dir(model, Path(tmp), args.seed)
        runs = [
            write_run(Path(tmp) / task, source, task, 5, seed=10 * i, prefixes=False, prompt_length=args.prompt_length)
            for i, task in enumerate(tasks)
        ]
        common = ["--max-rows", str(args.max_rows), "--max-inputs", "4"]
        with (
            running_server(runs, *common, "--max-wait-ms", str(args.max_wait_ms), threads=args.threads) as batched,
            running_server(runs, *common, "--no-batching", threads=args.threads) as unbatched,
        ):
            servers = {"batched": batched, "unbatched": unbatched}
            for server in servers.values():
                run_load(
                    server.url, make_load(args.clients, tasks, args.max_new_tokens, args.seed + 99), args.clients
                )  # warm-up
            before = {name: pass_stats(server) for name, server in servers.items()}
            load = make_load(requests, tasks, args.max_new_tokens, args.seed)
            times: dict[str, list[float]] = {name: [] for name in servers}
            latencies: dict[str, list[float]] = {name: [] for name in servers}
            answers = {}
            for round_index in range(args.rounds):
                for name in list(servers) if round_index % 2 == 0 else reversed(list(servers)):
                    wall, lat, answers[name] = run_load(servers[name].url, load, args.clients)
                    times[name].append(wall)
                    latencies[name] += lat
            after = {name: pass_stats(server) for name, server in servers.items()}
    agree = agreement(answers["batched"], answers["unbatched"])
    summary, rows = {}, []
    for name in servers:
        passes, total = (after[name][i] - before[name][i] for i in range(2))
        lat = sorted(latencies[name])
        best = min(times[name])
        summary[name] = {
            "time_s": best,
            "rps": requests / best,
            "p50_ms": 1e3 * statistics.median(lat),
            "p99_ms": 1e3 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
            "rows_per_pass": total / passes,
            "passes": passes / args.rounds,
        }
        s = summary[name]
        rows.append(
            [
                name,
                fmt_s(best),
                f"{s['rps']:.1f}",
                f"{s['p50_ms']:.0f} ms",
                f"{s['p99_ms']:.0f} ms",
                f"{s['rows_per_pass']:.1f}",
                f"{s['passes']:.0f}",
            ]
        )
    ratio = summary["batched"]["time_s"] / summary["unbatched"]["time_s"]
    print_table(
        ["server", "wall (min)", "requests/s", "p50", "p99", "rows/pass", "passes/load"],
        rows,
        f"{requests} requests, {args.clients} clients, tasks {','.join(tasks)} x 5 prompts, model {model}, "
        f"{args.threads} torch threads per server",
    )
    print(f"batched / unbatched time: {ratio:.3f} (target <= {TARGET}); answers that agree: {agree:.1%}")
    emit_result(
        {
            "benchmark": "serve",
            "model": model,
            "tasks": ",".join(tasks),
            "requests": requests,
            "clients": args.clients,
            "rounds": args.rounds,
            "threads": args.threads,
            "max_rows": args.max_rows,
            "max_wait_ms": args.max_wait_ms,
            "max_new_tokens": args.max_new_tokens,
            "batched_over_unbatched_time": ratio,
            "target": TARGET,
            "met": ratio <= TARGET,
            "answers_agree": agree,
            **{f"{name}_{key}": value for name, s in summary.items() for key, value in s.items()},
        }
    )


if __name__ == "__main__":
    main()
