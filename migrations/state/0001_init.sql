-- state.db schema, step 1: the spec history (DESIGN.md section 3, item 5).
-- Every accepted spec gets a generation; `gate rollback` re-applies an earlier one.
CREATE TABLE spec_history (
    generation INTEGER PRIMARY KEY,
    applied_at TEXT NOT NULL,          -- RFC 3339, UTC
    origin     TEXT NOT NULL,          -- startup | file | apply | rollback
    source     TEXT NOT NULL,          -- file path or "rpc"
    digest     TEXT NOT NULL,          -- sha256 of the canonical document
    document   TEXT NOT NULL           -- canonical YAML of the accepted document
);
