"""The API's error boundary: a failure inside the app before any response still gets the
OpenAI-shaped error (wire/openai.py openai_error), not the server's bare 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gate_runner.components.api.app import ApiApp
from gate_runner.components.sites import SitePolicy
from gate_runner.providers.registry import ProviderRegistry
from gate_runner.router import Proxy
from gate_runner.spec import RoutingSpec

pytestmark = pytest.mark.anyio


def _broken_node_info() -> dict[str, Any]:
    raise KeyError("internal-detail")


async def test_a_bug_before_the_response_is_an_openai_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ProviderRegistry()
    proxy = Proxy(
        registry=registry,
        routing=RoutingSpec(),
        node_name="n",
        max_body=1 << 20,
        on_start=lambda: None,
        on_done=lambda outcome, began, ended: None,
    )
    app = ApiApp(
        proxy=proxy,
        registry=registry,
        node_info=_broken_node_info,  # GET /v1/models asks for it: the failure under test
        sites=SitePolicy(bound_host="127.0.0.1"),
    )
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/models",
        "headers": [(b"host", b"127.0.0.1:31145")],
        "query_string": b"",
    }
    await app(scope, receive, send)
    assert sent[0]["status"] == 500
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/json"
    error = json.loads(sent[1]["body"])["error"]
    assert error["type"] == "server_error" and "internal-detail" not in error["message"]
    assert "serving GET /v1/models failed" in caplog.text  # the node's log has the cause
