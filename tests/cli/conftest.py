"""Fixtures for the CLI tests: the Ollama contract server, a port nothing listens on, and
`gate` run as a separate process."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from gate_runner.identity import NodeId
from tests.rig import ServerProcess, free_port

MODELS = ("llama3:8b", "qwen2:0.5b")


@pytest.fixture(scope="session")
def ollama() -> Iterator[ServerProcess]:
    """The recorded-contract Ollama server, for the wizard's probe to find."""
    server = ServerProcess("tests.fakes.ollama", "--models", ",".join(MODELS))
    yield server
    server.stop()


@pytest.fixture
def dead_url() -> str:
    """An OpenAI-style base URL on a loopback port nothing listens on."""
    return f"http://127.0.0.1:{free_port()}/v1"


def node_id(seed: str) -> NodeId:
    """A fixed, valid node id per seed."""
    return NodeId(hashlib.sha256(seed.encode()).digest())


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment for a `gate` child: HOME in tmp_path (so `~` never reaches the real
    home), and no GATE_* overrides from the developer's shell."""
    home = tmp_path / "home"
    home.mkdir()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("GATE_")}
    clean.update(HOME=str(home), TERM="xterm", NO_PROXY="*")
    return clean


Gate = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def gate(tmp_path: Path, env: dict[str, str]) -> Gate:
    """Run `python -m gate_runner ARGS` in tmp_path with stdin a pipe that stays open and
    empty: a command that read stdin would hang until the timeout fails the test."""

    def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        read_end, write_end = os.pipe()
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "gate_runner", *args],
                cwd=tmp_path,
                env=env,
                stdin=read_end,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        finally:
            os.close(read_end)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(
                f"gate {args} did not exit in {timeout}s: did it read stdin?"
            ) from None
        finally:
            os.close(write_end)
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    return run
