"""Gate: a node runner for a private peer-to-peer AI-compute network."""

from __future__ import annotations

__all__ = ("__version__",)

__version__ = "0.1.0"
