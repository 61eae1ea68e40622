"""The error classes every layer raises: each one carries what went wrong and how to fix it."""

from __future__ import annotations

__all__ = (
    "ConflictError",
    "GateError",
    "IdentityError",
    "PermanentError",
    "SpecError",
    "SpecIssue",
    "TransientError",
)

from dataclasses import dataclass


class GateError(Exception):
    """Root of every error Gate raises on purpose.

    ``message`` says what went wrong, ``hint`` (optional) says what to do about it.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


@dataclass(frozen=True)
class SpecIssue:
    """One problem found in a spec document, located by file, line, column and JSON path."""

    message: str
    path: str = ""  # JSON path, e.g. "spec.peers[1].id"; "" for the whole document
    source: str = "<spec>"
    line: int | None = None  # 1-based
    column: int | None = None  # 1-based
    hint: str | None = None

    def __str__(self) -> str:
        where = self.source
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        text = f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "path": self.path,
            "source": self.source,
            "line": self.line,
            "column": self.column,
            "hint": self.hint,
        }


class SpecError(GateError):
    """Raised when a spec document cannot be accepted: bad YAML, schema or semantic errors.

    ``issues`` lists every problem found (at least one), each with its own location.
    """

    def __init__(self, issues: list[SpecIssue] | SpecIssue) -> None:
        self.issues: tuple[SpecIssue, ...] = (
            (issues,) if isinstance(issues, SpecIssue) else tuple(issues)
        )
        if not self.issues:
            raise ValueError("SpecError needs at least one issue")
        super().__init__("\n".join(str(i) for i in self.issues))

    def __str__(self) -> str:
        return self.message


class IdentityError(GateError):
    """Raised when the node's key file is missing, unreadable, too open or corrupt."""


class ConflictError(GateError):
    """Raised when ``spec.apply`` names an ``expectedGeneration`` that is not the current one."""

    def __init__(self, *, expected: int, current: int) -> None:
        super().__init__(
            f"spec generation is {current}, not the expected {expected}",
            hint="fetch the current spec with `gate status`, merge your change and apply again",
        )
        self.expected = expected
        self.current = current


class TransientError(GateError):
    """Raised by a component when a retry may succeed (port busy, peer unreachable).

    The supervisor retries after ``delay`` seconds (or its own backoff when None),
    or sooner when a new spec arrives.
    """

    def __init__(self, message: str, *, delay: float | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.delay = delay


class PermanentError(GateError):
    """Raised by a component when retrying cannot help until its slice of the spec changes."""
