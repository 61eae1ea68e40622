-- state.db schema, step 3: the peer book. What this node last knew of each peer it
-- linked with, kept across restarts (shown by `gate peers ls` as lastSeen).
CREATE TABLE peer_book (
    peer_id     TEXT PRIMARY KEY,
    name        TEXT NOT NULL,          -- the spec's name for it
    remote_name TEXT,                   -- the name it gives itself
    version     TEXT,
    addrs       TEXT NOT NULL,          -- JSON list of multiaddrs from the spec
    models      TEXT NOT NULL,          -- JSON list of the models it last offered us
    last_rtt_ms REAL,
    last_seen   REAL NOT NULL           -- unix time of the last hello
);
