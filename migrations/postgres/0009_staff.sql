-- Staff accounts for the department console (SPEC §10 "People", §14): a login, a name, the
-- department and roles (as a token's), an Argon2id password hash (PHC string) that must be
-- changed at first sign-in, and room for the TOTP secret and the lockout counters sign-in keeps.

CREATE TABLE staff (
    id                    BIGSERIAL PRIMARY KEY,
    login                 TEXT NOT NULL UNIQUE,
    name                  TEXT NOT NULL,
    department            TEXT,
    roles                 TEXT NOT NULL,
    password_hash         TEXT NOT NULL,
    must_change_password  BIGINT NOT NULL,
    totp_secret           TEXT,
    failed_sign_ins       BIGINT NOT NULL DEFAULT 0,
    locked_until          BIGINT,
    created_at            TEXT NOT NULL,
    disabled_at           TEXT
);
