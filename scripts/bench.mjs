// @ts-check
/**
 * `npm run bench`: figures, side by side in one run, printed as a table. All local,
 * every loop bounded. Today it measures the stats consumer: events per second
 * folded into local D1 (Miniflare, the same D1/R2/KV/Queue bindings as
 * production), with the real consumer bundle and its queue handler.
 *   --events N   events per run (default 20,000)   --runs N   repetitions (default 3)
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { migrationStatements } from "./lib/migrations.mjs";
import { ROOT } from "./lib/stack.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const EVENTS = arg("events", 20_000);
const RUNS = arg("runs", 3);
const BATCH = 100;

const OUTCOMES = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "rate_limited", "upstream_error", "client_error"];

/** Attempt events spread over 50 keys, 4 models, 5 clients and the last hour. */
function events(n, run) {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const outcome = OUTCOMES[i % OUTCOMES.length];
    return {
      v: 1, type: "attempt", id: `bench-${run}-${i}-${now}`, ts: now - ((i * 7919) % 3_600_000), requestId: `req-${run}-${i}`, attempt: 1, final: true,
      keyId: `key-${i % 50}`, upstreamId: "up", clientKeyId: `client-${i % 5}`, model: `model-${i % 4}`, endpoint: "/chat/completions",
      stream: i % 2 === 0, status: outcome === "ok" ? 200 : 500, outcome, latencyMs: 100 + (i % 900), ttfbMs: 20 + (i % 80),
      promptTokens: 20, completionTokens: 80, totalTokens: 100, cachedTokens: 0, reasoningTokens: 0, usageSource: "upstream",
      retryAfterMs: outcome === "rate_limited" ? 1000 : null,
    };
  });
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
    const rates = [];
    for (let run = 0; run < RUNS; run++) {
      const all = events(EVENTS, run);
      const started = performance.now();
      for (let i = 0; i < all.length; i += BATCH) {
        const messages = all.slice(i, i + BATCH).map((body, j) => ({ id: `m-${run}-${i + j}`, timestamp: new Date(), attempts: 1, body }));
        const result = await worker.queue("keypool-events", messages);
        if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`batch ${i / BATCH} was not stored: ${JSON.stringify(result)}`);
      }
      rates.push(EVENTS / ((performance.now() - started) / 1000));
    }
    const totals = await db.prepare("SELECT SUM(attempts) AS attempts FROM rollup_minute").first();
    if (totals?.attempts !== EVENTS * RUNS) throw new Error(`rollups hold ${totals?.attempts} attempts, expected ${EVENTS * RUNS}`);
    const fmt = (x) => Math.round(x).toLocaleString("en-US");
    console.log(`\nKeypool benchmark — ${new Date().toISOString()}, node ${process.version}, ${(await import("node:os")).cpus().length} cores`);
    console.log(`command: npm run bench -- --events ${EVENTS} --runs ${RUNS}\n`);
    console.log("| measurement | median | min – max | runs |");
    console.log("|---|---|---|---|");
    console.log(`| consumer: events folded into local D1 per second (batches of ${BATCH}, archive + rollups + health) | ${fmt(median(rates))} | ${fmt(Math.min(...rates))} – ${fmt(Math.max(...rates))} | ${RUNS} × ${fmt(EVENTS)} |`);
  } finally {
    await mf.dispose();
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
