-- Delivery progress of the push to the city library (SPEC §8): the last acknowledged seq per
-- target URL, and a lease so that one instance at a time delivers.
CREATE TABLE push_state (
    target       TEXT PRIMARY KEY,
    last_seq     BIGINT NOT NULL,
    lease_holder TEXT NOT NULL,
    lease_until  BIGINT NOT NULL
);
