import { HEALTH_FACT_COLUMNS, deriveKeyState, healthFactsFromRow, parseStoredSettings, type HealthRules, type KeyView, type ProviderKindId, type Settings, type UpstreamView } from "../../schema";

interface RawUpstream {
  id: string;
  name: string;
  base_url: string;
  kind: string;
  models: string;
  aliases: string;
  enabled: number;
  created_at: number;
}

function toUpstream(r: RawUpstream): UpstreamView {
  return { id: r.id, name: r.name, baseUrl: r.base_url, kind: r.kind as ProviderKindId, models: JSON.parse(r.models) as string[], aliases: JSON.parse(r.aliases) as Record<string, string>, enabled: r.enabled === 1, createdAt: r.created_at };
}

export async function insertUpstream(db: D1Database, u: UpstreamView): Promise<void> {
  await db
    .prepare("INSERT INTO upstreams (id, name, base_url, kind, models, aliases, enabled, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)")
    .bind(u.id, u.name, u.baseUrl, u.kind, JSON.stringify(u.models), JSON.stringify(u.aliases), u.enabled ? 1 : 0, u.createdAt)
    .run();
}

export async function findUpstream(db: D1Database, id: string): Promise<UpstreamView | null> {
  const row = await db.prepare("SELECT * FROM upstreams WHERE id = ?1").bind(id).first<RawUpstream>();
  return row ? toUpstream(row) : null;
}

export async function listUpstreams(db: D1Database): Promise<UpstreamView[]> {
  const { results } = await db.prepare("SELECT * FROM upstreams ORDER BY created_at, id").all<RawUpstream>();
  return results.map(toUpstream);
}

/** A key ready to insert: secret already encrypted, fingerprint already hashed. */
export interface NewKeyRow {
  id: string;
  upstreamId: string;
  secretEnc: string;
  fingerprint: string;
  masked: string;
  createdAt: number;
}

/** Rows per INSERT: keeps each statement's JSON parameter well under D1's size limits. */
const INSERT_CHUNK = 500;

/**
 * Inserts keys, skipping any whose fingerprint the upstream already holds (a
 * concurrent add of the same key cannot create a duplicate). Returns how many were new.
 */
export async function insertKeys(db: D1Database, rows: NewKeyRow[]): Promise<number> {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows.slice(i, i + INSERT_CHUNK).map((r) => [r.id, r.upstreamId, r.secretEnc, r.fingerprint, r.masked, r.createdAt]);
    statements.push(
      db
        .prepare(
          `INSERT OR IGNORE INTO keys (id, upstream_id, secret_enc, fingerprint, masked, created_at, updated_at)
           SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>5 FROM json_each(?1)`,
        )
        .bind(JSON.stringify(chunk)),
    );
  }
  if (statements.length === 0) return 0;
  const results = await db.batch(statements);
  return results.reduce((n, r) => n + (r.meta.changes ?? 0), 0);
}

/** A page of keys, masked, with the state their health facts give at `now`. */
export async function listKeys(db: D1Database, limit: number, offset: number, rules: HealthRules, now: number): Promise<{ total: number; keys: KeyView[] }> {
  const [count, page] = await db.batch<Record<string, unknown>>([
    db.prepare("SELECT COUNT(*) AS n FROM keys"),
    db
      .prepare(
        `SELECT k.id, k.upstream_id, k.masked, k.weight, k.models, k.enabled, k.created_at, ${HEALTH_FACT_COLUMNS},
                h.balance, h.balance_ts, h.last_probe_ts, h.last_probe_result, h.last_error_ts, h.last_error, h.last_used_at
         FROM keys k LEFT JOIN key_health h ON h.key_id = k.id
         ORDER BY k.created_at, k.id LIMIT ?1 OFFSET ?2`,
      )
      .bind(limit, offset),
  ]);
  const total = Number(count!.results[0]?.n ?? 0);
  const keys = page!.results.map((r) => {
    const enabled = r.enabled === 1;
    const health = deriveKeyState(healthFactsFromRow(r), rules, now);
    return {
      id: String(r.id),
      upstreamId: String(r.upstream_id),
      masked: String(r.masked),
      weight: Number(r.weight),
      models: JSON.parse(String(r.models)) as string[],
      enabled,
      state: enabled ? health.state : "disabled",
      coolingUntil: enabled ? health.coolingUntil : null,
      balance: r.balance === null || r.balance === undefined ? null : Number(r.balance),
      balanceCheckedAt: Number(r.balance_ts ?? 0) || null,
      lastProbe: Number(r.last_probe_ts ?? 0) ? { at: Number(r.last_probe_ts), result: String(r.last_probe_result) } : null,
      lastError: Number(r.last_error_ts ?? 0) ? { at: Number(r.last_error_ts), message: String(r.last_error) } : null,
      lastUsedAt: Number(r.last_used_at ?? 0) || null,
      createdAt: Number(r.created_at),
    };
  });
  return { total, keys };
}

export interface NewClientKeyRow {
  id: string;
  name: string;
  hash: string;
  masked: string;
  models: string[];
  rpmLimit: number | null;
  tpmLimit: number | null;
  expiresAt: number | null;
  createdAt: number;
}

export async function insertClientKey(db: D1Database, k: NewClientKeyRow): Promise<void> {
  await db
    .prepare(
      `INSERT INTO client_keys (id, name, hash, masked, models, rpm_limit, tpm_limit, expires_at, enabled, created_at, updated_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?9)`,
    )
    .bind(k.id, k.name, k.hash, k.masked, JSON.stringify(k.models), k.rpmLimit, k.tpmLimit, k.expiresAt, k.createdAt)
    .run();
}

/** The pool's settings: the stored JSON with defaults filled in (an invalid row falls back to defaults). */
export async function readSettings(db: D1Database): Promise<Settings> {
  const row = await db.prepare("SELECT value FROM settings WHERE id = 1").first<{ value: string }>();
  return parseStoredSettings(row?.value ?? null);
}

/** A replay job as the consumer recorded it, or null if it has not started yet. */
export async function findReplayJob(db: D1Database, id: string): Promise<Record<string, unknown> | null> {
  const row = await db.prepare("SELECT id, kind, params, status, started_at, finished_at, report FROM replay_jobs WHERE id = ?1").bind(id).first<Record<string, unknown>>();
  if (!row) return null;
  return {
    id: row.id,
    kind: row.kind,
    params: JSON.parse(String(row.params)),
    status: row.status,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    report: row.report === null ? null : JSON.parse(String(row.report)),
  };
}
