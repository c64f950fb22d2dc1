// @ts-check
/**
 * `npm run bench`: figures, printed as a table. All local, every loop bounded.
 * - the stats consumer: events per second folded into local D1 (Miniflare, the
 *   same D1/R2/KV/Queue bindings as production), the real bundle and queue handler,
 *   with messages packed as the gateway sends them and with one event a message;
 * - key selection picks per second at 10 / 1,000 / 10,000 / 100,000 keys;
 * - snapshot load (parse + validate + index) at 10,000 keys;
 * - the gateway bundle's gzipped size;
 * - over HTTP, side by side and alternating (scripts/lib/bench-http.mjs): the
 *   mock upstream straight, a null Worker and Keypool with 10 and 10,000 keys,
 *   each Worker in its own Miniflare; chat JSON (a one-word and a 44 kB prompt),
 *   SSE, paced SSE and SSE whose usage chunk Keypool hides, at 1 and 50
 *   connections: requests/s, p50 / p99,
 *   first byte, CPU per request of the workerd process, events stored; then the
 *   stats API over 30 days × 1,000 keys of rollups. --smoke runs all of it for
 *   a fraction of a second each, with 100 keys instead of 10,000.
 *   --events N  events per run (default 20,000)   --runs N  repetitions (default 3)   --smoke  a few seconds
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { migrationStatements } from "./lib/migrations.mjs";
import * as HTTP from "./lib/bench-http.mjs";
import { ROOT } from "./lib/stack.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
/** --smoke: a few seconds, small numbers, no thresholds — so the harness cannot rot (npm test runs it). */
const SMOKE = process.argv.includes("--smoke");
const EVENTS = arg("events", SMOKE ? 500 : 20_000);
const RUNS = arg("runs", SMOKE ? 1 : 3);
/** Messages a queue batch delivers (max_batch_size), and events per packed message in the packed runs. */
const BATCH = 100;
const PACKED = 50;

const OUTCOMES = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "rate_limited", "upstream_error", "client_error"];

/**
 * Attempt events over `keys` keys, 4 models and 5 clients: spread over the last
 * hour (`spreadMs` 3,600,000), or as live traffic arrives, all in the last few seconds.
 */
function events(n, run, { keys, spreadMs }) {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const outcome = OUTCOMES[i % OUTCOMES.length];
    return {
      v: 1, type: "attempt", id: `bench-${run}-${i}-${now}`, ts: now - ((i * 7919) % spreadMs), requestId: `req-${run}-${i}`, attempt: 1, final: true,
      keyId: `key-${(i * 7717) % keys}`, upstreamId: "up", clientKeyId: `client-${i % 5}`, model: `model-${i % 4}`, endpoint: "/chat/completions",
      stream: i % 2 === 0, status: outcome === "ok" ? 200 : 500, outcome, latencyMs: 100 + (i % 900), ttfbMs: 20 + (i % 80),
      promptTokens: 20, completionTokens: 80, totalTokens: 100, cachedTokens: 0, reasoningTokens: 0, usageSource: "upstream",
      retryAfterMs: outcome === "rate_limited" ? 1000 : null,
    };
  });
}

/** The HTTP table, the stats API timings, and each target of issue 8 against its figure. */
function printHttp({ results, breakdown, stats, largePool }, fmt) {
  const { SCENARIOS, TARGETS } = HTTP;
  const ms = (x) => (Number.isNaN(x) ? "–" : x.toFixed(2));
  const med = (runs, f) => median(runs.map(f));
  /** Events stored / responses counted over a target's runs; "–" for a target that stores none. */
  const stored = (runs) => {
    if (runs.every((r) => Number.isNaN(r.counted))) return "–";
    return `${fmt(runs.reduce((n, r) => n + r.counted, 0))} / ${fmt(runs.reduce((n, r) => n + r.requests, 0))}`;
  };
  console.log("\n| scenario | connections | target | requests/s median (min – max) | p50 ms | p99 ms | first byte p50 ms | CPU ms / request | events stored / requests |");
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const { name } of SCENARIOS) {
    for (const c of [1, 50]) {
      for (const t of TARGETS) {
        const runs = results[name][c][t];
        const rps = runs.map((r) => r.rps);
        const errors = runs.reduce((n, r) => n + r.errors, 0);
        const label = t === "Keypool, large pool" ? `Keypool, ${fmt(largePool)} keys` : t;
        console.log(
          `| ${name} | ${c} | ${label} | ${fmt(median(rps))} (${fmt(Math.min(...rps))} – ${fmt(Math.max(...rps))})${errors ? ` ${errors} errors` : ""} | ${ms(med(runs, (r) => r.p50))} | ${ms(med(runs, (r) => r.p99))} | ${ms(med(runs, (r) => r.ttfb))} | ${t === "direct" ? "–" : ms(med(runs, (r) => r.cpuMs))} | ${stored(runs)} |`,
        );
      }
    }
  }
  console.log(`\n| target (issue 8) | Keypool, 10 keys | Keypool, ${fmt(largePool)} keys | goal |`);
  console.log("|---|---|---|---|");
  const versus = (scenario, c, f, combine) => ["Keypool, 10 keys", "Keypool, large pool"].map((t) => combine(med(results[scenario][c][t], f), med(results[scenario][c]["null Worker"], f)));
  const row = (what, values, goal, ok, digits = 2) => console.log(`| ${what} | ${values.map((v) => `${v.toFixed(digits)}${ok(v) ? "" : " (missed)"}`).join(" | ")} | ${goal} |`);
  const [json, sse, paced] = SCENARIOS.map((s) => s.name);
  for (const s of [json, sse]) row(`${s}: throughput ÷ null Worker, 50 connections`, versus(s, 50, (r) => r.rps, (a, b) => a / b), "≥ 0.80", (v) => v >= 0.8);
  row(`${json}: added p50 latency, 1 connection (ms)`, versus(json, 1, (r) => r.p50, (a, b) => a - b), "≤ 0.30", (v) => v <= 0.3);
  row(`${sse}: added time to first byte, 1 connection (ms)`, versus(sse, 1, (r) => r.ttfb, (a, b) => a - b), "≤ 0.50", (v) => v <= 0.5);
  row(`${paced}: total time ÷ null Worker's, 1 connection`, versus(paced, 1, (r) => r.p50, (a, b) => a / b), "≤ 1.02", (v) => v <= 1.02, 3);
  for (const s of [json, sse]) row(`${s}: CPU per request ÷ null Worker's, 50 connections`, versus(s, 50, (r) => r.cpuMs, (a, b) => a / b), "≤ 1.30", (v) => v <= 1.3);
  const nullCpu = med(breakdown["null Worker"], (r) => r.cpuMs);
  console.log(`\n| where Keypool's CPU goes: ${json}, 50 connections | requests/s median (min – max) | CPU ms / request | ÷ null Worker's | events stored / requests |`);
  console.log("|---|---|---|---|---|");
  for (const [target, runs] of Object.entries(breakdown)) {
    const rps = runs.map((r) => r.rps);
    const cpu = med(runs, (r) => r.cpuMs);
    console.log(`| ${target} | ${fmt(median(rps))} (${fmt(Math.min(...rps))} – ${fmt(Math.max(...rps))}) | ${ms(cpu)} | ${(cpu / nullCpu).toFixed(2)} | ${stored(runs)} |`);
  }
  console.log("\n| stats API over 30 days × 1,000 keys of rollups | median ms (15 answers) |");
  console.log("|---|---|");
  for (const [what, t] of Object.entries(stats)) console.log(`| ${what} | ${t.toFixed(1)} |`);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const work = mkdtempSync(path.join(tmpdir(), "keypool-bench-"));
try {
  const script = path.join(work, "consumer.js");
  await build({ entryPoints: [path.join(ROOT, "stats-consumer/index.ts")], outfile: script, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  const mf = new Miniflare({
    modules: true,
    scriptPath: script,
    modulesRoot: work,
    compatibilityDate: "2026-04-20",
    d1Databases: ["DB"],
    kvNamespaces: ["SNAPSHOT"],
    r2Buckets: ["ARCHIVE"],
    queueProducers: { EVENTS: { queueName: "keypool-events" }, DEAD_LETTERS: { queueName: "keypool-events-dlq" } },
    d1Persist: path.join(work, "d1"),
    r2Persist: path.join(work, "r2"),
    kvPersist: path.join(work, "kv"),
    log: undefined,
  });
  try {
    const db = await mf.getD1Database("DB");
    await db.batch(migrationStatements().map((s) => db.prepare(s)));
    const worker = await mf.getWorker();
    // Message shapes, alternating: packed as the gateway sends them (a 20 ms window's events in one
    // message) — spread over an hour of 50 keys, or as live traffic arrives over 10 and over 10,000
    // keys — and one event a message (admin changes, or any other producer).
    const hour = 3_600_000;
    const shapes = {
      [`packed as the gateway sends them (${PACKED} events a message, ${BATCH} messages a batch), 50 keys over an hour`]: { perMessage: PACKED, keys: 50, spreadMs: hour },
      [`packed, as live traffic (the last 3 s), 10 keys`]: { perMessage: PACKED, keys: 10, spreadMs: 3_000 },
      [`packed, as live traffic (the last 3 s), 10,000 keys`]: { perMessage: PACKED, keys: 10_000, spreadMs: 3_000 },
      [`one event a message (${BATCH} messages a batch), 50 keys over an hour`]: { perMessage: 1, keys: 50, spreadMs: hour },
    };
    /** @type {Record<string, number[]>} */
    const rates = Object.fromEntries(Object.keys(shapes).map((shape) => [shape, []]));
    for (let run = 0; run < RUNS; run++) {
      for (const [s, [shape, { perMessage, ...spread }]] of Object.entries(shapes).entries()) {
        const all = events(EVENTS, `${run}-${s}`, spread);
        const bodies = [];
        for (let i = 0; i < all.length; i += perMessage) bodies.push(perMessage === 1 ? all[i] : { events: all.slice(i, i + perMessage) });
        const started = performance.now();
        for (let i = 0; i < bodies.length; i += BATCH) {
          const messages = bodies.slice(i, i + BATCH).map((body, j) => ({ id: `m-${run}-${s}-${i + j}`, timestamp: new Date(), attempts: 1, body }));
          const result = await worker.queue("keypool-events", messages);
          if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`batch ${i / BATCH} was not stored: ${JSON.stringify(result)}`);
        }
        rates[shape].push(EVENTS / ((performance.now() - started) / 1000));
      }
    }
    const totals = await db.prepare("SELECT SUM(attempts) AS attempts FROM rollup_minute").first();
    const expected = EVENTS * RUNS * Object.keys(shapes).length;
    if (totals?.attempts !== expected) throw new Error(`rollups hold ${totals?.attempts} attempts, expected ${expected}`);
    // Gateway logic, in Node: key selection across pool sizes, snapshot loading at 10,000 keys.
    const microFile = path.join(work, "micro.mjs");
    await build({ entryPoints: [path.join(ROOT, "bench/micro.ts")], outfile: microFile, bundle: true, format: "esm", platform: "node", logLevel: "warning" });
    const micro = await import(microFile);
    const selection = {};
    for (const n of [10, 1_000, 10_000, 100_000]) selection[n] = Array.from({ length: RUNS }, () => micro.selectionRate(n, SMOKE ? 50 : 500));
    const load = micro.snapshotLoadMs(10_000, SMOKE ? 2 : 7).slice(SMOKE ? 1 : 2);
    const gatewayBundle = path.join(work, "gateway.js");
    await build({ entryPoints: [path.join(ROOT, "gateway/index.ts")], outfile: gatewayBundle, bundle: true, format: "esm", platform: "neutral", minify: true, logLevel: "warning" });
    const gzipped = gzipSync(readFileSync(gatewayBundle)).length;

    // Over HTTP, side by side, alternating: the mock straight, a null Worker, Keypool with 10 and 10,000 keys.
    const http = await HTTP.runHttpBench(work, { runs: RUNS, smoke: SMOKE, log: (m) => console.error(`bench: ${m}`) });

    const fmt = (x) => Math.round(x).toLocaleString("en-US");
    const row = (what, xs, unit = "") => `| ${what} | ${fmt(median(xs))}${unit} | ${fmt(Math.min(...xs))} – ${fmt(Math.max(...xs))}${unit} | ${xs.length} |`;
    console.log(`\nKeypool benchmark — ${new Date().toISOString()}, node ${process.version}, ${(await import("node:os")).cpus().length} cores`);
    console.log(`command: npm run bench -- --events ${EVENTS} --runs ${RUNS}${SMOKE ? " --smoke" : ""}\n`);
    console.log("| measurement | median | min – max | runs |");
    console.log("|---|---|---|---|");
    for (const [shape, xs] of Object.entries(rates)) console.log(row(`consumer: events folded into local D1 per second, ${shape}`, xs));
    for (const n of Object.keys(selection)) console.log(row(`key selection: picks per second, ${fmt(Number(n))} keys`, selection[n]));
    console.log(`| key selection: picks/s at 100,000 keys ÷ at 10 keys | ${(median(selection[100_000]) / median(selection[10])).toFixed(2)} | | |`);
    console.log(`| snapshot load at 10,000 keys: parse + validate + index (ms) | ${median(load).toFixed(1)} | ${Math.min(...load).toFixed(1)} – ${Math.max(...load).toFixed(1)} | ${load.length} |`);
    console.log(`| gateway bundle, minified, gzipped (kB) | ${(gzipped / 1024).toFixed(1)} | | |`);
    printHttp(http, fmt);
  } finally {
    await mf.dispose();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
