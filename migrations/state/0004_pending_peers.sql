-- state.db schema, step 4: pending peer requests (issue 12, "Pairing"). A peer that is not
-- in spec.peers and dials in or says hello is kept here until someone approves it (which
-- puts it in the spec) or ignores it. Capped by count and expiring by age: see
-- gate_runner.state.pending.PendingPeers.
CREATE TABLE pending_peers (
    peer_id    TEXT PRIMARY KEY,        -- 12D3KooW..., Noise-authenticated
    name       TEXT,                    -- the name it announced in its hello, if any
    address    TEXT,                    -- host:port its connection came from, if known
    first_seen REAL NOT NULL,           -- unix time
    last_seen  REAL NOT NULL,           -- unix time
    count      INTEGER NOT NULL,        -- hellos and requests seen (counted, written at most once a minute)
    ignored    INTEGER NOT NULL DEFAULT 0  -- 1: ignored; kept (hidden) so that its redials stay quiet
);
-- Pruning by age and "keep the newest N" both walk last_seen.
CREATE INDEX pending_peers_last_seen ON pending_peers (last_seen);
