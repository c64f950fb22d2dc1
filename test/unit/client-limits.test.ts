import { describe, expect, it } from "vitest";
import { MINUTE_MS, type ClientUsage, type SnapshotClientKey } from "../../schema";
import { ClientLimiter, formatReset, hasQuota, quotaHeaders } from "../../gateway/logic/client-limits";

const client = (limits: Partial<SnapshotClientKey> = {}): SnapshotClientKey => ({
  id: `c-${JSON.stringify(limits)}`,
  name: "c",
  hash: "0".repeat(64),
  models: [],
  rpmLimit: null,
  tpmLimit: null,
  rpdLimit: null,
  tpdLimit: null,
  monthlyTokenLimit: null,
  dailyBudgetMicros: null,
  monthlyBudgetMicros: null,
  expiresAt: null,
  enabled: true,
  smoothStreams: null,
  storeBodies: null,
  ...limits,
});

const UTC = (now: number) => ({ now, timeZone: "UTC" });
/** 15 March 2026, 12:00 UTC: a day and a month well under way. */
const NOON = Date.UTC(2026, 2, 15, 12);

/** What the consumer counted for a client, made at `at` (the pool's day and month of NOON). */
function counted(
  at: number,
  u: { minute?: number; previous?: number; day?: number; dayTokens?: number; dayCost?: number; monthTokens?: number; monthCost?: number; countedTo?: number },
): ClientUsage {
  return {
    minuteStart: Math.floor(at / MINUTE_MS) * MINUTE_MS,
    minute: { requests: u.minute ?? 0, tokens: 0 },
    previousMinute: { requests: u.previous ?? 0, tokens: 0 },
    dayStart: Date.UTC(2026, 2, 15),
    day: { requests: u.day ?? 0, tokens: u.dayTokens ?? 0, costMicros: u.dayCost ?? 0 },
    monthStart: Date.UTC(2026, 2, 1),
    month: { tokens: u.monthTokens ?? 0, costMicros: u.monthCost ?? 0 },
    countedTo: u.countedTo ?? 0,
  };
}

describe("client quotas in one isolate", () => {
  it("admits up to the RPM limit in a sliding minute, then says when to retry", () => {
    const limiter = new ClientLimiter();
    const c = client({ rpmLimit: 3 });
    const t0 = NOON;
    for (const dt of [0, 10_000, 20_000]) expect(limiter.admit(c, undefined, 0, UTC(t0 + dt)).ok).toBe(true);
    const refused = limiter.admit(c, undefined, 0, UTC(t0 + 30_000));
    // Counted by the second: the first request leaves the window at the end of its second plus a minute.
    expect(refused).toMatchObject({ ok: false, code: "rpm_limit_exceeded", limit: 3, retryAfterMs: 31_000 });
    expect(limiter.admit(c, undefined, 0, UTC(t0 + 61_000)).ok).toBe(true);
  });

  it("refuses once the tokens of the last minute reach the TPM limit", () => {
    const limiter = new ClientLimiter();
    const c = client({ tpmLimit: 100 });
    expect(limiter.admit(c, undefined, 0, UTC(NOON)).ok).toBe(true);
    limiter.settle(c, 100, 0, NOON + 500);
    expect(limiter.admit(c, undefined, 0, UTC(NOON + 1_000))).toMatchObject({ ok: false, code: "tpm_limit_exceeded" });
    expect(limiter.admit(c, undefined, 0, UTC(NOON + 62_000)).ok).toBe(true);
  });

  it("has nothing to count for a client without quotas", () => {
    expect(hasQuota(client())).toBe(false);
    expect(hasQuota(client({ monthlyBudgetMicros: 0 }))).toBe(true);
  });
});

describe("client quotas pool-wide", () => {
  it("adds to the pool's day count exactly the requests admitted here after the latest attempt it holds", () => {
    const limiter = new ClientLimiter();
    const c = client({ rpdLimit: 10 });
    // Two admitted here: the first is in the count (it was sent before the latest attempt it holds), the second not.
    limiter.admit(c, undefined, 0, UTC(NOON));
    limiter.admit(c, undefined, 0, UTC(NOON + 2_000));
    const usage = counted(NOON + 1_500, { day: 8, countedTo: NOON + 1_000 });
    expect(limiter.admit(c, usage, NOON + 1_500, UTC(NOON + 3_000)).ok).toBe(true); // 8 + 1 → the 10th
    const refused = limiter.admit(c, usage, NOON + 1_500, UTC(NOON + 4_000));
    expect(refused).toMatchObject({ ok: false, code: "daily_request_quota_exceeded", limit: 10 });
    // Free again at the pool's next midnight.
    expect(refused.ok === false && refused.retryAfterMs).toBe(Date.UTC(2026, 2, 16) - (NOON + 4_000));
  });

  it("counts the pool's minute buckets of other isolates, weighted as they slide out", () => {
    const limiter = new ClientLimiter();
    const c = client({ rpmLimit: 10 });
    // Other isolates sent 10 in the previous minute; a quarter into this one, three quarters of them still count.
    const now = Math.floor(NOON / MINUTE_MS) * MINUTE_MS + 15_000;
    const usage = counted(now, { previous: 10 });
    const admitted = [1, 2, 3, 4].filter(() => limiter.admit(c, usage, now, UTC(now)).ok).length;
    expect(admitted).toBe(2); // 7.5 + 2 ≤ 10 < 7.5 + 3
  });

  it("holds a day's and a month's budget in money, with this isolate's spend since the count", () => {
    const limiter = new ClientLimiter();
    const c = client({ dailyBudgetMicros: 5_000_000, monthlyBudgetMicros: 50_000_000 });
    const usage = counted(NOON, { dayCost: 4_999_990, monthCost: 30_000_000 });
    expect(limiter.admit(c, usage, NOON, UTC(NOON + 1_000)).ok).toBe(true);
    limiter.settle(c, 500, 10, NOON + 2_000);
    const refused = limiter.admit(c, usage, NOON, UTC(NOON + 3_000));
    expect(refused).toMatchObject({ ok: false, code: "daily_budget_exceeded", limit: 5_000_000 });
    // A month's budget spent names the month, and waits for the 1st.
    const spent = counted(NOON, { monthCost: 50_000_000 });
    const monthly = new ClientLimiter().admit(c, spent, NOON, UTC(NOON + 1_000));
    expect(monthly).toMatchObject({ ok: false, code: "monthly_budget_exceeded" });
    expect(monthly.ok === false && monthly.retryAfterMs).toBe(Date.UTC(2026, 3, 1) - (NOON + 1_000));
  });

  it("ignores a count made on another day or month, and names the window that frees last", () => {
    const c = client({ rpdLimit: 5, monthlyTokenLimit: 1_000 });
    const yesterday = { ...counted(NOON, { day: 5 }), dayStart: Date.UTC(2026, 2, 14) };
    expect(new ClientLimiter().admit(c, yesterday, NOON - 86_400_000, UTC(NOON)).ok).toBe(true);
    const both = counted(NOON, { day: 5, monthTokens: 1_000 });
    expect(new ClientLimiter().admit(c, both, NOON, UTC(NOON))).toMatchObject({ ok: false, code: "monthly_token_quota_exceeded" });
  });
});

describe("x-ratelimit headers", () => {
  it("describe, for requests and tokens, the window with the least room, after this request", () => {
    const limiter = new ClientLimiter();
    const c = client({ rpmLimit: 60, rpdLimit: 100, tpdLimit: 10_000 });
    const usage = counted(NOON, { day: 95, dayTokens: 4_000 });
    const verdict = limiter.admit(c, usage, NOON, UTC(NOON));
    expect(verdict.ok).toBe(true);
    expect(quotaHeaders(verdict.windows, true, NOON)).toEqual({
      "x-ratelimit-limit-requests": "100",
      "x-ratelimit-remaining-requests": "4",
      "x-ratelimit-reset-requests": "12h0m0s",
      "x-ratelimit-limit-tokens": "10000",
      "x-ratelimit-remaining-tokens": "6000",
      "x-ratelimit-reset-tokens": "12h0m0s",
    });
  });

  it("write durations the way OpenAI does", () => {
    expect([formatReset(20), formatReset(1_000), formatReset(1_001), formatReset(360_000), formatReset(3_723_000), formatReset(-5)]).toEqual([
      "20ms",
      "1s",
      "2s",
      "6m0s",
      "1h2m3s",
      "0s",
    ]);
  });
});
