-- Batch conversion of stock licences (SPEC §9) and the blob store (SPEC §11).

-- Blobs kept in the database: used when several instances share one database, so that they
-- share scans and PDFs too. A single instance keeps blobs in a folder instead.
CREATE TABLE blobs (
    key        TEXT PRIMARY KEY,
    bytes      BYTEA NOT NULL,
    created_at TEXT NOT NULL
);

-- One conversion run: from the command line, or a job posted over HTTP.
CREATE TABLE batches (
    id          TEXT PRIMARY KEY,
    created_at  TEXT NOT NULL,
    actor       TEXT NOT NULL,
    source      TEXT NOT NULL,
    -- queued, running, done or failed
    state       TEXT NOT NULL,
    -- the uploaded zip's blob key (HTTP jobs), so an interrupted job can be run again
    upload      TEXT,
    all_or_nothing BIGINT NOT NULL,
    -- every manifest line up to this one has its outcome in batch_rows
    done_line   BIGINT NOT NULL DEFAULT 1,
    issued      BIGINT NOT NULL DEFAULT 0,
    skipped     BIGINT NOT NULL DEFAULT 0,
    rejected    BIGINT NOT NULL DEFAULT 0,
    error       TEXT,
    -- who runs it: an HTTP job resumed after a restart acts for the same department and roles
    department  TEXT,
    roles       TEXT NOT NULL,
    lease_holder TEXT,
    lease_until BIGINT NOT NULL DEFAULT 0,
    finished_at TEXT
);

-- What became of each manifest row of a batch.
CREATE TABLE batch_rows (
    batch_id   TEXT NOT NULL REFERENCES batches (id),
    line       BIGINT NOT NULL,
    outcome    TEXT NOT NULL,
    type_code  TEXT NOT NULL,
    number     TEXT NOT NULL,
    licence_id TEXT,
    column_name TEXT,
    reason     TEXT,
    PRIMARY KEY (batch_id, line)
);
