"""The control plane's JSON-RPC 2.0 error codes: JSON-RPC's own, then Gate's in the server
range. A module of its own so that the CLI can read them without importing the control
component (hypercorn, starlette, trio); components/control/contract.py publishes them."""

from __future__ import annotations

__all__ = (
    "CONFLICT",
    "GATE_ERROR",
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "NEEDS_WEBSOCKET",
    "PARSE_ERROR",
    "SPEC_INVALID",
)

from typing import Final

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SPEC_INVALID: Final = -32000
CONFLICT: Final = -32001
GATE_ERROR: Final = -32002
NEEDS_WEBSOCKET: Final = -32003
