-- Large blobs kept in the database (uploaded batches, up to the upload limit) are stored in
-- parts of at most 1 MiB, so that neither side of the connection ever holds one whole in memory.
-- A blob's parts are written in one transaction: a reader sees all of them or none.
CREATE TABLE blob_parts (
    key   TEXT NOT NULL,
    part  BIGINT NOT NULL,
    bytes BYTEA NOT NULL,
    PRIMARY KEY (key, part)
);
