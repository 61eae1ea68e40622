"""A peer's request as the router's ASGI call: the scope, the body received once, and the
adapter that writes the router's ASGI send messages as HTTP-over-P2P frames."""

from __future__ import annotations

__all__ = ("AsgiToP2P", "peer_scope", "receive_once")

from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any

import anyio

from gate_runner.router import ClientGone

if TYPE_CHECKING:
    from gate_runner.p2p import P2PRequest, ResponseSender
    from gate_runner.peers import PeerState


def peer_scope(request: P2PRequest, name: str) -> dict[str, Any]:
    """The ASGI scope the router is handed for a peer's request."""
    return {
        "type": "http",
        "method": request.method,
        "path": request.path,
        "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers],
        "client": (f"peer:{name}", 0),
    }


def receive_once(body: bytes) -> Any:
    """An ASGI receive that hands over the body, already read off the stream, once."""
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # The stream's reset (the client left) cancels this handler; nothing else arrives.
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    return receive


class AsgiToP2P:
    """ASGI send messages from the router, as HTTP-over-P2P frames.

    A whole (non-SSE) response leaves in one write: the head waits for the body, and the
    last body message carries the end of the response. An SSE head goes out at once, so
    that the requesting node's client sees its request accepted before the first token.
    """

    def __init__(self, sender: ResponseSender, state: PeerState | None) -> None:
        self._sender = sender
        self._state = state

    async def send(self, message: MutableMapping[str, Any]) -> None:
        from gate_runner.p2p import StreamError

        try:
            await self._send(message)
        except StreamError as e:
            # The requesting node reset the stream: its client left.
            raise ClientGone(str(e)) from e

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [
                (k.decode("latin-1"), v.decode("latin-1")) for k, v in message.get("headers", [])
            ]
            sse = any(
                k.lower() == "content-type" and v.lower().startswith("text/event-stream")
                for k, v in headers
            )
            await self._sender.start(int(message["status"]), headers, flush=sse)
        elif message["type"] == "http.response.body":
            chunk = message.get("body", b"")
            if chunk and self._state is not None:
                self._state.bytes_out += len(chunk)
            await self._sender.send(chunk, end=not message.get("more_body", False))
