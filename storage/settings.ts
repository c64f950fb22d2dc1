import { parseStoredSettings, type Settings } from "../schema";

/**
 * The `settings` table: one row, the pool's settings as JSON. Written by the
 * admin API; read by the gateway, the consumer and the scheduler.
 */

/**
 * The statement that reads the stored JSON (for a batch that reads it with
 * other rows; its row goes to `settingsFromRow`) and when the time zone was
 * last set (`time_zone_since`, 0: never changed from UTC).
 */
export function selectSettings(db: D1Database): D1PreparedStatement {
  return db.prepare("SELECT value, time_zone_since FROM settings WHERE id = 1");
}

/** The settings a `selectSettings` row holds: the stored JSON with defaults filled in (none or an invalid one gives the defaults). */
function settingsFromRow(row: Record<string, unknown> | null | undefined): Settings {
  return parseStoredSettings(typeof row?.value === "string" ? row.value : null);
}

/** The pool's settings, defaults filled in. */
export async function readSettings(db: D1Database): Promise<Settings> {
  return settingsFromRow(await selectSettings(db).first());
}

/**
 * Stores the settings (validated by the caller), and `now` as when the time
 * zone was set if it differs from the one stored (from UTC, the default, when
 * none was).
 */
export async function writeSettings(db: D1Database, settings: Settings, now: number): Promise<void> {
  await db
    .prepare(
      `INSERT INTO settings (id, value, updated_at, time_zone_since) VALUES (1, ?1, ?2, CASE WHEN ?3 = 'UTC' THEN 0 ELSE ?2 END)
       ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,
         time_zone_since = CASE WHEN COALESCE(CASE WHEN json_valid(settings.value) THEN json_extract(settings.value, '$.timeZone') END, 'UTC') = ?3 THEN settings.time_zone_since ELSE excluded.updated_at END`,
    )
    .bind(JSON.stringify(settings), now, settings.timeZone)
    .run();
}
