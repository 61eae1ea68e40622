"""Two nodes on real separate addresses: node A in a network namespace of its own, linked to
the test's namespace by a veth pair, and node B beside the test, dialing A across the link."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gate_runner.identity import Identity
from tests.rig import GateNode, ServerProcess, free_port, skip_unless_allowed

pytestmark = pytest.mark.e2e

# Addresses of the test's own hosts, inside namespaces the test creates (never routed).
A_ADDR, B_ADDR = "10.231.7.1", "10.231.7.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@pytest.fixture
def namespace() -> Iterator[str]:
    if os.geteuid() != 0:
        skip_unless_allowed("creating network namespaces needs root (CI runs as root)")
    if shutil.which("ip") is None:
        pytest.fail(
            "the ip command is not installed (`scripts/system-deps.sh test` installs iproute2)"
        )
    tag = str(os.getpid() % 100_000)
    ns, here, there = f"gate-a-{tag}", f"gva{tag}", f"gvb{tag}"
    try:
        _ip("netns", "add", ns)
    except subprocess.CalledProcessError as e:
        skip_unless_allowed(f"the kernel refused a network namespace here: {e.stderr.strip()}")
    try:
        _ip("link", "add", here, "type", "veth", "peer", "name", there)
        _ip("link", "set", there, "netns", ns)
        _ip("addr", "add", f"{B_ADDR}/30", "dev", here)
        _ip("link", "set", here, "up")
        _ip("-n", ns, "addr", "add", f"{A_ADDR}/30", "dev", there)
        _ip("-n", ns, "link", "set", there, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False, capture_output=True)
        subprocess.run(["ip", "link", "del", here], check=False, capture_output=True)


def test_link_across_namespaces(tmp_path: Path, namespace: str) -> None:
    inside = ["ip", "netns", "exec", namespace]
    upstream = ServerProcess("tests.fakes.badhttp", prefix=inside)  # A's engine, A's loopback
    ids = {}
    for name in ("a", "b"):
        (tmp_path / name / "data").mkdir(parents=True, mode=0o700)
        ids[name] = Identity.generate()
        ids[name].save(tmp_path / name / "data" / "identity.pem")
    p2p_a, control_a = free_port(), free_port()
    a = GateNode(
        tmp_path / "a",
        spec_text=f"""\
apiVersion: gate.hellas.ai/v1
kind: Node
metadata: {{name: alice}}
spec:
  dataDir: {tmp_path / "a" / "data"}
  listen:
    p2p: ["/ip4/{A_ADDR}/tcp/{p2p_a}"]
    api: 127.0.0.1:{free_port()}
    control: {A_ADDR}:{control_a}
  control: {{insecure: true}}  # the test reaches it over the veth pair, in clear text
  providers:
    discovery: {{enabled: false}}
    static: [{{name: bad, kind: openai, url: '{upstream.url}/v1'}}]
  peers: [{{name: bob, id: {ids["b"].node_id.peer_id}}}]
  trust: {{allow: [{{peer: bob}}]}}  # bob uses alice's engine
""",
    )
    a.control_host, a.control_port = A_ADDR, control_a
    b = GateNode(
        tmp_path / "b",
        name="bob",
        extra=(
            f"  peers: [{{name: alice, id: {ids['a'].node_id.peer_id}, "
            f"addrs: ['/ip4/{A_ADDR}/tcp/{p2p_a}']}}]\n"
        ),
    )
    try:
        a.start(prefix=inside)
        b.start()
        b.wait_for(
            lambda: any(p["models"] for p in b.rpc("peers.list")),
            timeout=20,
            what="link across the veth pair",
        )
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{b.api_port}/v1", api_key="x", max_retries=0
        )
        raw = client.chat.completions.with_raw_response.create(
            model="ok", messages=[{"role": "user", "content": "x"}]
        )
        assert raw.headers["x-gate-node"] == "alice"
        records = a.rpc("requests.list", {"limit": 1})
        assert records[0]["source"] == "peer:bob"
        peer = next(p for p in b.rpc("peers.list") if p["name"] == "alice")
        assert peer["state"] == "connected" and peer["lastRttMs"] > 0
    finally:
        b.stop()
        a.stop()
        upstream.stop()
