"""Serving an ASGI app with embedded hypercorn on trio, on a socket we bind ourselves."""

from __future__ import annotations

__all__ = ("Bound", "bind_tcp", "serve_asgi")

import logging
import socket
import ssl
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

import anyio
from anyio.abc import TaskStatus
from hypercorn.config import Config, Sockets
from hypercorn.trio.run import worker_serve
from hypercorn.utils import wrap_app

from gate_runner.errors import PermanentError
from gate_runner.listen import bind_socket
from gate_runner.spec import HostPort

log = logging.getLogger("gate.http")


class Bound(NamedTuple):
    """A listening socket and the address it is bound to (the real port when 0 was asked)."""

    sock: socket.socket
    address: HostPort


def bind_tcp(address: HostPort, *, what: str) -> Bound:
    """Bind and listen, turning OS errors into errors that say what to change.

    We bind the socket ourselves, not through hypercorn's ``bind`` list, so that a busy
    port is a typed, retryable error and the socket can be handed over intact.
    """
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = bind_socket(family, address.host, address.port, shown=str(address), what=what)
    try:
        sock.listen(1024)
    except OSError as e:
        sock.close()
        raise PermanentError(
            f"cannot listen on {address}: {e.strerror}",
            hint=f"use an address of this machine in {what}",
        ) from e
    sock.setblocking(False)
    return Bound(sock, replace(address, port=sock.getsockname()[1]))


class _Started:
    def __init__(self, task_status: TaskStatus[None]) -> None:
        self._task_status = task_status

    def started(self, value: Any = None) -> None:
        self._task_status.started()


async def serve_asgi(
    app: Any,
    sock: socket.socket,
    *,
    stopping: anyio.Event,
    graceful_timeout: float = 5.0,
    tls: tuple[Path, Path] | None = None,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until ``stopping`` is set; in-flight requests then get ``graceful_timeout``.
    ``tls`` is (certificate, key), PEM files: then the socket speaks HTTPS."""
    config = Config()
    config.graceful_timeout = graceful_timeout
    config.errorlog = log
    config.accesslog = None
    # Only the control plane speaks WebSocket; its messages are JSON-RPC calls, the same
    # 2 MiB at most as a POST /rpc body (hypercorn's default is 16 MiB).
    config.websocket_max_message_size = 2 << 20
    if tls is not None:
        config.certfile, config.keyfile = (str(p) for p in tls)
        try:
            config.create_ssl_context()
        except (OSError, ssl.SSLError) as e:
            sock.close()
            raise PermanentError(
                f"cannot load the TLS certificate {tls[0]} and key {tls[1]}: {e}",
                hint="check control.tls: both PEM files must exist and match",
            ) from e
    secure, plain = ([sock], []) if tls is not None else ([], [sock])
    sockets = Sockets(secure_sockets=secure, insecure_sockets=plain, quic_sockets=[])
    try:
        await worker_serve(
            wrap_app(app, config.wsgi_max_body_size, "asgi"),
            config,
            sockets=sockets,
            shutdown_trigger=stopping.wait,
            task_status=_Started(task_status),
        )
    finally:
        sock.close()
