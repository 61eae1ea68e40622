"""The security headers on every response of the control server: the Content-Security-Policy
and its companions, added by one pure-ASGI middleware so streams and WebSockets pass as they are."""

from __future__ import annotations

__all__ = ("SecurityHeaders", "content_security_policy", "inline_script_hashes")

import base64
import hashlib
import re
from collections.abc import Iterable
from typing import Any, Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Features the UI never uses. Only names Chromium knows: an unknown one is a console warning
# on every page. WebAuthn and the clipboard stay at their default (this origin only), since
# passkeys and the copy buttons need them.
_DENIED_FEATURES: Final = (
    "accelerometer",
    "camera",
    "display-capture",
    "geolocation",
    "gyroscope",
    "hid",
    "magnetometer",
    "microphone",
    "midi",
    "payment",
    "serial",
    "usb",
    "xr-spatial-tracking",
)

_INLINE_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)


def inline_script_hashes(page: str) -> tuple[str, ...]:
    """The CSP source (``'sha256-...'``) of each inline script of ``page``: in practice the
    import map, which browsers accept only inline. A browser hashes the element's text as
    the parser saw it, after line endings became LF; so do we."""
    text = page.replace("\r\n", "\n").replace("\r", "\n")
    hashes = []
    for attributes, body in _INLINE_SCRIPT.findall(text):
        if re.search(r"\bsrc\s*=", attributes, re.IGNORECASE):
            continue
        digest = hashlib.sha256(body.encode()).digest()
        hashes.append(f"'sha256-{base64.b64encode(digest).decode()}'")
    return tuple(hashes)


def content_security_policy(script_hashes: Iterable[str] = ()) -> str:
    """Nothing from another origin, no inline script but the hashed ones, no inline style,
    and no framing. ``connect-src 'self'`` covers ws:// and wss:// to this origin too."""
    script_src = " ".join(("'self'", *script_hashes))
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {script_src}",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "font-src 'self'",
            "manifest-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        )
    )


class SecurityHeaders:
    """Adds the headers to every HTTP response, the app's errors and 404s included (it sits
    outside Starlette's error handling), and to a refused WebSocket handshake. A response
    that names no ``Cache-Control`` gets ``no-store``: pages, replies and refusals of the
    control plane are nobody's to keep; the assets that may be cached say so themselves."""

    def __init__(self, app: ASGIApp, *, csp: str) -> None:
        self._app = app
        fixed = {
            "content-security-policy": csp,
            "referrer-policy": "no-referrer",  # the login link carries its code in the URL
            "x-content-type-options": "nosniff",
            "cross-origin-opener-policy": "same-origin",
            "cross-origin-resource-policy": "same-origin",
            "permissions-policy": ", ".join(f"{f}=()" for f in _DENIED_FEATURES),
        }
        self._names = frozenset(n.encode() for n in fixed)
        self._fixed = [(n.encode(), v.encode()) for n, v in fixed.items()]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self._app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                message = {**message, "headers": self._merged(message.get("headers", ()))}
            await send(message)

        await self._app(scope, receive, send_with_headers)

    def _merged(self, headers: Iterable[Any]) -> list[tuple[bytes, bytes]]:
        kept = [(bytes(n), bytes(v)) for n, v in headers if bytes(n).lower() not in self._names]
        if not any(n.lower() == b"cache-control" for n, _ in kept):
            kept.append((b"cache-control", b"no-store"))
        return [*kept, *self._fixed]
