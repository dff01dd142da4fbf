"""``softprompt serve``: load the model once and the runs' prompts into one pool, then serve HTTP
with uvicorn until Ctrl-C / SIGTERM, which stop accepting connections, finish in-flight requests,
drain the worker and return."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Callable

import uvicorn

from ensembles.pool import read_pool_metas
from ensembles.settings import EvalConfig, resolve_settings
from softprompt.errors import SoftpromptError
from softprompt.model.loading import load_frozen_t5
from softprompt.serve.app import create_app
from softprompt.serve.catalog import Catalog
from softprompt.serve.config import ServeConfig, is_loopback
from softprompt.serve.engine import Engine
from softprompt.serve.metrics import ServeMetrics
from softprompt.serve.worker import BatchingWorker


class _Server(uvicorn.Server):
    """uvicorn's server, announcing the bound address once the app has started."""

    def __init__(self, config: uvicorn.Config, announce: Callable[[], None]) -> None:
        super().__init__(config)
        self.announce = announce

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started:
            self.announce()


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (0 = any free port); a one-line error when it cannot bind."""
    try:
        socket.getaddrinfo(host, port)  # a host that does not resolve has its own reason and fix
        return socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET)
    except socket.gaierror as error:
        raise SoftpromptError(
            f"cannot resolve --host {host} ({error.strerror}); give an address of this machine, "
            "e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    except (OSError, OverflowError) as error:
        reason = os.strerror(error.errno) if getattr(error, "errno", None) else str(error)
        raise SoftpromptError(f"cannot listen on {host}:{port} ({reason}); pick another --port or --host") from None


def build_engine(config: ServeConfig) -> Engine:
    """The model, the pooled prompts and a (not yet started) batching worker for ``config``."""
    metas = read_pool_metas(config.prompts, mixed_tasks=True)  # a mismatched run fails before the model loads
    frozen = load_frozen_t5(
        config.model or metas[0]["model"]["name"], config.dtype, config.device, device_map=config.device_map
    )
    catalog = Catalog.load(config.prompts, frozen)
    # requests carry their own decoding: only the input length is the runs' own
    evaluation = resolve_settings(metas, given=EvalConfig(max_length=config.max_length, max_tokens=config.max_tokens))
    worker = BatchingWorker(
        catalog.pool.model,
        config.max_rows,
        config.max_wait_ms,
        config.batching,
        evaluation.max_length,
        max_tokens=evaluation.max_tokens,
    )
    return Engine(catalog, config.limits, worker)


def serve(config: ServeConfig, echo: Callable[[str], None] = print) -> None:
    """Serve until SIGINT/SIGTERM, then drain in-flight requests and return.

    Example::

        serve(ServeConfig(prompts=("runs/boolq", "runs/sst2"), port=8000))
    """
    api_key = config.api_key()
    sock = listen(config.host, config.port)  # a taken port or a bad host fails before the model loads
    try:
        engine = build_engine(config)
        _run(engine, sock, config, api_key, echo)
    finally:
        sock.close()
    echo("softprompt serve: stopped after answering every in-flight request")


def _run(
    engine: Engine, sock: socket.socket, config: ServeConfig, api_key: str | None, echo: Callable[[str], None]
) -> None:
    """Serve ``engine`` on the listening ``sock`` until SIGINT/SIGTERM."""
    host, port = sock.getsockname()[:2]
    app = create_app(engine, ServeMetrics(), api_key)
    tasks = ", ".join(f"{t.name} ({len(t.prompts)})" for t in engine.catalog.tasks.values())
    batching = f"on, {config.max_rows} rows, {config.max_wait_ms:g} ms" if config.batching else "off"

    def announce() -> None:
        echo(
            f"softprompt serve: {len(engine.catalog.bank_id)} prompts [{tasks}] on http://{host}:{port} "
            f"(batching {batching}{', API key required' if api_key else ''}); docs at /docs"
        )
        if config.no_auth and not is_loopback(config.host):
            echo(f"warning: --no-auth on {host}: anyone who can reach this port can use the model")

    server = _Server(uvicorn.Config(app, log_level="error", access_log=False), announce)
    # uvicorn re-raises the stop signal after its graceful shutdown; a no-op handler turns that into a clean return
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.run(sockets=[sock])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
