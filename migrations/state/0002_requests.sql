-- state.db schema, step 2: the request log (DESIGN.md section 7, "every request is recorded").
-- Written in batches by gate_runner.state.requests.RequestLog and pruned by count and age.
-- seq is the rowid: insertion order, which makes "keep the newest N" a cheap range delete.
CREATE TABLE requests (
    seq               INTEGER PRIMARY KEY,
    id                TEXT NOT NULL,       -- "req_" + 24 hex
    started_at        REAL NOT NULL,       -- unix time, seconds
    method            TEXT NOT NULL,
    path              TEXT NOT NULL,
    model             TEXT,
    source            TEXT NOT NULL,       -- "127.0.0.1:54321" or "peer:<name>"
    target_node       TEXT,                -- NULL: this node
    provider          TEXT,
    status            INTEGER NOT NULL,
    latency_ms        REAL NOT NULL,
    ttft_ms           REAL,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    attempts          INTEGER NOT NULL,
    stream            INTEGER NOT NULL,    -- 0 or 1
    error             TEXT
);
-- Newest-first listing with a `before` cursor, and pruning by age.
CREATE INDEX requests_started_at ON requests (started_at);
-- The same listing filtered by model.
CREATE INDEX requests_model_started_at ON requests (model, started_at);
-- requests.get by id (UI detail view); not UNIQUE so a duplicate id cannot fail a whole batch.
CREATE INDEX requests_id ON requests (id);
