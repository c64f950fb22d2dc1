/** Failed logins allowed per client in one window. */
const LOGIN_FAILURES_ALLOWED = 5;
const LOGIN_WINDOW_MS = 60_000;

/** When the client may try again (epoch ms), or null if it is not locked out. */
export async function loginLockedUntil(db: D1Database, client: string, now: number): Promise<number | null> {
  const row = await db
    .prepare("SELECT window_start, failures FROM login_attempts WHERE client = ?1")
    .bind(client)
    .first<{ window_start: number; failures: number }>();
  if (!row || row.window_start + LOGIN_WINDOW_MS <= now || row.failures < LOGIN_FAILURES_ALLOWED) return null;
  return row.window_start + LOGIN_WINDOW_MS;
}

/** Counts a failed login in the client's current window (a new window if the last one is over). */
export async function recordLoginFailure(db: D1Database, client: string, now: number): Promise<void> {
  await db
    .prepare(
      `INSERT INTO login_attempts (client, window_start, failures) VALUES (?1, ?2, 1)
       ON CONFLICT (client) DO UPDATE SET
         failures = CASE WHEN window_start + ?3 <= ?2 THEN 1 ELSE failures + 1 END,
         window_start = CASE WHEN window_start + ?3 <= ?2 THEN ?2 ELSE window_start END`,
    )
    .bind(client, now, LOGIN_WINDOW_MS)
    .run();
}

export async function clearLoginFailures(db: D1Database, client: string): Promise<void> {
  await db.prepare("DELETE FROM login_attempts WHERE client = ?1").bind(client).run();
}

/** Whether a session is still valid: not revoked, and issued after the "log out everywhere" time. */
export async function sessionIsValid(db: D1Database, jti: string, issuedAtMs: number): Promise<boolean> {
  const [revoked, after] = await db.batch<{ n?: number; value?: number }>([
    db.prepare("SELECT 1 AS n FROM revoked_sessions WHERE jti = ?1").bind(jti),
    db.prepare("SELECT value FROM admin_state WHERE name = 'sessions_valid_after'"),
  ]);
  if ((revoked?.results.length ?? 0) > 0) return false;
  return issuedAtMs > Number(after?.results[0]?.value ?? 0);
}

/** Ends one session (until its token would have expired anyway), pruning revocations that are past it. */
export async function revokeSession(db: D1Database, jti: string, expiresAtMs: number, now: number): Promise<void> {
  await db.batch([
    db.prepare("INSERT OR REPLACE INTO revoked_sessions (jti, expires_at) VALUES (?1, ?2)").bind(jti, expiresAtMs),
    db.prepare("DELETE FROM revoked_sessions WHERE expires_at < ?1").bind(now),
  ]);
}

/** Ends every session issued before `now`. */
export async function revokeAllSessions(db: D1Database, now: number): Promise<void> {
  await db.prepare("UPDATE admin_state SET value = ?1 WHERE name = 'sessions_valid_after'").bind(now).run();
}
