import { z } from "zod";
import { snapshotPriceSchema } from "./prices";
import { limitsSchema } from "./capacity";
import { providerKindIdSchema } from "./providers";
import { settingsSchema } from "./settings";

/** Health states of a key; the consumer folds events into them. */
export const keyStateSchema = z.enum(["active", "cooling", "exhausted", "failing", "dead", "disabled"]);
export type KeyState = z.infer<typeof keyStateSchema>;

export const snapshotUpstreamSchema = z.object({
  id: z.string(),
  name: z.string(),
  baseUrl: z.string(),
  kind: providerKindIdSchema,
  /** Models this upstream serves; empty means any model. */
  models: z.array(z.string()),
  /** Client model name → the name this upstream knows it by; an alias is served too. */
  aliases: z.record(z.string(), z.string()),
  enabled: z.boolean(),
  /** The provider's limits on each of its keys, where known (absent: none known). */
  limits: limitsSchema.optional(),
});
export type SnapshotUpstream = z.infer<typeof snapshotUpstreamSchema>;

const snapshotKeySchema = z.object({
  id: z.string(),
  upstreamId: z.string(),
  /** AES-GCM ciphertext of the key (see the gateway's crypto module); never the plaintext. */
  secret: z.string(),
  weight: z.number().positive(),
  /** Narrows the upstream's models; empty means all of them. */
  models: z.array(z.string()),
  state: keyStateSchema,
  /** Epoch ms until which a cooling key must not be used. */
  coolingUntil: z.number().nullable(),
  /** Smoothed success rate in [0, 1]. */
  successRate: z.number().min(0).max(1),
  /** This key's own limits, over its upstream's one by one (absent: its upstream's). */
  limits: limitsSchema.optional(),
});
export type SnapshotKey = z.infer<typeof snapshotKeySchema>;

const snapshotClientKeySchema = z.object({
  id: z.string(),
  name: z.string(),
  /** Lowercase hex SHA-256 of the client key. */
  hash: z.string().regex(/^[0-9a-f]{64}$/),
  /** Models the client may use; empty means all. */
  models: z.array(z.string()),
  rpmLimit: z.number().int().positive().nullable(),
  tpmLimit: z.number().int().positive().nullable(),
  /** Quotas beyond RPM and TPM (absent from snapshots written before them: none). Budgets in micro-units. */
  rpdLimit: z.number().int().positive().nullable().default(null),
  tpdLimit: z.number().int().positive().nullable().default(null),
  monthlyTokenLimit: z.number().int().positive().nullable().default(null),
  dailyBudgetMicros: z.number().int().nonnegative().nullable().default(null),
  monthlyBudgetMicros: z.number().int().nonnegative().nullable().default(null),
  expiresAt: z.number().nullable(),
  enabled: z.boolean(),
  /** Smooth its streams: on, off, or as the pool's `smoothStreams` setting says (null). */
  smoothStreams: z.boolean().nullable().default(null),
  /** Keep its requests' bodies: on, off, or as the pool's `storeBodies` setting says (null). */
  storeBodies: z.boolean().nullable().default(null),
});
export type SnapshotClientKey = z.infer<typeof snapshotClientKeySchema>;

/** The read-optimised pool the gateway serves from; only the consumer writes it. */
export const snapshotSchema = z.object({
  version: z.number().int().nonnegative(),
  generatedAt: z.number().int(),
  upstreams: z.array(snapshotUpstreamSchema),
  keys: z.array(snapshotKeySchema),
  clientKeys: z.array(snapshotClientKeySchema),
  settings: settingsSchema,
  /** The prices in force when it was written (an isolate counts its own spend by them until the consumer's count comes). */
  prices: z.array(snapshotPriceSchema).default([]),
});
export type Snapshot = z.infer<typeof snapshotSchema>;

/**
 * The snapshot as stored in KV (format 2). One value would grow with the pool
 * past what KV holds (25 MiB) and what an isolate can re-read every time a key's
 * state changes, so it is split by how often each part changes:
 *
 * - key parts: each key's configuration (id, upstream, sealed secret, weight,
 *   models, limits, disabled), a few thousand keys a value under a name derived
 *   from its content — they change only when an admin changes keys, and a reader
 *   downloads only the parts it does not hold;
 * - the head: everything else (upstreams, client keys, settings, prices), the
 *   names of the key parts, and the state of each key whose state is not the
 *   default (active, not cooling, every judged attempt a success) — rewritten
 *   whenever a key's state changes, and small however large the pool.
 *
 * Readers assemble the two into a `Snapshot`; the assembled value is what the
 * consumer built.
 */
const snapshotKeyConfigSchema = snapshotKeySchema.pick({ id: true, upstreamId: true, secret: true, weight: true, models: true, limits: true }).extend({
  /** Disabled by an admin (absent: enabled). */
  disabled: z.literal(true).optional(),
});
export type SnapshotKeyConfig = z.infer<typeof snapshotKeyConfigSchema>;

export const snapshotKeyPartSchema = z.array(snapshotKeyConfigSchema);

/** A key's state when it is not the default: [state, coolingUntil, successRate]. */
const keyStateEntrySchema = z.tuple([keyStateSchema, z.number().nullable(), z.number().min(0).max(1)]);
export type KeyStateEntry = z.infer<typeof keyStateEntrySchema>;

export const snapshotHeadSchema = z.object({
  format: z.literal(2),
  version: z.number().int().nonnegative(),
  generatedAt: z.number().int(),
  upstreams: z.array(snapshotUpstreamSchema),
  clientKeys: z.array(snapshotClientKeySchema),
  settings: settingsSchema,
  prices: z.array(snapshotPriceSchema),
  /** The KV keys of the key parts, in order. */
  keyParts: z.array(z.string()),
  /** How many keys the parts hold together (a reader checks what it assembled). */
  keyCount: z.number().int().nonnegative(),
  /** Keys not in the default state, by id; a key absent is active, not cooling, success rate 1. */
  states: z.record(z.string(), keyStateEntrySchema),
});
export type SnapshotHead = z.infer<typeof snapshotHeadSchema>;

/** The head's KV key. */
export const SNAPSHOT_KV_KEY = "snapshot:v2";

/**
 * A small KV key holding the snapshot's version, written after the head: an
 * isolate's periodic check reads it, and reads the head only when it moved.
 */
export const SNAPSHOT_VERSION_KV_KEY = "snapshot:v2:version";

/** Key parts live under this prefix followed by a digest of their content. */
export const SNAPSHOT_PART_PREFIX = "snapshot:v2:keys:";

/** Where format 1 (one value) lived; read only until a format-2 head has been written. */
export const LEGACY_SNAPSHOT_KV_KEY = "snapshot:v1";

/** The default state a head leaves out. */
const DEFAULT_STATE = { state: "active", coolingUntil: null, successRate: 1 } as const;

/** A snapshot key's state as the head stores it, or null when it is the default. */
export function stateEntryOf(key: Pick<SnapshotKey, "state" | "coolingUntil" | "successRate">): KeyStateEntry | null {
  // A disabled key's state is its configuration; only a success rate that is not 1 is kept.
  if (key.state === "disabled") return key.successRate === 1 ? null : ["disabled", null, key.successRate];
  if (key.state === DEFAULT_STATE.state && key.coolingUntil === null && key.successRate === 1) return null;
  return [key.state, key.coolingUntil, key.successRate];
}

/** A key's configuration as a key part stores it. */
export function keyConfigOf(key: SnapshotKey): SnapshotKeyConfig {
  return {
    id: key.id,
    upstreamId: key.upstreamId,
    secret: key.secret,
    weight: key.weight,
    models: key.models,
    ...(key.limits ? { limits: key.limits } : {}),
    ...(key.state === "disabled" ? { disabled: true as const } : {}),
  };
}

/** Keys per part: large enough that a pool of 100,000 keys is a few dozen values, small enough that adding one key rewrites little. */
export const KEYS_PER_PART = 2_000;

/** How many parts a pool of `n` keys is spread over: a power of two, so a part's keys move only when the pool doubles or halves. */
export function partCount(n: number): number {
  let parts = 1;
  while (parts * KEYS_PER_PART < n) parts *= 2;
  return parts;
}

/** FNV-1a of a text's UTF-16 code units, as an unsigned 32-bit number: a stable spread of ids (not a digest). */
export function fnv1a32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** The part a key belongs to among `parts` (FNV-1a of its id), stable while the part count is. */
export function partOf(keyId: string, parts: number): number {
  return fnv1a32(keyId) % parts;
}

/** Spreads a snapshot's keys over parts (each in the snapshot's order); the head is built from their names. */
export function splitKeys(keys: SnapshotKey[]): SnapshotKeyConfig[][] {
  const n = partCount(keys.length);
  const parts: SnapshotKeyConfig[][] = Array.from({ length: n }, () => []);
  for (const key of keys) parts[partOf(key.id, n)]!.push(keyConfigOf(key));
  return parts.filter((p) => p.length > 0);
}

/** The head of `snapshot` whose key parts are stored under `keyParts`. */
export function headOf(snapshot: Snapshot, keyParts: string[]): SnapshotHead {
  const states: SnapshotHead["states"] = {};
  for (const key of snapshot.keys) {
    const entry = stateEntryOf(key);
    if (entry) states[key.id] = entry;
  }
  return {
    format: 2,
    version: snapshot.version,
    generatedAt: snapshot.generatedAt,
    upstreams: snapshot.upstreams,
    clientKeys: snapshot.clientKeys,
    settings: snapshot.settings,
    prices: snapshot.prices,
    keyParts,
    keyCount: snapshot.keys.length,
    states,
  };
}

/**
 * A key in the state a head leaves out (disabled when its configuration says so).
 * Built property by property: an isolate holds one per key, and an object made
 * by spreading another takes several times the memory in V8.
 */
export function keyFromConfig(config: SnapshotKeyConfig): SnapshotKey {
  const disabled = config.disabled === true;
  return withLimits(
    {
      id: config.id,
      upstreamId: config.upstreamId,
      secret: config.secret,
      weight: config.weight,
      models: config.models,
      state: disabled ? "disabled" : "active",
      coolingUntil: null,
      successRate: 1,
    },
    config.limits,
  );
}

function withLimits(key: SnapshotKey, limits: SnapshotKey["limits"]): SnapshotKey {
  if (limits) key.limits = limits;
  return key;
}

/** `key` (as `keyFromConfig` made it) with the state its head holds for it, if any. */
export function withState(key: SnapshotKey, entry: KeyStateEntry | undefined): SnapshotKey {
  if (!entry) return key;
  const disabled = key.state === "disabled";
  return withLimits(
    {
      id: key.id,
      upstreamId: key.upstreamId,
      secret: key.secret,
      weight: key.weight,
      models: key.models,
      state: disabled ? "disabled" : entry[0],
      coolingUntil: disabled ? null : entry[1],
      successRate: entry[2],
    },
    key.limits,
  );
}
