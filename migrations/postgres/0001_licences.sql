-- Licences, their immutable versions and the ordered change events (SPEC §4, §8, §11).
-- Nothing here is ever updated or deleted: triggers refuse it.

CREATE TABLE directory_versions (
    version    BIGINT PRIMARY KEY,
    digest     TEXT NOT NULL,
    content    TEXT NOT NULL,
    loaded_at  TEXT NOT NULL
);

CREATE TABLE serial_counters (
    type_code   TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    next_serial BIGINT NOT NULL,
    PRIMARY KEY (type_code, issuer)
);

CREATE TABLE status_slots (
    issuer TEXT NOT NULL,
    slot   BIGINT NOT NULL,
    PRIMARY KEY (issuer, slot)
);

CREATE TABLE licences (
    id          BIGSERIAL PRIMARY KEY,
    licence_id  TEXT NOT NULL UNIQUE,
    type_code   TEXT NOT NULL,
    issuer      TEXT NOT NULL,
    serial      BIGINT NOT NULL,
    number      TEXT NOT NULL,
    holder_id   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    UNIQUE (type_code, number),
    UNIQUE (type_code, issuer, serial)
);
CREATE INDEX licences_holder ON licences (holder_id);

CREATE TABLE versions (
    licence           BIGINT NOT NULL REFERENCES licences (id),
    version           BIGINT NOT NULL,
    identifier        TEXT NOT NULL UNIQUE,
    issued_at         BIGINT NOT NULL,
    valid_from        TEXT NOT NULL,
    valid_until       TEXT,
    directory_version BIGINT NOT NULL REFERENCES directory_versions (version),
    issuer            TEXT NOT NULL,
    status_index      BIGINT NOT NULL,
    kid               BYTEA NOT NULL,
    payload_hash      TEXT NOT NULL,
    full_record       BYTEA NOT NULL,
    qr_token          BYTEA NOT NULL,
    PRIMARY KEY (licence, version),
    UNIQUE (issuer, status_index)
);

CREATE TABLE events (
    seq        BIGSERIAL PRIMARY KEY,
    licence    BIGINT NOT NULL REFERENCES licences (id),
    licence_id TEXT NOT NULL,
    change_no  BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    at         TEXT NOT NULL,
    reason     TEXT,
    actor      TEXT NOT NULL,
    UNIQUE (licence, change_no)
);

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% rows are immutable', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER versions_immutable BEFORE UPDATE OR DELETE ON versions
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER events_immutable BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
CREATE TRIGGER licences_no_delete BEFORE DELETE ON licences
    FOR EACH ROW EXECUTE FUNCTION refuse_change();
