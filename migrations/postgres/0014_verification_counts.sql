-- Public verifications counted per licence and minute (SPEC §15 supervision figures, and the
-- verification-burst alert): counted in memory on the hot path and added here every few seconds,
-- so a verification costs no write of its own.
CREATE TABLE verification_counts (
    licence    TEXT NOT NULL,
    -- the licence's issuing department (USCC)
    department TEXT NOT NULL,
    -- the minute, UTC, 'YYYY-MM-DDTHH:MM'
    minute     TEXT NOT NULL,
    count      BIGINT NOT NULL,
    PRIMARY KEY (licence, minute)
);
CREATE INDEX verification_counts_by_department ON verification_counts (department, minute);
