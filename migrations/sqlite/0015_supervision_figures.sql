-- The supervision figures (SPEC §15, GET /api/v1/supervision/summary): what they count by,
-- without reading every licence.

-- Why a batch row was rejected, as the message catalogue's codes (`already_expired`,
-- `scan_not_in_batch`, …), comma-separated when a row had several reasons; NULL for rows that
-- were not rejected and for rows rejected before this column existed.
ALTER TABLE batch_rows ADD COLUMN reason_code TEXT;

-- Whether a licence was issued by a conversion (its batch row) or one by one.
CREATE INDEX batch_rows_by_licence ON batch_rows (licence_id);

-- The day's changes and refusals, by time.
CREATE INDEX events_by_time ON events (at);
CREATE INDEX audit_by_time ON audit (at);

-- Whether a day's figures are in the audit trail already (action supervision.summary, the day).
CREATE INDEX audit_by_action ON audit (action, target);
