-- Signer state (SPEC §5) lives in the register, so that a rotation or revocation made by any
-- process is seen by every process and instance without a restart. Private keys stay in
-- keys/signers/{kid}.key.pem; the certificate (public) is kept here with its state.
CREATE TABLE signers (
    -- hex, as the key files are named
    kid         TEXT PRIMARY KEY,
    -- order of creation: the newest active signer signs, the trust list lists them in this order
    seq         BIGINT NOT NULL UNIQUE,
    uscc        TEXT NOT NULL,
    department  TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'retired', 'revoked')),
    created_at  TEXT NOT NULL,
    revoked_at  TEXT,
    certificate TEXT NOT NULL
);

-- At most one active signer per department, whatever two processes race to do.
CREATE UNIQUE INDEX signers_one_active ON signers (uscc) WHERE status = 'active';

-- The trust list version: bumped in the transaction of every change to `signers`; every process
-- reads it (one row, cheaply) to know when to reload its keys.
CREATE TABLE trust_state (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO trust_state (id, version) VALUES (1, 0);
