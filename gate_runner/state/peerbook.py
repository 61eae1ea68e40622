"""The peer book in state.db: each peer's last hello, kept across restarts."""

from __future__ import annotations

__all__ = ("PeerBook",)

import json
import sqlite3
import time

from gate_runner.state.db import StateDB


class PeerBook:
    def __init__(self, db: StateDB) -> None:
        self._db = db

    async def seen(
        self,
        *,
        peer_id: str,
        name: str,
        remote_name: str | None,
        version: str | None,
        addrs: tuple[str, ...],
        models: tuple[str, ...],
        rtt_ms: float | None,
    ) -> None:
        row = (
            peer_id,
            name,
            remote_name,
            version,
            json.dumps(list(addrs)),
            json.dumps(list(models)),
            rtt_ms,
            time.time(),
        )

        def upsert(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO peer_book VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(peer_id) DO "
                "UPDATE SET name=excluded.name, remote_name=excluded.remote_name, "
                "version=excluded.version, addrs=excluded.addrs, models=excluded.models, "
                "last_rtt_ms=excluded.last_rtt_ms, last_seen=excluded.last_seen",
                row,
            )

        await self._db.run(upsert)

    async def last_seen(self) -> dict[str, float]:
        def query(conn: sqlite3.Connection) -> dict[str, float]:
            return dict(conn.execute("SELECT peer_id, last_seen FROM peer_book").fetchall())

        return await self._db.run(query)
