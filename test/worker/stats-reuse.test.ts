import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { claimRecompute } from "../../storage/stats-cache";
import { COSTLY_MS, REUSE_FACTOR } from "../../gateway/logic/reuse-windows";
import { reuseOrCompute } from "../../gateway/storage/stats-reuse";
import type { StatsBreakdown, StatsHeadroom } from "../../schema";
import { admin } from "./helpers";

/** A clock the test moves, and a computation that takes `tookMs` of it and counts its runs. */
function harness(start: number) {
  let t = start;
  let runs = 0;
  let tookMs = 0;
  return {
    now: () => t,
    advance: (ms: number) => (t += ms),
    takes: (ms: number) => (tookMs = ms),
    runs: () => runs,
    compute: async () => {
      runs++;
      t += tookMs;
      return { answer: runs };
    },
  };
}

const kept = (name: string) => env.DB.prepare("SELECT computed_at, took_ms, claimed_until FROM stats_cache WHERE name = ?1").bind(name).first();

describe("reusing costly stats answers", () => {
  it("computes a cheap answer every time and keeps nothing", async () => {
    const h = harness(1_000_000);
    h.takes(COSTLY_MS - 1);
    expect((await reuseOrCompute(env.DB, "cheap", 60_000, h.now, h.compute)).value).toEqual({ answer: 1 });
    expect((await reuseOrCompute(env.DB, "cheap", 60_000, h.now, h.compute)).value).toEqual({ answer: 2 });
    expect(await kept("cheap")).toBeNull();
  });

  it("reuses a costly answer while it is younger than REUSE_FACTOR times what it took, and at most the longest given", async () => {
    const h = harness(2_000_000);
    h.takes(500);
    const first = await reuseOrCompute(env.DB, "costly", 60_000, h.now, h.compute);
    expect(first).toEqual({ value: { answer: 1 }, computedAt: 2_000_000 });
    expect(await kept("costly")).toEqual({ computed_at: 2_000_000, took_ms: 500, claimed_until: 0 });
    // 500 ms of work is reused for 10 s from when it began.
    h.advance(REUSE_FACTOR * 500 - 600);
    expect(await reuseOrCompute(env.DB, "costly", 60_000, h.now, h.compute)).toEqual(first);
    h.advance(200);
    expect((await reuseOrCompute(env.DB, "costly", 60_000, h.now, h.compute)).value).toEqual({ answer: 2 });
    expect(h.runs()).toBe(2);

    // 10 s of work would be reused for 200 s; the longest given, 60 s, holds.
    const slow = harness(3_000_000);
    slow.takes(10_000);
    await reuseOrCompute(env.DB, "slow", 60_000, slow.now, slow.compute);
    slow.advance(60_000 - 10_000 - 1);
    expect((await reuseOrCompute(env.DB, "slow", 60_000, slow.now, slow.compute)).value).toEqual({ answer: 1 });
    slow.advance(1);
    expect((await reuseOrCompute(env.DB, "slow", 60_000, slow.now, slow.compute)).value).toEqual({ answer: 2 });
  });

  it("gives the kept answer, however old, while another reader recomputes it", async () => {
    const h = harness(4_000_000);
    h.takes(1_000);
    await reuseOrCompute(env.DB, "claimed", 60_000, h.now, h.compute);
    h.advance(120_000);
    // Another reader claimed the recomputation a moment ago.
    expect(await claimRecompute(env.DB, "claimed", h.now(), h.now() + 60_000)).toBe(true);
    expect(await reuseOrCompute(env.DB, "claimed", 60_000, h.now, h.compute)).toEqual({ value: { answer: 1 }, computedAt: 4_000_000 });
    expect(h.runs()).toBe(1);
    // Its claim lapses after a minute: then this reader recomputes.
    h.advance(60_000);
    expect((await reuseOrCompute(env.DB, "claimed", 60_000, h.now, h.compute)).value).toEqual({ answer: 2 });
  });

  it("releases its claim when the computation fails, and forgets an answer that became cheap", async () => {
    const h = harness(5_000_000);
    h.takes(1_000);
    await reuseOrCompute(env.DB, "fails", 60_000, h.now, h.compute);
    h.advance(61_000);
    const failing = async () => {
      throw new Error("D1 went away");
    };
    await expect(reuseOrCompute(env.DB, "fails", 60_000, h.now, failing)).rejects.toThrow("D1 went away");
    expect(await kept("fails")).toMatchObject({ claimed_until: 0 });
    // The next reader recomputes at once; it was quick this time, so nothing is kept.
    h.takes(10);
    expect((await reuseOrCompute(env.DB, "fails", 60_000, h.now, h.compute)).value).toEqual({ answer: 2 });
    expect(await kept("fails")).toBeNull();
  });

  it("serves a kept breakdown by key and a kept headroom through the admin API, and sums by model anew", async () => {
    const at = Date.now() - 2_000;
    // What a costly computation left: 10 s of work, reused for up to a minute (by minute) or 15 s (the headroom).
    const breakdown = { by: "key", bucket: "minute", from: 1, to: 2, rows: [] };
    const headroom = { pool: { marker: true }, byUpstream: [], byModel: [], usageAt: null, generatedAt: at };
    await env.DB.batch([
      env.DB.prepare("INSERT INTO stats_cache (name, computed_at, took_ms, body) VALUES (?1, ?2, 10000, ?3)").bind(
        `breakdown:v1:${JSON.stringify(["key", "minute", 60, null, null, null, null, "UTC"])}`,
        at,
        JSON.stringify(breakdown),
      ),
      env.DB.prepare("INSERT INTO stats_cache (name, computed_at, took_ms, body) VALUES ('headroom:v1', ?1, 10000, ?2)").bind(at, JSON.stringify(headroom)),
    ]);
    const byKey = await admin<StatsBreakdown>("GET", "/stats/breakdown?by=key&bucket=minute");
    expect(byKey).toEqual({ status: 200, body: { ...breakdown, computedAt: at } });
    // Another count of buckets is another answer, summed now.
    const other = await admin<StatsBreakdown>("GET", "/stats/breakdown?by=key&bucket=minute&count=30");
    expect(other.body.from).toBeGreaterThan(2);
    expect(other.body.computedAt).toBeGreaterThan(at);
    const byModel = await admin<StatsBreakdown>("GET", "/stats/breakdown?by=model&bucket=minute");
    expect(byModel.body.computedAt).toBeGreaterThan(at);
    expect((await admin<StatsHeadroom>("GET", "/stats/headroom")).body).toEqual(headroom);
  });
});
