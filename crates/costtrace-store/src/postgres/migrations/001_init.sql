-- costtrace PostgreSQL schema, version 1.
--
-- Native types: uuid ids, bigint epoch-micro timestamps, jsonb for units and
-- the attrs that are not extracted into columns. Fixed-width columns first
-- to avoid alignment padding.

CREATE TABLE meta (
    key   text PRIMARY KEY,
    value bigint NOT NULL
);

CREATE TABLE usage (
    id                 uuid NOT NULL PRIMARY KEY,
    ts                 bigint NOT NULL,
    cost_nanos         bigint,
    input_tokens       bigint,
    output_tokens      bigint,
    cache_read_tokens  bigint,
    cache_write_tokens bigint,
    reasoning_tokens   bigint,
    duration_ms        double precision,
    scope_id           uuid,
    env                smallint NOT NULL,
    tier               smallint NOT NULL,
    partial            boolean NOT NULL,
    request_id         text,
    task_id            text,
    doc_id             text,
    entity_id          text,
    provider           text,
    model              text,
    service_type       text,
    operation          text,
    price_version      text,
    units              jsonb,
    unpriced_reason    text,
    error_message      text,
    attrs              jsonb
);
CREATE INDEX usage_ts ON usage (ts);
CREATE INDEX usage_request ON usage (request_id) WHERE request_id IS NOT NULL;
CREATE INDEX usage_task ON usage (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX usage_doc ON usage (doc_id) WHERE doc_id IS NOT NULL;
CREATE INDEX usage_entity ON usage (entity_id, ts) WHERE entity_id IS NOT NULL;

CREATE TABLE requests (
    request_id         text PRIMARY KEY,
    ts                 bigint NOT NULL,
    processing_time_ms double precision,
    status_code        integer,
    env                smallint NOT NULL,
    task_id            text,
    doc_id             text,
    entity_id          text,
    operation_type     text,
    task_type          text,
    endpoint           text,
    method             text,
    error_message      text
);
-- (x, ts, request_id) serves "WHERE x = $1 ORDER BY ts DESC, request_id DESC"
-- as a backward index scan, no sort.
CREATE INDEX requests_ts ON requests (ts, request_id);
CREATE INDEX requests_task ON requests (task_id, ts, request_id) WHERE task_id IS NOT NULL;
CREATE INDEX requests_doc ON requests (doc_id, ts, request_id) WHERE doc_id IS NOT NULL;
CREATE INDEX requests_entity ON requests (entity_id, ts, request_id) WHERE entity_id IS NOT NULL;
CREATE INDEX requests_task_type ON requests (task_type, ts, request_id) WHERE task_type IS NOT NULL;
CREATE INDEX requests_operation ON requests (operation_type, ts, request_id) WHERE operation_type IS NOT NULL;
CREATE INDEX requests_status ON requests (status_code, ts, request_id) WHERE status_code IS NOT NULL;

CREATE TABLE scopes (
    id         uuid PRIMARY KEY,
    started_at bigint NOT NULL,
    body       jsonb NOT NULL
);
CREATE INDEX scopes_started ON scopes (started_at);

-- Archive: same columns; only the keys are indexed (replays stay idempotent).
CREATE TABLE usage_archive (LIKE usage);
ALTER TABLE usage_archive ADD PRIMARY KEY (id);
CREATE TABLE requests_archive (LIKE requests);
ALTER TABLE requests_archive ADD PRIMARY KEY (request_id);
CREATE TABLE scopes_archive (LIKE scopes);
ALTER TABLE scopes_archive ADD PRIMARY KEY (id);

CREATE TABLE api_keys (
    id         text PRIMARY KEY,
    key_hash   text NOT NULL UNIQUE,
    tenant     text,
    label      text NOT NULL,
    created_at bigint NOT NULL,
    revoked_at bigint
);
