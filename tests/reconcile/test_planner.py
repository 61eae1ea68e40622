"""The planner is pure: a table of desired, actual and the expected actions."""

from __future__ import annotations

import pytest

from gate_runner.reconcile.planner import Plan, Start, Stop, Update, plan

A = ("api", "api")
C = ("control", "control")
P1 = ("provider", "ollama")
P2 = ("provider", "lmstudio")


@pytest.mark.parametrize(
    ("desired", "actual", "expected"),
    [
        pytest.param({}, {}, Plan(), id="nothing"),
        pytest.param({A: 1, C: 2}, {A: 1, C: 2}, Plan(), id="identical spec: no action"),
        pytest.param({A: 1}, {}, Plan(starts=(Start(A, 1),)), id="start new"),
        pytest.param({}, {A: 1}, Plan(stops=(Stop(A),)), id="stop removed"),
        pytest.param({A: 2}, {A: 1}, Plan(updates=(Update(A, 1, 2),)), id="update changed"),
        pytest.param(
            {A: 1, P1: "b"},
            {A: 1, P1: "a", P2: "x"},
            Plan(stops=(Stop(P2),), updates=(Update(P1, "a", "b"),)),
            id="edit one provider, drop another: api untouched",
        ),
        pytest.param(
            {P2: "x", C: 1},
            {P1: "a", C: 1},
            Plan(stops=(Stop(P1),), starts=(Start(P2, "x"),)),
            id="rename is stop plus start",
        ),
        pytest.param(
            {P2: 1, P1: 1, A: 1},
            {},
            Plan(starts=(Start(A, 1), Start(P2, 1), Start(P1, 1))),
            id="deterministic order by key",
        ),
    ],
)
def test_plan(desired: dict, actual: dict, expected: Plan) -> None:
    assert plan(desired=desired, actual=actual) == expected


def test_stops_come_before_starts() -> None:
    result = plan(desired={P2: 1, A: 2}, actual={P1: 1, A: 1})
    kinds = [type(a) for a in result.actions()]
    assert kinds == [Stop, Update, Start]


def test_plan_does_not_mutate_inputs() -> None:
    desired, actual = {A: 1}, {C: 1}
    plan(desired=desired, actual=actual)
    assert desired == {A: 1} and actual == {C: 1}
