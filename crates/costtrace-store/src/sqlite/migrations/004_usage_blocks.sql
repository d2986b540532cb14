-- costtrace SQLite schema, version 4: a block range summary of `usage.ts`
-- instead of the `usage_ts` index.
--
-- `usage_ts` cost 17 bytes per usage record (8 % of the record with its
-- indexes) and one b-tree insert per record (~12 % of the writer's CPU), for
-- queries that are rare (all-tenant summaries over a time range, archive,
-- re-pricing). Usage rowids (`seq`) follow ingest order and records mostly
-- arrive in time order, so each block of 4,096 consecutive rowids has a
-- narrow [min_ts, max_ts]: a time range reads the overlapping blocks' rowid
-- ranges and filters on ts. Records that arrive late (a replayed spool) only
-- widen their block's range, which costs reads, never correctness: every
-- stored usage row's ts is within its block's range. Tenant-scoped queries
-- use `usage_entity (entity_k, ts)`.
CREATE TABLE usage_blocks (
    block  INTEGER PRIMARY KEY, -- seq >> 12
    min_ts INTEGER NOT NULL,
    max_ts INTEGER NOT NULL
);
INSERT INTO usage_blocks (block, min_ts, max_ts)
    SELECT seq >> 12, MIN(ts), MAX(ts) FROM usage GROUP BY seq >> 12;
DROP INDEX usage_ts;
