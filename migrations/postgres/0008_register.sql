-- Facts about the deployment that every process must agree on (SPEC §12): the public address
-- put in QR codes is recorded here at initialisation, and changed only by an explicit, audited
-- command (`elicence register set-verify-base`), never by one process's environment.
CREATE TABLE register (
    key    TEXT PRIMARY KEY,
    value  TEXT NOT NULL,
    set_at TEXT NOT NULL
);

-- The address each version's QR text and PDF were made with, so that every process prints the
-- same code and renders the same PDF bytes. Versions are immutable, so rows made before this
-- column existed keep NULL: they read as the register's `initial_verify_base`.
ALTER TABLE versions ADD COLUMN verify_base TEXT;
