"""The test rig's shared pieces: free ports, spec files, and `gate` processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import httpx
import pytest

from gate_runner.identity import Identity

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A port free right now. Ports are picked at run time so that tests can run in parallel
    and next to a user's node on the default ports."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def node_yaml(
    tmp: Path, *, name: str = "test-node", control: int, api: int, p2p: int, extra: str = ""
) -> str:
    return f"""\
# test node spec
apiVersion: gate.hellas.ai/v1
kind: Node
metadata:
  name: {name}  # the node's name
spec:
  dataDir: {tmp / "data"}
  listen:
    p2p: ["/ip4/127.0.0.1/tcp/{p2p}"]
    api: 127.0.0.1:{api}
    control: 127.0.0.1:{control}
  providers:
    discovery:
      enabled: false
{extra}"""


def gate_cmd(*args: str, module: str = "gate_runner") -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_gate(*args: str, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        gate_cmd(*args), capture_output=True, text=True, timeout=timeout, check=False, **kw
    )


class GateNode:
    """One `gate up` process, spoken to over its control RPC."""

    # What runs it: gate itself, or a test's launcher of it (tests/timer.py), and the command.
    module = "gate_runner"
    command: tuple[str, ...] = ("up",)

    def __init__(
        self, tmp: Path, *, spec_text: str | None = None, name: str = "test-node", extra: str = ""
    ):
        self.tmp = tmp
        self.control_port = free_port()
        self.api_port = free_port()
        self.p2p_port = free_port()
        self.spec_path = tmp / "gate.yaml"
        self.spec_path.write_text(
            spec_text
            or node_yaml(
                tmp,
                name=name,
                control=self.control_port,
                api=self.api_port,
                p2p=self.p2p_port,
                extra=extra,
            )
        )
        self.log_path = tmp / "gate.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self._id = 0

    @property
    def data_dir(self) -> Path:
        return self.tmp / "data"

    control_host = "127.0.0.1"

    def start(
        self,
        *,
        wait: bool = True,
        env: dict[str, str] | None = None,
        prefix: list[str] | None = None,
    ) -> float:
        """Start and return the seconds until node.status answered."""
        began = time.monotonic()
        with self.log_path.open("ab") as log:
            command = gate_cmd(
                *self.command,
                "-f",
                str(self.spec_path),
                "--log-format",
                "json",
                "--log-level",
                "debug",
                module=self.module,
            )
            self.proc = subprocess.Popen(
                [*(prefix or []), *command],
                stdout=log,
                stderr=log,
                env={**os.environ, **(env or {})},
            )
        if wait:
            # Ready means converged: every component of generation 1 has started (or failed).
            self.wait_for(self._converged, timeout=15, what="node ready")
        return time.monotonic() - began

    def component_ready(self, key: str) -> bool:
        """Whether component ``kind/name`` reports Ready (the P2P side comes up after the
        node is ready, once py-libp2p is imported)."""
        status = self.status()
        for c in (status or {}).get("components", []):
            if f"{c['kind']}/{c['key']}" == key:
                return any(x["type"] == "Ready" and x["status"] for x in c["conditions"])
        return False

    def _converged(self) -> bool:
        status = self.status()
        return status is not None and status["spec"]["observedGeneration"] >= 1

    @property
    def token(self) -> str:
        return (self.data_dir / "control.token").read_text().strip()

    def rpc_raw(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._id += 1
        response = httpx.post(
            f"http://{self.control_host}:{self.control_port}/rpc",
            json={"jsonrpc": "2.0", "method": method, "params": params or {}, "id": self._id},
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        response.raise_for_status()
        reply: dict[str, Any] = response.json()
        return reply

    def rpc(self, method: str, params: dict[str, Any] | None = None) -> Any:
        reply = self.rpc_raw(method, params)
        assert "error" not in reply, reply
        return reply["result"]

    def status(self) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self.rpc("node.status")
            return result
        except (httpx.HTTPError, OSError) as e:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"gate exited with {self.proc.returncode}:\n{self.log()}"
                ) from e
            return None

    def generation(self) -> int:
        status = self.status()
        assert status is not None
        return int(status["spec"]["generation"])

    def wait_for(self, predicate: Callable[[], Any], *, timeout: float, what: str) -> float:
        began = time.monotonic()
        while time.monotonic() - began < timeout:
            if predicate():
                return time.monotonic() - began
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_records(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log().splitlines():
            if line.startswith("{"):
                records.append(json.loads(line))
        return records

    def stop(self, timeout: float = 15) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired as e:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                f"gate did not stop within {timeout}s\n{self.log()[-4000:]}"
            ) from e


def make_node(
    factory: type[GateNode], tmp: Path, name: str, extra: str = ""
) -> tuple[GateNode, Identity]:
    """A node in ``tmp`` whose key is made up front, so a test can list it as another
    node's peer before either starts."""
    tmp.mkdir()
    identity = Identity.generate()
    (tmp / "data").mkdir(mode=0o700)
    identity.save(tmp / "data" / "identity.pem")
    return factory(tmp, name=name, extra=extra), identity


def peers_yaml(*entries: str) -> str:
    return "  peers:\n" + "".join(f"    - {e}\n" for e in entries)


def add_to_spec(node: GateNode, text: str) -> None:
    node.spec_path.write_text(node.spec_path.read_text() + text)


def ollama_provider(url: str) -> str:
    """A static provider entry for the recorded-contract Ollama at ``url``."""
    return f"{{name: ollama, kind: ollama, url: '{url}'}}"


def linked_pair(
    factory: type[GateNode], tmp: Path, provider: str, *, rule: str = "{peer: bob}"
) -> tuple[GateNode, GateNode]:
    """alice with one provider, bob with none; each lists the other, bob dials alice, and
    alice trusts bob with ``rule`` (a peer in spec.peers alone may not use the node).
    Returns once bob has alice's models."""
    alice, alice_id = make_node(factory, tmp / "a", "alice", f"    static:\n      - {provider}\n")
    bob, bob_id = make_node(factory, tmp / "b", "bob")
    add_to_spec(
        alice,
        peers_yaml(f"{{name: bob, id: {bob_id.node_id.peer_id}}}")
        + f"  trust:\n    allow: [{rule}]\n",
    )
    add_to_spec(
        bob,
        peers_yaml(
            f"{{name: alice, id: {alice_id.node_id.peer_id}, "
            f"addrs: ['/ip4/127.0.0.1/tcp/{alice.p2p_port}']}}"
        ),
    )
    alice.start()
    bob.start()
    bob.wait_for(
        lambda: any(p["state"] == "connected" and p["models"] for p in bob.rpc("peers.list")),
        timeout=20,
        what="link up",
    )
    return alice, bob


class ServerProcess:
    """A test server started as ``python -m MODULE --port 0 ...``, which prints
    ``listening on http://HOST:PORT`` once it accepts connections."""

    def __init__(self, module: str, *args: str, prefix: list[str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [*(prefix or []), sys.executable, "-m", module, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 15
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"listening on "):
                break
            if not line and self.proc.poll() is not None:
                break
        else:
            line = b""
        if not line.startswith(b"listening on "):
            self.stop()
            raise AssertionError(f"{module} did not start: {line!r}")
        self.url = line.split()[-1].decode()
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def refused_posts_on_one_connection(
    port: int, *, path: str, headers: str, body: bytes, times: int = 3
) -> list[bytes]:
    """Send ``times`` POSTs on one kept-alive connection, each body a moment after its head
    (as a loaded client's second write arrives), and return each response's status line.
    A server that answers before the body and then closes fails the second one."""
    statuses = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\n{headers}"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        for _ in range(times):
            sock.sendall(head)
            time.sleep(0.1)
            sock.sendall(body)
            reply = b""
            while b"\r\n\r\n" not in reply:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            statuses.append(reply.split(b"\r\n", 1)[0])
            length = int(
                next(
                    (
                        line.split(b":", 1)[1]
                        for line in reply.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    b"0",
                )
            )
            rest = reply.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in reply else b""
            while len(rest) < length:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                rest += chunk
    return statuses


def skip_unless_allowed(reason: str) -> NoReturn:
    """Skip a test that needs a privilege or kernel feature this machine lacks (root, a
    tmpfs mount, a network namespace). Under `make test` as root (GATE_REQUIRE_ROOT=1, as
    in CI) it fails instead, so CI cannot go green by skipping them."""
    if os.environ.get("GATE_REQUIRE_ROOT") == "1":
        pytest.fail(f"GATE_REQUIRE_ROOT=1 but {reason}", pytrace=False)
    pytest.skip(reason)
