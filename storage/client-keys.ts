import type { ClientKeyView } from "../schema";
import { usageOnDaySql } from "./rollups";

/**
 * The `client_keys` table: who may call the pool (SHA-256 hashes only, never
 * the key), with their limits. Written by the admin API; read by the consumer
 * (the snapshot).
 */

/** A client key as stored and shown (never the key itself: only its hash, which is not shown either). */
export type ClientKeyRecord = Omit<ClientKeyView, "requestsToday" | "tokensToday">;

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
  expires_at: number | null;
  enabled: number;
  smooth_streams: number | null;
}

export async function insertClientKey(db: D1Database, k: NewClientKey): Promise<void> {
  await db
    .prepare(
      `INSERT INTO client_keys (id, name, hash, masked, models, rpm_limit, tpm_limit, expires_at, enabled, smooth_streams, created_at, updated_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)`,
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
    )
    .run();
}

/** `smooth_streams` as stored: 1, 0, or NULL for the pool's setting. */
const smoothColumn = (on: boolean | null) => (on === null ? null : on ? 1 : 0);

function toClientKey(r: Record<string, unknown>): ClientKeyRecord {
  return {
    id: String(r.id),
    name: String(r.name),
    masked: String(r.masked),
    models: JSON.parse(String(r.models)) as string[],
    rpmLimit: r.rpm_limit === null ? null : Number(r.rpm_limit),
    tpmLimit: r.tpm_limit === null ? null : Number(r.tpm_limit),
    expiresAt: r.expires_at === null ? null : Number(r.expires_at),
    enabled: r.enabled === 1,
    smoothStreams: r.smooth_streams === null || r.smooth_streams === undefined ? null : r.smooth_streams === 1,
    createdAt: Number(r.created_at),
  };
}

/** Every client key with its usage on the day starting at `todayBucket` (requests, tokens). */
export async function listClientKeys(db: D1Database, todayBucket: number): Promise<ClientKeyView[]> {
  const { results } = await db
    .prepare(
      `SELECT c.id, c.name, c.masked, c.models, c.rpm_limit, c.tpm_limit, c.expires_at, c.enabled, c.smooth_streams, c.created_at, d.requests, d.tokens
       FROM client_keys c
       LEFT JOIN (${usageOnDaySql("client_key_id", "?1")}) d ON d.client_key_id = c.id
       ORDER BY c.created_at, c.id`,
    )
    .bind(todayBucket)
    .all<Record<string, unknown>>();
  return results.map((r) => ({ ...toClientKey(r), requestsToday: Number(r.requests ?? 0), tokensToday: Number(r.tokens ?? 0) }));
}

/** Every client key as the snapshot carries it (for its batch); rows are `ClientKeyRow`s. */
export function selectAllClientKeys(db: D1Database): D1PreparedStatement {
  return db.prepare("SELECT id, name, hash, models, rpm_limit, tpm_limit, expires_at, enabled, smooth_streams FROM client_keys");
}

export async function findClientKey(db: D1Database, id: string): Promise<ClientKeyRecord | null> {
  const row = await db.prepare("SELECT * FROM client_keys WHERE id = ?1").bind(id).first<Record<string, unknown>>();
  return row ? toClientKey(row) : null;
}

export async function updateClientKey(db: D1Database, k: ClientKeyRecord, now: number): Promise<void> {
  await db
    .prepare(
      "UPDATE client_keys SET name = ?2, models = ?3, rpm_limit = ?4, tpm_limit = ?5, expires_at = ?6, enabled = ?7, smooth_streams = ?8, updated_at = ?9 WHERE id = ?1",
    )
    .bind(k.id, k.name, JSON.stringify(k.models), k.rpmLimit, k.tpmLimit, k.expiresAt, k.enabled ? 1 : 0, smoothColumn(k.smoothStreams), now)
    .run();
}

export async function deleteClientKey(db: D1Database, id: string): Promise<boolean> {
  const r = await db.prepare("DELETE FROM client_keys WHERE id = ?1").bind(id).run();
  return (r.meta.changes ?? 0) > 0;
}
