-- costtrace SQLite schema, version 3: requests of one tenant and one task
-- type (the dashboard's most common two-filter list).
--
-- With only (entity_k, ts), "entity = ? AND task_type = ?" walked the
-- tenant's whole index range and read every row to check task_type, for the
-- page and again for the exact total (266 ms at 10M usage records). This
-- index holds both keys, so the page is a backward range scan and the total
-- a count of index entries that never touches the table.
CREATE INDEX requests_entity_task_type ON requests (entity_k, task_type_k, ts)
    WHERE entity_k IS NOT NULL AND task_type_k IS NOT NULL;
