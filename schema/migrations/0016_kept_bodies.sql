-- Kept request and response bodies (issue #23), per client key: 1 keep, 0 do
-- not, NULL as the pool's `storeBodies` setting says. The bodies themselves are
-- in R2 (bodies/<day>/<request id>.json); the consumer deletes days past
-- retention.bodyDays, at most once an hour (`bodies_pruned_at`).
ALTER TABLE client_keys ADD COLUMN store_bodies INTEGER;
INSERT INTO meta (name, value) VALUES ('bodies_pruned_at', 0);

-- The client's address, only when the `logClientIp` setting asks for it (off by default).
ALTER TABLE request_attempts ADD COLUMN client_ip TEXT;
ALTER TABLE request_log ADD COLUMN client_ip TEXT;
