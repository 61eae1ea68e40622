from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.rig import GateNode

# The real llama.cpp engine on a tiny generated model (DESIGN.md section 12).
pytest_plugins = ("tests.llm.engine",)


@pytest.fixture(scope="session", autouse=True)
def private_state_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """`gate up` keeps a pointer to its runtime record under $XDG_STATE_HOME/gate: the
    nodes the tests start keep theirs out of the real home directory."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("state-home")))
        yield


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (marked anyio) run on trio only: Gate runs on nothing else."""
    return "trio"


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[type[GateNode]]:
    started: list[GateNode] = []

    class _Node(GateNode):
        def start(self, **kw: object) -> float:  # type: ignore[override]
            started.append(self)
            return super().start(**kw)  # type: ignore[arg-type]

    yield _Node
    for node in started:
        node.stop()


@pytest.fixture
def node(tmp_path: Path, node_factory: type[GateNode]) -> GateNode:
    n = node_factory(tmp_path)
    n.start()
    return n
