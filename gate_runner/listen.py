"""Binding a TCP socket for a listener, with errors that say what to change."""

from __future__ import annotations

__all__ = ("bind_socket",)

import errno
import socket

from gate_runner.errors import PermanentError, TransientError


def bind_socket(
    family: socket.AddressFamily, host: str, port: int, *, shown: str, what: str
) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEADDR (our own connections in TIME_WAIT
    from a previous run do not count as "in use"). A port in use is a TransientError (the
    other program may stop), any other failure a PermanentError; both name ``what`` to
    change. ``shown`` is the address as the user wrote it."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        if e.errno == errno.EADDRINUSE:
            raise TransientError(
                f"{shown} is already in use", hint=f"stop the program using it, or change {what}"
            ) from e
        raise PermanentError(
            f"cannot listen on {shown}: {e.strerror}",
            hint=f"use an address of this machine in {what}",
        ) from e
    return sock
