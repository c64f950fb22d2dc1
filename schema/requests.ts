import { z } from "zod";
import { keptBodiesSchema } from "./bodies";
import { fnv1a32 } from "./snapshot";

/** The outcomes an attempt (and so a request, by its final attempt) can end in. */
const outcomeSchema = z.enum(["ok", "rate_limited", "auth_failed", "no_balance", "upstream_error", "network_error", "client_error", "aborted"]);

/**
 * Whether the request log keeps a request (the `requestLogSample` setting): always one with a failed or retried
 * attempt; of the rest, the share `sample` of them, chosen by a hash of the request id — the same request the same
 * way in every isolate, so any request the log holds is whole.
 */
export function keptInRequestLog(requestId: string, attempts: readonly { outcome: string }[], sample: number): boolean {
  if (sample >= 1 || attempts.length !== 1 || attempts[0]!.outcome !== "ok") return true;
  if (sample <= 0) return false;
  // The id's random part spreads the requests evenly over [0, 2^32).
  return fnv1a32(requestId) / 0x1_0000_0000 < sample;
}

/** Filters of the request log (`GET /admin/api/requests` and its export). Times are epoch ms. */
export const requestQuerySchema = z.object({
  from: z.coerce.number().int().nonnegative().optional(),
  to: z.coerce.number().int().positive().optional(),
  clientKeyId: z.string().max(100).optional(),
  /** Requests with an attempt on this key (any attempt, not only the final one). */
  keyId: z.string().max(100).optional(),
  /** Requests whose final attempt went to this upstream. */
  upstreamId: z.string().max(100).optional(),
  model: z.string().max(200).optional(),
  endpoint: z.string().max(100).optional(),
  outcome: outcomeSchema.optional(),
  /** `true`: only requests that did not end `ok`. */
  failed: z.enum(["true"]).optional(),
  /** `2xx`, `4xx`, `5xx` (any status of the class), or one status. */
  status: z
    .string()
    .regex(/^([1-5]xx|[1-9]\d{2})$/, "a status such as 429, or a class such as 5xx")
    .optional(),
  stream: z.enum(["true", "false"]).optional(),
  minLatencyMs: z.coerce.number().nonnegative().optional(),
  requestId: z.string().max(64).optional(),
  /** Where the last page ended (its `nextCursor`). */
  cursor: z
    .string()
    .regex(/^\d+_[\w-]{1,64}$/, "a nextCursor from an earlier page")
    .optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
});
export type RequestQuery = z.infer<typeof requestQuerySchema>;

const tokensSchema = z.object({
  prompt: z.number().int(),
  completion: z.number().int(),
  total: z.number().int(),
  cached: z.number().int(),
  reasoning: z.number().int(),
  /** `upstream`: reported by the upstream; `estimated` by Keypool; `none`. */
  source: z.enum(["upstream", "estimated", "none"]),
});

/** One client request as the log keeps it. */
export const requestRecordSchema = z.object({
  /** The `x-keypool-request-id` the client got. */
  requestId: z.string(),
  startedAt: z.number(),
  clientKeyId: z.string(),
  /** The client key's name (null once deleted). */
  clientName: z.string().nullable(),
  model: z.string(),
  /** The model name the upstream was sent, where an alias changed it. */
  upstreamModel: z.string().nullable(),
  endpoint: z.string(),
  stream: z.boolean(),
  /** The final attempt's key (masked) and upstream. */
  keyId: z.string(),
  keyMasked: z.string().nullable(),
  upstreamId: z.string(),
  upstreamName: z.string().nullable(),
  status: z.number().int(),
  outcome: outcomeSchema,
  attempts: z.number().int(),
  /** From the first attempt's start to the end of the final one, and to the final answer's first byte. */
  latencyMs: z.number(),
  ttfbMs: z.number().nullable(),
  tokens: tokensSchema,
  /** Every attempt's cost in micro-units of the pool's currency; `unpriced`: attempts with usage and no price. */
  costMicros: z.number().int(),
  unpriced: z.number().int(),
  userAgent: z.string().nullable(),
  /** The client's address, only when the `logClientIp` setting asked for it. */
  clientIp: z.string().nullable(),
});
export type RequestRecord = z.infer<typeof requestRecordSchema>;

/** One upstream attempt of a request. */
export const requestAttemptSchema = z.object({
  attempt: z.number().int(),
  startedAt: z.number(),
  keyId: z.string(),
  keyMasked: z.string().nullable(),
  upstreamId: z.string(),
  upstreamName: z.string().nullable(),
  upstreamModel: z.string().nullable(),
  status: z.number().int(),
  outcome: outcomeSchema,
  latencyMs: z.number(),
  ttfbMs: z.number().nullable(),
  tokens: tokensSchema,
  costMicros: z.number().int(),
  /** What the upstream said when it refused the attempt, redacted of anything key-like; or why there was no answer. */
  error: z.string().nullable(),
});
export type RequestAttempt = z.infer<typeof requestAttemptSchema>;

export const requestPageSchema = z.object({
  data: z.array(requestRecordSchema),
  /** Pass as `cursor` for the next (older) page; null on the last. */
  nextCursor: z.string().nullable(),
});
export type RequestPage = z.infer<typeof requestPageSchema>;

export const requestDetailSchema = requestRecordSchema.extend({
  attemptList: z.array(requestAttemptSchema),
  /** The request's and its answer's bodies, when they were kept (the `storeBodies` setting) and are still within `retention.bodyDays`. */
  bodies: keptBodiesSchema.nullable(),
  /** Where the record was read: the request log, or the event archive for a request the log does not hold (left out by `requestLogSample`, or past `retention.requestLogDays`). */
  source: z.enum(["log", "archive"]),
});
export type RequestDetail = z.infer<typeof requestDetailSchema>;

export const requestExportQuerySchema = requestQuerySchema.omit({ cursor: true, limit: true }).extend({
  format: z.enum(["ndjson", "csv"]).default("ndjson"),
  /** The most requests exported, newest first. */
  max: z.coerce.number().int().min(1).max(1_000_000).default(100_000),
});
