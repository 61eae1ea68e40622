"""The control plane: JSON-RPC 2.0 on POST /rpc behind a bearer token."""

from __future__ import annotations

from gate_runner.components.control.component import ControlComponent, ControlSlice

__all__ = ("ControlComponent", "ControlSlice")
