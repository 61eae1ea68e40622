"""The `state` component: state.db's health as conditions, on a real state.db."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate_runner.components.state import StateComponent
from gate_runner.state import StateDB
from gate_runner.state.requests import RequestLog
from tests.components.parts import condition, converge, load_node, node_parts, node_spec

pytestmark = pytest.mark.anyio


def test_desired_is_the_data_dir_and_ignores_other_edits(tmp_path: Path) -> None:
    db = StateDB(tmp_path / "state.db")
    try:
        component = StateComponent(state=db, requests=RequestLog(db))
        spec = node_spec(tmp_path)
        assert component.desired(spec) == {"state.db": tmp_path}
        other = node_spec(tmp_path, trust={"mode": "private"})
        assert component.desired(other) == component.desired(spec)
    finally:
        db.close()


async def test_ready_open_then_a_new_data_dir_applies_in_place(tmp_path: Path) -> None:
    async with node_parts(load_node(tmp_path)) as parts:
        state = StateComponent(state=parts.state, requests=parts.requests)
        await converge(parts.supervisor, state, parts.spec, generation=1)
        ready = condition(parts.supervisor, "state", "state.db")
        assert (ready.status, ready.reason, ready.message) == (
            True,
            "Open",
            str(tmp_path / "state.db"),
        )
        degraded = condition(parts.supervisor, "state", "state.db", "Degraded")
        assert (degraded.status, degraded.reason) == (False, "Healthy")

        # The controller refuses a new dataDir; the component has nothing to restart for.
        plan = await converge(
            parts.supervisor, state, node_spec(tmp_path / "elsewhere"), generation=2
        )
        assert [u.key for u in plan.updates] == [("state", "state.db")]
        (status,) = parts.supervisor.statuses()
        assert status.restarts == 0 and status.ready and status.observed_generation == 2


async def test_a_damaged_state_db_is_set_aside_and_reported(tmp_path: Path) -> None:
    (tmp_path / "state.db").write_bytes(b"this is not an SQLite database" * 100)
    async with node_parts(load_node(tmp_path)) as parts:
        state = StateComponent(state=parts.state, requests=parts.requests)
        await converge(parts.supervisor, state, parts.spec, generation=1)
        ready = condition(parts.supervisor, "state", "state.db")
        degraded = condition(parts.supervisor, "state", "state.db", "Degraded")
        # Still Ready (the node runs on a fresh state.db), but the reason says what happened.
        assert (ready.status, ready.reason) == (True, "Recovered")
        assert (degraded.status, degraded.reason) == (True, "Recovered")
        (moved,) = parts.state.set_aside
        assert moved.path.parent == tmp_path and moved.path.name.startswith("state.db.corrupt-")
        assert moved.path.name in ready.message
