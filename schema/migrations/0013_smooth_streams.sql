-- Smooth streaming per client key (issue #21): 1 on, 0 off, NULL as the pool's
-- `smoothStreams` setting says.
ALTER TABLE client_keys ADD COLUMN smooth_streams INTEGER;
