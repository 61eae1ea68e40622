"""The CLI's side of the control plane: find the running node and call its JSON-RPC methods."""

from __future__ import annotations

__all__ = (
    "ControlClient",
    "NodeLocation",
    "RpcError",
    "SpecHints",
    "find_spec_file",
    "locate_node",
    "read_spec_hints",
)

import itertools
import json
import os
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gate_runner.errors import GateError, SpecError, SpecIssue
from gate_runner.migrations.spec import migrate
from gate_runner.spec import NODE, load_spec_file
from gate_runner.spec.envoverride import env_name
from gate_runner.spec.model import DEFAULT_CONTROL, DEFAULT_DATA_DIR, HostPort
from gate_runner.spec.yamlsafe import JsonPath, decode_text, format_path, parse_yaml, read_limited
from gate_runner.state import read_token
from gate_runner.state.runtime import find_runtime, read_runtime


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
    pid: int | None = None  # when the node's runtime record was found
    data_dir: Path | None = None  # when the spec (or the record) was read

    def ssl_context(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        cafile = self.verify if isinstance(self.verify, str) else None
        return ssl.create_default_context(cafile=cafile)

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + "/rpc/ws"


@dataclass(frozen=True)
class SpecHints:
    """The three fields of a spec the CLI needs to find its node, read without validation."""

    control: str  # host:port
    tls_cert: Path | None
    data_dir: Path


_CONTROL: JsonPath = ("spec", "listen", "control")
_DATA_DIR: JsonPath = ("spec", "dataDir")
_TLS_CERT: JsonPath = ("spec", "control", "tls", "certFile")


def read_spec_hints(path: Path, *, env: Mapping[str, str] | None = None) -> SpecHints:
    """listen.control, control.tls.certFile and dataDir of the spec at ``path``, with their
    defaults and GATE_* overrides, as the node would read them; the rest of the file is not
    looked at, so a spec the node rejected does not lock the CLI out of the node. Raises
    SpecError when the file is not YAML, or when one of these fields is unusable."""
    env = os.environ if env is None else env
    source = str(path)
    parsed = parse_yaml(decode_text(read_limited(path), source=source), source=source)
    document = parsed.data
    marks = parsed.marks
    try:
        document, migrated_from = migrate(document)
    except SpecError:
        migrated_from = None  # no or an unknown apiVersion: read the fields where v1 has them
    if migrated_from is not None:
        marks = {}  # an older apiVersion kept these fields elsewhere in the file

    def field(at: JsonPath, default: str | None) -> tuple[str | None, bool]:
        """The value and whether it came from the environment."""
        override = env.get(env_name(at), "").strip()
        if override:
            return override, True
        node: Any = document
        for key in at:
            node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            return default, False
        if not isinstance(node, str):
            line, column = marks.get(at, (None, None))
            raise SpecError(
                SpecIssue(
                    f"expected a string, not {type(node).__name__}; the node cannot be "
                    "found without it",
                    format_path(at),
                    source,
                    line,
                    column,
                    hint="fix the file, or pass --control ADDR (the token from GATE_TOKEN)",
                )
            )
        return node, False

    control, _ = field(_CONTROL, DEFAULT_CONTROL)
    assert control is not None
    data_dir_text, from_env = field(_DATA_DIR, DEFAULT_DATA_DIR)
    assert data_dir_text is not None
    data_dir = Path(data_dir_text).expanduser()
    if not data_dir.is_absolute():
        # As the node resolves it: against the spec's directory, or the current one when the
        # path came from the environment.
        base = Path.cwd() if from_env else path.absolute().parent
        data_dir = Path(os.path.normpath(base / data_dir))
    cert_text, _ = field(_TLS_CERT, None)
    tls_cert = None
    if cert_text is not None:
        cert = Path(cert_text).expanduser()
        tls_cert = cert if cert.is_absolute() else data_dir / cert
    return SpecHints(control=control, tls_cert=tls_cert, data_dir=data_dir)


def locate_node(
    *, control: str | None, spec_file: str | None, strict: bool = False
) -> NodeLocation:
    """Find the running node and its token.

    The address: --control ADDR or GATE_CONTROL; else the runtime record of the node running
    this spec (the URL it really bound), found through a pointer keyed by the spec's path or
    in its dataDir; else listen.control of the spec. The token: GATE_TOKEN, else the node's
    dataDir/control.token. The spec is read leniently (read_spec_hints) so that `gate status`
    and `gate rollback` still reach a node whose spec file was broken by an edit; ``strict``
    validates it first, for the commands that send it (apply, diff).
    """
    control = control or os.environ.get("GATE_CONTROL")
    token = os.environ.get("GATE_TOKEN")
    verify: str | bool = os.environ.get("GATE_CONTROL_CA") or True
    if control is not None and token is not None:
        return NodeLocation(url=_url(control), token=token, verify=verify)
    spec_path = find_spec_file(spec_file)
    if strict:
        load_spec_file(spec_path, kind=NODE)
    runtime = find_runtime(spec_path)
    hints: SpecHints | None = None
    if runtime is None:
        hints = read_spec_hints(spec_path)
        runtime = read_runtime(hints.data_dir)
    if runtime is not None:
        url = control or runtime.control
        token_file = runtime.token_file
        cert = runtime.tls_cert
        data_dir = runtime.data_dir
    else:
        assert hints is not None
        url = control or _hint_url(hints, spec_path)
        token_file = hints.data_dir / "control.token"
        cert = hints.tls_cert
        data_dir = hints.data_dir
    if verify is True and cert is not None:
        verify = str(cert)
    return NodeLocation(
        url=_url(url),
        token=token or read_token(token_file),
        verify=verify,
        pid=runtime.pid if runtime is not None else None,
        data_dir=data_dir,
    )


def _hint_url(hints: SpecHints, spec_path: Path) -> str:
    try:
        address = HostPort.parse(hints.control)
    except ValueError as e:
        raise SpecError(
            SpecIssue(
                f"{e}; the node cannot be found without it",
                "spec.listen.control",
                str(spec_path),
                hint="fix the file, or pass --control ADDR (the token from GATE_TOKEN)",
            )
        ) from None
    return f"{'https' if hints.tls_cert is not None else 'http'}://{address}"


def _url(control: str) -> str:
    if not control.startswith(("http://", "https://")):
        control = "http://" + control
    return control.rstrip("/")


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
