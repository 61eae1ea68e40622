"""`gate ... | head -1`: when the reader closes the pipe early, gate exits quietly (141, as a
tool killed by SIGPIPE does), with no traceback."""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.rig import ROOT, GateNode, gate_cmd, run_gate

pytestmark = pytest.mark.e2e


def _assert_quiet(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(30) == 141, err
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
    assert "Exception ignored" not in err


@pytest.mark.parametrize(
    "command", [["status"], ["history"], ["peers", "ls", "-o", "yaml"], ["logs", "-n", "20"]]
)
def test_a_reader_gone_before_the_output(node: GateNode, command: list[str]) -> None:
    file_flag = "--file" if command[0] == "logs" else "-f"
    proc = subprocess.Popen(
        gate_cmd(*command, file_flag, str(node.spec_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    proc.stdout.close()  # like `| true`: nobody reads what it prints
    _assert_quiet(proc)


def test_a_reader_gone_while_following(node: GateNode) -> None:
    """`gate logs -f | head -c 100`: the reader takes a few bytes and leaves, the node logs on."""
    proc = subprocess.Popen(
        gate_cmd("logs", "-f", "-n", "5", "--file", str(node.spec_path)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    assert len(proc.stdout.read(100)) == 100
    proc.stdout.close()
    for name in ("a", "b", "c"):  # each apply logs, so gate writes into the closed pipe
        renamed = node.tmp / f"{name}.yaml"
        renamed.write_text(
            re.sub(r"(?m)^  name: .*$", f"  name: node-{name}", node.spec_path.read_text())
        )
        applied = run_gate("apply", "-f", str(renamed))
        assert applied.returncode == 0, applied.stderr
        if proc.poll() is not None:
            break
    _assert_quiet(proc)
