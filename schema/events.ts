import { z } from "zod";
import { rateLimitReadingSchema } from "./capacity";

/** Version of the event envelope; bump it (and keep parsing the old one) when a field changes meaning. */
export const EVENT_VERSION = 1;

/**
 * A new event id: a UUIDv7 (RFC 9562) — the time in milliseconds in its first
 * 48 bits, then 74 random bits — so ids made later sort later, and a table
 * keyed by them grows at its end, where random (v4) ids land on any page of
 * it and an insert gets dearer as the table grows (docs/performance.md has the
 * figures for the dedupe window, keyed by id until migration 0025).
 */
export function newEventId(now: number): string {
  const time = Math.min(Math.max(0, Math.floor(now)), 0xffffffffffff)
    .toString(16)
    .padStart(12, "0");
  // A v4 UUID's random bits after its version digit: "xxx-yxxx-xxxxxxxxxxxx", the variant already set.
  return `${time.slice(0, 8)}-${time.slice(8)}-7${crypto.randomUUID().slice(15)}`;
}

/** The millisecond a UUIDv7 id (`newEventId`, and so every request id the gateway gives) was made, or null for any other id. */
export function eventIdTime(id: string): number | null {
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i.test(id)) return null;
  return parseInt(id.slice(0, 8) + id.slice(9, 13), 16);
}

const envelope = {
  v: z.literal(EVENT_VERSION),
  /** Unique per event: the consumer de-duplicates on it. */
  id: z.string().min(8).max(64),
  /** Milliseconds since the epoch when the event happened (not when it was delivered). */
  ts: z.number().int().nonnegative(),
};

/** How one upstream attempt ended, from the pool's point of view. */
const outcomeSchema = z.enum(["ok", "rate_limited", "auth_failed", "no_balance", "upstream_error", "network_error", "client_error", "aborted"]);
export type Outcome = z.infer<typeof outcomeSchema>;

const tokenCount = z.number().int().nonnegative();

/** One upstream attempt. Attempts of one client request share `requestId`; the last one has `final: true`. */
export const attemptEventSchema = z.object({
  ...envelope,
  type: z.literal("attempt"),
  requestId: z.string().min(1).max(64),
  /** 1-based position of this attempt within its client request. */
  attempt: z.number().int().positive(),
  /** True on the attempt whose answer went to the client: it counts the client request once. */
  final: z.boolean(),
  keyId: z.string(),
  upstreamId: z.string(),
  clientKeyId: z.string(),
  model: z.string().max(200),
  endpoint: z.string().max(100),
  stream: z.boolean(),
  status: z.number().int().min(0).max(999),
  outcome: outcomeSchema,
  latencyMs: z.number().nonnegative(),
  ttfbMs: z.number().nonnegative().nullable(),
  promptTokens: tokenCount,
  completionTokens: tokenCount,
  totalTokens: tokenCount,
  /** Prompt tokens served from the upstream's cache, where it reports them. */
  cachedTokens: tokenCount.default(0),
  /** Completion tokens spent on reasoning, where the upstream reports them. */
  reasoningTokens: tokenCount.default(0),
  usageSource: z.enum(["upstream", "estimated", "none"]),
  retryAfterMs: z.number().int().nonnegative().nullable(),
  /** What the answer's rate-limit headers said of the key's windows; null when it sent none (and in events older than them). */
  rateLimit: rateLimitReadingSchema.nullable().default(null),
  /** The model name the upstream was sent, where an alias changed it (null: the same as `model`). */
  upstreamModel: z.string().max(200).nullable().default(null),
  /** What the upstream said when it refused the attempt (or why there was no answer), redacted of anything key-like. */
  error: z.string().max(300).nullable().default(null),
  /** The client's User-Agent (on the final attempt only). */
  userAgent: z.string().max(200).nullable().default(null),
  /** The client's address, when the `logClientIp` setting asks for it (on the final attempt only). */
  clientIp: z.string().max(64).nullable().default(null),
  /**
   * Whether the request log keeps this attempt's request (`keptInRequestLog`): the gateway decides once for all of a
   * request's attempts, so a replay keeps the same requests whatever the setting says by then. True in older events.
   */
  logged: z.boolean().default(true),
});
export type AttemptEvent = z.infer<typeof attemptEventSchema>;

/** One scheduler probe of a key. */
const probeEventSchema = z.object({
  ...envelope,
  type: z.literal("probe"),
  keyId: z.string(),
  kind: z.enum(["balance", "recovery"]),
  result: z.enum(["ok", "auth_failed", "no_balance", "error"]),
  balance: z.number().nullable(),
  detail: z.string().max(500).nullable(),
});
export type ProbeEvent = z.infer<typeof probeEventSchema>;

/** A configuration change (or a request to republish the snapshot): the audit trail. */
const adminEventSchema = z.object({
  ...envelope,
  type: z.literal("admin"),
  actor: z.string().max(100),
  action: z.string().max(100),
  target: z.string().max(200).nullable(),
  /** What changed, never including a secret. */
  detail: z.record(z.string(), z.unknown()).nullable(),
});
export type AdminEvent = z.infer<typeof adminEventSchema>;

export const keypoolEventSchema = z.discriminatedUnion("type", [attemptEventSchema, probeEventSchema, adminEventSchema]);
export type KeypoolEvent = z.infer<typeof keypoolEventSchema>;

/**
 * How events travel on the queue. A message body is one event, or — as the
 * gateway and requeue send them — several packed as `{ events: [...] }`: one
 * queue write per batch window instead of one per event (Queues bill per
 * message), and the consumer folds many more events per D1 transaction.
 */
export interface PackedEvents {
  events: unknown[];
}

/** The most events one packed message carries. */
export const MAX_EVENTS_PER_MESSAGE = 100;
/** The largest message body the queue takes (128 KB). */
export const QUEUE_MESSAGE_LIMIT_BYTES = 128_000;
/** Packed messages stay under this many bytes of JSON, below the queue's limit. */
export const MAX_MESSAGE_BYTES = 120_000;

/**
 * A message on the events queue that is not an event: the consumer asking
 * itself, a second later, to publish the pool's usage (a batch that came
 * within a second of the last publish could not). Never archived or folded.
 */
export const PUBLISH_USAGE_MESSAGE = { control: "publish-usage" } as const;

/**
 * The consumer asking itself to send alert deliveries whose retry is due (a
 * delayed message at the backoff). Never archived or folded either.
 */
export const CONTROL_DELIVER_ALERTS = { control: "deliver-alerts" } as const;

/** Which control message a body is, or null for events. */
export function controlOf(body: unknown): "publish-usage" | "deliver-alerts" | null {
  if (typeof body !== "object" || body === null) return null;
  const control = (body as { control?: unknown }).control;
  return control === PUBLISH_USAGE_MESSAGE.control || control === CONTROL_DELIVER_ALERTS.control ? control : null;
}

/** The events one queue message carries: the packed ones, or the body itself as a single event. */
export function eventsOfMessage(body: unknown): unknown[] {
  if (typeof body === "object" && body !== null && !("type" in body) && Array.isArray((body as { events?: unknown }).events)) {
    return (body as PackedEvents).events;
  }
  return [body];
}

/** Whether JSON text fits a message; its UTF-8 bytes are counted only when its length leaves doubt. */
function fitsMessage(json: string): boolean {
  if (json.length * 3 <= MAX_MESSAGE_BYTES) return true;
  return json.length <= MAX_MESSAGE_BYTES && new TextEncoder().encode(json).byteLength <= MAX_MESSAGE_BYTES;
}

/**
 * Packs events into message bodies of at most MAX_EVENTS_PER_MESSAGE events and
 * MAX_MESSAGE_BYTES of JSON, in order. A group too large is halved until it fits;
 * one event too large for any message goes alone (the queue refuses it, and the
 * sender says so).
 */
export function packEvents(events: readonly unknown[]): PackedEvents[] {
  const out: PackedEvents[] = [];
  const pack = (group: unknown[]): void => {
    if (group.length > 1 && !fitsMessage(JSON.stringify(group))) {
      const half = Math.ceil(group.length / 2);
      pack(group.slice(0, half));
      pack(group.slice(half));
    } else out.push({ events: group });
  };
  for (let i = 0; i < events.length; i += MAX_EVENTS_PER_MESSAGE) pack(events.slice(i, i + MAX_EVENTS_PER_MESSAGE));
  return out;
}

/** One sendBatch call takes at most 100 messages and 256 KB; groups stay under these. */
export const MAX_BATCH_MESSAGES = 100;
export const MAX_BATCH_BYTES = 200_000;

/**
 * Splits items, in order, into groups of at most `maxCount` items whose sizes
 * (`sizeOf`) add up to at most `maxBytes`; an item larger than that alone gets
 * a group of its own.
 */
export function groupsUnder<T>(items: readonly T[], sizeOf: (item: T) => number, maxCount: number, maxBytes: number): T[][] {
  const groups: T[][] = [];
  let group: T[] = [];
  let bytes = 0;
  for (const item of items) {
    const size = sizeOf(item);
    if (group.length === maxCount || (group.length > 0 && bytes + size > maxBytes)) {
      groups.push(group);
      group = [];
      bytes = 0;
    }
    group.push(item);
    bytes += size;
  }
  if (group.length > 0) groups.push(group);
  return groups;
}

/** Splits message bodies, in order, into groups one sendBatch call takes: by count, and by `sizeOf` (bytes). */
export function sendBatchGroups<T>(bodies: readonly T[], sizeOf: (body: T) => number): T[][] {
  return groupsUnder(bodies, sizeOf, MAX_BATCH_MESSAGES, MAX_BATCH_BYTES);
}

const utf8 = new TextEncoder();

/** The bytes an id adds to a JSON array of ids: its JSON string in UTF-8, and a comma. */
export function idJsonBytes(id: string): number {
  return utf8.encode(JSON.stringify(id)).byteLength + 1;
}
