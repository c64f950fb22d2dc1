/**
 * The snapshot's bookkeeping in the `meta` table: the last version handed out,
 * the last version written to KV and when it was generated, and the claim that
 * lets one writer a second publish. Written by the consumer (the snapshot's one
 * writer); read by the scheduler, which asks for a refresh when it is old.
 */

/** Takes the next snapshot version (for the batch that reads the pool it describes); its row's `value` is the version. */
export function takeSnapshotVersion(db: D1Database): D1PreparedStatement {
  return db.prepare("UPDATE meta SET value = value + 1 WHERE name = 'snapshot_version' RETURNING value");
}

/** Reads the version last written to KV; its row's `value` is the version (0: none). */
export function selectPublishedVersion(db: D1Database): D1PreparedStatement {
  return db.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_version'");
}

/**
 * The snapshot version whose publish recorded the newest key part list (0: none
 * yet): a sub-query, so a statement can compare with it in its own step.
 */
export const PARTS_VERSION_SQL = "SELECT value FROM meta WHERE name = 'snapshot_parts_version'";

/**
 * Claims `version` as the one to write unless a newer one was claimed already
 * (or, given `partsVersion`, the key part list changed since it was read); D1
 * serialises the conditional update, so of two writers only the newer wins.
 */
export async function claimPublishedVersion(db: D1Database, version: number, partsVersion: number | null = null): Promise<boolean> {
  // With `partsVersion`: only while the key part list recorded is still the one the head names.
  const claimed = await db
    .prepare(
      `UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_version' AND value < ?1
         AND (?2 IS NULL OR ?2 = (${PARTS_VERSION_SQL}))`,
    )
    .bind(version, partsVersion)
    .run();
  return (claimed.meta.changes ?? 0) === 1;
}

/** Records when the snapshot just written was generated (never moving back). */
export async function recordPublishedGeneratedAt(db: D1Database, generatedAt: number): Promise<void> {
  await db.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_generated_at' AND value < ?1").bind(generatedAt).run();
}

/** When the snapshot last written to KV was generated; null when none was. */
export async function readPublishedGeneratedAt(db: D1Database): Promise<number | null> {
  const row = await db.prepare("SELECT value FROM meta WHERE name = 'snapshot_published_generated_at'").first<{ value: number }>();
  return row && row.value > 0 ? row.value : null;
}

/** When the right to publish was last claimed (epoch ms), by any publish and by one that read every key. */
export async function readPublishClaims(db: D1Database): Promise<{ any: number; keys: number }> {
  const { results } = await db
    .prepare("SELECT name, value FROM meta WHERE name IN ('snapshot_published_at', 'snapshot_keys_claimed_at')")
    .all<{ name: string; value: number }>();
  const value = (name: string) => results.find((r) => r.name === name)?.value ?? 0;
  return { any: value("snapshot_published_at"), keys: value("snapshot_keys_claimed_at") };
}

/**
 * Claims the right to publish at `now` if nobody has in the last `intervalMs`;
 * D1 serialises the conditional update, so concurrent consumers cannot both win.
 * A claim for a publish that reads every key (`keys`) is recorded as such too.
 */
export async function claimPublish(db: D1Database, now: number, intervalMs: number, keys = false): Promise<boolean> {
  const result = await db
    .prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_published_at' AND value <= ?2")
    .bind(now, now - intervalMs)
    .run();
  const won = (result.meta.changes ?? 0) === 1;
  if (won && keys) await db.prepare("UPDATE meta SET value = ?1 WHERE name = 'snapshot_keys_claimed_at'").bind(now).run();
  return won;
}

/**
 * Claims the right to publish the pool's usage at `now` if nobody has in the
 * last `spacing.minMs`, or — when the last publish took longer than
 * `spacing.share` of that — in the time it took over the share (at most
 * `spacing.maxMs`).
 */
export async function claimUsagePublish(db: D1Database, now: number, spacing: { minMs: number; maxMs: number; share: number }): Promise<boolean> {
  const result = await db
    .prepare(
      `UPDATE meta SET value = ?1 WHERE name = 'usage_published_at'
       AND value <= ?1 - MIN(?3, MAX(?2, COALESCE((SELECT value FROM meta WHERE name = 'usage_publish_ms'), 0) / ?4))`,
    )
    .bind(now, spacing.minMs, spacing.maxMs, spacing.share)
    .run();
  return (result.meta.changes ?? 0) === 1;
}

/**
 * Claims the right to ask for a usage republish (one pending at a time: none
 * claimed within the last `intervalMs`).
 */
export async function claimUsageRefresh(db: D1Database, now: number, intervalMs: number): Promise<boolean> {
  const result = await db
    .prepare("UPDATE meta SET value = ?1 WHERE name = 'usage_refresh_at' AND value <= ?2")
    .bind(now, now - intervalMs)
    .run();
  return (result.meta.changes ?? 0) === 1;
}

/** Claims the hourly prune of kept bodies (none claimed within the last `intervalMs`). */
export async function claimBodiesPrune(db: D1Database, now: number, intervalMs: number): Promise<boolean> {
  const result = await db
    .prepare("UPDATE meta SET value = ?1 WHERE name = 'bodies_pruned_at' AND value <= ?2")
    .bind(now, now - intervalMs)
    .run();
  return (result.meta.changes ?? 0) === 1;
}

/** Takes the next usage version (for the batch that reads the usage it describes); its row's `value` is the version. */
export function takeUsageVersion(db: D1Database): D1PreparedStatement {
  return db.prepare("UPDATE meta SET value = value + 1 WHERE name = 'usage_version' RETURNING value");
}

/** Claims `version` as the usage to write unless a newer one was claimed already. */
export async function claimUsageVersion(db: D1Database, version: number): Promise<boolean> {
  const claimed = await db.prepare("UPDATE meta SET value = ?1 WHERE name = 'usage_published_version' AND value < ?1").bind(version).run();
  return (claimed.meta.changes ?? 0) === 1;
}

/** How many keys the usage last written held (-1: none written yet). */
export async function readUsagePublishedKeys(db: D1Database): Promise<number> {
  const row = await db.prepare("SELECT value FROM meta WHERE name = 'usage_published_keys'").first<{ value: number }>();
  return row?.value ?? -1;
}

/** Records how many keys the usage just written holds, and how long its publish took (ms). */
export async function recordUsagePublished(db: D1Database, keys: number, tookMs: number): Promise<void> {
  await db.batch([
    db.prepare("UPDATE meta SET value = ?1 WHERE name = 'usage_published_keys'").bind(keys),
    db.prepare("UPDATE meta SET value = ?1 WHERE name = 'usage_publish_ms'").bind(Math.max(0, Math.round(tookMs))),
  ]);
}
