/** The newest D1 migration the database has applied (wrangler's `d1_migrations` table), or null when none has been. */
export async function appliedMigration(db: D1Database): Promise<string | null> {
  const row = await db.prepare("SELECT name FROM d1_migrations ORDER BY id DESC LIMIT 1").first<{ name: string }>();
  return row?.name ?? null;
}
