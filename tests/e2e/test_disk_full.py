"""A node whose disk fills up: `spec.apply` says "no space left on device" and leaves gate.yaml
as it was, the request log's failing writes show in `gate status`, and the log file never
holds half a line. A real tmpfs holds gate.yaml, the log and the dataDir (root only)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.rig import GateNode
from tests.tmpfs import fill, mounted_tmpfs

pytestmark = pytest.mark.e2e

FILES = ["data", "gate.out", "gate.yaml"]  # and no temp file of a failed write of gate.yaml


def whole_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a JSON log, each a whole object; fails on a torn line."""
    data = path.read_bytes()
    assert data.endswith(b"\n"), f"the log ends in half a line: {data[-200:]!r}"
    records = []
    for line in data.decode().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise AssertionError(f"a torn or foreign line in the log: {line[:300]!r}") from e
    return records


def state_ready(node: GateNode) -> dict[str, object]:
    status = node.status()
    assert status is not None
    (state,) = [c for c in status["components"] if c["kind"] == "state"]
    (ready,) = [c for c in state["conditions"] if c["type"] == "Ready"]
    return ready  # type: ignore[no-any-return]


def chat(node: GateNode) -> int:
    """One API request (no provider serves the model, so it fails fast): one record."""
    reply = httpx.post(
        f"http://127.0.0.1:{node.api_port}/v1/chat/completions",
        json={"model": "nope", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1},
        timeout=10,
    )
    return reply.status_code


def test_a_full_disk_fails_apply_cleanly_and_shows_in_status(
    tmp_path: Path, node_factory: type[GateNode]
) -> None:
    with mounted_tmpfs(tmp_path / "fs", size="2m") as fs:
        node = node_factory(fs)
        node.start()
        node.wait_for(lambda: node.component_ready("api/api"), timeout=10, what="api")
        old = node.spec_path.read_bytes()
        new = old.decode().replace("name: test-node", "name: renamed")

        filler = fill(fs)
        # Several applies: each logs its error, and once the room left in the log file's last
        # page is less than a line, a line is cut short by the full disk.
        for _ in range(20):
            reply = node.rpc_raw("spec.apply", {"yaml": new})
            error = reply["error"]
            assert "no space left on device" in error["message"], error
            assert "writable" not in str(error)
            assert str(fs) in error["data"]["hint"]
            assert node.spec_path.read_bytes() == old
            assert sorted(p.name for p in fs.iterdir()) == sorted([*FILES, "filler"])
        whole_lines(node.log_path)  # no half line, while the disk is still full
        # The node's log has the error, for those who did not make the call.
        tail = node.rpc("logs.tail", {"limit": 200, "level": "error"})
        assert any("no space left on device" in r["msg"] for r in tail), tail

        # Records that cannot be written show in the state component, until they can be.
        assert chat(node) >= 400
        node.wait_for(
            lambda: state_ready(node)["reason"] == "WriteFailing", timeout=10, what="WriteFailing"
        )
        message = str(state_ready(node)["message"])
        assert "database or disk is full" in message and "no space left on device" in message
        assert state_ready(node)["status"] is True

        filler.unlink()
        chat(node)
        node.wait_for(lambda: state_ready(node)["reason"] == "Open", timeout=10, what="Open")
        assert node.rpc("spec.apply", {"yaml": new})["generation"] == 2
        assert "name: renamed" in node.spec_path.read_text()
        assert node.stop() == 0

        records = whole_lines(node.log_path)
        lost = [r for r in records if "log lines were lost" in str(r["msg"])]
        assert lost and "no space left on device" in str(lost[0]["msg"]), lost
