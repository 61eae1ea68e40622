"""One WebSocket on /rpc/ws: JSON-RPC calls both ways of a single socket, and the event
subscriptions made on it, each pumped by its own task so a slow reader only loses events."""

from __future__ import annotations

__all__ = ("serve_websocket",)

import itertools
import json
import logging
from typing import Any

import anyio
import trio
from anyio.abc import TaskGroup
from starlette.websockets import WebSocket, WebSocketDisconnect

from gate_runner.components.control.rpc import Dispatcher, InvalidParams, Method
from gate_runner.events import EVENT_TYPES, EventBus, Subscription

log = logging.getLogger(__name__)

# Calls one socket may have running at once; more wait their turn (a slow spec.apply does
# not hold up a status call behind it, and a client cannot start thousands).
MAX_CALLS = 8
MAX_SUBSCRIPTIONS = 16


class _Socket:
    def __init__(self, websocket: WebSocket, bus: EventBus, tg: TaskGroup) -> None:
        self._ws = websocket
        self._bus = bus
        self._tg = tg
        self._send_lock = anyio.Lock()
        # Taken before a call's task starts: a client that sends faster than its calls
        # finish waits on its own socket instead of piling up tasks here.
        self.calls = anyio.Semaphore(MAX_CALLS)
        self._ids = itertools.count(1)
        self._subscriptions: dict[str, Subscription] = {}
        self._unstarted: list[tuple[str, Subscription]] = []
        self.methods: dict[str, Method] = {
            "events.subscribe": self._subscribe,
            "events.unsubscribe": self._unsubscribe,
        }

    async def send(self, message: Any) -> None:
        text = json.dumps(message)
        async with self._send_lock:
            try:
                await self._ws.send_text(text)
            except Exception as e:  # the client is gone: the receive loop will see it too
                log.debug("websocket send failed: %r", e)
                self._tg.cancel_scope.cancel()

    async def call(self, dispatcher: Dispatcher, payload: str | bytes) -> None:
        """Runs with one of the socket's call slots held (taken by the reader)."""
        try:
            reply = await dispatcher.handle_bytes(payload, session=self.methods)
            if reply is not None:
                await self.send(reply)
            # A subscription's events start after the reply that names it.
            unstarted, self._unstarted = self._unstarted, []
            for sid, subscription in unstarted:
                self._tg.start_soon(self._pump, sid, subscription)
        finally:
            self.calls.release()

    async def _subscribe(self, params: dict[str, Any]) -> Any:
        if len(self._subscriptions) >= MAX_SUBSCRIPTIONS:
            raise InvalidParams(f"at most {MAX_SUBSCRIPTIONS} subscriptions a socket")
        subscription = self._bus.subscribe(
            params.get("types", EVENT_TYPES),
            capacity=params.get("queue", 1000),
            min_log_level=params.get("level", "info"),
        )
        sid = f"s{next(self._ids)}"
        self._subscriptions[sid] = subscription
        self._unstarted.append((sid, subscription))
        return {"subscription": sid, "seq": self._bus.last_seq}

    async def _unsubscribe(self, params: dict[str, Any]) -> Any:
        subscription = self._subscriptions.pop(params["subscription"], None)
        if subscription is not None:
            subscription.close()
        return {"unsubscribed": subscription is not None}

    async def _pump(self, sid: str, subscription: Subscription) -> None:
        while True:
            try:
                event = await subscription.next()
            except trio.EndOfChannel:
                return
            params = {"subscription": sid, **event.to_dict(), "dropped": subscription.dropped}
            await self.send({"jsonrpc": "2.0", "method": "events.event", "params": params})

    def close(self) -> None:
        for subscription in self._subscriptions.values():
            subscription.close()
        self._subscriptions.clear()


async def serve_websocket(
    websocket: WebSocket, *, dispatcher: Dispatcher, bus: EventBus, stopping: anyio.Event
) -> None:
    """Serve one accepted socket until the client leaves or the server stops."""
    async with anyio.create_task_group() as tg:
        socket = _Socket(websocket, bus, tg)

        async def close_on_stop() -> None:
            await stopping.wait()
            await websocket.close(code=1001, reason="the control server is stopping")
            tg.cancel_scope.cancel()

        tg.start_soon(close_on_stop)
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                # A binary frame is parsed as UTF-8 JSON too; broken bytes get -32700.
                payload = message.get("text")
                if payload is None:
                    payload = message.get("bytes") or b""
                await socket.calls.acquire()
                tg.start_soon(socket.call, dispatcher, payload)
        except WebSocketDisconnect:
            pass
        finally:
            socket.close()
            tg.cancel_scope.cancel()
