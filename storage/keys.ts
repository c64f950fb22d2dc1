import { KEY_ID_LIST_BYTES, foldShardOf, groupsUnder, idJsonBytes, type HealthFacts, type Limits, type ProviderKindId } from "../schema";
import { namesOf, type FoldDatabases } from "./fold-databases";
import { HEALTH_FACT_COLUMNS, healthFactsFromRow } from "./key-health";
import { CAPACITY_COLUMNS, capacityFromRow, type WindowReading } from "./key-capacity";
import { recentMissesSql, recentSuccessSql, usageOnDaySql } from "./rollups";
import { limitsFromColumn } from "./upstreams";

/**
 * The `keys` table: upstream keys (AES-GCM ciphertext, a fingerprint to refuse
 * duplicates, a masked form to show) with their admin settings. Written by the
 * admin API; read, joined with their health, by the admin API (the key list),
 * the consumer (the snapshot) and the scheduler (probes).
 */

/** A key ready to insert: secret already encrypted, fingerprint already hashed. */
export interface NewKeyRow {
  id: string;
  upstreamId: string;
  secretEnc: string;
  fingerprint: string;
  masked: string;
  enabled: boolean;
  weight: number;
  models: string[];
  note: string;
  createdAt: number;
}

/** Rows per INSERT: keeps each statement's JSON parameter well under D1's size limits. */
const INSERT_CHUNK = 500;

/**
 * Inserts keys, skipping any whose fingerprint the upstream already holds (a
 * concurrent add of the same key cannot create a duplicate). Returns the ids that
 * were new.
 */
export async function insertKeys(db: D1Database, rows: NewKeyRow[]): Promise<Set<string>> {
  const statements: D1PreparedStatement[] = [];
  for (let i = 0; i < rows.length; i += INSERT_CHUNK) {
    const chunk = rows
      .slice(i, i + INSERT_CHUNK)
      .map((r) => [r.id, r.upstreamId, r.secretEnc, r.fingerprint, r.masked, r.enabled ? 1 : 0, r.weight, JSON.stringify(r.models), r.note, r.createdAt]);
    statements.push(
      db
        .prepare(
          `INSERT OR IGNORE INTO keys (id, upstream_id, secret_enc, fingerprint, masked, enabled, weight, models, note, created_at, updated_at)
           SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7, value->>8, value->>9, value->>9
           FROM json_each(?1)`,
        )
        .bind(JSON.stringify(chunk)),
    );
  }
  if (statements.length === 0) return new Set();
  await db.batch(statements);
  const ids = rows.map((r) => r.id);
  const present = new Set<string>();
  for (let i = 0; i < ids.length; i += 5_000) {
    const { results } = await db
      .prepare("SELECT id FROM keys WHERE id IN (SELECT value FROM json_each(?1))")
      .bind(JSON.stringify(ids.slice(i, i + 5_000)))
      .all<{ id: string }>();
    for (const r of results) present.add(r.id);
  }
  return present;
}

/** What a key's state and capacity are derived from: its configuration, its upstream's, its health facts and the providers' readings. */
export interface KeyLimitRow {
  id: string;
  upstreamId: string;
  upstreamModels: string[];
  upstreamLimits: Limits;
  upstreamKind: ProviderKindId;
  models: string[];
  enabled: boolean;
  /** The key's own limits (its upstream's apply where it has none). */
  limits: Limits;
  facts: HealthFacts;
  /** The providers' latest word on the key's requests and tokens windows. */
  readings: { requests: WindowReading | null; tokens: WindowReading | null };
}

/**
 * Every key's `KeyLimitRow`, in one query that reads no more than that (the
 * headroom and the keys-by-state gauges read every key: at 100,000 keys the
 * columns they do not use — notes, last errors, usage — are most of the cost).
 */
export async function loadKeyLimitRows(dbs: FoldDatabases): Promise<KeyLimitRow[]> {
  const db = dbs[0];
  const { results } = await db
    .prepare(
      `SELECT k.id, k.upstream_id, u.models AS upstream_models, u.limits AS upstream_limits, u.kind AS upstream_kind, k.models, k.enabled, k.limits,
              ${HEALTH_FACT_COLUMNS}, ${CAPACITY_COLUMNS}
       FROM keys k
       JOIN upstreams u ON u.id = k.upstream_id
       LEFT JOIN key_health h ON h.key_id = k.id
       LEFT JOIN key_capacity c ON c.key_id = k.id`,
    )
    .all<Record<string, unknown>>();
  if (dbs.length === 1) return results.map(keyLimitRowOf);
  const state = `${HEALTH_FACT_COLUMNS}, ${CAPACITY_COLUMNS}`;
  const rows = await withOwnState(dbs, results, state, (other) =>
    other.prepare(`SELECT ids.id, ${state} FROM (${KEY_STATE_IDS}) ids ${KEY_STATE_JOINS}`).all<Record<string, unknown>>(),
  );
  return rows.map(keyLimitRowOf);
}

/** The `KeyLimitRow` of a row that selected its columns. */
function keyLimitRowOf(r: Record<string, unknown>): KeyLimitRow {
  return {
    id: String(r.id),
    upstreamId: String(r.upstream_id),
    upstreamModels: JSON.parse(String(r.upstream_models)) as string[],
    upstreamLimits: limitsFromColumn(r.upstream_limits as string),
    upstreamKind: String(r.upstream_kind) as ProviderKindId,
    models: JSON.parse(String(r.models)) as string[],
    enabled: r.enabled === 1,
    limits: limitsFromColumn(r.limits as string),
    facts: healthFactsFromRow(r),
    readings: capacityFromRow(r),
  };
}

/** Everything the key list shows of one key. */
export interface KeyRow extends KeyLimitRow {
  masked: string;
  weight: number;
  note: string;
  createdAt: number;
  balance: number | null;
  balanceTs: number;
  lastProbeTs: number;
  lastProbeResult: string;
  lastErrorTs: number;
  lastError: string;
  lastUsedAt: number;
  requestsToday: number;
  tokensToday: number;
  /** The last hour's successes, and attempts that say something about the key. */
  successesLastHour: number;
  judgedLastHour: number;
}

/**
 * Every key (or those of one upstream) with its health, its usage on the day
 * starting at `todayBucket` and its success counts since `since`, in one query;
 * the admin API filters and sorts these in memory, which stays well under
 * 100 ms at 10,000 keys and lets it filter on the derived state.
 */
export async function loadKeyRows(dbs: FoldDatabases, todayBucket: number, since: number, upstreamId?: string): Promise<KeyRow[]> {
  const db = dbs[0];
  const { results: read } = await db
    .prepare(
      `SELECT k.id, k.upstream_id, u.models AS upstream_models, u.limits AS upstream_limits, u.kind AS upstream_kind,
              k.masked, k.weight, k.models, k.enabled, k.note, k.limits, k.created_at,
              ${HEALTH_FACT_COLUMNS}, h.balance, h.balance_ts, h.last_probe_ts, h.last_probe_result, h.last_error_ts, h.last_error, h.last_used_at,
              ${CAPACITY_COLUMNS}, d.requests, d.tokens, m.successes, m.judged
       FROM keys k
       JOIN upstreams u ON u.id = k.upstream_id
       LEFT JOIN key_health h ON h.key_id = k.id
       LEFT JOIN key_capacity c ON c.key_id = k.id
       LEFT JOIN (${usageOnDaySql("key_id", "?1")}) d ON d.key_id = k.id
       LEFT JOIN (${recentSuccessSql("?3")}) m ON m.key_id = k.id
       WHERE ?2 IS NULL OR k.upstream_id = ?2`,
    )
    .bind(todayBucket, upstreamId ?? null, since)
    .all<Record<string, unknown>>();
  const state = `${HEALTH_FACT_COLUMNS}, h.balance, h.balance_ts, h.last_probe_ts, h.last_probe_result, h.last_error_ts, h.last_error, h.last_used_at,
    ${CAPACITY_COLUMNS}, d.requests, d.tokens, m.successes, m.judged`;
  const results =
    dbs.length === 1
      ? read
      : await withOwnState(dbs, read, state, (other) =>
          other
            .prepare(
              `WITH d AS (${usageOnDaySql("key_id", "?1")}), m AS (${recentSuccessSql("?2")})
               SELECT ids.id, ${state}
               FROM (${KEY_STATE_IDS} UNION SELECT key_id FROM d UNION SELECT key_id FROM m) ids ${KEY_STATE_JOINS}
               LEFT JOIN d ON d.key_id = ids.id LEFT JOIN m ON m.key_id = ids.id`,
            )
            .bind(todayBucket, since)
            .all<Record<string, unknown>>(),
        );
  return results.map((r) => ({
    ...keyLimitRowOf(r),
    masked: String(r.masked),
    weight: Number(r.weight),
    note: String(r.note ?? ""),
    createdAt: Number(r.created_at),
    balance: r.balance === null || r.balance === undefined ? null : Number(r.balance),
    balanceTs: Number(r.balance_ts ?? 0),
    lastProbeTs: Number(r.last_probe_ts ?? 0),
    lastProbeResult: String(r.last_probe_result ?? ""),
    lastErrorTs: Number(r.last_error_ts ?? 0),
    lastError: String(r.last_error ?? ""),
    lastUsedAt: Number(r.last_used_at ?? 0),
    requestsToday: Number(r.requests ?? 0),
    tokensToday: Number(r.tokens ?? 0),
    successesLastHour: Number(r.successes ?? 0),
    judgedLastHour: Number(r.judged ?? 0),
  }));
}

/** A key as the snapshot's batch reads it: its configuration, its health facts and its recent success counts. */
export interface KeySnapshotRow extends KeyStateRow {
  upstream_id: string;
  secret_enc: string;
  weight: number;
  models: string;
  /** JSON: the key's own limits. */
  limits: string;
  /** For alerts: the key's masked form and last balance reading. */
  masked: string;
  balance: number | null;
}

/** Every key as the snapshot carries it, with success counts since `since` where a judged attempt failed (for its batch); rows are `KeySnapshotRow`s. */
export function selectKeysForSnapshot(db: D1Database, since: number): D1PreparedStatement {
  return db
    .prepare(
      `SELECT k.id, k.upstream_id, k.secret_enc, k.weight, k.models, k.enabled, k.limits, k.masked, h.balance, ${HEALTH_FACT_COLUMNS}, r.successes, r.judged
       FROM keys k
       LEFT JOIN key_health h ON h.key_id = k.id
       LEFT JOIN (${recentMissesSql("?1")}) r ON r.key_id = k.id`,
    )
    .bind(since);
}

/** A key whose state may not be the default, as `selectKeyStates` reads it. */
export interface KeyStateRow {
  id: string;
  enabled: number;
  last_ok_ts: number | null;
  last_rate_limit_ts: number | null;
  cool_until: number | null;
  last_auth_fail_ts: number | null;
  last_no_balance_ts: number | null;
  failures: string | null;
  successes: number | null;
  judged: number | null;
}

/**
 * The keys whose snapshot state may not be the default at `now` — health facts
 * that can make a key dead, exhausted, failing or cooling, or a judged attempt
 * since `since` that failed — with their facts and success counts (for its
 * batch; rows are `KeyStateRow`s). Every other key is active with a success
 * rate of 1, so a pool where few keys are in trouble reads few rows.
 */
export function selectKeyStates(db: D1Database, now: number, since: number): D1PreparedStatement {
  return db
    .prepare(
      `${troubledKeysSql()}
       SELECT k.id, k.enabled, ${HEALTH_FACT_COLUMNS}, r.successes, r.judged
       FROM s JOIN keys k ON k.id = s.key_id
       LEFT JOIN key_health h ON h.key_id = k.id
       LEFT JOIN r ON r.key_id = k.id`,
    )
    .bind(since, now);
}

/**
 * The keys whose state may not be the default (`selectKeyStates`): `r`, judged misses since `?1`, and `s`, those keys
 * and the keys whose health facts may make them dead, exhausted, failing or cooling at `?2`.
 */
function troubledKeysSql(): string {
  return `WITH r AS (${recentMissesSql("?1")}),
            s AS (SELECT key_id FROM key_health
                   WHERE last_auth_fail_ts > last_ok_ts OR last_no_balance_ts > last_ok_ts
                      OR (last_rate_limit_ts > last_ok_ts AND cool_until > ?2)
                      OR (failures <> '[]' AND EXISTS (
                            SELECT 1 FROM json_each(failures) WHERE CAST(substr(value, 1, 15) AS INTEGER) > last_ok_ts))
                  UNION SELECT key_id FROM r)`;
}

// ---------------------------------------------------------------------------
// Key state over several fold databases: each key's health, capacity and rollups are in the database its id names
// (`foldShardOf`); the keys themselves in the first, the configuration's. A read takes the keys from the first and
// their state from each key's own.

/** Rows of each database's that are its own keys' (the first may hold other keys' only if the split changed). */
async function ownKeyRows(dbs: FoldDatabases, read: (db: D1Database) => Promise<Record<string, unknown>[]>): Promise<Record<string, unknown>[]> {
  const parts = await Promise.all(dbs.map(read));
  return parts.flatMap((rows, i) => rows.filter((r) => foldShardOf(String(r.id), dbs.length) === i));
}

/** What a key's row takes from its fold database for the snapshot: its balance, health facts and judged misses. */
const KEY_STATE_SELECT = `h.balance, ${HEALTH_FACT_COLUMNS}, r.successes, r.judged`;

/** KEY_STATE_SELECT by key `id` in one fold database, judged misses since `since`: of `keyIds`, or of every key with a health row or a miss. */
function selectOwnKeyStates(db: D1Database, since: number, keyIds?: readonly string[]): D1PreparedStatement {
  return db
    .prepare(
      `WITH r AS (${recentMissesSql("?1")}), ids AS (SELECT key_id AS id FROM key_health UNION SELECT key_id FROM r)
       SELECT ids.id, ${KEY_STATE_SELECT}
       FROM ids LEFT JOIN key_health h ON h.key_id = ids.id LEFT JOIN r ON r.key_id = ids.id
       WHERE ?2 IS NULL OR ids.id IN (SELECT value FROM json_each(?2))`,
    )
    .bind(since, keyIds ? JSON.stringify(keyIds) : null);
}

/** `selectKeysForSnapshot`'s rows over several fold databases: the keys from the first, each one's state from its own. */
export async function keysForSnapshotAcross(dbs: FoldDatabases, keys: KeySnapshotRow[], since: number): Promise<KeySnapshotRow[]> {
  const rows = await withOwnState(dbs, keys as unknown as Record<string, unknown>[], KEY_STATE_SELECT, (db) => selectOwnKeyStates(db, since).all());
  return rows as unknown as KeySnapshotRow[];
}

/** Every key a fold database holds a health or capacity row of, as `id` (a sub-query). */
const KEY_STATE_IDS = "SELECT key_id AS id FROM key_health UNION SELECT key_id FROM key_capacity";
/** Joins a key's health (`h`) and capacity (`c`) to `ids.id`. */
const KEY_STATE_JOINS = "LEFT JOIN key_health h ON h.key_id = ids.id LEFT JOIN key_capacity c ON c.key_id = ids.id";

/**
 * Rows the first database read, joining each key's state to it, with the columns of `select` (a SELECT list such as
 * HEALTH_FACT_COLUMNS) taken instead from the database holding the key: `read` gives each database's rows of them by
 * key `id`; a key none holds has them null, as a LEFT JOIN leaves them.
 */
async function withOwnState(
  dbs: FoldDatabases,
  rows: Record<string, unknown>[],
  select: string,
  read: (db: D1Database) => Promise<D1Result<Record<string, unknown>>>,
): Promise<Record<string, unknown>[]> {
  const columns = select.split(",").map((c) => c.trim().replace(/^\w+\./, ""));
  const states = new Map((await ownKeyRows(dbs, async (db) => (await read(db)).results)).map((r) => [String(r.id), r]));
  return rows.map((r) => {
    const state = states.get(String(r.id));
    return { ...r, ...Object.fromEntries(columns.map((c) => [c, state?.[c] ?? null])) };
  });
}

/** `selectKeyStates`'s rows over several fold databases: each database's keys in trouble, their admin state from the first. */
export async function keyStatesOfTroubledAcross(dbs: FoldDatabases, now: number, since: number): Promise<KeyStateRow[]> {
  const rows = await ownKeyRows(dbs, async (db) => {
    const { results } = await db
      .prepare(
        `${troubledKeysSql()}
         SELECT s.key_id AS id, ${HEALTH_FACT_COLUMNS}, r.successes, r.judged
         FROM s LEFT JOIN key_health h ON h.key_id = s.key_id LEFT JOIN r ON r.key_id = s.key_id`,
      )
      .bind(since, now)
      .all<Record<string, unknown>>();
    return results;
  });
  const enabled = await namesOf<number>(
    dbs[0],
    "keys",
    "enabled",
    rows.map((r) => String(r.id)),
  );
  return rows.filter((r) => enabled.has(String(r.id))).map((r) => ({ ...r, enabled: enabled.get(String(r.id)) }) as unknown as KeyStateRow);
}

/** `selectKeyFacts`'s rows over several fold databases: the keys' admin state from the first, their facts from their own. */
export async function keyFactsAcross(dbs: FoldDatabases, keyIds: string[]): Promise<Record<string, unknown>[]> {
  const [enabled, rows] = await Promise.all([
    namesOf<number>(dbs[0], "keys", "enabled", keyIds),
    ownKeyRows(dbs, async (db) => (await selectOwnKeyStates(db, Number.MAX_SAFE_INTEGER, keyIds).all<Record<string, unknown>>()).results),
  ]);
  const states = new Map(rows.map((r) => [String(r.id), r]));
  return [...enabled].map(([id, on]) => ({ ...states.get(id), id, enabled: on }));
}

/**
 * `selectKeyLabels`' rows over several fold databases: the masked form of the keys `ids` names and of the keys whose
 * balance is below `below`, with their balance from their own database.
 */
export async function keyLabelsAcross(
  dbs: FoldDatabases,
  ids: string[],
  below: number | null,
): Promise<{ id: string; masked: string; balance: number | null }[]> {
  const balances = await ownKeyRows(dbs, async (db) => {
    const { results } = await db
      .prepare("SELECT key_id AS id, balance FROM key_health WHERE key_id IN (SELECT value FROM json_each(?1)) OR balance < ?2")
      .bind(JSON.stringify(ids), below)
      .all<Record<string, unknown>>();
    return results;
  });
  const balance = new Map(balances.map((r) => [String(r.id), r.balance === null ? null : Number(r.balance)]));
  const masked = await namesOf(dbs[0], "keys", "masked", [...new Set([...ids, ...balance.keys()])]);
  return [...masked].map(([id, m]) => ({ id, masked: String(m), balance: balance.get(id) ?? null }));
}

/**
 * The masked form and balance of the keys `ids` names and of every key whose
 * balance is below `below` (null: none), for the pool's alerts: statements for
 * one batch (the ids in lists D1 takes — in an outage they can be every key),
 * whose rows may name a key twice.
 */
export function selectKeyLabels(db: D1Database, ids: string[], below: number | null): D1PreparedStatement[] {
  const lists = keyIdLists(ids);
  return (lists.length > 0 ? lists : ["[]"]).map((list) =>
    db
      .prepare(
        `SELECT k.id, k.masked, h.balance FROM keys k LEFT JOIN key_health h ON h.key_id = k.id
         WHERE k.id IN (SELECT value FROM json_each(?1)) OR h.balance < ?2`,
      )
      .bind(list, below),
  );
}

/** The admin state and health facts of the given keys (for a batch); rows go to `keyFactsFromRows`. */
export function selectKeyFacts(db: D1Database, keyIds: string[]): D1PreparedStatement {
  return db
    .prepare(
      `SELECT k.id, k.enabled, ${HEALTH_FACT_COLUMNS} FROM keys k LEFT JOIN key_health h ON h.key_id = k.id WHERE k.id IN (SELECT value FROM json_each(?1))`,
    )
    .bind(JSON.stringify(keyIds));
}

/** The rows of `selectKeyFacts` by key id. */
export function keyFactsFromRows(rows: Record<string, unknown>[]): Map<string, { enabled: boolean; facts: HealthFacts }> {
  return new Map(rows.map((r) => [String(r.id), { enabled: r.enabled === 1, facts: healthFactsFromRow(r) }]));
}

/** A key as the scheduler plans and sends its probes. */
export interface KeyProbeRow {
  keyId: string;
  enabled: boolean;
  facts: HealthFacts;
  lastProbeTs: number;
  baseUrl: string;
  kind: ProviderKindId;
  secretEnc: string;
}

/**
 * Every key of an enabled upstream, with its upstream and health facts, for
 * planning probes; or only the keys `keyIds` names (a probe job's, at most a
 * thousand), those of them that still exist.
 */
export async function readProbeCandidates(dbs: FoldDatabases, keyIds?: readonly string[]): Promise<KeyProbeRow[]> {
  const db = dbs[0];
  const sql = `SELECT k.id, k.enabled, k.secret_enc, u.base_url, u.kind, ${HEALTH_FACT_COLUMNS}, h.last_probe_ts
       FROM keys k JOIN upstreams u ON u.id = k.upstream_id LEFT JOIN key_health h ON h.key_id = k.id
       WHERE u.enabled = 1`;
  const statement = keyIds ? db.prepare(`${sql} AND k.id IN (SELECT value FROM json_each(?1))`).bind(JSON.stringify(keyIds)) : db.prepare(sql);
  const { results: read } = await statement.all<Record<string, unknown>>();
  const state = `${HEALTH_FACT_COLUMNS}, h.last_probe_ts`;
  const results =
    dbs.length === 1
      ? read
      : await withOwnState(dbs, read, state, (other) =>
          other
            .prepare(`SELECT h.key_id AS id, ${state} FROM key_health h WHERE ?1 IS NULL OR h.key_id IN (SELECT value FROM json_each(?1))`)
            .bind(keyIds ? JSON.stringify(keyIds) : null)
            .all<Record<string, unknown>>(),
        );
  return results.map((r) => ({
    keyId: String(r.id),
    enabled: r.enabled === 1,
    facts: healthFactsFromRow(r),
    lastProbeTs: Number(r.last_probe_ts ?? 0),
    baseUrl: String(r.base_url),
    kind: String(r.kind) as ProviderKindId,
    secretEnc: String(r.secret_enc),
  }));
}

/** What an admin may change of a key. */
export interface KeyFields {
  enabled: boolean;
  weight: number;
  models: string[];
  note: string;
  limits: Limits;
}

/** The editable fields of one key, or null if there is no such key. */
export async function findKeyFields(db: D1Database, id: string): Promise<KeyFields | null> {
  const row = await db
    .prepare("SELECT enabled, weight, models, note, limits FROM keys WHERE id = ?1")
    .bind(id)
    .first<{ enabled: number; weight: number; models: string; note: string; limits: string }>();
  return row
    ? { enabled: row.enabled === 1, weight: row.weight, models: JSON.parse(row.models) as string[], note: row.note, limits: limitsFromColumn(row.limits) }
    : null;
}

export async function updateKeyFields(db: D1Database, id: string, f: KeyFields, now: number): Promise<void> {
  await db
    .prepare("UPDATE keys SET enabled = ?2, weight = ?3, models = ?4, note = ?5, limits = ?6, updated_at = ?7 WHERE id = ?1")
    .bind(id, f.enabled ? 1 : 0, f.weight, JSON.stringify(f.models), f.note, JSON.stringify(f.limits), now)
    .run();
}

/** Replaces the own limits of keys by id; returns how many changed. */
export async function setKeysLimits(db: D1Database, ids: string[], limits: Limits, now: number): Promise<number> {
  const r = await db
    .prepare("UPDATE keys SET limits = ?2, updated_at = ?3 WHERE limits != ?2 AND id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids), JSON.stringify(limits), now)
    .run();
  return r.meta.changes ?? 0;
}

/** Enables or disables keys by id; returns how many changed. */
export async function setKeysEnabled(db: D1Database, ids: string[], enabled: boolean, now: number): Promise<number> {
  const r = await db
    .prepare("UPDATE keys SET enabled = ?2, updated_at = ?3 WHERE enabled != ?2 AND id IN (SELECT value FROM json_each(?1))")
    .bind(JSON.stringify(ids), enabled ? 1 : 0, now)
    .run();
  return r.meta.changes ?? 0;
}

/** Deletes keys by id; returns how many were deleted. */
export async function deleteKeys(db: D1Database, ids: string[]): Promise<number> {
  const r = await db.prepare("DELETE FROM keys WHERE id IN (SELECT value FROM json_each(?1))").bind(JSON.stringify(ids)).run();
  return r.meta.changes ?? 0;
}

/** How many keys an upstream holds. */
export async function countKeys(db: D1Database, upstreamId: string): Promise<number> {
  const row = await db.prepare("SELECT COUNT(*) AS n FROM keys WHERE upstream_id = ?1").bind(upstreamId).first<{ n: number }>();
  return row?.n ?? 0;
}

/** A key whose capacity the pool counts: its limits (its own, and its upstream's) and the providers' latest word on it. */
export interface CapacityKeyRow {
  keyId: string;
  limits: Limits;
  upstreamLimits: Limits;
  requests: WindowReading | null;
  tokens: WindowReading | null;
}

/**
 * `ids` as JSON arrays of at most `maxBytes` each, for `json_each(?1)`
 * parameters: a pool's limited keys as one list can be longer than the string
 * D1 takes (a UUID is 39 bytes of JSON). Each id is in exactly one list; none
 * for no ids.
 */
export function keyIdLists(ids: readonly string[], maxBytes = KEY_ID_LIST_BYTES): string[] {
  // Two bytes of the budget for the brackets.
  return groupsUnder(ids, idJsonBytes, Number.POSITIVE_INFINITY, maxBytes - 2).map((list) => JSON.stringify(list));
}

/**
 * Per key of `keyIds` (a JSON array): when the latest attempt the consumer has
 * folded was sent (`last_used_at`), for the caller's batch — read in one
 * transaction with the rollups, it says exactly which attempts they hold.
 */
export function selectLastUsed(db: D1Database, keyIds: string): D1PreparedStatement {
  return db.prepare(`SELECT key_id, last_used_at FROM key_health WHERE key_id IN (SELECT value FROM json_each(?1))`).bind(keyIds);
}

/**
 * Every enabled key with a limit configured (on it or its upstream), or whose
 * provider's latest word says less than `share` of a window is left and the
 * window has not reset by `now` (or nothing is left, where no limit is said):
 * the keys the pool's usage covers. The readings come only for the keys they
 * say are nearly spent (the usage carries no others): a pool's usage publish
 * reads every limited key each second, and a row's cost grows with its cells.
 * `onResults` gets the statements' results (their meta: what D1 spent).
 */
export async function readCapacityKeys(
  dbs: FoldDatabases,
  now: number,
  share: number,
  onResults: (results: D1Result[], shard: number) => void = () => {},
): Promise<CapacityKeyRow[]> {
  const db = dbs[0];
  const spent = (p: "req" | "tok") =>
    `(c.${p}_remaining IS NOT NULL AND (c.${p}_reset_at IS NULL OR c.${p}_reset_at > ?1)
      AND (CASE WHEN c.${p}_limit > 0 THEN c.${p}_remaining < c.${p}_limit * ?2 ELSE c.${p}_remaining = 0 END))`;
  const one = dbs.length === 1;
  const results = await db.batch<Record<string, unknown>>([
    db.prepare("SELECT id, limits FROM upstreams"),
    db.prepare(
      `SELECT k.id, k.upstream_id, k.limits FROM keys k JOIN upstreams u ON u.id = k.upstream_id
       WHERE k.enabled = 1 AND (k.limits != '{}' OR u.limits != '{}')`,
    ),
    ...(one
      ? [
          db
            .prepare(
              `SELECT k.id, k.upstream_id, k.limits, ${CAPACITY_COLUMNS} FROM keys k JOIN key_capacity c ON c.key_id = k.id
               WHERE k.enabled = 1 AND (${spent("req")} OR ${spent("tok")})`,
            )
            .bind(now, share),
        ]
      : []),
  ]);
  onResults(results, 0);
  const [upstreams, limited, spentHere] = results;
  let nearlySpent = spentHere?.results ?? [];
  if (!one) {
    // Each database's readings nearly spent, of its own keys; the keys (enabled ones) from the configuration.
    const readings = await ownKeyRows(dbs, async (other) => {
      const { results } = await other
        .prepare(`SELECT c.key_id AS id, ${CAPACITY_COLUMNS} FROM key_capacity c WHERE ${spent("req")} OR ${spent("tok")}`)
        .bind(now, share)
        .all<Record<string, unknown>>();
      return results;
    });
    const ids = JSON.stringify(readings.map((r) => String(r.id)));
    const { results: config } = await db
      .prepare("SELECT id, upstream_id, limits FROM keys WHERE enabled = 1 AND id IN (SELECT value FROM json_each(?1))")
      .bind(ids)
      .all<Record<string, unknown>>();
    const reading = new Map(readings.map((r) => [String(r.id), r]));
    nearlySpent = config.map((k) => ({ ...reading.get(String(k.id)), ...k }));
  }
  const upstreamLimits = new Map((upstreams?.results ?? []).map((u) => [String(u.id), limitsFromColumn(u.limits as string)]));
  const keys = new Map<string, CapacityKeyRow>();
  const add = (r: Record<string, unknown>, readings: Pick<CapacityKeyRow, "requests" | "tokens">) =>
    keys.set(String(r.id), {
      keyId: String(r.id),
      limits: limitsFromColumn(r.limits as string),
      upstreamLimits: upstreamLimits.get(String(r.upstream_id)) ?? {},
      ...readings,
    });
  for (const r of limited?.results ?? []) add(r, { requests: null, tokens: null });
  for (const r of nearlySpent) add(r, capacityFromRow(r));
  return [...keys.values()];
}

/** A page of keys' ciphertexts in id order, after `afterId`: what a key-encryption-key rotation re-seals. */
export async function readSealedKeys(db: D1Database, afterId: string, limit: number): Promise<{ id: string; secretEnc: string }[]> {
  const { results } = await db
    .prepare("SELECT id, secret_enc FROM keys WHERE id > ?1 ORDER BY id LIMIT ?2")
    .bind(afterId, limit)
    .all<{ id: string; secret_enc: string }>();
  return results.map((r) => ({ id: r.id, secretEnc: r.secret_enc }));
}

/**
 * Replaces keys' ciphertexts, each only if it is still the one that was read (a
 * key deleted or re-sealed meanwhile is left as it is). Returns how many changed.
 */
export async function replaceSealedKeys(db: D1Database, changes: { id: string; from: string; to: string }[]): Promise<number> {
  if (changes.length === 0) return 0;
  const results = await db.batch(
    changes.map((ch) => db.prepare("UPDATE keys SET secret_enc = ?3 WHERE id = ?1 AND secret_enc = ?2").bind(ch.id, ch.from, ch.to)),
  );
  return results.reduce((n, r) => n + (r.meta.changes ?? 0), 0);
}
