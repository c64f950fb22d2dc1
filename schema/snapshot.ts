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

/** The KV key the snapshot lives under. */
export const SNAPSHOT_KV_KEY = "snapshot:v1";

/**
 * A small KV key holding the snapshot's version, written after the snapshot: an
 * isolate's periodic check reads it, and downloads the snapshot (which grows with
 * the pool) only when the version moved.
 */
export const SNAPSHOT_VERSION_KV_KEY = "snapshot:v1:version";
