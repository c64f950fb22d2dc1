import { parseStoredSettings, type Settings } from "../schema";

/**
 * The `settings` table: one row, the pool's settings as JSON. Written by the
 * admin API; read by the gateway, the consumer and the scheduler.
 */

/** The statement that reads the stored JSON (for a batch that reads it with other rows); its row goes to `settingsFromRow`. */
export function selectSettings(db: D1Database): D1PreparedStatement {
  return db.prepare("SELECT value FROM settings WHERE id = 1");
}

/** The settings a `selectSettings` row holds: the stored JSON with defaults filled in (none or an invalid one gives the defaults). */
function settingsFromRow(row: Record<string, unknown> | null | undefined): Settings {
  return parseStoredSettings(typeof row?.value === "string" ? row.value : null);
}

/** The pool's settings, defaults filled in. */
export async function readSettings(db: D1Database): Promise<Settings> {
  return settingsFromRow(await selectSettings(db).first());
}

/** Stores the settings (validated by the caller). */
export async function writeSettings(db: D1Database, settings: Settings, now: number): Promise<void> {
  await db
    .prepare(
      "INSERT INTO settings (id, value, updated_at) VALUES (1, ?1, ?2) ON CONFLICT (id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
    )
    .bind(JSON.stringify(settings), now)
    .run();
}
