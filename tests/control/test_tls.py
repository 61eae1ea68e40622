"""The control plane off loopback: HTTPS with the spec's certificate (the CLI trusts that
certificate), or plain HTTP only with control.insecure, and a warning either way."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import httpx
import pytest

from tests.httpclient.servers import make_certificate
from tests.rig import GateNode, run_gate

pytestmark = pytest.mark.e2e


def test_control_over_tls(node_factory: type[GateNode], tmp_path: Path) -> None:
    cert, key = make_certificate(tmp_path)
    node = node_factory(
        tmp_path, extra=f"  control:\n    tls: {{certFile: {cert}, keyFile: {key}}}\n"
    )
    node.start(wait=False)
    base = f"https://127.0.0.1:{node.control_port}"

    def up() -> bool:
        try:
            return (
                httpx.get(
                    f"{base}/healthz", verify=ssl.create_default_context(cafile=cert)
                ).status_code
                == 200
            )
        except httpx.HTTPError:
            return False

    node.wait_for(up, timeout=15, what="https control")
    headers = {"Authorization": f"Bearer {node.token}"}
    body = {"jsonrpc": "2.0", "method": "node.status", "id": 1}
    reply = httpx.post(
        f"{base}/rpc", json=body, headers=headers, verify=ssl.create_default_context(cafile=cert)
    ).json()
    assert reply["result"]["name"] == "test-node"
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{node.control_port}/rpc", json=body, headers=headers)
    # The CLI finds https and the certificate in the spec, for calls and the event stream.
    status = run_gate("status", "-f", str(node.spec_path), "-o", "json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["name"] == "test-node"
    logs = run_gate("logs", "--file", str(node.spec_path), "-n", "1")
    assert logs.returncode == 0, logs.stderr
    link = run_gate("ui", "-f", str(node.spec_path), "--no-browser")
    assert f"https://127.0.0.1:{node.control_port}/login?code=" in link.stdout, link.stderr


def test_plain_http_off_loopback_needs_insecure_and_warns(
    node_factory: type[GateNode], tmp_path: Path
) -> None:
    refused = node_factory(tmp_path)
    text = refused.spec_path.read_text().replace(
        f"control: 127.0.0.1:{refused.control_port}", f"control: 0.0.0.0:{refused.control_port}"
    )
    refused.spec_path.write_text(text)
    result = run_gate("validate", "-f", str(refused.spec_path))
    assert result.returncode == 2
    assert "spec.listen.control" in result.stderr and "control.insecure: true" in result.stderr

    refused.spec_path.write_text(text + "  control:\n    insecure: true\n")
    refused.start()
    assert refused.rpc("node.status")["name"] == "test-node"
    warnings = [r for r in refused.log_records() if r.get("level") == "warning"]
    assert any("reachable from the network in clear text" in r["msg"] for r in warnings)
