-- The transparency log (SPEC §16, docs/DESIGN.md "Transparency log"). Leaf i is the entry of
-- event seq i+1: the version's full record, or the signed statement of a status change.
-- `log_nodes` holds every perfect subtree's hash (level 0: the leaf hashes), written in the
-- event's transaction, so a proof costs O(log n) reads. All three tables are append-only.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The signed statement of a status change (suspended, reinstated, revoked): its log entry.
CREATE TABLE log_statements (
    seq       INTEGER PRIMARY KEY REFERENCES events (seq),
    statement BLOB NOT NULL
);

-- Signed tree heads, one per size.
CREATE TABLE log_heads (
    size    INTEGER PRIMARY KEY,
    root    BLOB NOT NULL,
    time    INTEGER NOT NULL,
    head    BLOB NOT NULL
);

CREATE TRIGGER log_nodes_append_only_update BEFORE UPDATE ON log_nodes
BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;
CREATE TRIGGER log_nodes_append_only_delete BEFORE DELETE ON log_nodes
BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;
CREATE TRIGGER log_statements_append_only_update BEFORE UPDATE ON log_statements
BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;
CREATE TRIGGER log_statements_append_only_delete BEFORE DELETE ON log_statements
BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;
CREATE TRIGGER log_heads_append_only_update BEFORE UPDATE ON log_heads
BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;
CREATE TRIGGER log_heads_append_only_delete BEFORE DELETE ON log_heads
BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END;
