import { z } from "zod";

/**
 * Alerts: what the pool tells its operators, where, and in which format. The
 * consumer and the scheduler raise them (never the request path); the admin API
 * configures them. The webhook formats here are a contract with receivers.
 */

/** Every kind of alert; each is on or off in settings, some with a threshold. */
export const ALERT_KINDS = [
  "key_dead",
  "key_exhausted",
  "key_failing",
  "low_balance",
  "pool_active_keys",
  "model_headroom",
  "model_all_cooling",
  "dead_letters",
  "consumer_failing",
  "client_quota",
  "snapshot_stale",
] as const;
export const alertKindSchema = z.enum(ALERT_KINDS);
export type AlertKind = z.infer<typeof alertKindSchema>;

/** A kind's rule: on or off, and its threshold where it has one (see ALERT_THRESHOLDS). */
const rule = (enabled: boolean) => z.object({ enabled: z.boolean().default(enabled), threshold: z.null().default(null) }).prefault({});
const ruleWith = (enabled: boolean, threshold: number, range: [number, number]) =>
  z.object({ enabled: z.boolean().default(enabled), threshold: z.number().min(range[0]).max(range[1]).default(threshold) }).prefault({});

/** What each kind's threshold means (kinds without one are absent). */
export const ALERT_THRESHOLDS: Partial<Record<AlertKind, { unit: "amount" | "share" | "batches" | "minutes"; min: number; max: number }>> = {
  low_balance: { unit: "amount", min: 0, max: 1e9 },
  pool_active_keys: { unit: "share", min: 0, max: 1 },
  model_headroom: { unit: "share", min: 0, max: 1 },
  consumer_failing: { unit: "batches", min: 1, max: 100 },
  client_quota: { unit: "share", min: 0.1, max: 1 },
  snapshot_stale: { unit: "minutes", min: 11, max: 1440 },
};

const thresholdRange = (kind: AlertKind): [number, number] => [ALERT_THRESHOLDS[kind]!.min, ALERT_THRESHOLDS[kind]!.max];

/** The alert settings (in the pool's settings, under `alerts`). */
export const alertSettingsSchema = z
  .object({
    /** A kind sent less than this long ago holds its next alert until the cool-down has passed (then sends what gathered as one). */
    cooldownMinutes: z.number().int().min(0).max(1440).default(5),
    /** Also say when a condition clears: a key back in service, the pool's share back above its threshold. */
    notifyResolved: z.boolean().default(true),
    rules: z
      .object({
        key_dead: rule(true),
        key_exhausted: rule(true),
        key_failing: rule(true),
        /** A key's balance (as its provider reports it) fell below this amount. */
        low_balance: ruleWith(true, 1, thresholdRange("low_balance")),
        /** The share of enabled keys that can take traffic fell below this. */
        pool_active_keys: ruleWith(true, 0.5, thresholdRange("pool_active_keys")),
        /** A model's keys that can take traffic fell below this share of its enabled keys. */
        model_headroom: ruleWith(true, 0.25, thresholdRange("model_headroom")),
        model_all_cooling: rule(true),
        dead_letters: rule(true),
        /** The consumer failed this many batches in a row. */
        consumer_failing: ruleWith(true, 3, thresholdRange("consumer_failing")),
        /** A client key used this share of a quota or budget (and again at all of it). */
        client_quota: ruleWith(true, 0.8, thresholdRange("client_quota")),
        /** The published snapshot is older than this many minutes (the consumer republishes at least every 10). */
        snapshot_stale: ruleWith(true, 20, thresholdRange("snapshot_stale")),
      })
      .prefault({}),
    /** Low-balance thresholds for particular upstreams (by id), over `rules.low_balance.threshold`. */
    lowBalanceByUpstream: z.record(z.string().max(64), z.number().min(0).max(1e9)).default({}),
  })
  .prefault({});
export type AlertSettings = z.infer<typeof alertSettingsSchema>;

/** The formats a destination receives. */
export const destinationKindSchema = z.enum(["webhook", "slack", "discord"]);
export type DestinationKind = z.infer<typeof destinationKindSchema>;

/** Where alerts go: an http(s) URL (the receiver's; a secret, never shown in full). */
const destinationUrlSchema = z
  .string()
  .max(2_000)
  .refine((u) => {
    try {
      const url = new URL(u);
      return (url.protocol === "https:" || url.protocol === "http:") && url.username === "" && url.password === "";
    } catch {
      return false;
    }
  }, "an http(s) URL without user or password");

export const destinationCreateSchema = z.object({
  name: z.string().trim().min(1).max(100),
  kind: destinationKindSchema,
  url: destinationUrlSchema,
  /** Kinds this destination receives; empty: all. */
  kinds: z.array(alertKindSchema).max(ALERT_KINDS.length).default([]),
  enabled: z.boolean().default(true),
});
export type DestinationCreate = z.infer<typeof destinationCreateSchema>;

export const destinationPatchSchema = z
  .object({
    name: z.string().trim().min(1).max(100),
    url: destinationUrlSchema,
    kinds: z.array(alertKindSchema).max(ALERT_KINDS.length),
    enabled: z.boolean(),
    /** Replace the webhook's signing secret (the new one is in the answer, once). */
    rotateSecret: z.literal(true),
  })
  .partial();
export type DestinationPatch = z.infer<typeof destinationPatchSchema>;

export const destinationViewSchema = z.object({
  id: z.string(),
  name: z.string(),
  kind: destinationKindSchema,
  /** Scheme, host and the last characters: the rest is the secret. */
  url: z.string(),
  kinds: z.array(alertKindSchema),
  enabled: z.boolean(),
  createdAt: z.number(),
  updatedAt: z.number(),
  /** Deliveries in the last 24 hours that were sent, and that failed for good. */
  sent24h: z.number().int(),
  failed24h: z.number().int(),
  /** Only in the answer that created it or rotated it: the webhook's signing secret. */
  signingSecret: z.string().optional(),
});
export type DestinationView = z.infer<typeof destinationViewSchema>;

/** One thing an alert is about: a key, a model, a client key's quota, the pool. */
export const alertItemSchema = z.object({
  subject: z.string(),
  label: z.string(),
  detail: z.string(),
});
export type AlertItem = z.infer<typeof alertItemSchema>;

/** An alert as raised: its kind, whether the condition began or cleared, and what it is about. */
export interface RaisedAlert {
  kind: AlertKind | "test";
  status: "firing" | "resolved";
  title: string;
  items: AlertItem[];
}

/** The most items an alert keeps (and a message lists); `count` says how many there were. */
export const ALERT_ITEMS_KEPT = 100;

export const deliveryStatusSchema = z.enum(["pending", "sent", "failed"]);

export const alertViewSchema = z.object({
  id: z.string(),
  kind: z.union([alertKindSchema, z.literal("test")]),
  status: z.enum(["firing", "resolved"]),
  title: z.string(),
  count: z.number().int(),
  items: z.array(alertItemSchema),
  createdAt: z.number(),
  /** Held by the kind's cool-down until then (null: sent at once). */
  notBefore: z.number().nullable(),
  deliveries: z.array(
    z.object({
      destinationId: z.string(),
      destinationName: z.string(),
      status: deliveryStatusSchema,
      attempts: z.number().int(),
      /** The receiver's HTTP status on the last attempt (null: no answer). */
      lastStatus: z.number().int().nullable(),
      lastError: z.string().nullable(),
      nextAt: z.number().nullable(),
      updatedAt: z.number(),
    }),
  ),
});
export type AlertView = z.infer<typeof alertViewSchema>;

export const alertListSchema = z.object({ alerts: z.array(alertViewSchema), nextCursor: z.string().nullable() });

export const alertListQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(100).optional(),
  kind: z.union([alertKindSchema, z.literal("test")]).optional(),
  /** Only alerts with a delivery that failed for good. */
  failed: z.enum(["true", "false"]).optional(),
});

// ---------------------------------------------------------------------------
// Delivery: retries, formats, signature

/** When each retry of a failed delivery is due, after the attempt before it; after the last, the delivery has failed. */
export const RETRY_DELAYS_MS = [10_000, 30_000, 120_000, 600_000, 1_800_000] as const;

/** How long a receiver should accept a signed message after its timestamp (docs/alerts.md). */
export const SIGNATURE_TOLERANCE_S = 300;

/** The headers a generic webhook carries. */
export const SIGNATURE_HEADER = "keypool-signature";
export const TIMESTAMP_HEADER = "keypool-timestamp";
export const DELIVERY_HEADER = "keypool-delivery";

/** An alert as delivered: what a generic webhook receives in `alerts`. */
export interface DeliveredAlert {
  id: string;
  kind: AlertKind | "test";
  status: "firing" | "resolved";
  title: string;
  /** How many things it is about; `items` lists the first ALERT_ITEMS_KEPT. */
  count: number;
  items: AlertItem[];
  /** When it was raised (ISO 8601). */
  raisedAt: string;
}

/** The body of a message to a destination, in its format. Slack and Discord get text; a generic webhook gets JSON. */
export function messageBody(kind: DestinationKind, alerts: DeliveredAlert[], pool: string): string {
  if (kind === "webhook") return JSON.stringify({ pool, alerts });
  const text = messageText(alerts, pool, kind === "discord" ? 1_900 : 3_500);
  if (kind === "slack") return JSON.stringify({ text });
  return JSON.stringify({ content: text, allowed_mentions: { parse: [] } });
}

/** A plain-text rendering, cut to `max` characters (Discord takes 2,000). */
function messageText(alerts: DeliveredAlert[], pool: string, max: number): string {
  const lines: string[] = [];
  for (const a of alerts) {
    lines.push(`${a.status === "resolved" ? "✅ Resolved" : "⚠️"} [${pool}] ${a.title}`);
    for (const item of a.items.slice(0, 20)) lines.push(`• ${item.label}: ${item.detail}`);
    if (a.count > Math.min(20, a.items.length)) lines.push(`… and ${a.count - Math.min(20, a.items.length)} more`);
  }
  const text = lines.join("\n");
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

const encoder = new TextEncoder();

/** Hex HMAC-SHA256 of `${timestamp}.${body}` under the destination's signing secret: the `v1=` part of the signature header. */
export async function signBody(secret: string, timestamp: number, body: string): Promise<string> {
  const key = await crypto.subtle.importKey("raw", encoder.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, encoder.encode(`${timestamp}.${body}`)));
  let hex = "";
  for (const b of mac) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/**
 * Checks a generic webhook's signature the way a receiver should: the
 * timestamp within SIGNATURE_TOLERANCE_S of `nowS`, and one of the header's
 * `v1=` values equal to the HMAC (compared in constant time).
 */
export async function verifySignature(secret: string, header: string | null, timestamp: string | null, body: string, nowS: number): Promise<boolean> {
  const ts = Number(timestamp);
  if (!header || !Number.isInteger(ts) || Math.abs(nowS - ts) > SIGNATURE_TOLERANCE_S) return false;
  const expected = await signBody(secret, ts, body);
  return header.split(",").some((part) => {
    const value = part.trim().replace(/^v1=/, "");
    if (value.length !== expected.length) return false;
    let diff = 0;
    for (let i = 0; i < value.length; i++) diff |= value.charCodeAt(i) ^ expected.charCodeAt(i);
    return diff === 0;
  });
}

/** Shows a destination URL as its scheme, host and last four characters. */
export function maskUrl(url: string): string {
  const u = new URL(url);
  const rest = url.slice(`${u.protocol}//${u.host}`.length);
  return rest.length <= 4 ? `${u.protocol}//${u.host}${rest}` : `${u.protocol}//${u.host}/…${rest.slice(-4)}`;
}

// ---------------------------------------------------------------------------
// Evaluation: conditions found now against those last alerted

/** Something not in its normal state, as an evaluation finds it (a dead key, a model short of keys). */
export interface Condition {
  /** Unique across the pool: `key:<id>`, `model:<name>:headroom`, `client:<id>:rpd:<day>`… */
  subject: string;
  kind: AlertKind;
  /** What the condition is: a change of value (80 % → 100 % of a quota) is a new alert; the same value is not. */
  value: string;
  label: string;
  detail: string;
}

/** A condition as `alert_state` keeps it. */
export interface StoredCondition {
  kind: AlertKind;
  value: string;
  label: string;
}

/** What an evaluation writes and raises: conditions to store or drop, and the alerts for the differences. */
export interface Evaluation {
  upserts: { subject: string; stored: StoredCondition }[];
  deletes: string[];
  alerts: RaisedAlert[];
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** An alert's title: what happened, with how many things it happened to. */
export function alertTitle(kind: AlertKind, status: "firing" | "resolved", items: AlertItem[], count: number): string {
  const first = items[0]?.detail ?? "";
  if (status === "resolved") {
    switch (kind) {
      case "key_dead":
      case "key_exhausted":
      case "key_failing":
        return `${plural(count, "key")} no longer ${kind.slice(4)}`;
      case "low_balance":
        return `${plural(count, "key")} back above the balance threshold`;
      case "pool_active_keys":
        return "The pool's active keys are back above the threshold";
      case "model_headroom":
        return `${plural(count, "model")} back above the headroom threshold`;
      case "model_all_cooling":
        return `${plural(count, "model")} no longer cooling on every key`;
      case "client_quota":
        return `${plural(count, "client key quota", "client key quotas")} no longer near the limit`;
      case "consumer_failing":
        return "The consumer folds batches again";
      case "snapshot_stale":
        return "The snapshot is fresh again";
      case "dead_letters":
        return "Dead letters";
    }
  }
  switch (kind) {
    case "key_dead":
      return `${plural(count, "key")} dead: the upstream refuses ${count === 1 ? "it" : "them"}`;
    case "key_exhausted":
      return `${plural(count, "key")} out of balance`;
    case "key_failing":
      return `${plural(count, "key")} failing`;
    case "low_balance":
      return `${plural(count, "key")} below the balance threshold`;
    case "pool_active_keys":
      return `The pool's active keys fell below the threshold: ${first}`;
    case "model_headroom":
      return `${plural(count, "model")} short of keys that can take traffic`;
    case "model_all_cooling":
      return `Every key of ${plural(count, "model")} is cooling`;
    case "client_quota":
      return `${plural(count, "client key quota", "client key quotas")} near or at the limit`;
    case "consumer_failing":
      return `The consumer keeps failing batches: ${first}`;
    case "snapshot_stale":
      return `The snapshot is stale: ${first}`;
    case "dead_letters":
      return `${plural(count, "message")} sent to the dead-letter queue`;
  }
}

/** One alert per kind and status from a list of changes, items in subject order. */
export function groupAlerts(changes: { kind: AlertKind; status: "firing" | "resolved"; item: AlertItem }[]): RaisedAlert[] {
  const groups = new Map<string, { kind: AlertKind; status: "firing" | "resolved"; items: AlertItem[] }>();
  for (const c of changes) {
    const k = `${c.kind}|${c.status}`;
    let g = groups.get(k);
    if (!g) groups.set(k, (g = { kind: c.kind, status: c.status, items: [] }));
    g.items.push(c.item);
  }
  return [...groups.values()].map((g) => {
    g.items.sort((a, b) => (a.subject < b.subject ? -1 : a.subject > b.subject ? 1 : 0));
    return { kind: g.kind, status: g.status, title: alertTitle(g.kind, g.status, g.items, g.items.length), items: g.items };
  });
}

/**
 * Compares the conditions an evaluation found with those stored for its group:
 * a new condition, or one whose kind or value changed, fires; a stored one no
 * longer found resolves (said only when `notifyResolved`). Changes of one kind
 * and status make one alert, however many things changed.
 */
export function diffConditions(found: Condition[], stored: Map<string, StoredCondition>, notifyResolved: boolean): Evaluation {
  const out: Evaluation = { upserts: [], deletes: [], alerts: [] };
  const changes: Parameters<typeof groupAlerts>[0] = [];
  const seen = new Set<string>();
  for (const c of found) {
    seen.add(c.subject);
    const before = stored.get(c.subject);
    if (before && before.kind === c.kind && before.value === c.value) continue;
    out.upserts.push({ subject: c.subject, stored: { kind: c.kind, value: c.value, label: c.label } });
    changes.push({ kind: c.kind, status: "firing", item: { subject: c.subject, label: c.label, detail: c.detail } });
  }
  for (const [subject, before] of stored) {
    if (seen.has(subject)) continue;
    out.deletes.push(subject);
    if (notifyResolved) changes.push({ kind: before.kind, status: "resolved", item: { subject, label: before.label, detail: "back to normal" } });
  }
  out.alerts = groupAlerts(changes);
  return out;
}

/** A share as a whole percentage. */
export const percent = (share: number) => `${Math.round(share * 100)} %`;
