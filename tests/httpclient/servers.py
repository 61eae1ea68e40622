"""Real upstreams on loopback for the HTTP client tests: a hypercorn + starlette app, and raw
trio socket servers whose handlers misbehave on purpose."""

from __future__ import annotations

import datetime
import ipaddress
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypercorn.config import Config
from hypercorn.trio import serve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

# -- hypercorn + starlette ----------------------------------------------------------------


@dataclass
class AppState:
    """What the app saw, and a gate the SSE route waits on before its last event."""

    sse_sent: list[int] = field(default_factory=list)
    release_last: trio.Event = field(default_factory=trio.Event)


def make_app(state: AppState) -> Starlette:
    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    async def echo(request: Request) -> Response:
        body = await request.body()
        return JSONResponse(
            {
                "method": request.method,
                "path": request.url.path,
                "body": body.decode(),
                "content_length": request.headers.get("content-length"),
                "transfer_encoding": request.headers.get("transfer-encoding"),
                "content_type": request.headers.get("content-type"),
                "host": request.headers.get("host"),
            }
        )

    async def sse(request: Request) -> Response:
        count = int(request.query_params.get("n", "5"))

        async def events() -> AsyncIterator[bytes]:
            for i in range(count):
                if i == count - 1:
                    # The last event waits until the test has seen the first one: a client
                    # that buffered the whole body would never get there.
                    with trio.fail_after(5):
                        await state.release_last.wait()
                state.sse_sent.append(i)
                yield f"data: {json.dumps({'i': i})}\n\n".encode()
                await trio.sleep(0.01)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def empty(request: Request) -> Response:
        return Response(status_code=204)

    return Starlette(
        routes=[
            Route("/hello", hello),
            Route("/v1/echo", echo, methods=["GET", "POST", "PUT"]),
            Route("/echo", echo, methods=["GET", "POST", "PUT"]),
            Route("/sse", sse),
            Route("/empty", empty),
        ]
    )


@asynccontextmanager
async def serve_app(
    state: AppState, *, certfile: Path | None = None, keyfile: Path | None = None
) -> AsyncIterator[str]:
    """Serve the app on 127.0.0.1 at a port the OS picks; yields its base URL."""
    config = Config()
    config.bind = ["127.0.0.1:0"]  # hypercorn reports the port the OS chose
    config.accesslog = None
    config.errorlog = None
    if certfile is not None:
        config.certfile = str(certfile)
        config.keyfile = str(keyfile)
    async with trio.open_nursery() as nursery:
        app: Any = make_app(state)  # starlette's ASGI types and hypercorn's do not unify
        binds: list[str] = await nursery.start(partial(serve, app, config))
        yield binds[0]
        nursery.cancel_scope.cancel()


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (certfile, keyfile)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = directory / "cert.pem", directory / "key.pem"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return certfile, keyfile


# -- raw trio servers ---------------------------------------------------------------------


class Peer:
    """One accepted connection, with a buffered reader for request heads."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = bytearray()
        self.saw_eof = trio.Event()

    async def read_request(self) -> bytes | None:
        """One request (head and Content-Length body) as raw bytes; None at EOF."""
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            if not await self._fill():
                return None
        head = bytes(self.buffer[:end]).lower()
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip() == b"content-length":
                length = int(value)
        total = end + 4 + length
        while len(self.buffer) < total:
            if not await self._fill():
                return None
        request = bytes(self.buffer[:total])
        del self.buffer[:total]
        return request

    async def wait_eof(self) -> None:
        """Read and drop bytes until the client closes (EOF or reset)."""
        while await self._fill():
            self.buffer.clear()

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:  # a reset counts as the client going away
            data = b""
        if not data:
            self.saw_eof.set()
            return False
        self.buffer += data
        return True


Handler = Callable[[Peer], Awaitable[None]]


class RawServer:
    """Counts connections: accepted in total, open now, and the most open at once."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.port = 0
        self.accepted = 0
        self.open = 0
        self.max_open = 0
        self.peers: list[Peer] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def wait_all_closed(self) -> None:
        with trio.fail_after(2):
            while self.open:
                await trio.sleep(0.005)

    async def _serve(self, stream: trio.SocketStream) -> None:
        peer = Peer(stream)
        self.peers.append(peer)
        self.accepted += 1
        self.open += 1
        self.max_open = max(self.max_open, self.open)
        try:
            await self.handler(peer)
            # A handler that returns has answered: wait for the client to hang up, so that
            # `open` counts the sockets the client still holds (unless it closed it itself).
            if stream.socket.fileno() != -1:
                await peer.wait_eof()
        except trio.BrokenResourceError:
            pass
        finally:
            self.open -= 1
            stream.socket.close()


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[RawServer]:
    server = RawServer(handler)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, server._serve, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        yield server
        nursery.cancel_scope.cancel()


def response(body: bytes = b"ok", *, status: bytes = b"200 OK", extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-length: %d\r\n" % len(body) + extra + b"\r\n" + body
    )


async def keep_alive_handler(peer: Peer) -> None:
    """A well-behaved keep-alive server: answers every request with 200 'ok'."""
    while await peer.read_request() is not None:
        await peer.send(response())
