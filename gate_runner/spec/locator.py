"""Where a spec issue is: ``Locator`` turns a JSON path into a SpecIssue with its file and line
(or the env override that set it), and ``in_file_order`` sorts issues the way a reader meets them.
"""

from __future__ import annotations

__all__ = ("Locator", "in_file_order")

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from gate_runner.errors import SpecIssue
from gate_runner.spec.yamlsafe import JsonPath, Mark, format_path, parse_path


@dataclass(frozen=True)
class Locator:
    """Turns a JSON path into a located SpecIssue.

    ``marks`` come from the parsed file; paths at or under an env override are attributed to the
    variable (``env GATE_LISTEN_API``); ``note`` is added to every hint (e.g. after a migration).
    """

    source: str
    marks: Mapping[JsonPath, Mark] = field(default_factory=dict)
    overrides: Mapping[JsonPath, str] = field(default_factory=dict)
    note: str | None = None

    def issue(self, path: JsonPath, message: str, hint: str | None = None) -> SpecIssue:
        for prefix, name in self.overrides.items():
            if path[: len(prefix)] == prefix:
                return SpecIssue(message, format_path(path), f"env {name}", hint=hint)
        line = column = None
        probe = path
        while True:
            mark = self.marks.get(probe)
            if mark is not None:
                line, column = mark
                break
            if not probe:
                break
            probe = probe[:-1]
        if self.note:
            hint = f"{hint}; {self.note}" if hint else self.note
        return SpecIssue(message, format_path(path), self.source, line, column, hint)

    def relocate(self, issue: SpecIssue) -> SpecIssue:
        """Locate an issue raised without a source or line (by a migration, say)."""
        try:
            path = parse_path(issue.path)
        except ValueError:
            return replace(issue, source=self.source)
        return self.issue(path, issue.message, issue.hint)


def in_file_order(issues: Iterable[SpecIssue]) -> list[SpecIssue]:
    """``issues`` without repeats, by line and column; issues with no line (env) come last."""
    unique = list(dict.fromkeys(issues))
    return sorted(
        unique, key=lambda i: (i.line is None, i.line or 0, i.column or 0, i.source, i.path)
    )
