import type { RateLimitReading, RateLimitWindow } from "../../schema";

/**
 * What an upstream's answer says of its key's rate limits, from the headers
 * OpenAI, Groq and many OpenAI-compatible providers send on every answer:
 * `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
 * `x-ratelimit-reset-requests`, the same for `-tokens`, and on a 429
 * `retry-after-ms` or `retry-after`.
 */

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1_000, ms: 1, us: 0.001, µs: 0.001, ns: 0.000001 };
const DURATION = /^(?:\d+(?:\.\d+)?(?:h|ms|m|s|us|µs|ns))+$/;
const PART = /(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns)/g;

/**
 * Milliseconds until a window resets, from a reset header: a duration as Go
 * prints them (`1s`, `6m0s`, `2h30m`, `0.5s`, `20ms`), a number of seconds, an
 * epoch time in seconds, or a date. Null when it is none of these.
 */
export function parseResetMs(value: string | null | undefined, now: number): number | null {
  const v = value?.trim();
  if (!v) return null;
  if (DURATION.test(v)) {
    let ms = 0;
    for (const [, n, unit] of v.matchAll(PART)) ms += Number(n) * UNIT_MS[unit!]!;
    return Math.round(ms);
  }
  if (/^\d+(\.\d+)?$/.test(v)) {
    const n = Number(v);
    // A number this large is an epoch time (in seconds), not a wait.
    return n >= 1e9 ? Math.max(0, Math.round(n * 1000 - now)) : Math.round(n * 1000);
  }
  const date = Date.parse(v);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function count(value: string | null): number | null {
  if (value === null || !/^\s*\d+\s*$/.test(value)) return null;
  const n = Number(value);
  return Number.isSafeInteger(n) ? n : null;
}

function window(headers: Headers, suffix: "requests" | "tokens", now: number): RateLimitWindow | null {
  const limit = count(headers.get(`x-ratelimit-limit-${suffix}`));
  const remaining = count(headers.get(`x-ratelimit-remaining-${suffix}`));
  const resetMs = parseResetMs(headers.get(`x-ratelimit-reset-${suffix}`), now);
  return limit === null && remaining === null && resetMs === null ? null : { limit, remaining, resetMs };
}

/** The rate-limit windows an answer's headers describe, or null when it sends none. */
export function readRateLimitHeaders(headers: Headers, now: number): RateLimitReading | null {
  // Most answers come without them: one lookup decides.
  if (
    !headers.has("x-ratelimit-limit-requests") &&
    !headers.has("x-ratelimit-remaining-requests") &&
    !headers.has("x-ratelimit-limit-tokens") &&
    !headers.has("x-ratelimit-remaining-tokens")
  ) {
    return null;
  }
  const requests = window(headers, "requests", now);
  const tokens = window(headers, "tokens", now);
  return requests || tokens ? { requests, tokens } : null;
}

/**
 * How long the upstream asks to wait before the next request (ms): `retry-after-ms`
 * where it is sent (OpenAI's SDKs read it first), else `retry-after` in seconds or
 * as a date. Null when neither says.
 */
export function readRetryAfterMs(headers: Headers, now: number): number | null {
  const ms = headers.get("retry-after-ms");
  if (ms !== null && /^\s*\d+(\.\d+)?\s*$/.test(ms)) return Math.round(Number(ms));
  const value = headers.get("retry-after");
  if (!value) return null;
  const seconds = Number(value);
  if (Number.isFinite(seconds) && seconds >= 0) return Math.round(seconds * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}
