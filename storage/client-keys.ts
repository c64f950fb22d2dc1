import { fromMicros, toMicros, type ClientKeyView, type SnapshotClientKey } from "../schema";
import { usageOnDaySql } from "./rollups";

/**
 * The `client_keys` table: who may call the pool (SHA-256 hashes only, never
 * the key), with their limits. Written by the admin API; read by the consumer
 * (the snapshot).
 */

/** A client key as stored and shown (never the key itself: only its hash, which is not shown either). */
export type ClientKeyRecord = Omit<ClientKeyView, "requestsToday" | "tokensToday" | "costTodayMicros">;

export interface NewClientKey extends ClientKeyRecord {
  hash: string;
}

/** A client key as the snapshot's batch reads it. */
export interface ClientKeyRow {
  id: string;
  name: string;
  hash: string;
  models: string;
  rpm_limit: number | null;
  tpm_limit: number | null;
  rpd_limit: number | null;
  tpd_limit: number | null;
  monthly_token_limit: number | null;
  daily_budget_micros: number | null;
  monthly_budget_micros: number | null;
  expires_at: number | null;
  enabled: number;
  smooth_streams: number | null;
  store_bodies: number | null;
}

export async function insertClientKey(db: D1Database, k: NewClientKey): Promise<void> {
  await db
    .prepare(
      `INSERT INTO client_keys (id, name, hash, masked, models, rpm_limit, tpm_limit, expires_at, enabled, smooth_streams, created_at, updated_at,
         rpd_limit, tpd_limit, monthly_token_limit, daily_budget_micros, monthly_budget_micros, store_bodies)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?12, ?13, ?14, ?15, ?16, ?17)`,
    )
    .bind(
      k.id,
      k.name,
      k.hash,
      k.masked,
      JSON.stringify(k.models),
      k.rpmLimit,
      k.tpmLimit,
      k.expiresAt,
      k.enabled ? 1 : 0,
      smoothColumn(k.smoothStreams),
      k.createdAt,
      ...quotaColumns(k),
      smoothColumn(k.storeBodies),
    )
    .run();
}

/** The quota columns' values, in their order (budgets in micro-units). */
const quotaColumns = (k: ClientKeyRecord) => [
  k.rpdLimit,
  k.tpdLimit,
  k.monthlyTokenLimit,
  k.dailyBudget === null ? null : toMicros(k.dailyBudget),
  k.monthlyBudget === null ? null : toMicros(k.monthlyBudget),
];

/** `smooth_streams` (and `store_bodies`) as stored: 1, 0, or NULL for the pool's setting. */
const smoothColumn = (on: boolean | null) => (on === null ? null : on ? 1 : 0);

const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));

function toClientKey(r: Record<string, unknown>): ClientKeyRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    masked: String(r.masked),
    models: JSON.parse(String(r.models)) as string[],
    rpmLimit: num(r.rpm_limit),
    tpmLimit: num(r.tpm_limit),
    rpdLimit: num(r.rpd_limit),
    tpdLimit: num(r.tpd_limit),
    monthlyTokenLimit: num(r.monthly_token_limit),
    dailyBudget: r.daily_budget_micros === null || r.daily_budget_micros === undefined ? null : fromMicros(Number(r.daily_budget_micros)),
    monthlyBudget: r.monthly_budget_micros === null || r.monthly_budget_micros === undefined ? null : fromMicros(Number(r.monthly_budget_micros)),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    enabled: r.enabled === 1,
    smoothStreams: r.smooth_streams === null || r.smooth_streams === undefined ? null : r.smooth_streams === 1,
    storeBodies: r.store_bodies === null || r.store_bodies === undefined ? null : r.store_bodies === 1,
    createdAt: Number(r.created_at),
  };
}

/** Every client key with its usage on the day starting at `todayBucket` (requests, tokens). */
export async function listClientKeys(db: D1Database, todayBucket: number): Promise<ClientKeyView[]> {
  const { results } = await db
    .prepare(
      `SELECT c.*, d.requests, d.tokens, d.cost
       FROM client_keys c
       LEFT JOIN (${usageOnDaySql("client_key_id", "?1")}) d ON d.client_key_id = c.id
       ORDER BY c.created_at, c.id`,
    )
    .bind(todayBucket)
    .all<Record<string, unknown>>();
  return results.map((r) => ({
    ...toClientKey(r),
    requestsToday: Number(r.requests ?? 0),
    tokensToday: Number(r.tokens ?? 0),
    costTodayMicros: Number(r.cost ?? 0),
  }));
}

/** Every client key as the snapshot carries it (for its batch); rows are `ClientKeyRow`s. */
export function selectAllClientKeys(db: D1Database): D1PreparedStatement {
  return db.prepare(
    `SELECT id, name, hash, models, rpm_limit, tpm_limit, rpd_limit, tpd_limit, monthly_token_limit, daily_budget_micros, monthly_budget_micros,
       expires_at, enabled, smooth_streams, store_bodies FROM client_keys`,
  );
}

export async function findClientKey(db: D1Database, id: string): Promise<ClientKeyRecord | null> {
  const row = await db.prepare("SELECT * FROM client_keys WHERE id = ?1").bind(id).first<Record<string, unknown>>();
  return row ? toClientKey(row) : null;
}

export async function updateClientKey(db: D1Database, k: ClientKeyRecord, now: number): Promise<void> {
  await db
    .prepare(
      `UPDATE client_keys SET name = ?2, models = ?3, rpm_limit = ?4, tpm_limit = ?5, expires_at = ?6, enabled = ?7, smooth_streams = ?8, updated_at = ?9,
         rpd_limit = ?10, tpd_limit = ?11, monthly_token_limit = ?12, daily_budget_micros = ?13, monthly_budget_micros = ?14, store_bodies = ?15
       WHERE id = ?1`,
    )
    .bind(
      k.id,
      k.name,
      JSON.stringify(k.models),
      k.rpmLimit,
      k.tpmLimit,
      k.expiresAt,
      k.enabled ? 1 : 0,
      smoothColumn(k.smoothStreams),
      now,
      ...quotaColumns(k),
      smoothColumn(k.storeBodies),
    )
    .run();
}

export async function deleteClientKey(db: D1Database, id: string): Promise<boolean> {
  const r = await db.prepare("DELETE FROM client_keys WHERE id = ?1").bind(id).run();
  return (r.meta.changes ?? 0) > 0;
}

/** A sub-query of the enabled client keys' ids that have a quota of any kind (their usage is published for the gateway to enforce). */
export const QUOTA_CLIENT_IDS_SQL = `SELECT id FROM client_keys WHERE enabled = 1 AND (rpm_limit IS NOT NULL OR tpm_limit IS NOT NULL
  OR rpd_limit IS NOT NULL OR tpd_limit IS NOT NULL OR monthly_token_limit IS NOT NULL OR daily_budget_micros IS NOT NULL
  OR monthly_budget_micros IS NOT NULL)`;

/** A client key as the snapshot would carry it (without its hash, which the admin API never reads): for working out its quotas. */
export function snapshotClientOf(k: ClientKeyRecord): SnapshotClientKey {
  return {
    id: k.id,
    name: k.name,
    hash: "0".repeat(64),
    models: k.models,
    rpmLimit: k.rpmLimit,
    tpmLimit: k.tpmLimit,
    rpdLimit: k.rpdLimit,
    tpdLimit: k.tpdLimit,
    monthlyTokenLimit: k.monthlyTokenLimit,
    dailyBudgetMicros: k.dailyBudget === null ? null : toMicros(k.dailyBudget),
    monthlyBudgetMicros: k.monthlyBudget === null ? null : toMicros(k.monthlyBudget),
    expiresAt: k.expiresAt,
    enabled: k.enabled,
    smoothStreams: k.smoothStreams,
    storeBodies: k.storeBodies,
  };
}
