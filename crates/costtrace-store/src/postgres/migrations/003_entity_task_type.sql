-- costtrace PostgreSQL schema, version 3: requests of one tenant and one
-- task type (the dashboard's most common two-filter list).
--
-- With only (entity_id, ts, request_id), "entity_id = $1 AND task_type = $2"
-- walked the tenant's whole index range and fetched every row to check
-- task_type, for the page and again for the exact total (270 ms at 10M usage
-- records). This index holds both keys: the page is a backward index scan
-- and the total counts one key range.
CREATE INDEX requests_entity_task_type ON requests (entity_id, task_type, ts, request_id)
    WHERE entity_id IS NOT NULL AND task_type IS NOT NULL;
