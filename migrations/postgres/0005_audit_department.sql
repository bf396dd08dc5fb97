-- The department an audit record belongs to (SPEC §10 "who sees what": a department's admin
-- reads its own department's records only). NULL: the whole service's, and every record written
-- before this column existed.
ALTER TABLE audit ADD COLUMN department TEXT;
CREATE INDEX audit_by_department ON audit (department, seq);
