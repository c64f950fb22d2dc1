import { describe, expect, it } from "vitest";
import { CapacityLedger, headroom } from "../../gateway/logic/capacity";
import { MINUTE_MS, minuteStart, type KeyUsage } from "../../schema";
import { seeded } from "../shared/seeded";

/**
 * Many isolates share one key with a per-minute limit. Each counts its own sends
 * exactly and sees the others' only through the pool's usage, which the
 * consumer publishes every `publishMs` holding the events that reached it
 * `lagMs` earlier, and which each isolate rereads every `refreshMs`. The pool
 * can overshoot the limit by what the others sent that an isolate could not
 * see yet: at most isolates × their rate × (lag + publish + refresh).
 */
function simulate(opts: { isolates: number; perIsolatePerSecond: number; limit: number; lagMs: number; publishMs: number; refreshMs: number; ms: number }) {
  const random = seeded(7);
  const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);
  const sends: number[] = [];
  const isolates = Array.from({ length: opts.isolates }, (_, i) => ({
    ledger: new CapacityLedger(),
    usage: undefined as KeyUsage | undefined,
    usageAt: 0,
    nextRefresh: T0 + (i * opts.refreshMs) / opts.isolates,
    nextArrival: T0 + random() * 1_000,
  }));
  let published: { usage: KeyUsage; at: number } | null = null;
  let nextPublish = T0;
  const count = (from: number, to: number) => sends.filter((t) => t >= from && t < to).length;
  for (let now = T0; now < T0 + opts.ms; now += 10) {
    if (now >= nextPublish) {
      // What the consumer counted: the sends whose events reached it.
      const counted = now - opts.lagMs;
      const m = minuteStart(now);
      const inMinute = (start: number) => sends.filter((t) => t >= start && t < start + MINUTE_MS && t <= counted).length;
      published = {
        at: now,
        usage: {
          minuteStart: m,
          minute: { requests: inMinute(m), tokens: 0 },
          previousMinute: { requests: inMinute(m - MINUTE_MS), tokens: 0 },
          dayStart: 0,
          dayResetAt: 0,
          day: { requests: 0, tokens: 0 },
          requests: null,
          tokens: null,
          countedTo: sends.reduce((latest, t) => (t <= counted && t > latest ? t : latest), 0),
        },
      };
      nextPublish = now + opts.publishMs;
    }
    for (const iso of isolates) {
      if (now >= iso.nextRefresh && published) {
        iso.usage = published.usage;
        iso.usageAt = published.at;
        iso.nextRefresh = now + opts.refreshMs;
      }
      while (iso.nextArrival <= now) {
        const h = headroom({ rpm: opts.limit }, iso.usage, iso.usageAt, { requests: null, tokens: null }, iso.ledger, "k", { tokens: 0 }, now);
        if (h.freesAt <= now) {
          iso.ledger.record("k", 0, now);
          sends.push(now);
        }
        iso.nextArrival += (-Math.log(1 - random()) / opts.perIsolatePerSecond) * 1_000;
      }
    }
  }
  // The most any 60 seconds held (at the simulation's 10 ms step), and any whole minute.
  let sliding = 0;
  for (const t of sends) sliding = Math.max(sliding, count(t, t + MINUTE_MS));
  let fixed = 0;
  for (let m = T0; m < T0 + opts.ms; m += MINUTE_MS) fixed = Math.max(fixed, count(m, m + MINUTE_MS));
  return { sliding, fixed, sent: sends.length };
}

describe("how far the pool can overshoot a per-minute limit", () => {
  const base = { perIsolatePerSecond: 2, limit: 60, lagMs: 1_000, publishMs: 1_000, refreshMs: 2_000, ms: 4 * MINUTE_MS };

  it("not at all with one isolate: it counts its own sends exactly", () => {
    const r = simulate({ ...base, isolates: 1 });
    expect(r.sliding).toBeLessThanOrEqual(base.limit);
    expect(r.sent).toBeGreaterThan(3 * base.limit);
  });

  it("with many, by no more than isolates × their rate × (lag + publish + refresh)", () => {
    for (const isolates of [2, 4, 8]) {
      const r = simulate({ ...base, isolates });
      const bound = isolates * base.perIsolatePerSecond * ((base.lagMs + base.publishMs + base.refreshMs) / 1_000);
      expect(r.sliding).toBeLessThanOrEqual(base.limit + bound);
      // Over four minutes, the pool still spends about its limit each minute, not a fraction of it.
      expect(r.sent).toBeGreaterThanOrEqual(3 * base.limit);
    }
  });
});
