"""Fixtures for the server tests: prompt runs written directly (random banks on a tiny random T5)."""

from __future__ import annotations

import pytest

from tests.softprompt.serve.harness import write_run


@pytest.fixture(scope="session")
def serve_runs(tmp_path_factory, tiny_model_dir) -> dict[str, str]:
    """Runs of four tasks on the tiny random T5: sst2 (2 runs), cb, copa and e2e_nlg (generation)."""
    tmp = tmp_path_factory.mktemp("serve-runs")
    model = str(tiny_model_dir)
    return {
        "sst2_a": write_run(tmp / "sst2_a", model, "sst2", 3, seed=0),
        "sst2_b": write_run(tmp / "sst2_b", model, "sst2", 2, seed=10),
        "cb": write_run(tmp / "cb", model, "cb", 3, seed=20),
        "copa": write_run(tmp / "copa", model, "copa", 2, seed=30),
        "e2e": write_run(tmp / "e2e", model, "e2e_nlg", 3, seed=40),
    }
