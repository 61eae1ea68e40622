"""Durations and sizes as the spec writes them."""

from __future__ import annotations

import pytest

from gate_runner.spec.durations import format_duration, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30.0),
        ("200ms", 0.2),
        ("1m30s", 90.0),
        ("2h", 7200.0),
        ("1.5s", 1.5),
        ("0s", 0.0),
        ("1h2m3s", 3723.0),
        ("500us", 0.0005),
        ("10ns", 1e-8),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30", "-1s", "abc", "", "1 s", "1d", "s", "1.s", "30s\n"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (0.2, "200ms"),
        (30, "30s"),
        (90, "1m30s"),
        (3600, "1h"),
        (3723, "1h2m3s"),
        (1.5, "1.5s"),
        (0.0005, "500us"),
        (61.25, "1m1.25s"),
    ],
)
def test_format_duration_round_trips(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "size"),
    [(0, 0), (512, 512), ("512", 512), ("512B", 512), ("64KiB", 65536), ("1MB", 1_000_000)],
)
def test_parse_size(value: int | str, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [-1, "1 KiB", "1kib", "lots", True])
def test_parse_size_refuses(value: int | str) -> None:
    with pytest.raises(ValueError, match="not a size"):
        parse_size(value)
