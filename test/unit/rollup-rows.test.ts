import { describe, expect, it } from "vitest";
import { PriceBook, type AttemptEvent, type KeypoolEvent } from "../../schema";
import { changesSnapshot, toBatchRows } from "../../stats-consumer/logic/rollup-rows";
import { attemptEvent } from "../fixtures/events";

function attempt(id: string, extra: Partial<AttemptEvent> = {}): AttemptEvent {
  return attemptEvent({
    id,
    ts: Date.UTC(2026, 0, 1, 23, 30),
    requestId: "r1",
    keyId: "k1",
    upstreamId: "u1",
    clientKeyId: "c1",
    latencyMs: 12,
    ttfbMs: 5,
    promptTokens: 3,
    completionTokens: 4,
    totalTokens: 7,
    cachedTokens: 1,
    reasoningTokens: 2,
    ...extra,
  });
}

const NO_PRICES = new PriceBook([]);

describe("toBatchRows", () => {
  it("drops repeated ids inside a batch", () => {
    const rows = toBatchRows([attempt("e1"), attempt("e1"), attempt("e2")], "UTC", NO_PRICES);
    expect(rows.seen.map((s) => s.id)).toEqual(["e1", "e2"]);
    expect(rows.attempts).toHaveLength(2);
  });

  it("counts a request only on its final attempt and flags the outcome class", () => {
    const [retried, served] = toBatchRows([attempt("e1", { final: false, outcome: "rate_limited", status: 429 }), attempt("e2")], "UTC", NO_PRICES).attempts;
    expect(retried).toMatchObject({ req: 0, ok: 0, rl: 1 });
    expect(served).toMatchObject({ req: 1, ok: 1, rl: 0, tt: 7, et: 0 });
  });

  it("sums attempts per minute, day, key, model and client, keeping the largest latency and counting only answers with a first byte", () => {
    const rows = toBatchRows(
      [
        attempt("e1", { latencyMs: 12, ttfbMs: 5 }),
        attempt("e2", { latencyMs: 30, ttfbMs: null, outcome: "upstream_error", status: 502, final: false }),
        attempt("e3", { latencyMs: 7, ttfbMs: 9, usageSource: "estimated" }),
        attempt("e4", { keyId: "k2" }),
        attempt("e5", { ts: Date.UTC(2026, 0, 1, 23, 31) }),
        // A client id and model that would run together with k1's in a plain joined key.
        attempt("e6", { keyId: "k1|c1", clientKeyId: "m", model: "" }),
      ],
      "UTC",
      NO_PRICES,
    );
    expect(rows.attempts).toHaveLength(6);
    expect(rows.groups).toHaveLength(4);
    expect(rows.groups[0]).toMatchObject({
      key: "k1",
      client: "c1",
      model: "m",
      n: 3,
      req: 2,
      ok: 2,
      ue: 1,
      tt: 21,
      et: 7,
      ls: 49,
      lm: 30,
      fs: 14,
      fm: 9,
      fc: 2,
    });
    expect(rows.groups.map((g) => [g.key, g.n])).toEqual([
      ["k1", 3],
      ["k2", 1],
      ["k1", 1],
      ["k1|c1", 1],
    ]);
    // The groups are copies: the attempt rows keep their own values.
    expect(rows.attempts[0]).toMatchObject({ id: "e1", n: 1, ls: 12, fc: 1 });
  });

  it("leaves the attempts of a request the gateway did not keep out of the request log only", () => {
    const rows = toBatchRows([attempt("e1", { requestId: "kept" }), attempt("e2", { requestId: "left", logged: false })], "UTC", NO_PRICES);
    expect(rows.log.map((l) => l[0])).toEqual(["kept"]);
    expect(rows.attempts.map((a) => a.id)).toEqual(["e1", "e2"]);
    expect(rows.groups.reduce((n, g) => n + g.req, 0)).toBe(2);
    expect(rows.metricAttempts).toHaveLength(2);
  });

  it("puts the day bucket at local midnight of the time zone", () => {
    const [row] = toBatchRows([attempt("e1")], "Asia/Shanghai", NO_PRICES).attempts;
    // 23:30 UTC on Jan 1 is 07:30 on Jan 2 in Beijing.
    expect(row!.d).toBe(Date.UTC(2026, 0, 1, 16));
    expect(row!.m).toBe(Date.UTC(2026, 0, 1, 23, 30));
  });

  it("says admin and probe events can change the snapshot, attempts alone cannot", () => {
    const admin: KeypoolEvent = { v: 1, type: "admin", id: "a1", ts: 1, actor: "admin", action: "keys.add", target: null, detail: null };
    expect(changesSnapshot([attempt("e1")])).toBe(false);
    expect(changesSnapshot([attempt("e1"), admin])).toBe(true);
  });
});
