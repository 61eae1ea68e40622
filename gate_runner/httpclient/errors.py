"""The errors the hot-path HTTP client raises, each saying whether a retry is safe."""

from __future__ import annotations

__all__ = (
    "ResponseTooLarge",
    "UpstreamAborted",
    "UpstreamClosed",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeout",
)

from gate_runner.errors import GateError


class UpstreamError(GateError):
    """Base of every failure talking to an upstream HTTP server.

    ``retryable`` is True only when nothing reached the upstream application (the request
    can be sent again, even a non-idempotent POST); the router retries only those.
    """

    retryable_by_default = False

    def __init__(
        self, message: str, *, hint: str | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.retryable = self.retryable_by_default if retryable is None else retryable


class UpstreamConnectError(UpstreamError):
    """Raised when no connection could be made: refused, unreachable, DNS or TLS handshake."""

    retryable_by_default = True


class UpstreamTimeout(UpstreamError):
    """Raised when connecting takes longer than ``connect_timeout`` (retryable), or when the
    upstream sends no byte (or accepts none) for ``read_timeout`` seconds (not retryable)."""


class UpstreamProtocolError(UpstreamError):
    """Raised when the upstream answers with something that is not valid HTTP/1.1."""


class UpstreamClosed(UpstreamError):
    """Raised when the connection closes before the response (or its body) is complete,
    or when the pool was closed while the request waited for a connection."""


class ResponseTooLarge(UpstreamError):
    """Raised when a response body grows past the pool's ``max_response_bytes``."""


class UpstreamAborted(GateError):
    """Raised by a wait of an exchange whose caller aborted it (``AbortSignal.abort``).
    Not an UpstreamError: the upstream did nothing wrong, and nothing retries it."""
