import { describe, expect, it } from "vitest";
import { CapacityLedger, LEDGER_MS, RECENT_SENDS, headroom } from "../../gateway/logic/capacity";
import { MINUTE_MS, type KeyUsage, type Limits, type UsageReading } from "../../schema";
import { T0, usageAt } from "./capacity-fixtures";

const none: { requests: UsageReading | null; tokens: UsageReading | null } = { requests: null, tokens: null };

const usage = usageAt;

const room = (limits: Limits, u: KeyUsage | undefined, ledger = new CapacityLedger(), now = T0 + 30_000, tokens = 10, learned = none) =>
  headroom(limits, u, T0 + 20_000, learned, ledger, "k", { tokens }, now);

describe("headroom against configured limits", () => {
  it("has room under every limit, and says how much of the tightest is left", () => {
    const h = room({ rpm: 10, rpd: 100 }, usage({ minute: { requests: 4, tokens: 0 }, day: { requests: 50, tokens: 0 } }));
    expect(h.freesAt).toBeLessThanOrEqual(T0 + 30_000);
    expect(h.fraction).toBeCloseTo(0.5);
  });

  it("counts the previous minute by the share of it still inside the window", () => {
    // At :30, half of the previous minute's 8 requests still count: 4 + 5 + 1 > 9.
    const u = usage({ minute: { requests: 5, tokens: 0 }, previousMinute: { requests: 8, tokens: 0 } });
    // Room comes when the previous minute's share falls to 3 of its 8: at :37.5.
    expect(room({ rpm: 9 }, u).freesAt).toBe(T0 + 37_500);
    expect(room({ rpm: 10 }, u).freesAt).toBe(-Infinity);
  });

  it("counts this isolate's own sends exactly, and of the pool's count only what others sent", () => {
    const ledger = new CapacityLedger();
    for (let i = 0; i < 3; i++) ledger.record("k", 10, T0 + 25_000 + i);
    ledger.record("k", 10, T0 + 10_000);
    // The pool counted 6 this minute: these 4, and 2 from elsewhere. 2 + 4 + 1 fits 7, not 6.
    const u = usage({ minute: { requests: 6, tokens: 0 } });
    expect(room({ rpm: 7 }, u, ledger).freesAt).toBe(-Infinity);
    // Room comes when the send at :10 leaves the window (its second ends, plus 60 s), before the others' 2 fade enough.
    expect(room({ rpm: 6 }, u, ledger).freesAt).toBe(T0 + 71_000);
    // The pool's count not yet holding this isolate's sends takes nothing from the others' share.
    expect(room({ rpm: 5 }, usage({ minute: { requests: 0, tokens: 0 } }), ledger).freesAt).toBe(-Infinity);
  });

  it("counts tokens: the request's estimate must fit too", () => {
    const u = usage({ minute: { requests: 0, tokens: 950 } });
    expect(room({ tpm: 1_000 }, u, undefined, T0 + 30_000, 40).freesAt).toBe(-Infinity);
    // 950 must fade to 940: 0.632 s into the next minute, rounded up to the millisecond.
    expect(room({ tpm: 1_000 }, u, undefined, T0 + 30_000, 60).freesAt).toBe(T0 + 60_632);
  });

  it("frees exactly when the estimate leaves room, whatever mix of the pool's count and this isolate's sends fills it", () => {
    // Walk time forward in 10 ms steps: the first moment with room is the one promised (to the step).
    const ledger = new CapacityLedger();
    for (let i = 0; i < 6; i++) ledger.record("k", 0, T0 + 20_000 + i * 3_000);
    const u = usage({ minute: { requests: 3, tokens: 0 }, previousMinute: { requests: 12, tokens: 0 } });
    const now = T0 + 36_000;
    const promised = room({ rpm: 11 }, u, ledger, now).freesAt;
    let t = now;
    while (room({ rpm: 11 }, u, ledger, t).freesAt > t) t += 10;
    expect(promised).toBeGreaterThan(now);
    expect(Math.abs(t - promised)).toBeLessThanOrEqual(10);
  });

  it("frees a full day when the provider's day resets, at midnight Pacific", () => {
    const day = { reset: "local", hour: 0, timeZone: "America/Los_Angeles" } as const;
    const u = usage({ dayStart: Date.UTC(2026, 11, 4, 8), day: { requests: 1_000, tokens: 0 } });
    const now = Date.UTC(2026, 11, 4, 20);
    expect(room({ rpd: 1_000, day }, u, undefined, now).freesAt).toBe(Date.UTC(2026, 11, 5, 8));
    // A count made in the previous day says nothing of this one.
    expect(room({ rpd: 1_000, day }, u, undefined, Date.UTC(2026, 11, 5, 9)).freesAt).toBe(-Infinity);
  });

  it("counts a day's requests sent after the latest attempt the pool's count holds, to the millisecond", () => {
    // Three sent in one second; the count was made within it and holds the first two (the latest sent at :01.200).
    const ledger = new CapacityLedger();
    for (const ms of [100, 200, 700]) ledger.record("k", 0, T0 + 1_000 + ms);
    const counted = (countedTo: number) => usage({ day: { requests: 9, tokens: 0 }, countedTo });
    const at = (u: KeyUsage) => headroom({ rpd: 11 }, u, T0 + 1_500, none, ledger, "k", { tokens: 0 }, T0 + 2_000).freesAt;
    // 9 counted + the one sent after = 10: room for the 11th.
    expect(at(counted(T0 + 1_200))).toBe(-Infinity);
    // By the second (no latest attempt known) all three count again on top of the 9: full until the day resets.
    expect(at(counted(0))).toBe(Date.UTC(2026, 11, 5));
    // A count whose latest attempt is from the day before holds none of today's sends: all three are added.
    expect(at(counted(T0 - 86_400_000))).toBe(Date.UTC(2026, 11, 5));
  });

  it("counts by the second when it no longer remembers its sends to the millisecond", () => {
    const ledger = new CapacityLedger();
    for (let i = 0; i < RECENT_SENDS + 10; i++) ledger.record("k", 0, T0 + 1_000 + i);
    expect(ledger.requestsAfter("k", T0 + 1_000 + RECENT_SENDS)).toBe(9);
    // The first ten are forgotten to the millisecond: counting after one of them cannot be exact.
    expect(ledger.requestsAfter("k", T0 + 1_005)).toBeNull();
    expect(ledger.requestsAfter("k", T0 + 1_009)).toBe(RECENT_SENDS);
  });

  it("without the pool's count, still counts what this isolate sent", () => {
    const ledger = new CapacityLedger();
    ledger.record("k", 0, T0 + 1_000);
    ledger.record("k", 0, T0 + 2_000);
    expect(room({ rpd: 2 }, undefined, ledger).freesAt).toBe(Date.UTC(2026, 11, 5));
  });
});

describe("headroom against the provider's own word", () => {
  it("keeps a key whose window has room, and frees an empty one at its reset", () => {
    const word = { at: T0 + 10_000, limit: 60, remaining: 0, resetAt: T0 + 45_000 };
    expect(room({}, undefined, undefined, T0 + 30_000, 1, { requests: word, tokens: null }).freesAt).toBe(T0 + 45_000);
    expect(room({}, undefined, undefined, T0 + 46_000, 1, { requests: word, tokens: null }).freesAt).toBe(-Infinity);
    const some = { ...word, remaining: 30 };
    const h = room({}, undefined, undefined, T0 + 30_000, 1, { requests: some, tokens: null });
    expect(h.freesAt).toBe(-Infinity);
    expect(h.fraction).toBeCloseTo(0.5);
  });

  it("after a window's reset, counts its whole limit again less what this isolate sent since", () => {
    const ledger = new CapacityLedger();
    const word = { at: T0 + 1_000, limit: 3, remaining: 0, resetAt: T0 + 10_000 };
    const learned = { requests: word, tokens: null };
    expect(room({}, undefined, ledger, T0 + 11_000, 1, learned)).toMatchObject({ freesAt: -Infinity, fraction: 1 });
    for (let i = 0; i < 3; i++) ledger.record("k", 0, T0 + 11_000 + i);
    // Spent before any answer said more: until that window, a minute, is over (an answer may say otherwise sooner).
    expect(room({}, undefined, ledger, T0 + 11_500, 1, learned).freesAt).toBe(T0 + 70_000);
    // A minute on, a provider's word says nothing more.
    expect(room({}, undefined, ledger, T0 + 70_000, 1, learned).freesAt).toBe(-Infinity);
  });

  it("rolls a limit read from a 429 on, a minute at a time, as far as the ledger remembers", () => {
    const ledger = new CapacityLedger();
    ledger.learn("k", { requests: { limit: 2, remaining: 0, resetMs: 30_000 }, tokens: null }, T0 + 30_000, undefined, MINUTE_MS);
    const learned = ledger.learned("k");
    expect(room({}, undefined, ledger, T0 + 40_000, 1, learned).freesAt).toBe(T0 + 60_000);
    for (let i = 0; i < 2; i++) ledger.record("k", 0, T0 + 61_000 + i);
    expect(room({}, undefined, ledger, T0 + 62_500, 1, learned).freesAt).toBe(T0 + 120_000);
    // Two minutes later, the third window: two sent in it, then full again.
    expect(room({}, undefined, ledger, T0 + 185_000, 1, learned).freesAt).toBe(-Infinity);
    for (let i = 0; i < 2; i++) ledger.record("k", 0, T0 + 186_000 + i);
    expect(room({}, undefined, ledger, T0 + 187_500, 1, learned).freesAt).toBe(T0 + 240_000);
    // Past what the ledger remembers, it is forgotten.
    expect(room({}, undefined, ledger, T0 + 60_000 + LEDGER_MS, 1, learned).freesAt).toBe(-Infinity);
  });

  it("takes off what this isolate sent after the reading", () => {
    const ledger = new CapacityLedger();
    ledger.record("k", 500, T0 + 12_000);
    ledger.record("k", 500, T0 + 13_000);
    const word = { at: T0 + 10_000, limit: 10, remaining: 2, resetAt: T0 + 50_000 };
    expect(room({}, undefined, ledger, T0 + 30_000, 1, { requests: word, tokens: null }).freesAt).toBe(T0 + 50_000);
    const tokens = { at: T0 + 10_000, limit: 2_000, remaining: 1_050, resetAt: T0 + 50_000 };
    expect(room({}, undefined, ledger, T0 + 30_000, 100, { requests: null, tokens }).freesAt).toBe(T0 + 50_000);
    expect(room({}, undefined, ledger, T0 + 30_000, 100, { requests: null, tokens: { ...tokens, remaining: 1_100 } }).freesAt).toBe(-Infinity);
  });
});

describe("the ledger", () => {
  it("counts exactly what went out after the request that brought a reading, however many share its second", () => {
    const ledger = new CapacityLedger();
    const first = ledger.record("k", 10, T0 + 100);
    ledger.record("k", 10, T0 + 200); // sent before the first answer came back
    ledger.learn("k", { requests: { limit: 3, remaining: 2, resetMs: 30_000 }, tokens: null }, T0 + 300, first);
    const word = ledger.learned("k").requests!;
    expect(ledger.sentAfter("k", word)).toEqual({ requests: 1, tokens: 10 });
    // One left after the request sent meanwhile: room for exactly one more.
    expect(room({}, undefined, ledger, T0 + 400, 1, { requests: word, tokens: null }).freesAt).toBe(-Infinity);
    ledger.record("k", 10, T0 + 500);
    expect(room({}, undefined, ledger, T0 + 600, 1, { requests: word, tokens: null }).freesAt).toBe(T0 + 30_300);
  });

  it("keeps the newest reading of each window, and what was sent within its horizon", () => {
    const ledger = new CapacityLedger();
    ledger.learn("k", { requests: { limit: 10, remaining: 5, resetMs: 1_000 }, tokens: null }, T0 + 2_000);
    ledger.learn("k", { requests: { limit: 10, remaining: 9, resetMs: 1_000 }, tokens: { limit: 100, remaining: 50, resetMs: 10 } }, T0 + 1_000);
    const nothingSent = { requests: 0, tokens: 0 };
    expect(ledger.learned("k")).toEqual({
      requests: { at: T0 + 2_000, limit: 10, remaining: 5, resetAt: T0 + 3_000, sent: nothingSent },
      tokens: { at: T0 + 1_000, limit: 100, remaining: 50, resetAt: T0 + 1_010, sent: nothingSent },
    });
    ledger.record("k", 5, T0);
    ledger.adjust("k", 20, T0 + 500);
    expect(ledger.sentSince("k", T0)).toEqual({ requests: 1, tokens: 25 });
    ledger.record("k", 1, T0 + LEDGER_MS + 2_000);
    expect(ledger.sentSince("k", 0)).toEqual({ requests: 1, tokens: 1 });
    expect(ledger.knows("k")).toBe(true);
    expect(ledger.knows("other")).toBe(false);
  });
});
