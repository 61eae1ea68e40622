"""`gate ui`: a one-time login link for the web UI, opened in a graphical browser if there
is one."""

from __future__ import annotations

__all__ = ("register",)

import argparse
import os
import sys

from gate_runner.cli.command import EXIT_OK, Subparsers, add, node_client
from gate_runner.cli.output import emit


def cmd_ui(args: argparse.Namespace) -> int:
    with node_client(args) as client:
        link = client.call("node.loginLink")
    if args.output != "table":
        emit(link, args.output, str)
        return EXIT_OK
    print(f"Open this link to log in (it works once, until {link['expiresAt']}):")
    print(f"  {link['url']}")
    if not args.no_browser and _has_browser():
        import webbrowser

        webbrowser.open(link["url"])
    return EXIT_OK


def _has_browser() -> bool:
    """A graphical browser only: on a server, webbrowser would start lynx in this terminal."""
    if sys.platform in ("darwin", "win32"):
        return True
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    import webbrowser

    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        return False
    return not isinstance(browser, webbrowser.GenericBrowser) or browser.name not in (
        "www-browser",
        "links",
        "elinks",
        "lynx",
        "w3m",
    )


def register(
    sub: Subparsers, *, common: argparse.ArgumentParser, out: argparse.ArgumentParser
) -> None:
    """Add `gate ui`."""
    ui = add(
        sub,
        "ui",
        cmd_ui,
        "print a one-time login link for the web UI, and open it in a browser if there is one",
        ["gate ui", "gate ui --no-browser            # on a server: open the link elsewhere"],
        (common, out),
    )
    ui.add_argument("--no-browser", action="store_true", help="only print the link")
