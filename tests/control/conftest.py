"""A running node for the control-plane tests, and clients that speak to it as the CLI, a
script and a browser would: httpx for POST /rpc, the `websockets` client for /rpc/ws."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import ClientConnection, connect

from tests.rig import GateNode


@pytest.fixture(scope="module")
def control_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GateNode]:
    """One node per test module: the compliance and fuzz suites only read from it."""
    node = GateNode(tmp_path_factory.mktemp("control"))
    node.start()
    yield node
    node.stop()


class Rpc:
    """POST /rpc with the node's token: raw bodies in, (status, parsed JSON or None) out."""

    def __init__(self, node: GateNode) -> None:
        self.url = f"http://127.0.0.1:{node.control_port}/rpc"
        self.client = httpx.Client(headers={"Authorization": f"Bearer {node.token}"}, timeout=30)

    def post(self, body: bytes | str | Any) -> tuple[int, Any]:
        content = body if isinstance(body, bytes | str) else json.dumps(body)
        response = self.client.post(self.url, content=content)
        return response.status_code, (response.json() if response.content else None)

    def call(self, method: str, params: dict[str, Any] | None = None, id_: Any = 1) -> Any:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
        if params is not None:
            message["params"] = params
        return self.post(message)[1]


@pytest.fixture
def rpc(control_node: GateNode) -> Iterator[Rpc]:
    client = Rpc(control_node)
    yield client
    client.client.close()


def ws_url(node: GateNode) -> str:
    return f"ws://127.0.0.1:{node.control_port}/rpc/ws"


def ws_connect(node: GateNode, **kw: Any) -> ClientConnection:
    headers = kw.pop("additional_headers", {"Authorization": f"Bearer {node.token}"})
    return connect(ws_url(node), additional_headers=headers, open_timeout=10, **kw)


class WsRpc:
    """JSON-RPC over one WebSocket: calls wait for their reply by id; notifications that
    arrive meanwhile are kept in order for the test to read."""

    def __init__(self, conn: ClientConnection) -> None:
        self.conn = conn
        self.notifications: list[dict[str, Any]] = []
        self._id = 0

    def send(self, message: Any) -> None:
        self.conn.send(message if isinstance(message, str | bytes) else json.dumps(message))

    def receive(self, timeout: float = 10) -> Any:
        return json.loads(self.conn.recv(timeout=timeout))

    def reply_to(self, id_: Any, timeout: float = 10) -> Any:
        while True:
            message = self.receive(timeout)
            if isinstance(message, dict) and "method" in message and "id" not in message:
                self.notifications.append(message)
                continue
            if isinstance(message, list) or message.get("id") == id_:
                return message

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self._id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": self._id}
        if params is not None:
            message["params"] = params
        self.send(message)
        return self.reply_to(self._id)

    def next_event(self, timeout: float = 10) -> dict[str, Any]:
        if self.notifications:
            return self.notifications.pop(0)["params"]
        message = self.receive(timeout)
        assert message.get("method") == "events.event", message
        params: dict[str, Any] = message["params"]
        return params


@pytest.fixture
def ws(control_node: GateNode) -> Iterator[WsRpc]:
    with ws_connect(control_node) as conn:
        yield WsRpc(conn)


def spec_with(node: GateNode, extra: str) -> str:
    return Path(node.spec_path).read_text() + extra
