-- Where the gateway keeps events the queue refused. A packed message (the JSON
-- body it would have sent) lands here when its queue send failed three times;
-- the scheduler's cron sends the oldest rows to the queue every minute and
-- deletes them once sent. Delivery stays at-least-once: a row sent but not yet
-- deleted is sent again, and the consumer's dedupe drops the repeat.

CREATE TABLE event_outbox (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at INTEGER NOT NULL,
  events     INTEGER NOT NULL,
  body       TEXT NOT NULL
);
