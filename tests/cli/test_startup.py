"""`gate` starts light: parsing a command loads none of the node's server stack."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("gate_runner.components", "hypercorn", "starlette", "trio", "libp2p")


def test_the_cli_parses_without_loading_the_server_stack() -> None:
    # A fresh interpreter: this test process has long imported all of these.
    probe = (
        "import json, sys\n"
        "from gate_runner.cli.main import build_parser\n"
        "build_parser().parse_args(['status'])\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert "gate_runner.cli.main" in loaded
    assert [m for m in loaded if m.startswith(HEAVY)] == []
