import type { AttemptEvent } from "../schema";

/**
 * The request log's rows as values (no binding): the columns of an attempt, an
 * attempt event as the tuple the consumer folds, and a request's row made from
 * its attempts. `request-log.ts` holds the SQL; the consumer's pure logic and the
 * unit tests import these without the Workers' types.
 */

/** request_attempts' columns, in the order a staged attempt's JSON tuple lists them. */
export const ATTEMPT_COLUMNS = [
  "request_id",
  "attempt",
  "ts",
  "final",
  "key_id",
  "upstream_id",
  "client_key_id",
  "model",
  "upstream_model",
  "endpoint",
  "stream",
  "status",
  "outcome",
  "latency_ms",
  "ttfb_ms",
  "prompt_tokens",
  "completion_tokens",
  "total_tokens",
  "cached_tokens",
  "reasoning_tokens",
  "usage_source",
  "cost_micros",
  "unpriced",
  "error",
  "user_agent",
  "client_ip",
] as const;

/**
 * One attempt as the request log keeps it: values in `ATTEMPT_COLUMNS` order —
 * request id, position, time, final, key, upstream, client, model, upstream
 * model, endpoint, stream, status, outcome, latency, first byte, the five token
 * counts, usage source, cost, unpriced, error, user agent, client address.
 */
export type LogAttempt = (string | number | null)[];

const bit = (b: boolean): 0 | 1 => (b ? 1 : 0);

/** An attempt event as a request log tuple, with what it cost at the price in force when it was sent. */
export function logAttempt(e: AttemptEvent, cost: number, unpriced: number): LogAttempt {
  return [
    e.requestId,
    e.attempt,
    e.ts,
    bit(e.final),
    e.keyId,
    e.upstreamId,
    e.clientKeyId,
    e.model,
    e.upstreamModel,
    e.endpoint,
    bit(e.stream),
    e.status,
    e.outcome,
    e.latencyMs,
    e.ttfbMs,
    e.promptTokens,
    e.completionTokens,
    e.totalTokens,
    e.cachedTokens,
    e.reasoningTokens,
    e.usageSource,
    cost,
    unpriced,
    e.error,
    e.userAgent,
    e.clientIp,
  ];
}

/** A request row with the names the list shows. */
export type RequestRow = Record<string, unknown>;

/**
 * A request's row and its attempts' rows, as `findRequest` reads them from the
 * log, made from its attempts' tuples the way `upsertRequestsSql` makes the
 * row: the final attempt's answer, the first attempt's start, every attempt's
 * cost. Null without a final attempt.
 */
export function requestOfAttempts(tuples: LogAttempt[]): { request: RequestRow; attempts: RequestRow[] } | null {
  const attempts = tuples
    .map((t) => Object.fromEntries(ATTEMPT_COLUMNS.map((column, i) => [column, t[i] ?? null])) as Record<(typeof ATTEMPT_COLUMNS)[number], unknown>)
    .sort((a, b) => Number(a.attempt) - Number(b.attempt));
  const f = attempts.find((a) => a.final === 1);
  if (!f) return null;
  const started = Math.min(...attempts.map((a) => Number(a.ts)));
  const sum = (column: "cost_micros" | "unpriced") => attempts.reduce((total, a) => total + Number(a[column]), 0);
  const request: RequestRow = {
    request_id: f.request_id,
    started_at: started,
    client_key_id: f.client_key_id,
    model: f.model,
    upstream_model: f.upstream_model,
    endpoint: f.endpoint,
    stream: f.stream,
    key_id: f.key_id,
    upstream_id: f.upstream_id,
    status: f.status,
    outcome: f.outcome,
    attempts: attempts.length,
    latency_ms: Number(f.ts) + Number(f.latency_ms) - started,
    ttfb_ms: f.ttfb_ms === null ? null : Number(f.ts) + Number(f.ttfb_ms) - started,
    prompt_tokens: f.prompt_tokens,
    completion_tokens: f.completion_tokens,
    total_tokens: f.total_tokens,
    cached_tokens: f.cached_tokens,
    reasoning_tokens: f.reasoning_tokens,
    usage_source: f.usage_source,
    cost_micros: sum("cost_micros"),
    unpriced: sum("unpriced"),
    user_agent: f.user_agent,
    client_ip: f.client_ip,
  };
  return { request, attempts };
}

/**
 * How far the archive is searched for a request the log does not hold: batches
 * consumed from a minute before its id was made (clocks of the gateway's and
 * the consumer's machines differ) to 15 minutes after (its attempts are sent
 * when its answer ends). A batch's custom metadata filters its request ids, so
 * only those that may hold the request are read: at most 100 reads and 350
 * list calls (a listing with metadata returns fewer batches a call: 100 in
 * the local runtime), since an invocation's calls to other Cloudflare services
 * are limited and D1's count too (docs/requests.md; docs/scale.md measures a
 * search at 10,000 requests a second).
 */
export const ARCHIVE_SEARCH = { beforeMs: 60_000, afterMs: 15 * 60_000, maxObjects: 100, maxLists: 350 } as const;
