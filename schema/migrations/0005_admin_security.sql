-- Written by the admin API only: failed-login counters (shared by all isolates),
-- revoked sessions, and the time before which every session is void.
CREATE TABLE login_attempts (
  client        TEXT PRIMARY KEY,      -- the client's IP address
  window_start  INTEGER NOT NULL,
  failures      INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE revoked_sessions (
  jti         TEXT PRIMARY KEY,
  expires_at  INTEGER NOT NULL         -- the token's own expiry; the row can go after it
) WITHOUT ROWID;

CREATE TABLE admin_state (
  name   TEXT PRIMARY KEY,
  value  INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO admin_state (name, value) VALUES ('sessions_valid_after', 0);
