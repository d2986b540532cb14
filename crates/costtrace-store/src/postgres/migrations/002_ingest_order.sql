-- costtrace PostgreSQL schema, version 2: the order records were stored in,
-- for following the store (`Store::records_after`).
--
-- Each usage and request row carries the transaction that last wrote it and
-- a sequence number. A sequence alone is not commit-ordered; readers only
-- take rows of transactions older than the oldest one still running (see
-- src/cursor.rs). Columns are nullable without NOT NULL so that the
-- `LIKE usage` staging table of COPY does not inherit a constraint it cannot
-- meet; inserts name their columns, so the defaults always apply.

CREATE SEQUENCE record_ingest_seq;
ALTER TABLE usage
    ADD COLUMN ingest_xid xid8 DEFAULT pg_current_xact_id(),
    ADD COLUMN ingest_seq bigint DEFAULT nextval('record_ingest_seq');
ALTER TABLE usage_archive ADD COLUMN ingest_xid xid8, ADD COLUMN ingest_seq bigint;
ALTER TABLE requests
    ADD COLUMN ingest_xid xid8 DEFAULT pg_current_xact_id(),
    ADD COLUMN ingest_seq bigint DEFAULT nextval('record_ingest_seq');
ALTER TABLE requests_archive ADD COLUMN ingest_xid xid8, ADD COLUMN ingest_seq bigint;
CREATE INDEX usage_ingest ON usage (ingest_xid, ingest_seq);
CREATE INDEX requests_ingest ON requests (ingest_xid, ingest_seq);
