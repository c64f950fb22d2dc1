import { describe, expect, it } from "vitest";
import { defaultSettings, deriveKeyState, failureEntry, type AttemptEvent, type HealthFacts, type KeypoolEvent, type Outcome } from "../../schema";
import { toHealthRows } from "../../stats-consumer/logic/health-rows";
import { attemptEvent } from "../fixtures/events";

const NO_FACTS: HealthFacts = { lastOkTs: 0, lastRateLimitTs: 0, coolUntil: 0, lastAuthFailTs: 0, lastNoBalanceTs: 0, failures: [] };
const rules = { failureThreshold: 5, failureWindowMs: 300_000 };

let seq = 0;
function attempt(keyId: string, outcome: Outcome, ts: number, extra: Partial<AttemptEvent> = {}): AttemptEvent {
  return attemptEvent({
    id: `e${++seq}`,
    ts,
    requestId: "r",
    keyId,
    status: outcome === "ok" ? 200 : 500,
    outcome,
    promptTokens: 0,
    completionTokens: 0,
    totalTokens: 0,
    usageSource: "none",
    ...extra,
  });
}

/** Folds events one batch at a time, merging like the SQL does, and returns the facts of `key`. */
function fold(batches: KeypoolEvent[][], key = "k"): HealthFacts {
  const facts = { ...NO_FACTS, failures: [] as string[] };
  for (const batch of batches) {
    for (const r of toHealthRows(batch, defaultSettings).filter((x) => x.key === key)) {
      facts.lastOkTs = Math.max(facts.lastOkTs, r.ok);
      facts.lastRateLimitTs = Math.max(facts.lastRateLimitTs, r.rl);
      facts.coolUntil = Math.max(facts.coolUntil, r.cool);
      facts.lastAuthFailTs = Math.max(facts.lastAuthFailTs, r.auth);
      facts.lastNoBalanceTs = Math.max(facts.lastNoBalanceTs, r.nobal);
      facts.failures = [...new Set([...facts.failures, ...r.failures])].sort().reverse().slice(0, 16);
    }
  }
  return facts;
}

const state = (facts: HealthFacts, now = 10_000_000) => deriveKeyState(facts, rules, now);

describe("key health", () => {
  it("starts active, and a single 5xx does not trip it", () => {
    expect(state(NO_FACTS).state).toBe("active");
    expect(state(fold([[attempt("k", "upstream_error", 1_000)]])).state).toBe("active");
  });

  it("cools a key until its Retry-After, then it is active again by itself", () => {
    const facts = fold([[attempt("k", "rate_limited", 1_000, { status: 429, retryAfterMs: 30_000 })]]);
    expect(deriveKeyState(facts, rules, 2_000)).toEqual({ state: "cooling", coolingUntil: 31_000 });
    expect(deriveKeyState(facts, rules, 31_001).state).toBe("active");
  });

  it("never takes the pool out for good on a wave of 429s hitting every key", () => {
    const wave = ["a", "b", "c", "d"].map((k) => attempt(k, "rate_limited", 5_000, { status: 429, retryAfterMs: 60_000 }));
    for (const k of ["a", "b", "c", "d"]) {
      const facts = fold([wave], k);
      expect(deriveKeyState(facts, rules, 6_000).state).toBe("cooling");
      expect(deriveKeyState(facts, rules, 65_001).state).toBe("active");
    }
  });

  it("marks a key dead on an auth failure, and only a later success brings it back", () => {
    const dead = fold([[attempt("k", "ok", 1_000), attempt("k", "auth_failed", 2_000, { status: 401 })]]);
    expect(state(dead).state).toBe("dead");
    expect(state(fold([[attempt("k", "auth_failed", 2_000)], [attempt("k", "ok", 3_000)]])).state).toBe("active");
  });

  it("marks a key exhausted on no balance, until a probe sees balance", () => {
    const exhausted = fold([[attempt("k", "no_balance", 2_000, { status: 402 })]]);
    expect(state(exhausted).state).toBe("exhausted");
    const probe: KeypoolEvent = { v: 1, type: "probe", id: "p1", ts: 3_000, keyId: "k", kind: "balance", result: "ok", balance: 12.5, detail: null };
    expect(state(fold([[attempt("k", "no_balance", 2_000)], [probe]])).state).toBe("active");
    const empty: KeypoolEvent = { ...probe, id: "p2", ts: 4_000, balance: 0 };
    expect(state(fold([[probe, empty]])).state).toBe("exhausted");
  });

  it("marks a key failing at the threshold of failures inside the window, and a success clears it", () => {
    const fails = (n: number, start: number, step: number) => Array.from({ length: n }, (_, i) => attempt("k", "network_error", start + i * step));
    expect(state(fold([fails(4, 1_000, 1_000)])).state).toBe("active");
    expect(state(fold([fails(5, 1_000, 1_000)])).state).toBe("failing");
    // Five failures spread over more than the window do not.
    expect(state(fold([fails(5, 1_000, 100_000)])).state).toBe("active");
    expect(state(fold([fails(5, 1_000, 1_000), [attempt("k", "ok", 9_000)]])).state).toBe("active");
  });

  it("ignores client errors and aborted requests", () => {
    expect(state(fold([[attempt("k", "client_error", 1_000), attempt("k", "aborted", 2_000)]])).state).toBe("active");
  });

  it("gives the same facts in any order, in any batching, and under duplicates", () => {
    const events: KeypoolEvent[] = [
      attempt("k", "ok", 1_000),
      attempt("k", "network_error", 2_000),
      attempt("k", "rate_limited", 3_000, { retryAfterMs: 5_000 }),
      attempt("k", "network_error", 4_000),
      attempt("k", "auth_failed", 5_000),
      attempt("k", "ok", 6_000),
    ];
    const forward = fold([events]);
    const reversed = fold([[...events].reverse()]);
    const split = fold([events.slice(3), events.slice(0, 3), events.slice(1, 4)]);
    expect(reversed).toEqual(forward);
    expect(split).toEqual(forward);
    expect(forward.failures).toEqual([failureEntry(4_000, events[3]!.id), failureEntry(2_000, events[1]!.id)]);
  });
});
