import { describe, expect, it } from "vitest";
import { parseResetMs, readRateLimitHeaders, readRetryAfterMs } from "../../gateway/logic/rate-limit-headers";

const NOW = Date.UTC(2026, 11, 4, 12, 0, 0);

describe("parseResetMs", () => {
  it("reads durations as OpenAI and Groq print them", () => {
    expect(parseResetMs("1s", NOW)).toBe(1_000);
    expect(parseResetMs("0.5s", NOW)).toBe(500);
    expect(parseResetMs("20ms", NOW)).toBe(20);
    expect(parseResetMs("6m0s", NOW)).toBe(360_000);
    expect(parseResetMs("2h30m", NOW)).toBe(9_000_000);
    expect(parseResetMs("1h2m3.5s", NOW)).toBe(3_723_500);
    expect(parseResetMs("7.66s", NOW)).toBe(7_660);
    expect(parseResetMs("2m59.56s", NOW)).toBe(179_560);
    expect(parseResetMs("14h36m0.001s", NOW)).toBe(52_560_001);
  });

  it("reads plain seconds, epoch seconds and dates", () => {
    expect(parseResetMs("30", NOW)).toBe(30_000);
    expect(parseResetMs("1.5", NOW)).toBe(1_500);
    expect(parseResetMs(String(NOW / 1000 + 90), NOW)).toBe(90_000);
    expect(parseResetMs(new Date(NOW + 45_000).toISOString(), NOW)).toBe(45_000);
    expect(parseResetMs(new Date(NOW + 60_000).toUTCString(), NOW)).toBe(60_000);
  });

  it("gives null for what it cannot read, and never a negative wait", () => {
    for (const v of [null, undefined, "", "soon", "1x", "s", "-3s", "1m-2s"]) expect(parseResetMs(v, NOW)).toBeNull();
    expect(parseResetMs(new Date(NOW - 5_000).toISOString(), NOW)).toBe(0);
  });
});

describe("readRateLimitHeaders", () => {
  it("reads both windows of an OpenAI answer", () => {
    const headers = new Headers({
      "x-ratelimit-limit-requests": "10000",
      "x-ratelimit-remaining-requests": "9999",
      "x-ratelimit-reset-requests": "6ms",
      "x-ratelimit-limit-tokens": "2000000",
      "x-ratelimit-remaining-tokens": "1999950",
      "x-ratelimit-reset-tokens": "1ms",
    });
    expect(readRateLimitHeaders(headers, NOW)).toEqual({
      requests: { limit: 10_000, remaining: 9_999, resetMs: 6 },
      tokens: { limit: 2_000_000, remaining: 1_999_950, resetMs: 1 },
    });
  });

  it("reads a provider that sends only some of them", () => {
    const headers = new Headers({ "x-ratelimit-limit-requests": "14400", "x-ratelimit-remaining-requests": "14370", "x-ratelimit-reset-requests": "2m59.56s" });
    expect(readRateLimitHeaders(headers, NOW)).toEqual({ requests: { limit: 14_400, remaining: 14_370, resetMs: 179_560 }, tokens: null });
  });

  it("gives null for an answer without them, and ignores values that are no count", () => {
    expect(readRateLimitHeaders(new Headers({ "content-type": "application/json" }), NOW)).toBeNull();
    expect(readRateLimitHeaders(new Headers({ "x-ratelimit-limit-requests": "lots", "x-ratelimit-remaining-requests": "-1" }), NOW)).toBeNull();
  });
});

describe("readRetryAfterMs", () => {
  it("prefers retry-after-ms, then reads retry-after in seconds or as a date", () => {
    expect(readRetryAfterMs(new Headers({ "retry-after-ms": "1500", "retry-after": "2" }), NOW)).toBe(1_500);
    expect(readRetryAfterMs(new Headers({ "retry-after": "3" }), NOW)).toBe(3_000);
    expect(readRetryAfterMs(new Headers({ "retry-after": new Date(NOW + 6_000).toUTCString() }), 0 + NOW)).toBe(6_000);
    expect(readRetryAfterMs(new Headers({ "retry-after": "soon" }), NOW)).toBeNull();
    expect(readRetryAfterMs(new Headers(), NOW)).toBeNull();
  });
});
