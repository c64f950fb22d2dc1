import { z } from "zod";
import { limitsSchema } from "./capacity";
import { moneySchema } from "./prices";
import { providerKindIdSchema } from "./providers";
import { keyStateSchema, snapshotUpstreamSchema } from "./snapshot";

export const loginBodySchema = z.object({ password: z.string().min(1).max(1024) });
export const loginResponseSchema = z.object({ token: z.string(), expiresAt: z.number() });

/** Whether the request carries a valid admin session: a visitor who is not logged in gets `authenticated: false`, not an error. */
export const sessionViewSchema = z.discriminatedUnion("authenticated", [
  z.object({ authenticated: z.literal(true), subject: z.string(), expiresAt: z.number() }),
  z.object({ authenticated: z.literal(false) }),
]);
export type SessionView = z.infer<typeof sessionViewSchema>;

export const createUpstreamBodySchema = z.object({
  name: z.string().trim().min(1).max(100),
  baseUrl: z.url({ protocol: /^https?$/, error: "baseUrl must be an http(s) URL such as https://api.openai.com/v1" }).transform((u) => u.replace(/\/+$/, "")),
  kind: providerKindIdSchema.default("custom"),
  models: z.array(z.string().trim().min(1).max(200)).max(1000).default([]),
  aliases: z.record(z.string().trim().min(1).max(200), z.string().trim().min(1).max(200)).default({}),
  /** Limits the provider puts on each key of this upstream (a key may override them); unknown ones left out. */
  limits: limitsSchema.default({}),
});

/** An upstream as the admin API lists it: what the snapshot carries (its limits always, `{}` for none), plus when it was created. */
export const upstreamViewSchema = snapshotUpstreamSchema.extend({ limits: limitsSchema, createdAt: z.number() });
export type UpstreamView = z.infer<typeof upstreamViewSchema>;

export const addKeysBodySchema = z.object({
  upstreamId: z.string().min(1),
  /** Keys separated by newlines, commas, semicolons or spaces. */
  text: z.string().max(2_000_000),
});
export const addKeysResponseSchema = z.object({
  added: z.number().int(),
  duplicates: z.number().int(),
  invalid: z.array(z.object({ line: z.number().int(), reason: z.string() })),
});
export type AddKeysResponse = z.infer<typeof addKeysResponseSchema>;

/** Editable fields of an upstream; anything left out keeps its value. */
export const updateUpstreamBodySchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    baseUrl: z.url({ protocol: /^https?$/, error: "baseUrl must be an http(s) URL such as https://api.openai.com/v1" }).transform((u) => u.replace(/\/+$/, "")),
    kind: providerKindIdSchema,
    models: z.array(z.string().trim().min(1).max(200)).max(1000),
    aliases: z.record(z.string().trim().min(1).max(200), z.string().trim().min(1).max(200)),
    enabled: z.boolean(),
    /** Replaces the upstream's limits (`{}`: none known). */
    limits: limitsSchema,
  })
  .partial()
  .strict();

/** Sort orders of the key list; a leading `-` means descending. */
const keySortSchema = z.enum([
  "created",
  "-created",
  "lastUsed",
  "-lastUsed",
  "balance",
  "-balance",
  "state",
  "-state",
  "requests",
  "-requests",
  "nearLimit",
  "-nearLimit",
]);

/** Which keys: search text (id, masked key, note), state, upstream, model, and how near a limit (at least this share of one used). */
const keyFilterSchema = z.object({
  q: z.string().trim().max(200).optional(),
  status: keyStateSchema.optional(),
  upstreamId: z.string().max(100).optional(),
  model: z.string().max(200).optional(),
  nearLimit: z.coerce.number().min(0).max(1).optional(),
});
export type KeyFilter = z.infer<typeof keyFilterSchema>;

export const keyListQuerySchema = keyFilterSchema.extend({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).default(0),
  sort: keySortSchema.default("created"),
});

export const updateKeyBodySchema = z
  .object({
    enabled: z.boolean(),
    weight: z.number().min(0.01).max(1000),
    models: z.array(z.string().trim().min(1).max(200)).max(1000),
    note: z.string().max(500),
    /** Replaces the key's own limits, which override its upstream's one by one (`{}`: its upstream's). */
    limits: limitsSchema,
  })
  .partial()
  .strict();

/** One action on many keys, chosen by ids or by a filter: `limits` sets their own limits (replacing what they had). */
export const keyBatchBodySchema = z
  .object({
    action: z.enum(["enable", "disable", "delete", "probe", "limits"]),
    ids: z.array(z.string().min(1).max(100)).min(1).max(10_000).optional(),
    filter: keyFilterSchema.optional(),
    limits: limitsSchema.optional(),
  })
  .refine((b) => (b.ids === undefined) !== (b.filter === undefined), { message: "give either ids or filter" })
  .refine((b) => (b.action === "limits") === (b.limits !== undefined), { message: "give limits with the limits action, and only with it", path: ["limits"] });

/** Keys with their settings, e.g. from another system (the key list export is masked and cannot be imported). */
export const importKeysBodySchema = z.object({
  upstreamId: z.string().min(1),
  keys: z
    .array(
      z.object({
        key: z.string().trim().min(1).max(512),
        enabled: z.boolean().default(true),
        weight: z.number().min(0.01).max(1000).default(1),
        models: z.array(z.string().trim().min(1).max(200)).max(1000).default([]),
        note: z.string().max(500).default(""),
      }),
    )
    .min(1)
    .max(10_000),
});

/** One entry of the seed pool's KV `tokens` value (`wrangler kv key get tokens`). */
const seedTokenSchema = z.looseObject({
  key: z.string().trim().min(1).max(512),
  enabled: z.boolean().default(true),
  balance: z.union([z.number(), z.string()]).nullable().optional(),
  lastChecked: z.union([z.number(), z.string()]).nullable().optional(),
});
export const importSeedBodySchema = z.object({ upstreamId: z.string().min(1), tokens: z.array(seedTokenSchema).min(1).max(10_000) });

/** A client key's quotas beyond RPM and TPM: each optional (null: none). Days and months are the pool's, in its time zone. */
const quotaFields = {
  rpdLimit: z.number().int().positive().nullable(),
  tpdLimit: z.number().int().positive().nullable(),
  monthlyTokenLimit: z.number().int().positive().nullable(),
  /** Budgets in units of the pool's currency (e.g. 5 for $5), at most six decimals. */
  dailyBudget: moneySchema.nullable(),
  monthlyBudget: moneySchema.nullable(),
};

export const updateClientKeyBodySchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    models: z.array(z.string().trim().min(1).max(200)).max(1000),
    rpmLimit: z.number().int().positive().nullable(),
    tpmLimit: z.number().int().positive().nullable(),
    ...quotaFields,
    expiresAt: z.number().int().positive().nullable(),
    enabled: z.boolean(),
    smoothStreams: z.boolean().nullable(),
    storeBodies: z.boolean().nullable(),
  })
  .partial()
  .strict();

/** One of a key's limits as the pool stands against it: used of limit, where the limit came from, when its window resets. */
const windowFigureSchema = z.object({
  used: z.number(),
  limit: z.number(),
  source: z.enum(["configured", "learned"]),
  resetAt: z.number().nullable(),
});
export type WindowFigure = z.infer<typeof windowFigureSchema>;

/** A key's capacity: each limit known (configured, else learned from its provider's headers) with what is used, and the largest share used. */
const capacityFiguresSchema = z.object({
  rpm: windowFigureSchema.nullable(),
  rpd: windowFigureSchema.nullable(),
  tpm: windowFigureSchema.nullable(),
  tpd: windowFigureSchema.nullable(),
  /** The largest share of a known limit used (0–1), or null when no limit is known. */
  nearLimit: z.number().nullable(),
});
export type CapacityFigures = z.infer<typeof capacityFiguresSchema>;

const keyViewSchema = z.object({
  id: z.string(),
  upstreamId: z.string(),
  /** Masked, e.g. `sk-ab…wxyz`: the full key never leaves the server. */
  masked: z.string(),
  weight: z.number(),
  models: z.array(z.string()),
  enabled: z.boolean(),
  state: keyStateSchema,
  /** Until when a cooling key rests. */
  coolingUntil: z.number().nullable(),
  /** The last balance a probe read, and when; null if none. */
  balance: z.number().nullable(),
  balanceCheckedAt: z.number().nullable(),
  lastProbe: z.object({ at: z.number(), result: z.string() }).nullable(),
  lastError: z.object({ at: z.number(), message: z.string() }).nullable(),
  lastUsedAt: z.number().nullable(),
  note: z.string(),
  /** The key's own limits, and the limits in force: its own over its upstream's, one by one. */
  limits: limitsSchema,
  effectiveLimits: limitsSchema,
  capacity: capacityFiguresSchema,
  /** Successes over attempts that say something about the key, last hour; null without such attempts. */
  successRate: z.number().nullable(),
  requestsToday: z.number(),
  tokensToday: z.number(),
  createdAt: z.number(),
});
export type KeyView = z.infer<typeof keyViewSchema>;

export const createClientKeyBodySchema = z.object({
  name: z.string().trim().min(1).max(100),
  models: z.array(z.string().trim().min(1).max(200)).max(1000).default([]),
  rpmLimit: z.number().int().positive().nullable().default(null),
  tpmLimit: z.number().int().positive().nullable().default(null),
  rpdLimit: quotaFields.rpdLimit.default(null),
  tpdLimit: quotaFields.tpdLimit.default(null),
  monthlyTokenLimit: quotaFields.monthlyTokenLimit.default(null),
  dailyBudget: quotaFields.dailyBudget.default(null),
  monthlyBudget: quotaFields.monthlyBudget.default(null),
  expiresAt: z.number().int().positive().nullable().default(null),
  /** Smooth its streams (true / false), or follow the pool's `smoothStreams` setting (null). */
  smoothStreams: z.boolean().nullable().default(null),
  /** Keep its requests' bodies in the request log (true / false), or follow the pool's `storeBodies` setting (null). */
  storeBodies: z.boolean().nullable().default(null),
});
/** A client key as the admin API lists it: never the key, only its masked form, plus today's usage. */
const clientKeyViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  masked: z.string(),
  models: z.array(z.string()),
  rpmLimit: z.number().nullable(),
  tpmLimit: z.number().nullable(),
  rpdLimit: z.number().nullable(),
  tpdLimit: z.number().nullable(),
  monthlyTokenLimit: z.number().nullable(),
  /** Budgets in units of the pool's currency. */
  dailyBudget: z.number().nullable(),
  monthlyBudget: z.number().nullable(),
  expiresAt: z.number().nullable(),
  enabled: z.boolean(),
  /** Smooth its streams: on, off, or as the pool's setting says (null). */
  smoothStreams: z.boolean().nullable(),
  /** Keep its requests' bodies: on, off, or as the pool's setting says (null). */
  storeBodies: z.boolean().nullable(),
  createdAt: z.number(),
  requestsToday: z.number(),
  tokensToday: z.number(),
  /** Spend today in integer micro-units of the pool's currency (priced attempts only). */
  costTodayMicros: z.number().int(),
});
export type ClientKeyView = z.infer<typeof clientKeyViewSchema>;

export const createClientKeyResponseSchema = z.object({ id: z.string(), key: z.string() });

/** Probes keys now: the given ids, or every enabled key (up to the probe budget, least recently probed first). */
export const probeKeysBodySchema = z
  .object({ ids: z.array(z.string().min(1).max(100)).min(1).max(1000).optional(), all: z.literal(true).optional() })
  .refine((b) => (b.ids === undefined) !== (b.all === undefined), { message: "give either ids or all: true" });

/**
 * Starts an audit replay: `rebuild` recomputes projections from the archive and
 * diffs them; `requeue` resends archived events; `refold` replaces the
 * projections with the whole archive folded again (the fold databases changed,
 * or a rebuild found differences).
 */
export const replayBodySchema = z
  .object({
    kind: z.enum(["rebuild", "requeue", "refold"]),
    from: z.number().int().nonnegative().optional(),
    to: z.number().int().positive().optional(),
    source: z.enum(["events", "dead"]).default("events"),
  })
  .refine((b) => b.from === undefined || b.to === undefined || b.from < b.to, { message: "from must be before to", path: ["from"] })
  .refine((b) => b.kind !== "refold" || (b.from === undefined && b.to === undefined), {
    message: "a refold folds the whole event log again: it takes no from or to",
    path: ["from"],
  });

export const statsSummarySchema = z.object({
  /** Requests and tokens in the last 60 seconds. */
  rpm: z.number(),
  tpm: z.number(),
  /** Requests and tokens today, from midnight in `timeZone`. */
  rpd: z.number(),
  tpd: z.number(),
  /** Requests and tokens in the last 24 hours (to the minute). */
  last24h: z.object({ requests: z.number(), tokens: z.number() }),
  /** Spend today and this month (from the 1st, in `timeZone`), in integer micro-units of `currency`; `unpriced` attempts had usage but no price. */
  spend: z.object({
    currency: z.string(),
    today: z.object({ costMicros: z.number().int(), unpriced: z.number().int() }),
    month: z.object({ costMicros: z.number().int(), unpriced: z.number().int() }),
  }),
  timeZone: z.string(),
  generatedAt: z.number(),
});
export type StatsSummary = z.infer<typeof statsSummarySchema>;

/** One window summed over a group of keys: the limits known, what is used of them, what is free now (on keys that can take traffic). */
const windowHeadroomSchema = z.object({
  limit: z.number(),
  used: z.number(),
  free: z.number(),
  /** Keys with a limit known for this window, and keys that can serve without one (their room is not in the figures). */
  keys: z.number().int(),
  unknownKeys: z.number().int(),
});
export type WindowHeadroom = z.infer<typeof windowHeadroomSchema>;

const headroomSchema = z.object({ rpm: windowHeadroomSchema, rpd: windowHeadroomSchema, tpm: windowHeadroomSchema, tpd: windowHeadroomSchema });
export type Headroom = z.infer<typeof headroomSchema>;

/** The pool's room against its keys' limits, whole, by upstream and by model. */
export const statsHeadroomSchema = z.object({
  pool: headroomSchema,
  byUpstream: z.array(headroomSchema.extend({ id: z.string(), name: z.string() })),
  /** Models some key or upstream lists; a key listing none counts for each. */
  byModel: z.array(headroomSchema.extend({ model: z.string() })),
  /** When the consumer counted the usage behind the figures (null: not yet). */
  usageAt: z.number().nullable(),
  generatedAt: z.number(),
});
export type StatsHeadroom = z.infer<typeof statsHeadroomSchema>;

/** Every metric of a group of rollup rows. */
const metricsSchema = z.object({
  requests: z.number(),
  attempts: z.number(),
  successes: z.number(),
  rateLimited: z.number(),
  /** Attempts that failed for the key's sake: rejected, no balance, 5xx, network. */
  failures: z.number(),
  clientErrors: z.number(),
  aborted: z.number(),
  promptTokens: z.number(),
  completionTokens: z.number(),
  tokens: z.number(),
  estimatedTokens: z.number(),
  /** Successes over attempts that say something about the key; null with no such attempt. */
  successRate: z.number().nullable(),
  latencyAvgMs: z.number().nullable(),
  latencyMaxMs: z.number(),
  ttfbAvgMs: z.number().nullable(),
  /** What the attempts cost, in integer micro-units of the pool's currency (prices in force at each attempt's time). */
  costMicros: z.number().int(),
  /** Attempts with usage but no price: their cost is unknown, and not in `costMicros`. */
  unpriced: z.number().int(),
});
export type Metrics = z.infer<typeof metricsSchema>;

const statsBucketSchema = z.enum(["minute", "hour", "day"]);
export type StatsBucket = z.infer<typeof statsBucketSchema>;

const statsRangeSchema = z.object({
  bucket: statsBucketSchema.default("minute"),
  count: z.coerce.number().int().min(1).max(2_880).optional(),
  keyId: z.string().max(100).optional(),
  model: z.string().max(200).optional(),
  clientKeyId: z.string().max(100).optional(),
  upstreamId: z.string().max(100).optional(),
});

/**
 * Which rollup rows answer a stats read filtered and broken down as `query`
 * says: a client key's (summed over keys) when it names a client key, a key's
 * (summed over client keys) when it names a key or is by key, else the
 * upstream × model rows (migration 0021), a few hundred a bucket however large
 * the pool. Null when it needs a key (or an upstream) and a client key in one
 * row, which the rollups do not hold (migration 0020, docs/stats-pipeline.md);
 * the request log does, request by request.
 */
export function rollupRowsFor(query: { keyId?: string; upstreamId?: string; clientKeyId?: string; by?: string }): "key" | "client" | "upstream" | null {
  const client = Boolean(query.clientKeyId) || query.by === "client";
  const key = Boolean(query.keyId) || query.by === "key";
  if (client && (key || query.upstreamId || query.by === "upstream")) return null;
  return client ? "client" : key ? "key" : "upstream";
}

/** Refuses a stats read that no rollup rows answer (`rollupRowsFor`), naming the client key's parameter. */
function oneSideOnly(query: z.infer<typeof statsRangeSchema> & { by?: string }, ctx: z.RefinementCtx): void {
  if (rollupRowsFor(query) !== null) return;
  ctx.addIssue({
    code: "custom",
    path: [query.clientKeyId ? "clientKeyId" : "by"],
    message:
      "Usage is counted per key and per client key, not per key and client key together: use a client key with a model only (the request log has each request's key and client key).",
  });
}

/** Query of /stats/series and /stats/breakdown: a bucket size, how many buckets back, and filters. */
export const statsQuerySchema = statsRangeSchema.superRefine(oneSideOnly);

/** What a range reaching past retention is told: where the rollups it reads may already be pruned. */
const keptFromSchema = z
  .number()
  .describe(
    "The oldest bucket start retention keeps (epoch ms; `retention` in the settings): buckets that start before it may be pruned already, and read as zeros.",
  );

export const statsSeriesSchema = z.object({
  bucket: statsBucketSchema,
  keptFrom: keptFromSchema,
  points: z.array(metricsSchema.extend({ t: z.number() })),
});
export type StatsSeries = z.infer<typeof statsSeriesSchema>;

export const statsBreakdownSchema = z.object({
  by: z.enum(["model", "key", "client", "upstream"]),
  bucket: statsBucketSchema,
  from: z.number(),
  to: z.number(),
  keptFrom: keptFromSchema,
  /** `name`: a key's masked form, a client key's or an upstream's name (null once deleted); a model's name is its id. */
  rows: z.array(metricsSchema.extend({ id: z.string(), name: z.string().nullable() })),
  /** When the rows were summed (epoch ms): a breakdown by key or client key that took long is reused for a while. */
  computedAt: z.number(),
});
export type StatsBreakdown = z.infer<typeof statsBreakdownSchema>;

/** The error body of the admin API (the same shape as OpenAI's, so clients handle one). */
export { openAIErrorSchema as adminErrorSchema } from "./errors";

// ---------------------------------------------------------------------------
// Answers of the admin API that the schemas above do not describe yet. They are
// what /admin/api/openapi.json documents and what the dashboard reads.

/** The answer to a create: the new resource's id. */
export const createdSchema = z.object({ id: z.string() });

/** The answer to a logout. */
export const logoutResponseSchema = z.object({ ok: z.literal(true), everywhere: z.boolean() });

/** Every upstream, with how many keys it holds. */
export const upstreamListSchema = z.object({ data: z.array(upstreamViewSchema.extend({ keys: z.number().int() })) });

/** The answer to deleting an upstream: how many of its keys went with it (only with ?cascade=true). */
export const upstreamDeletedSchema = z.object({ deleted: z.literal(true), deletedKeys: z.number().int() });

/** A page of the key list. */
export const keyListSchema = z.object({ total: z.number().int(), limit: z.number().int(), offset: z.number().int(), data: z.array(keyViewSchema) });

/** The key list as a download: every key, masked (it cannot be imported back: the secrets are not in it). */
export const keyExportSchema = z.object({ exportedAt: z.number(), masked: z.literal(true), keys: z.array(keyViewSchema) });

/** A key's editable fields after an update. */
export const keyFieldsSchema = z.object({
  id: z.string(),
  enabled: z.boolean(),
  weight: z.number(),
  models: z.array(z.string()),
  note: z.string(),
  limits: limitsSchema,
});

/** The answer to deleting one resource. */
export const deletedSchema = z.object({ deleted: z.literal(true) });

/** One probe's result. */
const probeResultSchema = z.object({
  keyId: z.string(),
  kind: z.enum(["balance", "recovery"]),
  result: z.enum(["ok", "auth_failed", "no_balance", "error"]),
  balance: z.number().nullable(),
  detail: z.string().nullable(),
});
export type ProbeResult = z.infer<typeof probeResultSchema>;

/** The answer to a batch action: keys matched and changed, or (for `probe`) the probes' results. */
export const keyBatchResponseSchema = z.union([
  z.object({ matched: z.number().int(), changed: z.number().int() }),
  z.object({ matched: z.number().int(), data: z.array(probeResultSchema) }),
]);

/** The answer to probing keys now. */
export const probeResponseSchema = z.object({ data: z.array(probeResultSchema) });

/** The answer to an import: keys added, and keys the pool already held. */
export const importKeysResponseSchema = z.object({ added: z.number().int(), duplicates: z.number().int() });

/** The answer to importing the seed pool's tokens: also how many came in disabled and with a balance. */
export const importSeedResponseSchema = importKeysResponseSchema.extend({ disabled: z.number().int(), balances: z.number().int() });

/** Every client key with its usage today. */
export const clientKeyListSchema = z.object({ data: z.array(clientKeyViewSchema) });

/** A client key after an update (without today's usage). */
export const clientKeyRecordSchema = clientKeyViewSchema.omit({ requestsToday: true, tokensToday: true, costTodayMicros: true });

/** An admin event as the audit log keeps it. */
const auditEntrySchema = z.object({
  id: z.string(),
  ts: z.number(),
  actor: z.string(),
  action: z.string(),
  target: z.string().nullable(),
  detail: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;
export const auditListSchema = z.object({ data: z.array(auditEntrySchema) });
export const auditQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(500).default(100),
  before: z.coerce.number().int().positive().optional(),
});

/** What a rebuild found for one projection: rows on each side, and rows only one side has. */
const tableDiffSchema = z.object({
  live: z.number().int(),
  rebuilt: z.number().int(),
  onlyLive: z.number().int(),
  onlyRebuilt: z.number().int(),
  samples: z.object({ onlyLive: z.array(z.record(z.string(), z.unknown())), onlyRebuilt: z.array(z.record(z.string(), z.unknown())) }),
});

/** A replay job: queued (the consumer has not started it), running, done with its report, or failed. */
export const replayJobSchema = z.object({
  id: z.string(),
  status: z.enum(["pending", "running", "done", "failed"]),
  kind: z.enum(["rebuild", "requeue", "refold"]).optional(),
  params: z.record(z.string(), z.unknown()).optional(),
  startedAt: z.number().optional(),
  finishedAt: z.number().nullable().optional(),
  report: z
    .union([
      z.object({
        objects: z.number().int(),
        events: z.number().int(),
        unparseable: z.number().int(),
        compared: z.record(z.string(), tableDiffSchema),
        identical: z.boolean(),
      }),
      z.object({ objects: z.number().int(), requeued: z.number().int(), unparseable: z.number().int() }),
      z.object({ objects: z.number().int(), events: z.number().int(), unparseable: z.number().int(), databases: z.number().int() }),
      z.object({ error: z.string() }),
    ])
    .nullable()
    .optional(),
});
export type ReplayJob = z.infer<typeof replayJobSchema>;

/** Query of DELETE /upstreams/:id. */
export const upstreamDeleteQuerySchema = z.object({ cascade: z.enum(["true", "false"]).default("false") });

/** Query of /stats/breakdown: the dimension, and the series parameters. */
export const statsBreakdownQuerySchema = statsRangeSchema
  .extend({ by: z.enum(["model", "key", "client", "upstream"]).default("model") })
  .superRefine(oneSideOnly);

export const logoutBodySchema = z.object({ everywhere: z.boolean().default(false) });

/** One page of a key-encryption-key rotation: re-seal the keys after `after` (by id) under KEY_ENCRYPTION_KEY_NEXT. */
export const resealKeysBodySchema = z.object({ after: z.string().max(100).default(""), limit: z.number().int().min(1).max(1000).default(500) });

/** What one page of re-sealing did, and where the next page starts (null: done). */
export const resealKeysResponseSchema = z.object({
  resealed: z.number().int(),
  alreadySealed: z.number().int(),
  unreadable: z.array(z.string()),
  next: z.string().nullable(),
});
