"""Helpers for the web UI's browser tests: log a page in to a real node, open a page."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Page

    from tests.rig import GateNode


def login(page: Page, node: GateNode) -> None:
    """Open the node's one-time link (node.loginLink, as `gate ui` prints it) and wait for
    the shell with its live socket open."""
    link = node.rpc("node.loginLink")["url"]
    page.goto(link)
    page.wait_for_selector(".conn.open", timeout=10_000)


def open_page(page: Page, node: GateNode, name: str) -> None:
    """Go to #/<name> and wait until the shell shows it as the current page."""
    page.goto(f"http://127.0.0.1:{node.control_port}/#/{name}")
    page.wait_for_selector(f'.tabs a[href="#/{name}"][aria-current="page"]')
