"""One quick question to the Hugging Face hub before a load, and loading from the local cache alone.

When the hub is out of reach and a file is not cached, huggingface_hub retries five times over about half a
minute, logging each retry, before the load fails. ``ask_hub`` asks once, without retries, so that a model
name can be refused in one line at once, and a dataset can be loaded under ``offline_hub`` (from the cache,
or an immediate error) instead.

    >>> from softprompt.model.hub import ask_hub
    >>> ask_hub("google/flan-t5-base", "config.json").status in ("cached", "found", "unreachable")  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import datasets
from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
from huggingface_hub.errors import (  # HTTPError: the base error of its HTTP client (httpx2; httpx before version 2)
    GatedRepoError,
    HfHubHTTPError,
    HFValidationError,
    HTTPError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)


@dataclass(frozen=True)
class HubAnswer:
    """What one request for a repository file found: ``status`` is "cached" (in the local cache, not asked),
    "found" (the hub answered; a gated repository or a missing file is left to the load), "invalid" (not a
    repository id), "offline" (HF_HUB_OFFLINE is set), "not found" (no such repository) or "unreachable" (no
    answer: no connection, a time-out, a proxy or TLS failure); ``detail`` is the cause, in one line."""

    status: str
    detail: str = ""


def ask_hub(repo_id: str, filename: str, repo_type: str | None = None, cache_first: bool = True) -> HubAnswer:
    """Whether ``filename`` of hub repository ``repo_id`` is cached (with ``cache_first``), else one request for it (no
    retries, the hub's own ``HF_HUB_ETAG_TIMEOUT``)."""
    try:
        if cache_first and isinstance(try_to_load_from_cache(repo_id, filename, repo_type=repo_type), str):
            return HubAnswer("cached")
        get_hf_file_metadata(
            url=hf_hub_url(repo_id, filename, repo_type=repo_type), timeout=constants.HF_HUB_ETAG_TIMEOUT
        )
    except HFValidationError as error:
        return HubAnswer("invalid", first_line(error))
    except OfflineModeIsEnabled:
        return HubAnswer("offline")
    except HfHubHTTPError as error:
        if isinstance(error, RepositoryNotFoundError) and not isinstance(error, GatedRepoError):
            return HubAnswer("not found")
    except HTTPError as error:
        return HubAnswer("unreachable", f"{type(error).__name__}: {first_line(error)}")
    return HubAnswer("found")


@contextmanager
def offline_hub() -> Iterator[None]:
    """huggingface_hub and datasets in offline mode for the block, as ``HF_HUB_OFFLINE=1`` would set them when
    imported: loads come from the local cache or fail at once."""
    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type's name if it has none)."""
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__
