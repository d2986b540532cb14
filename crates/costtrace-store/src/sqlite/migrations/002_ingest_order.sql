-- costtrace SQLite schema, version 2: the order records were stored in, for
-- following the store (`Store::records_after`).
--
-- Usage is followed by its rowid `seq` (one writer at a time: rowids grow in
-- commit order). Requests are updated in place (start, end, replays), so
-- each write stamps the request with the next value of the `request_rev`
-- counter.

ALTER TABLE requests ADD COLUMN rev INTEGER;
ALTER TABLE requests_archive ADD COLUMN rev INTEGER;
UPDATE requests SET rev = request_k;
INSERT INTO meta (key, value) VALUES ('request_rev', COALESCE((SELECT MAX(request_k) FROM requests), 0));
CREATE INDEX requests_rev ON requests (rev);
