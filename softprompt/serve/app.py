"""The HTTP layer: FastAPI routes over an ``Engine``, bearer-key check, limits, one-line JSON errors.

Every error answers ``{"error": "<one line>"}`` with its status: 400 malformed JSON, 401 missing or
wrong API key, 404 unknown prompt/task/route, 413 too many inputs or too large a body, 422 a
request the API cannot take (field types, limits, unknown vote, ...), 503 shutting down, 500 a
failed model pass (other requests are unaffected).
"""

from __future__ import annotations

import asyncio
import hmac
import time
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

from softprompt.serve.catalog import ServeError
from softprompt.serve.engine import Engine, Pending
from softprompt.serve.metrics import ServeMetrics
from softprompt.serve.schema import ClassifyRequest, GenerateRequest
from softprompt.version import __version__

ENDPOINTS = ("/health", "/metrics", "/v1/prompts", "/v1/classify", "/v1/generate")
OPEN = ("/health", "/docs", "/openapi.json")  # answered without the API key: liveness probes, and the API's description
# (the browser page at /docs cannot send a header; its "Authorize" button takes the key for the calls it makes)


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one-line JSON error every failure answers with."""
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(engine: Engine, metrics: ServeMetrics | None = None, api_key: str | None = None) -> FastAPI:
    """The FastAPI app; its lifespan starts the engine's worker and, on shutdown, drains it.

    Example::

        app = create_app(Engine(catalog, Limits(), BatchingWorker(catalog.pool.model)), ServeMetrics(), api_key=None)
        uvicorn.run(app, host="127.0.0.1", port=8000)
    """
    metrics = metrics or ServeMetrics()
    max_body = engine.limits.max_body_bytes

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        engine.worker.start()
        yield
        await run_in_threadpool(engine.worker.stop)  # answers every queued row first

    app = FastAPI(
        title="softprompt serve",
        version=__version__,
        lifespan=lifespan,
        description="One frozen T5 serving many soft prompts and prompt ensembles, with mixed-prompt dynamic batching.",
    )

    @app.middleware("http")
    async def guard(request: Request, call_next) -> Response:
        start = time.perf_counter()
        path = request.url.path
        length = request.headers.get("content-length", "0")
        if (
            api_key is not None
            and path not in OPEN
            and not _authorised(request.headers.get("authorization", ""), api_key)
        ):
            response = error(
                401,
                "missing or wrong API key; send the header 'Authorization: Bearer <key>'",
                {"WWW-Authenticate": "Bearer"},
            )
        elif length.isdigit() and int(length) > max_body:  # h11 refuses a malformed Content-Length itself
            response = error(
                413,
                f"request body of {length} bytes; the limit is {max_body} bytes "
                "(from --max-inputs × --max-input-chars): split the request",
            )
        else:
            response = await call_next(request)
        metrics.on_request(path if path in ENDPOINTS else "other", response.status_code, time.perf_counter() - start)
        return response

    @app.exception_handler(ServeError)
    async def serve_error(_: Request, exc: ServeError) -> JSONResponse:
        return error(exc.status, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return error(
                400,
                f"request body is not valid JSON ({first.get('ctx', {}).get('error', first['msg'])}); send a JSON object",
            )
        where = ".".join(str(part) for part in first.get("loc", ())[1:])
        kind = request.headers.get("content-type", "none")
        if not where and "json" not in kind:
            return error(
                422, f"request body must be JSON with the header 'Content-Type: application/json' (got {kind})"
            )
        if not where:
            return error(422, 'request body must be a JSON object, e.g. {"task": "boolq", "texts": ["..."]}')
        return error(
            422,
            f"{where}: {first['msg']}"
            + (f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""),
        )

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"
        message = (
            f"no route {where}; endpoints: {', '.join(ENDPOINTS)} (described at /docs)"
            if exc.status_code == 404
            else f"{where}: {exc.detail}"
        )
        return error(exc.status_code, message, getattr(exc, "headers", None))

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the number of loaded prompts and rows waiting for a pass."""
        return {"status": "ok", "prompts": len(engine.catalog.bank_id), "queued_rows": engine.worker.queued_rows()}

    @app.get("/metrics")
    async def prometheus() -> Response:
        """Prometheus text format: requests, latency, rows per pass, queue and pass time."""
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/prompts")
    async def prompts() -> dict[str, Any]:
        """Every loaded prompt (name, task, kind, label words), every task, and the model fingerprint."""
        return engine.catalog.describe()

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest) -> Any:
        """Rank classification by one prompt, or by a task's prompts with a vote."""
        return await _answer(engine.classify(body))

    @app.post("/v1/generate")
    async def generate(body: GenerateRequest) -> Any:
        """Generation by one prompt, or by a task's prompts with a generation vote."""
        return await _answer(engine.generate(body))

    if api_key is not None:
        app.openapi = lambda: _with_bearer_key(app)
    engine.worker.observer = metrics
    return app


def _with_bearer_key(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, declaring that every endpoint but the open ones takes ``Authorization: Bearer <key>``."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {})["securitySchemes"] = {"apiKey": {"type": "http", "scheme": "bearer"}}
        for path, operations in schema["paths"].items():
            for operation in operations.values():
                operation["security"] = [] if path in OPEN else [{"apiKey": []}]
        app.openapi_schema = schema
    return app.openapi_schema


async def _answer(pending: Pending) -> Any:
    try:
        results = await asyncio.wrap_future(pending.future)
    except Exception as exc:  # noqa: BLE001 - a failed pass: this request fails, the server goes on
        return error(
            500, f"the model pass failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); retry"
        )
    return pending.answer(results)


def _authorised(header: str, key: str) -> bool:
    """Constant-time comparison of the Authorization header with ``Bearer <key>``."""
    return hmac.compare_digest(header.encode(), f"Bearer {key}".encode())
