"""The CLI's side of the control plane: find the running node and call its JSON-RPC methods."""

from __future__ import annotations

__all__ = ("ControlClient", "RpcError", "find_spec_file", "locate_node")

import itertools
import os
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
    url: str  # http://host:port
    token: str


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
    if control is None:
        assert spec is not None
        control = str(spec.listen.control)
    if token is None:
        assert spec is not None
        token = read_token(spec.data_dir / "control.token")
    if not control.startswith(("http://", "https://")):
        control = "http://" + control
    return NodeLocation(url=control.rstrip("/"), token=token)


class ControlClient:
    def __init__(self, location: NodeLocation, *, timeout: float = 30.0) -> None:
        self.location = location
        self._http = httpx.Client(
            base_url=location.url,
            headers={"Authorization": f"Bearer {location.token}"},
            timeout=timeout,
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
            raise GateError(f"control server answered HTTP {response.status_code}: {response.text}")
        reply = response.json()
        if "error" in reply:
            err = reply["error"]
            raise RpcError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply["result"]
