-- The console's conversion pages (SPEC §9, §14): a rejected row keeps the manifest cells it had,
-- as JSON [[column, cell], …] in the manifest's column order, so that the clerk can download the
-- rejected rows as they were written, correct them and upload them again. Issued and skipped
-- rows keep none (their licence has the values).
ALTER TABLE batch_rows ADD COLUMN cells TEXT;

-- A rejected row's reason in Chinese beside the English one (`reason`): the console and the
-- reports speak Chinese to clerks, from the service's one message catalogue.
ALTER TABLE batch_rows ADD COLUMN reason_zh TEXT;

-- Why a job failed, in Chinese beside `error`.
ALTER TABLE batches ADD COLUMN error_zh TEXT;

-- A department's recent jobs, newest first.
CREATE INDEX batches_by_department ON batches (department, created_at);

-- How many data rows the job's manifest has, once a run has counted them (the console's
-- progress bar); NULL before.
ALTER TABLE batches ADD COLUMN total_rows BIGINT;
