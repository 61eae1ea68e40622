"""The CLI's side of the control plane: find the running node and call its JSON-RPC methods."""

from __future__ import annotations

__all__ = ("ControlClient", "RpcError", "find_spec_file", "locate_node")

import itertools
import json
import os
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gate_runner.errors import GateError
from gate_runner.spec import NodeSpec, load_spec_file
from gate_runner.state import read_token


class RpcError(GateError):
    """Raised when the node answers a call with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        hint = data.get("hint") if isinstance(data, dict) else None
        super().__init__(message, hint=hint)
        self.code = code
        self.data = data


def find_spec_file(given: str | None) -> Path:
    """-f, else ./gate.yaml, else ~/.config/gate/gate.yaml."""
    if given:
        return Path(given)
    for candidate in (Path("gate.yaml"), Path.home() / ".config" / "gate" / "gate.yaml"):
        if candidate.exists():
            return candidate
    raise GateError(
        "no spec file: none given with -f, and neither ./gate.yaml nor "
        "~/.config/gate/gate.yaml exists",
        hint="pass -f FILE, or create gate.yaml from gate.yaml.example",
    )


@dataclass(frozen=True)
class NodeLocation:
    url: str  # http://host:port or https://host:port
    token: str
    # What verifies an https control server: the spec's control.tls certificate (it is
    # usually self-signed), GATE_CONTROL_CA, or True for the system's roots.
    verify: str | bool = True

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        cafile = self.verify if isinstance(self.verify, str) else None
        return ssl.create_default_context(cafile=cafile)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/rpc/ws"


def locate_node(*, control: str | None, spec_file: str | None) -> NodeLocation:
    """--control ADDR or GATE_CONTROL, else listen.control of the spec; the token comes from
    GATE_TOKEN, else dataDir/control.token of the spec."""
    control = control or os.environ.get("GATE_CONTROL")
    token = os.environ.get("GATE_TOKEN")
    spec: NodeSpec | None = None
    if control is None or token is None:
        loaded = load_spec_file(find_spec_file(spec_file), expect_kind="Node")
        assert isinstance(loaded.spec, NodeSpec)
        spec = loaded.spec
    verify: str | bool = os.environ.get("GATE_CONTROL_CA") or True
    if control is None:
        assert spec is not None
        control = str(spec.listen.control)
        if spec.control.tls_cert is not None:
            control = f"https://{control}"
            if verify is True:
                verify = str(spec.control.tls_cert)
    if token is None:
        assert spec is not None
        token = read_token(spec.data_dir / "control.token")
    if not control.startswith(("http://", "https://")):
        control = "http://" + control
    return NodeLocation(url=control.rstrip("/"), token=token, verify=verify)


class ControlClient:
    def __init__(self, location: NodeLocation, *, timeout: float = 30.0) -> None:
        self.location = location
        self._http = httpx.Client(
            base_url=location.url,
            headers={"Authorization": f"Bearer {location.token}"},
            timeout=timeout,
            verify=location.ssl_context() or True,
        )
        self._ids = itertools.count(1)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ControlClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        body = {"jsonrpc": "2.0", "method": method, "params": params or {}, "id": next(self._ids)}
        try:
            response = self._http.post("/rpc", json=body)
        except httpx.TransportError as e:
            raise GateError(
                f"cannot reach the node's control server at {self.location.url}: {e}",
                hint="is the node running? start it with `gate up`, or pass --control ADDR",
            ) from e
        if response.status_code == 401:
            raise GateError(
                f"the node at {self.location.url} refused the control token",
                hint="the token is dataDir/control.token of the spec the node runs; "
                "pass the same spec with -f, or set GATE_TOKEN",
            )
        if response.status_code != 200:
            raise GateError(
                f"control server answered HTTP {response.status_code}: {_refusal(response)}"
            )
        reply = response.json()
        if "error" in reply:
            err = reply["error"]
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply["result"]

    def events(
        self,
        types: list[str],
        *,
        level: str = "info",
        on_subscribed: Callable[[int], None] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Subscribe on /rpc/ws and yield each event's params (seq, type, time, data,
        dropped) until the node goes away. ``on_subscribed`` gets the last seq published
        before the subscription: every later event will come."""
        from websockets.exceptions import ConnectionClosed, InvalidStatus
        from websockets.sync.client import connect

        try:
            conn = connect(
                self.location.ws_url,
                additional_headers={"Authorization": f"Bearer {self.location.token}"},
                ssl=self.location.ssl_context(),
                open_timeout=10,
                max_size=None,
            )
        except InvalidStatus as e:
            raise GateError(
                f"the node refused the event stream: HTTP {e.response.status_code}",
                hint="the token is dataDir/control.token of the spec the node runs",
            ) from e
        except OSError as e:
            raise GateError(
                f"cannot reach the node's control server at {self.location.url}: {e}",
                hint="is the node running? start it with `gate up`, or pass --control ADDR",
            ) from e
        with conn:
            conn.send(
                json.dumps(
                    {
                        "jsonrpc": "2.0",
                        "method": "events.subscribe",
                        "params": {"types": types, "level": level},
                        "id": 1,
                    }
                )
            )
            try:
                for frame in conn:
                    message = json.loads(frame)
                    if message.get("method") == "events.event":
                        yield message["params"]
                    elif "result" in message and on_subscribed is not None:
                        on_subscribed(message["result"]["seq"])
                    elif "error" in message:
                        err = message["error"]
                        raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
            except ConnectionClosed:
                return


def _refusal(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return response.text[:200]
