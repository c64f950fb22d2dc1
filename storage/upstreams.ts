import { limitsSchema, type Limits, type ProviderKindId, type UpstreamView } from "../schema";

/**
 * The `upstreams` table: the providers' endpoints and what they serve. Written
 * by the admin API; read by the consumer (the snapshot) and, joined with keys,
 * by the scheduler (probes).
 */

/** An upstream as stored. */
export interface UpstreamRow {
  id: string;
  name: string;
  base_url: string;
  kind: string;
  models: string;
  aliases: string;
  enabled: number;
  created_at: number;
  /** JSON, validated by schema/capacity.ts. */
  limits: string;
}

/** Parsed limits by their stored text: a pool repeats a few (one per upstream, most keys none). */
const parsedLimits = new Map<string, Limits>();

/** Limits as stored: JSON the admin API validated; anything else reads as none known. Treat the result as read-only: it is shared. */
export function limitsFromColumn(json: string | null | undefined): Limits {
  const text = json ?? "{}";
  let limits = parsedLimits.get(text);
  if (limits) return limits;
  try {
    const parsed = limitsSchema.safeParse(JSON.parse(text));
    limits = parsed.success ? parsed.data : {};
  } catch {
    limits = {};
  }
  if (parsedLimits.size >= 1_000) parsedLimits.clear();
  parsedLimits.set(text, limits);
  return limits;
}

function toUpstream(r: UpstreamRow): UpstreamView {
  return {
    id: r.id,
    name: r.name,
    baseUrl: r.base_url,
    kind: r.kind as ProviderKindId,
    models: JSON.parse(r.models) as string[],
    aliases: JSON.parse(r.aliases) as Record<string, string>,
    enabled: r.enabled === 1,
    limits: limitsFromColumn(r.limits),
    createdAt: r.created_at,
  };
}

export async function insertUpstream(db: D1Database, u: UpstreamView): Promise<void> {
  await db
    .prepare(
      "INSERT INTO upstreams (id, name, base_url, kind, models, aliases, enabled, limits, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
    )
    .bind(u.id, u.name, u.baseUrl, u.kind, JSON.stringify(u.models), JSON.stringify(u.aliases), u.enabled ? 1 : 0, JSON.stringify(u.limits), u.createdAt)
    .run();
}

export async function findUpstream(db: D1Database, id: string): Promise<UpstreamView | null> {
  const row = await db.prepare("SELECT * FROM upstreams WHERE id = ?1").bind(id).first<UpstreamRow>();
  return row ? toUpstream(row) : null;
}

/** Every upstream, with how many keys it holds. */
export async function listUpstreams(db: D1Database): Promise<(UpstreamView & { keys: number })[]> {
  const { results } = await db
    .prepare("SELECT u.*, (SELECT COUNT(*) FROM keys k WHERE k.upstream_id = u.id) AS key_count FROM upstreams u ORDER BY u.created_at, u.id")
    .all<UpstreamRow & { key_count: number }>();
  return results.map((r) => ({ ...toUpstream(r), keys: r.key_count }));
}

/** Every upstream as stored (for the snapshot's batch); rows are `UpstreamRow`s. */
export function selectAllUpstreams(db: D1Database): D1PreparedStatement {
  return db.prepare("SELECT id, name, base_url, kind, models, aliases, enabled, limits, created_at FROM upstreams");
}

/** Writes an upstream's editable fields. */
export async function updateUpstream(db: D1Database, u: UpstreamView, now: number): Promise<void> {
  await db
    .prepare("UPDATE upstreams SET name = ?2, base_url = ?3, kind = ?4, models = ?5, aliases = ?6, enabled = ?7, limits = ?8, updated_at = ?9 WHERE id = ?1")
    .bind(u.id, u.name, u.baseUrl, u.kind, JSON.stringify(u.models), JSON.stringify(u.aliases), u.enabled ? 1 : 0, JSON.stringify(u.limits), now)
    .run();
}

/** Deletes an upstream and (when `cascade`) its keys, in one transaction; returns the keys deleted. */
export async function deleteUpstream(db: D1Database, id: string, cascade: boolean): Promise<number> {
  const statements = [db.prepare("DELETE FROM upstreams WHERE id = ?1").bind(id)];
  if (cascade) statements.unshift(db.prepare("DELETE FROM keys WHERE upstream_id = ?1").bind(id));
  const results = await db.batch(statements);
  return cascade ? (results[0]!.meta.changes ?? 0) : 0;
}
