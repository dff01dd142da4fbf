"""Request bodies of the HTTP API (pydantic), also the queries of the Python API (``Engine``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Request(BaseModel):
    """What every request names: one prompt or a task's ensemble (with its vote), on rows or formatted texts."""

    model_config = ConfigDict(extra="forbid")

    prompt: str | None = Field(None, description='one loaded prompt, e.g. "boolq#2"')
    task: str | None = Field(None, description="a loaded task: all its prompts as an ensemble")
    vote: str | None = Field(
        None,
        description="ensemble rule (classification: majority (default), confidence, logprob_sum; "
        "generation: majority (default), mbr, best_score)",
    )
    inputs: list[dict[str, Any]] | None = Field(
        None, description="rows with the task's columns, formatted by its template"
    )
    texts: list[str] | None = Field(None, description="already formatted model inputs")


class ClassifyRequest(Request):
    """``POST /v1/classify``: rank classification over the task's candidates."""

    length_normalise: bool = Field(
        False,
        description="rank candidates by mean instead of summed token log-likelihood (predict's --length-normalise)",
    )


class GenerateRequest(Request):
    """``POST /v1/generate``: generation with decoding settings; ensembles vote with
    majority (string vote, default), mbr or best_score."""

    max_new_tokens: int = Field(32, ge=1, description="longest output in tokens")
    num_beams: int = Field(1, ge=1, description="1 = greedy, >1 = beam search")
