"""Which web pages an HTTP listener answers: the Host check against DNS rebinding, the
Origin and Sec-Fetch-Site checks against cross-site requests, and CORS for listed web apps.

A web page is not a client. Every listener of the node (the API, the control plane) asks
this module before it does anything else with a request.
"""

from __future__ import annotations

__all__ = ("ANY_ORIGIN", "LOOPBACK_NAMES", "SitePolicy", "host_of")

import ipaddress
from collections.abc import Iterable

ANY_ORIGIN = "*"
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = ("0.0.0.0", "::")
_CACHE_LIMIT = 256  # distinct Host values remembered; a flood of new ones just re-parses


def host_of(host_header: str) -> str:
    """The name in a Host header: lowercase, without port, brackets or a trailing dot
    (``Localhost.:8145`` and ``[::1]:8145`` name ``localhost`` and ``::1``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class SitePolicy:
    """The names and origins one listener accepts.

    ``bound_host`` is the listen address. Loopback names and addresses are always accepted;
    so are ``hosts``, and on a wildcard bind (0.0.0.0, ::) any IP literal, since a page
    reached by DNS rebinding always arrives under a name. ``origins`` are the browser
    origins allowed (``*`` for any web page); a browser request from anywhere else, or one
    that says ``Sec-Fetch-Site: cross-site``, is refused.
    """

    def __init__(
        self, *, bound_host: str, hosts: Iterable[str] = (), origins: Iterable[str] = ()
    ) -> None:
        names = set(LOOPBACK_NAMES)
        self.wildcard = bound_host in _WILDCARDS
        if not self.wildcard:
            names.add(host_of(bound_host))
        names.update(host_of(h) for h in hosts)
        self.names = frozenset(names)
        self.origins = frozenset(o.rstrip("/").lower() for o in origins)
        self.any_origin = ANY_ORIGIN in self.origins
        self._seen: dict[str, bool] = {}

    def host_allowed(self, host_header: str) -> bool:
        known = self._seen.get(host_header)
        if known is not None:
            return known
        host = host_of(host_header)
        allowed = host in self.names
        if not allowed:
            address = _ip(host)
            allowed = address is not None and (address.is_loopback or self.wildcard)
        if len(self._seen) < _CACHE_LIMIT:
            self._seen[host_header] = allowed
        return allowed

    def origin_allowed(self, origin: str) -> bool:
        """An ``Origin`` header's value. ``null`` (a sandboxed frame, a file: page, a
        redirect across origins) is allowed only when every origin is."""
        if self.any_origin:
            return True
        return origin != "null" and origin.rstrip("/").lower() in self.origins

    def cross_site_refused(self, origin: str | None, fetch_site: str | None) -> bool:
        """A browser request this listener must refuse: a foreign ``Origin``, or no Origin
        but ``Sec-Fetch-Site: cross-site`` (an ``<img>`` or a navigation from another site)."""
        if origin is not None:
            return not self.origin_allowed(origin)
        return fetch_site == "cross-site" and not self.any_origin
