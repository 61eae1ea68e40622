"""What the node keeps in dataDir: state.db, the request log in it, and the control token."""

from __future__ import annotations

from gate_runner.state.db import HistoryEntry, SetAside, StateDB, StateError
from gate_runner.state.requests import RequestLog, RequestRecord, new_request_id
from gate_runner.state.token import load_or_create_token, read_token

__all__ = (
    "HistoryEntry",
    "RequestLog",
    "RequestRecord",
    "SetAside",
    "StateDB",
    "StateError",
    "load_or_create_token",
    "new_request_id",
    "read_token",
)
