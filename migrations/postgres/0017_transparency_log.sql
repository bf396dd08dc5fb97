-- The transparency log (SPEC §16, docs/DESIGN.md "Transparency log"). Leaf i is the entry of
-- event seq i+1: the version's full record, or the signed statement of a status change.
-- `log_nodes` holds every perfect subtree's hash (level 0: the leaf hashes), written in the
-- event's transaction, so a proof costs O(log n) reads. All three tables are append-only.
CREATE TABLE log_nodes (
    level INTEGER NOT NULL,
    idx   BIGINT NOT NULL,
    hash  BYTEA NOT NULL,
    PRIMARY KEY (level, idx)
);

-- The signed statement of a status change (suspended, reinstated, revoked): its log entry.
CREATE TABLE log_statements (
    seq       BIGINT PRIMARY KEY REFERENCES events (seq),
    statement BYTEA NOT NULL
);

-- Signed tree heads, one per size.
CREATE TABLE log_heads (
    size    BIGINT PRIMARY KEY,
    root    BYTEA NOT NULL,
    time    BIGINT NOT NULL,
    head    BYTEA NOT NULL
);

CREATE TRIGGER log_nodes_append_only BEFORE UPDATE OR DELETE ON log_nodes
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER log_statements_append_only BEFORE UPDATE OR DELETE ON log_statements
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER log_heads_append_only BEFORE UPDATE OR DELETE ON log_heads
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
