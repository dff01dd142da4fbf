"""Shared test settings and fixtures.

Unit tests run on tiny, randomly initialised T5 models built in-process (``random_t5``): they
exercise exactly the code paths of real checkpoints, in seconds, without any hub download.
"""

from pathlib import Path

import pytest

# Small fixtures in the layout of the public releases (tests/data/README.md: sources and licences).
# Full benchmark data lives beside the repository (../shared/data) and is read only by benchmarks.
ROOT = Path(__file__).resolve().parent.parent  # the repository
TEST_DATA = ROOT / "tests" / "data"


def hub_answering(status: str = "found", detail: str = ""):
    """A stand-in for ``softprompt.model.hub.ask_hub`` (same argument names) whose one request to the hub (which cannot
    exist in a test) finds ``status``: "found" is a hub that answers."""
    from softprompt.model.hub import HubAnswer

    def ask_hub(repo_id: str, filename: str, repo_type: str | None = None, cache_first: bool = True) -> HubAnswer:
        return HubAnswer(status, detail)

    return ask_hub


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random T5 saved as a local model directory (config, safetensors, tokenizer)."""
    from softprompt.model.loading import save_model_dir
    from softprompt.model.random_models import random_t5

    path = tmp_path_factory.mktemp("tiny-t5")
    save_model_dir(random_t5(), path)
    return path
