-- The holder's name of each licence version, kept beside its signed bytes so that the console can
-- search it as a substring (SPEC §14 licence search): the name lives only inside the signed
-- record, which SQL cannot read. Written with the version in the same transaction; versions
-- stored before this table existed are filled in by the service when it opens the store
-- (store/search.rs), since only it can decode their records. Never updated or deleted.
CREATE TABLE holder_names (
    licence  BIGINT NOT NULL REFERENCES licences (id),
    version  BIGINT NOT NULL,
    name     TEXT NOT NULL,
    PRIMARY KEY (licence, version)
);

CREATE TRIGGER holder_names_immutable BEFORE UPDATE OR DELETE ON holder_names
    FOR EACH ROW EXECUTE FUNCTION refuse_change();

-- The console finds a licence by its number alone (the unique key is type and number).
CREATE INDEX licences_number ON licences (number);
