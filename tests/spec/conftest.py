"""Shared fixtures for the spec tests: the repo root and fixed node ids."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from gate_runner.identity import NodeId

REPO = Path(__file__).resolve().parents[2]


def _node_id(seed: str) -> NodeId:
    """A fixed, valid node id per seed, so tests can name expected peer ids."""
    return NodeId(hashlib.sha256(seed.encode()).digest())


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def bob() -> NodeId:
    return _node_id("bob")


@pytest.fixture
def carol() -> NodeId:
    return _node_id("carol")
