-- Licences, their immutable versions and the ordered change events (SPEC §4, §8, §11).
-- Nothing here is ever updated or deleted: triggers refuse it.

CREATE TABLE directory_versions (
    version    INTEGER PRIMARY KEY,
    digest     TEXT NOT NULL,
    content    TEXT NOT NULL,
    loaded_at  TEXT NOT NULL
);

-- Next free serial per (type, issuer); reserved in blocks before signing.
CREATE TABLE serial_counters (
    type_code   TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    next_serial INTEGER NOT NULL,
    PRIMARY KEY (type_code, issuer)
);

-- Status-list indexes taken per issuer (reserved before signing; a reservation left by a crash
-- is simply an index never used).
CREATE TABLE status_slots (
    issuer TEXT NOT NULL,
    slot   INTEGER NOT NULL,
    PRIMARY KEY (issuer, slot)
);

CREATE TABLE licences (
    id          INTEGER PRIMARY KEY,
    licence_id  TEXT NOT NULL UNIQUE,
    type_code   TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    serial      INTEGER NOT NULL,
    number      TEXT NOT NULL,
    holder_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (type_code, number),
    UNIQUE (type_code, issuer, serial)
);
CREATE INDEX licences_holder ON licences (holder_id);

CREATE TABLE versions (
    licence           INTEGER NOT NULL REFERENCES licences (id),
    version           INTEGER NOT NULL,
    identifier        TEXT NOT NULL UNIQUE,
    issued_at         INTEGER NOT NULL,
    valid_from        TEXT NOT NULL,
    valid_until       TEXT,
    directory_version INTEGER NOT NULL REFERENCES directory_versions (version),
    issuer            TEXT NOT NULL,
    status_index      INTEGER NOT NULL,
    kid               BLOB NOT NULL,
    payload_hash      TEXT NOT NULL,
    full_record       BLOB NOT NULL,
    qr_token          BLOB NOT NULL,
    PRIMARY KEY (licence, version),
    UNIQUE (issuer, status_index)
);

CREATE TABLE events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    licence    INTEGER NOT NULL REFERENCES licences (id),
    licence_id TEXT NOT NULL,
    change_no  INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    reason     TEXT,
    actor      TEXT NOT NULL,
    UNIQUE (licence, change_no)
);

CREATE TRIGGER versions_immutable_update BEFORE UPDATE ON versions
BEGIN SELECT RAISE(ABORT, 'licence versions are immutable'); END;
CREATE TRIGGER versions_immutable_delete BEFORE DELETE ON versions
BEGIN SELECT RAISE(ABORT, 'licence versions are immutable'); END;
CREATE TRIGGER events_immutable_update BEFORE UPDATE ON events
BEGIN SELECT RAISE(ABORT, 'change events are immutable'); END;
CREATE TRIGGER events_immutable_delete BEFORE DELETE ON events
BEGIN SELECT RAISE(ABORT, 'change events are immutable'); END;
CREATE TRIGGER licences_immutable_delete BEFORE DELETE ON licences
BEGIN SELECT RAISE(ABORT, 'licences are never deleted'); END;
