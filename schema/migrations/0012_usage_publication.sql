-- The pool's usage against its keys' limits (KV `usage:v1`, issue #20): its
-- version only increases, and one writer a second claims the right to publish
-- it (KV's limit for one key), as for the snapshot.
INSERT INTO meta (name, value) VALUES ('usage_version', 0);
INSERT INTO meta (name, value) VALUES ('usage_published_version', 0);
INSERT INTO meta (name, value) VALUES ('usage_published_at', 0);
-- How many keys the usage last written held: a pool without limits writes it once, empty, not every second.
INSERT INTO meta (name, value) VALUES ('usage_published_keys', -1);
