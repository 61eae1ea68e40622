"""What the node keeps in dataDir: state.db and the control token."""

from __future__ import annotations

from gate_runner.state.db import HistoryEntry, StateDB, StateError
from gate_runner.state.token import load_or_create_token, read_token

__all__ = ("HistoryEntry", "StateDB", "StateError", "load_or_create_token", "read_token")
