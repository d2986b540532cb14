-- costtrace SQLite schema, version 1.
--
-- Compact on purpose (target: <= 200 bytes per usage record on disk, indexes
-- included): ids are 16-byte BLOBs, timestamps integer epoch micros, and every
-- repeated string (request/task/doc/entity ids, provider, model, service,
-- operation, price version) is a small integer into `names`. Attrs other than
-- the four extracted ones are kept as JSON, NULL when there are none.

-- Dictionary of repeated strings. Ids are never reused or deleted.
CREATE TABLE names (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- Small key/value settings, e.g. archived_before (epoch micros).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE usage (
    seq                INTEGER PRIMARY KEY,
    id                 BLOB NOT NULL,
    ts                 INTEGER NOT NULL,
    request_k          INTEGER,
    task_k             INTEGER,
    doc_k              INTEGER,
    entity_k           INTEGER,
    provider_k         INTEGER,
    model_k            INTEGER,
    service_k          INTEGER,
    operation_k        INTEGER,
    cost_nanos         INTEGER,
    price_version_k    INTEGER,
    input_tokens       INTEGER,
    output_tokens      INTEGER,
    cache_read_tokens  INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens   INTEGER,
    env                INTEGER NOT NULL,
    tier               INTEGER NOT NULL,
    partial            INTEGER NOT NULL,
    scope_id           BLOB,
    duration_ms        REAL,
    units              TEXT,
    unpriced_reason    TEXT,
    error_message      TEXT,
    attrs              TEXT
);
CREATE UNIQUE INDEX usage_id ON usage (id);
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_request ON usage (request_k) WHERE request_k IS NOT NULL;
CREATE INDEX usage_task ON usage (task_k) WHERE task_k IS NOT NULL;
CREATE INDEX usage_doc ON usage (doc_k) WHERE doc_k IS NOT NULL;
CREATE INDEX usage_entity ON usage (entity_k, ts) WHERE entity_k IS NOT NULL;

-- The request's id is its names id: request_k = names.id of request_id.
CREATE TABLE requests (
    request_k          INTEGER PRIMARY KEY,
    ts                 INTEGER NOT NULL,
    task_k             INTEGER,
    doc_k              INTEGER,
    entity_k           INTEGER,
    operation_k        INTEGER,
    task_type_k        INTEGER,
    status_code        INTEGER,
    processing_time_ms REAL,
    env                INTEGER NOT NULL,
    endpoint           TEXT,
    method             TEXT,
    error_message      TEXT
);
-- (x, ts) plus the implicit rowid = request_k serves "WHERE x = ? ORDER BY
-- ts DESC, request_k DESC" without a sort.
CREATE INDEX requests_ts ON requests (ts);
CREATE INDEX requests_task ON requests (task_k, ts) WHERE task_k IS NOT NULL;
CREATE INDEX requests_doc ON requests (doc_k, ts) WHERE doc_k IS NOT NULL;
CREATE INDEX requests_entity ON requests (entity_k, ts) WHERE entity_k IS NOT NULL;
CREATE INDEX requests_task_type ON requests (task_type_k, ts) WHERE task_type_k IS NOT NULL;
CREATE INDEX requests_operation ON requests (operation_k, ts) WHERE operation_k IS NOT NULL;
CREATE INDEX requests_status ON requests (status_code, ts) WHERE status_code IS NOT NULL;

CREATE TABLE scopes (
    seq        INTEGER PRIMARY KEY,
    id         BLOB NOT NULL UNIQUE,
    started_at INTEGER NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX scopes_started ON scopes (started_at);

-- Archive: same columns, no query indexes; the id indexes keep replays of
-- archived records idempotent.
CREATE TABLE usage_archive AS SELECT * FROM usage WHERE 0;
CREATE UNIQUE INDEX usage_archive_id ON usage_archive (id);
CREATE TABLE requests_archive AS SELECT * FROM requests WHERE 0;
CREATE UNIQUE INDEX requests_archive_id ON requests_archive (request_k);
CREATE TABLE scopes_archive AS SELECT * FROM scopes WHERE 0;
CREATE UNIQUE INDEX scopes_archive_id ON scopes_archive (id);

CREATE TABLE api_keys (
    id         TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL UNIQUE,
    tenant     TEXT,
    label      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
