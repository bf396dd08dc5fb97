-- Sign-in to the department console (SPEC §10 "People", §14): a session per signed-in person,
-- kept only as the SHA-256 of its cookie token, with the stage the sign-in reached (a password
-- still to change, a TOTP still to enrol, or signed in), its CSRF token and its idle clock; and,
-- per account, the last TOTP time step accepted, so that a code is accepted only once (RFC 6238
-- §5.2).

CREATE TABLE console_sessions (
    token_hash           TEXT PRIMARY KEY,
    staff_id             BIGINT NOT NULL REFERENCES staff(id),
    stage                TEXT NOT NULL,
    csrf_token           TEXT NOT NULL,
    pending_totp_secret  TEXT,
    source               TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    last_seen            BIGINT NOT NULL
);

CREATE INDEX console_sessions_by_staff ON console_sessions (staff_id);

ALTER TABLE staff ADD COLUMN totp_last_step BIGINT;
