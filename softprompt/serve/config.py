"""Settings of ``softprompt serve``, validated in one place."""

from __future__ import annotations

import importlib
import ipaddress
import os
from dataclasses import dataclass, field

from softprompt.errors import SoftpromptError

MAX_ROWS = 128  # rows taken from the queue for one pass
SERVE_EXTRA = ("fastapi", "uvicorn", "prometheus_client")  # what `pip install "softprompt[serve]"` brings


def require_serve_extra() -> None:
    """Refuse in one line, with the install command, when a module of the ``serve`` extra is missing."""
    missing = []
    for name in SERVE_EXTRA:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise SoftpromptError(
            f"softprompt serve needs the serve extra ({', '.join(missing)} not installed); "
            f'install it with: pip install "softprompt[serve]"'
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (localhost, 127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


@dataclass(frozen=True)
class Limits:
    """Per-request limits: inputs per request (413), characters per input and decoding sizes (422)."""

    max_inputs: int = 64
    max_input_chars: int = 4000
    max_new_tokens: int = 256
    max_beams: int = 8

    def __post_init__(self) -> None:
        for name in ("max_inputs", "max_input_chars", "max_new_tokens", "max_beams"):
            if getattr(self, name) < 1:
                raise SoftpromptError(
                    f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}"
                )

    @property
    def max_body_bytes(self) -> int:
        """Largest request body accepted (413 above): room for every input at its longest, in UTF-8."""
        return self.max_inputs * self.max_input_chars * 4 + 65536


@dataclass(frozen=True)
class ServeConfig:
    """Everything ``softprompt serve`` needs; ``ServeConfig(prompts=("runs/boolq",))`` serves one run."""

    prompts: tuple[str, ...]
    model: str | None = None  # default: the model recorded in the runs
    host: str = "127.0.0.1"
    port: int = 8000
    max_rows: int = MAX_ROWS
    max_tokens: int | None = None  # default: softprompt.runner.passes.token_budget of the model's device
    max_wait_ms: float = 10.0
    batching: bool = True
    api_key_env: str | None = None
    no_auth: bool = False  # serve without a key on a non-loopback address, on purpose
    max_length: int | None = None  # default: the runs' --max-source-length (ensembles.settings.resolve_settings)
    limits: Limits = field(default_factory=Limits)
    device: str = "auto"
    dtype: str = "float32"
    device_map: str | None = None

    def __post_init__(self) -> None:
        if not self.prompts:
            raise SoftpromptError("no prompt runs given; pass --prompts RUN_DIR (repeatable)")
        for name in ("max_rows", "max_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise SoftpromptError(
                    f"--{name.replace('_', '-')} must be a positive integer, got {getattr(self, name)}"
                )
        if not 0 <= self.max_wait_ms < float("inf"):  # also NaN, which would make the worker wait forever
            raise SoftpromptError(f"--max-wait-ms must be a finite number of 0 or more, got {self.max_wait_ms}")
        if not 0 <= self.port <= 65535:
            raise SoftpromptError(f"--port must lie in 0..65535 (0 = any free port), got {self.port}")
        if self.max_length is not None and self.max_length < 1:
            raise SoftpromptError(f"--max-length must be a positive integer, got {self.max_length}")
        if self.no_auth and self.api_key_env is not None:
            raise SoftpromptError("--no-auth and --api-key-env contradict each other; pass one of them")
        if not is_loopback(self.host) and self.api_key_env is None and not self.no_auth:
            raise SoftpromptError(
                f"--host {self.host} accepts other machines, and no API key is set: pass --api-key-env VAR "
                f"(clients then send 'Authorization: Bearer <key>'), or --no-auth to serve anyone who can reach the port"
            )
        self.api_key()  # an unset key variable fails before the model loads

    def api_key(self) -> str | None:
        """The bearer token clients must send, from ``$api_key_env``; None when no key is required."""
        if self.api_key_env is None:
            return None
        key = os.environ.get(self.api_key_env, "")
        if not key:
            raise SoftpromptError(
                f"--api-key-env {self.api_key_env}: the environment variable ${self.api_key_env} is unset or empty; "
                f"export it with the key clients must send"
            )
        return key
