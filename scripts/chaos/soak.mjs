// @ts-check
/**
 * Part 4 of the chaos run: steady mixed traffic at a fixed rate; the success
 * rate per window (no drift), the Keypool isolates' JS heap after a forced
 * collection (no growth trend) and the workerd processes' resident memory,
 * sampled throughout.
 */
import { percentile } from "../lib/numbers.mjs";
import { SEED, SMOKE, SOAK_FAULT_RATE, SOAK_MAX_IN_FLIGHT, SOAK_RATE, SOAK_SECONDS, sleep } from "./config.mjs";
import { sdkFor, startFaultyMock, startStack } from "./stack.mjs";
import { drainedTotals, oneRequest, tally } from "./traffic.mjs";

/** @typedef {{ x: number, y: number }} Point */

/**
 * Least-squares slope of y over x.
 * @param {Point[]} points
 */
function slope(points) {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  const num = points.reduce((s, p) => s + (p.x - mx) * (p.y - my), 0);
  const den = points.reduce((s, p) => s + (p.x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

/**
 * The fitted growth of a memory series after warm-up: MiB per minute, and as a share
 * of the level at the end of warm-up over the rest of the run.
 * @param {Point[]} points
 * @param {number} warmUpS
 */
export function memoryTrend(points, warmUpS) {
  const warm = points.filter((p) => p.x >= warmUpS && Number.isFinite(p.y));
  const first = warm[0];
  const last = warm.at(-1);
  if (warm.length < 3 || !first || !last) return { start: NaN, end: NaN, perMinute: NaN, growth: NaN, minutes: 0 };
  const perSecond = slope(warm);
  const span = last.x - first.x;
  return { start: first.y, end: last.y, perMinute: perSecond * 60, growth: (perSecond * span) / first.y, minutes: span / 60 };
}

const sum = (/** @type {number[]} */ values) => values.reduce((a, b) => a + b, 0);

/**
 * Steady mixed traffic at SOAK_RATE for SOAK_SECONDS; windows of outcomes and
 * memory samples. Runs `andThen(stack, mock)` before stopping the stack.
 * @template T
 * @param {(stack: import("./stack.mjs").ChaosStack, mock: import("./stack.mjs").Mock) => Promise<T>} andThen
 */
export async function soakRun(andThen) {
  const { mock, keys } = await startFaultyMock(SOAK_FAULT_RATE, SEED + 1);
  const stack = await startStack(mock.baseUrl, keys, null);
  const isolates = await stack.inspect();
  try {
    const openai = sdkFor(stack);
    const windowMs = SMOKE ? 5_000 : 60_000;
    const sampleMs = SMOKE ? 1_000 : 5_000;
    const heapEveryMs = SMOKE ? 5_000 : 30_000;
    /** @type {(import("./traffic.mjs").Outcome & { at: number })[]} */
    const results = [];
    const rss = [{ x: 0, by: stack.memory() }];
    const heaps = [{ x: 0, by: await isolates.heapMiB() }];
    /** @type {Set<Promise<unknown>>} */
    const inFlight = new Set();
    let skipped = 0;
    const started = performance.now();
    const since = () => (performance.now() - started) / 1000;
    const sampler = setInterval(() => rss.push({ x: since(), by: stack.memory() }), sampleMs);
    let heapBusy = false;
    const heapSampler = setInterval(() => {
      if (heapBusy) return;
      heapBusy = true;
      const x = since();
      isolates.heapMiB().then((by) => (heaps.push({ x, by }), (heapBusy = false)));
    }, heapEveryMs);
    for (let i = 0; ;) {
      const elapsed = performance.now() - started;
      if (elapsed >= SOAK_SECONDS * 1000) break;
      for (const due = Math.floor((elapsed / 1000) * SOAK_RATE); i < due; i++) {
        if (inFlight.size >= SOAK_MAX_IN_FLIGHT) {
          skipped++;
          continue;
        }
        const at = performance.now() - started;
        const p = oneRequest(openai, i, "soak").then((r) => results.push({ ...r, at }));
        inFlight.add(p);
        p.finally(() => inFlight.delete(p));
      }
      await sleep(5);
    }
    await Promise.all(inFlight);
    clearInterval(sampler);
    clearInterval(heapSampler);
    while (heapBusy) await sleep(50);
    rss.push({ x: since(), by: stack.memory() });
    heaps.push({ x: since(), by: await isolates.heapMiB() });
    const t = tally(results);
    const stored = await drainedTotals(
      stack.admin,
      () => t.sent - t.devProxy,
      () => mock.stats.requests,
    );
    // What the mock had seen by then: the checks below send a few requests of their own.
    const seen = { stats: { requests: mock.stats.requests, reportedTokens: mock.stats.reportedTokens } };
    const windows = [];
    for (let w = 0; w * windowMs < SOAK_SECONDS * 1000; w++) {
      const inWindow = results.filter((r) => r.at >= w * windowMs && r.at < (w + 1) * windowMs);
      const mem = rss.filter((m) => m.x * 1000 >= w * windowMs && m.x * 1000 < (w + 1) * windowMs).map((m) => sum(Object.values(m.by)));
      windows.push({
        from: (w * windowMs) / 1000,
        ...tally(inWindow),
        p50: percentile(
          inWindow.map((r) => r.ms),
          0.5,
        ),
        memory: mem.length ? sum(mem) / mem.length : NaN,
      });
    }
    const checks = await andThen(stack, mock);
    return { t, stored, mock: seen, windows, rss, heaps, skipped, checks, roles: stack.roles() };
  } finally {
    isolates.close();
    await stack.stop();
    await mock.close();
  }
}
