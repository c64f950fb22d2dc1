import { describe, expect, it } from "vitest";
import type { AttemptEvent, KeypoolEvent } from "../../schema";
import { changesSnapshot, toBatchRows } from "../../stats-consumer/logic/rollup-rows";

function attempt(id: string, extra: Partial<AttemptEvent> = {}): AttemptEvent {
  return {
    v: 1, type: "attempt", id, ts: Date.UTC(2026, 0, 1, 23, 30), requestId: "r1", attempt: 1, final: true,
    keyId: "k1", upstreamId: "u1", clientKeyId: "c1", model: "m", endpoint: "/chat/completions", stream: false,
    status: 200, outcome: "ok", latencyMs: 12, ttfbMs: 5, promptTokens: 3, completionTokens: 4, totalTokens: 7, cachedTokens: 1, reasoningTokens: 2,
    usageSource: "upstream", retryAfterMs: null, ...extra,
  };
}

describe("toBatchRows", () => {
  it("drops repeated ids inside a batch", () => {
    const rows = toBatchRows([attempt("e1"), attempt("e1"), attempt("e2")], "UTC");
    expect(rows.seen.map((s) => s.id)).toEqual(["e1", "e2"]);
    expect(rows.attempts).toHaveLength(2);
  });

  it("counts a request only on its final attempt and flags the outcome class", () => {
    const [retried, served] = toBatchRows([attempt("e1", { final: false, outcome: "rate_limited", status: 429 }), attempt("e2")], "UTC").attempts;
    expect(retried).toMatchObject({ req: 0, ok: 0, rl: 1 });
    expect(served).toMatchObject({ req: 1, ok: 1, rl: 0, tt: 7, et: 0 });
  });

  it("puts the day bucket at local midnight of the time zone", () => {
    const [row] = toBatchRows([attempt("e1")], "Asia/Shanghai").attempts;
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
