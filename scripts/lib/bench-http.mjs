// @ts-check
/**
 * The HTTP side of `npm run bench`: the mock upstream called straight (the
 * floor), a null Worker (forwards to one of a few fixed keys and streams the
 * answer back) and Keypool (gateway + consumer, client-key auth, events on) with
 * 10 and with 10,000 keys, the Workers each in their own Miniflare (so each has
 * its own workerd process whose CPU time can be read). The mock runs in a child
 * process so that it does not share a thread with the load generator.
 */
import autocannon from "autocannon";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import http from "node:http";
import path from "node:path";
import { adminSession, waitForModel } from "./admin-client.mjs";
import { cpuSeconds, workerdProcesses } from "./procfs.mjs";
import { migrationStatements } from "./migrations.mjs";
import { ROOT, freePort, generateSecrets } from "./stack.mjs";

const NULL_WORKER = `
const KEYS = ["sk-null-0-aaaaaaaaaaaaaaaa", "sk-null-1-aaaaaaaaaaaaaaaa", "sk-null-2-aaaaaaaaaaaaaaaa"];
let n = 0;
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers({ "content-type": "application/json", authorization: "Bearer " + KEYS[n++ % KEYS.length] });
    const res = await fetch(env.UPSTREAM + url.pathname.replace(/^\\/v1/, ""), { method: "POST", headers, body: request.body });
    return new Response(res.body, res);
  },
};`;

const COMPAT = { compatibilityDate: "2026-04-20", compatibilityFlags: ["enable_request_signal"] };

/** The mock upstream in a child process; `behave` sets how every key answers. */
export async function startMock() {
  const child = spawn(process.execPath, [path.join(ROOT, "tools/mock-upstream/server.mjs")], { env: { ...process.env, MOCK_PORT: "0" }, stdio: ["ignore", "pipe", "inherit"] });
  const baseUrl = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening: (\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`the mock upstream exited (${code}) before listening`)));
  });
  return {
    /** @type {string} ends in /v1 */
    baseUrl,
    pid: /** @type {number} */ (child.pid),
    /** @param {Record<string, unknown>} behavior */
    async behave(behavior) {
      const res = await fetch(`${baseUrl.replace(/\/v1$/, "")}/__mock/keys`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ key: "*", ...behavior }) });
      if (!res.ok) throw new Error(`mock control failed: ${res.status}`);
    },
    stop() {
      child.kill();
    },
  };
}

/** Process ids of the workerd processes this Node process has started. */
const workerdChildren = () => new Set(workerdProcesses((_pid, fields) => Number(fields[1]) === process.pid));

/** Starts a Miniflare and finds the workerd process it spawned. */
async function startMiniflare(options) {
  const before = workerdChildren();
  const mf = new Miniflare(options);
  await mf.ready;
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  if (!pid) throw new Error("could not find the workerd process Miniflare started");
  return { mf, pid };
}

/** The null Worker: the floor any Worker in this runtime pays. */
export async function startNullWorker(work, mockBaseUrl) {
  const script = path.join(work, "null.js");
  writeFileSync(script, NULL_WORKER);
  const port = await freePort();
  const { mf, pid } = await startMiniflare({ modules: true, scriptPath: script, modulesRoot: work, ...COMPAT, port, host: "127.0.0.1", bindings: { UPSTREAM: mockBaseUrl } });
  return { url: `http://127.0.0.1:${port}`, headers: {}, pid, stop: () => mf.dispose() };
}

const FLOOR = path.join(ROOT, "bench/workers");

/**
 * The metering floor (bench/workers/metering-*.js): a Worker that does only what counting
 * usage needs — reads the request and the answer whole — and, with `log`, ships
 * one small event per request to a queue whose consumer stores it as one D1
 * row. `attempts()` counts the stored rows, so a run waits for them as for Keypool's.
 */
export async function startMeteringFloor(work, mockBaseUrl, { log }) {
  const port = await freePort();
  const proxy = { name: "floor", modules: true, scriptPath: path.join(FLOOR, "metering-proxy.js"), modulesRoot: FLOOR, ...COMPAT, bindings: { UPSTREAM: mockBaseUrl } };
  const options = log
    ? {
        d1Persist: path.join(work, "floor-d1"),
        workers: [
          { ...proxy, queueProducers: { EVENTS: { queueName: "floor-events" } } },
          // As Keypool's consumer in startKeypool: batches of up to 100 messages, at most a second apart.
          { name: "floor-consumer", modules: true, scriptPath: path.join(FLOOR, "metering-log-consumer.js"), modulesRoot: FLOOR, ...COMPAT, d1Databases: { DB: "floor-db" }, queueConsumers: { "floor-events": { maxBatchTimeout: 1, maxBatchSize: 100 } } },
        ],
      }
    : proxy;
  const { mf, pid } = await startMiniflare({ host: "127.0.0.1", port, ...options });
  const target = { url: `http://127.0.0.1:${port}`, headers: {}, pid, stop: () => mf.dispose() };
  if (!log) return target;
  const db = await mf.getD1Database("DB", "floor-consumer");
  await db.prepare("CREATE TABLE floor_events (id TEXT PRIMARY KEY, ts INTEGER, key INTEGER, model TEXT, status INTEGER, ms INTEGER, prompt INTEGER, completion INTEGER) WITHOUT ROWID").run();
  const attempts = async () => Number((await db.prepare("SELECT COUNT(*) AS n FROM floor_events").first())?.n ?? 0);
  return { ...target, attempts };
}

/**
 * Bundles the two Workers once; every Keypool instance runs the same files.
 * `consumerEntry` / `gatewayEntry` swap an entry (the chaos run's
 * test/fixtures/workers/consumer-faults.ts, the bench's variants with a part switched off).
 */
export async function bundleKeypool(work, { consumerEntry = "stats-consumer/index.ts", gatewayEntry = "gateway/index.ts" } = {}) {
  const gateway = path.join(work, "gateway.js");
  const consumer = path.join(work, "consumer.js");
  await build({ entryPoints: [path.join(ROOT, gatewayEntry)], outfile: gateway, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  await build({ entryPoints: [path.join(ROOT, consumerEntry)], outfile: consumer, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  return { gateway, consumer };
}

/**
 * Keypool (gateway + consumer on one queue, like `npm start`) with `keyCount`
 * keys of the mock (or the `keys` given) and one client key, `settings` applied first, `consumerVars` given to the
 * consumer. `attempts()` reads how many attempts the rollups hold, so a run can wait until its events are stored.
 */
export async function startKeypool(work, bundles, name, mockBaseUrl, keyCount, { inspectorPort = undefined, keys: given = undefined, settings = undefined, consumerVars = {} } = {}) {
  const secrets = generateSecrets();
  const port = await freePort();
  // The runtime's output (the Workers' console) is kept, for the chaos run's scan for secrets.
  let log = "";
  /** @param {import("node:stream").Readable} stream */
  const keep = (stream) => stream.on("data", (d) => (log += d));
  const state = path.join(work, name);
  const shared = { modules: true, modulesRoot: work, ...COMPAT, d1Databases: { DB: "keypool-db" }, kvNamespaces: { SNAPSHOT: "keypool-kv" } };
  const { mf, pid } = await startMiniflare({
    host: "127.0.0.1",
    port,
    inspectorPort,
    handleRuntimeStdio: (stdout, stderr) => (keep(stdout), keep(stderr)),
    d1Persist: path.join(state, "d1"),
    kvPersist: path.join(state, "kv"),
    r2Persist: path.join(state, "r2"),
    workers: [
      {
        name: "gateway",
        scriptPath: bundles.gateway,
        ...shared,
        bindings: secrets,
        queueProducers: { EVENTS: { queueName: "keypool-events" } },
        serviceBindings: { ASSETS: async () => new Response(null, { status: 404 }) },
      },
      {
        name: "consumer",
        scriptPath: bundles.consumer,
        ...shared,
        bindings: consumerVars,
        r2Buckets: { ARCHIVE: "keypool-archive" },
        queueProducers: { EVENTS: { queueName: "keypool-events" }, DEAD_LETTERS: { queueName: "keypool-events-dlq" } },
        // As wrangler.consumer.toml: a failing batch is retried up to 10 times, then dead-lettered.
        queueConsumers: {
          "keypool-events": { maxBatchTimeout: 1, maxBatchSize: 100, maxRetries: 10, deadLetterQueue: "keypool-events-dlq" },
          "keypool-events-dlq": { maxBatchTimeout: 5, maxBatchSize: 100 },
        },
      },
    ],
  });
  const db = await mf.getD1Database("DB", "gateway");
  await db.batch(migrationStatements().map((s) => db.prepare(s)));
  const url = `http://127.0.0.1:${port}`;
  const admin = await adminSession(url, secrets.ADMIN_PASSWORD);
  const upstream = /** @type {{ id: string }} */ (await admin("POST", "/upstreams", { name: "mock", baseUrl: mockBaseUrl, models: ["mock-gpt"] }));
  if (settings) await admin("PATCH", "/settings", settings);
  const keys = given ?? Array.from({ length: keyCount }, (_, i) => `sk-bench-${String(i).padStart(6, "0")}-aaaaaaaaaaaa`);
  for (let i = 0; i < keys.length; i += 5_000) await admin("POST", "/keys", { upstreamId: upstream.id, text: keys.slice(i, i + 5_000).join("\n") });
  const clientKey = /** @type {{ key: string }} */ (await admin("POST", "/client-keys", { name: "bench" })).key;
  await waitForModel(url, clientKey, "mock-gpt", 120_000);
  return {
    url,
    clientKey,
    headers: { authorization: `Bearer ${clientKey}` },
    pid,
    db,
    admin,
    secrets,
    /** What the runtime printed so far. */
    log: () => log,
    async attempts() {
      const row = await db.prepare("SELECT COALESCE(SUM(attempts), 0) AS n FROM rollup_minute").first();
      return Number(row?.n ?? 0);
    },
    stop: () => mf.dispose(),
  };
}

/**
 * `connections` clients in a closed loop for `seconds` (autocannon): requests/s
 * and latency percentiles in whole ms. Used for throughput (50 connections).
 */
export function loadMany(target, { connections, seconds, body }) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${target.url}/v1/chat/completions`,
        method: "POST",
        headers: { "content-type": "application/json", ...target.headers },
        body: JSON.stringify(body),
        connections,
        duration: seconds,
      },
      (err, result) =>
        err ? reject(err) : resolve({ rps: result.requests.average, requests: result.requests.total, p50: result.latency.p50, p99: result.latency.p99, ttfb: NaN, errors: result.errors + result.non2xx }),
    );
  });
}

/**
 * One client in a closed loop for `seconds`, timed with sub-millisecond
 * precision: requests/s, p50 / p99 of the whole answer and p50 of the time to
 * the first byte of the body (for a stream: its first event).
 */
export async function loadOne(target, { seconds, body }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const { hostname, port } = new URL(target.url);
  const payload = JSON.stringify(body);
  const totals = [];
  const firsts = [];
  let errors = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    const { status, first } = await new Promise((resolve, reject) => {
      const req = http.request(
        { agent, hostname, port, path: "/v1/chat/completions", method: "POST", headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...target.headers } },
        (res) => {
          let first = NaN;
          res.on("data", () => {
            if (Number.isNaN(first)) first = performance.now();
          });
          res.on("end", () => resolve({ status: res.statusCode, first }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
    const t1 = performance.now();
    if (status !== 200) errors++;
    totals.push(t1 - t0);
    firsts.push(first - t0);
  }
  agent.destroy();
  const elapsed = (performance.now() - started) / 1000;
  return { rps: totals.length / elapsed, requests: totals.length, p50: percentile(totals, 0.5), p99: percentile(totals, 0.99), ttfb: percentile(firsts, 0.5), errors };
}

export function percentile(xs, p) {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

const MESSAGES = [{ role: "user", content: "hello" }];
/** A long conversation (about 44 kB of JSON): a long system prompt in English, a Chinese document, a short exchange. */
const LONG_MESSAGES = [
  { role: "system", content: "The quick brown fox jumps over the lazy dog. ".repeat(700) },
  { role: "user", content: "我们需要一个可靠的网关来管理许多上游密钥。".repeat(200) },
  { role: "assistant", content: "Understood." },
  { role: "user", content: "Summarise the document in one sentence." },
];

/**
 * The request shapes measured: chat JSON, with a one-word prompt and with a long
 * conversation (the gateway reads and parses the body; the null Worker streams it
 * through unread); a 20-chunk stream whose client asks
 * for usage (as the Vercel AI SDK and LangChain do), plain and paced 5 ms a
 * chunk; and a stream whose client does not ask, where Keypool asks the
 * upstream itself and must take the usage chunk out before the client sees it.
 */
export const SCENARIOS = [
  { name: "chat JSON", body: { model: "mock-gpt", messages: MESSAGES }, behavior: { words: 20 } },
  { name: "chat SSE, 20 chunks", body: { model: "mock-gpt", messages: MESSAGES, stream: true, stream_options: { include_usage: true } }, behavior: { words: 20 } },
  {
    name: "chat SSE, 20 chunks 5 ms apart",
    body: { model: "mock-gpt", messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
    behavior: { words: 20, chunkDelayMs: 5 },
  },
  { name: "chat SSE, 20 chunks, client did not ask for usage", body: { model: "mock-gpt", messages: MESSAGES, stream: true }, behavior: { words: 20 } },
  { name: "chat JSON, 44 kB prompt", body: { model: "mock-gpt", messages: LONG_MESSAGES }, behavior: { words: 20 } },
];

export const TARGETS = ["direct", "null Worker", "Keypool, 10 keys", "Keypool, large pool"];

/**
 * One measured run: load, then (for Keypool) wait until the consumer has stored
 * the run's events, so the CPU time read includes folding them into D1 and the
 * next run does not compete with this one's backlog.
 */
async function measure(target, scenario, connections, seconds) {
  const before = target.attempts ? await target.attempts() : 0;
  const cpu0 = target.pid ? cpuSeconds(target.pid) : 0;
  const r = connections === 1 ? await loadOne(target, { seconds, body: scenario.body }) : await loadMany(target, { connections, seconds, body: scenario.body });
  let counted = NaN;
  if (target.attempts) {
    const deadline = Date.now() + 30_000;
    let last = -1;
    let stableSince = Date.now();
    for (;;) {
      const now = await target.attempts();
      if (now !== last) stableSince = Date.now();
      last = now;
      if (now - before >= r.requests || Date.now() - stableSince > 2_500 || Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    counted = last - before;
  }
  // A variant whose events are not counted gets a fixed while for its queue and consumer to finish.
  if (target.settleMs) await new Promise((res) => setTimeout(res, target.settleMs));
  const cpuMs = target.pid ? ((cpuSeconds(target.pid) - cpu0) * 1000) / r.requests : NaN;
  return { ...r, cpuMs, counted };
}

/**
 * Every scenario at 1 and 50 connections against the four targets, alternating
 * target by target within each repetition. Returns results[scenario][connections][target] = runs.
 */
export async function runHttpBench(work, { runs, log, smoke = false }) {
  const largePool = smoke ? 100 : 10_000;
  const mock = await startMock();
  const stops = [async () => mock.stop()];
  try {
    const bundles = await bundleKeypool(work);
    const nullWorker = await startNullWorker(work, mock.baseUrl);
    stops.push(nullWorker.stop);
    log(`starting Keypool with 10 keys and with ${largePool.toLocaleString("en-US")} keys…`);
    const small = await startKeypool(work, bundles, "kp10", mock.baseUrl, 10);
    stops.push(small.stop);
    const large = await startKeypool(work, bundles, "large", mock.baseUrl, largePool);
    stops.push(large.stop);
    const targets = { direct: { url: mock.baseUrl.replace(/\/v1$/, ""), headers: { authorization: "Bearer sk-direct-aaaaaaaaaaaaaaaa" }, pid: mock.pid }, "null Worker": nullWorker, "Keypool, 10 keys": small, "Keypool, large pool": large };
    /** @type {Record<string, Record<number, Record<string, any[]>>>} */
    const results = {};
    for (const scenario of SCENARIOS) {
      await mock.behave(scenario.behavior);
      results[scenario.name] = {};
      for (const connections of [1, 50]) {
        const seconds = smoke ? 0.5 : connections === 1 ? (scenario.behavior.chunkDelayMs ? 4 : 3) : 5;
        log(`${scenario.name}, ${connections} connection(s)…`);
        for (const name of TARGETS) await measure(targets[name], scenario, connections, smoke ? 0.3 : 1); // warm-up, not recorded
        const byTarget = Object.fromEntries(TARGETS.map((t) => [t, /** @type {any[]} */ ([])]));
        for (let rep = 0; rep < runs; rep++) for (const name of TARGETS) byTarget[name].push(await measure(targets[name], scenario, connections, seconds));
        results[scenario.name][connections] = byTarget;
      }
    }
    log("where Keypool's CPU goes: chat JSON, 50 connections, with a part switched off…");
    const breakdown = await cpuBreakdown(work, mock, { null: nullWorker, keypool: small }, { runs, seconds: smoke ? 0.3 : 5, stops });
    log("stats API over 30 days × 1,000 keys of rollups…");
    const stats = await timeStatsApi(small);
    return { results, breakdown, stats, largePool };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

/** The metering floor's two rows of the breakdown: without and with its log (see startMeteringFloor). */
const FLOORS = {
  "metering floor: reads the request and the answer whole, nothing else": false,
  "metering floor with a log: the same, plus one small event a request to a queue, stored as one D1 row": true,
};

/** The variants of the breakdown: Keypool with 10 keys and one part switched off, in its own entry. */
const BREAKDOWN = {
  "Keypool, consumer stores nothing (validates, publishes the snapshot; no archive, no D1 writes)": { consumerEntry: "bench/workers/consumer-stores-nothing.ts" },
  "Keypool, gateway sends no events (no queue sends, nothing for the consumer)": { gatewayEntry: "bench/workers/gateway-without-events.ts" },
};

/**
 * Chat JSON at 50 connections against the null Worker, the metering floor
 * without and with its log, Keypool and Keypool with one part switched off at a
 * time, alternating: requests/s and CPU per request, so the table says how much
 * of Keypool's CPU the gateway, the queue and the consumer's storing each take,
 * and how much of it any proxy that meters and logs would pay too. Returns runs by target name.
 */
async function cpuBreakdown(work, mock, { null: nullWorker, keypool }, { runs, seconds, stops }) {
  const scenario = SCENARIOS[0];
  await mock.behave(scenario.behavior);
  /** @type {Record<string, any>} */
  const targets = { "null Worker": nullWorker };
  for (const [name, log] of Object.entries(FLOORS)) {
    const floor = await startMeteringFloor(path.join(work, `floor-${log ? "log" : "proxy"}`), mock.baseUrl, { log });
    stops.push(floor.stop);
    targets[name] = floor;
  }
  targets["Keypool, 10 keys"] = keypool;
  for (const [name, entries] of Object.entries(BREAKDOWN)) {
    const dir = path.join(work, `variant-${Object.keys(targets).length}`);
    const variant = await startKeypool(work, await bundleKeypool(dir, entries), path.basename(dir), mock.baseUrl, 10);
    stops.push(variant.stop);
    targets[name] = { ...variant, attempts: undefined, settleMs: 1_500 };
  }
  for (const target of Object.values(targets)) await measure(target, scenario, 50, Math.min(seconds, 1)); // warm-up
  const byTarget = Object.fromEntries(Object.keys(targets).map((t) => [t, /** @type {any[]} */ ([])]));
  for (let rep = 0; rep < runs; rep++) for (const [name, target] of Object.entries(targets)) byTarget[name].push(await measure(target, scenario, 50, seconds));
  return byTarget;
}

/**
 * Fills the rollups with 30 days × 1,000 keys (hours and days for every key,
 * minutes every 10 minutes of the last day), then times the admin stats API the
 * dashboard calls: median of 15 answers each, in ms, over HTTP with a session.
 */
async function timeStatsApi(keypool) {
  const now = Date.now();
  const minute = Math.floor(now / 60_000) * 60_000;
  const hour = Math.floor(now / 3_600_000) * 3_600_000;
  const day = Math.floor(now / 86_400_000) * 86_400_000;
  const cols = "bucket, key_id, model, client_key_id, requests, attempts, successes, prompt_tokens, completion_tokens, total_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count";
  const values = "'stats-key-' || k.j, 'model-' || (k.j % 4), 'client-' || (k.j % 5), 60, 62, 59, 1200, 4800, 6000, 18000.0, 900, 2400.0, 90, 60";
  const seed = (table, count, bucketExpr) =>
    keypool.db.prepare(
      `WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < ${count - 1}),
       k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < 999)
       INSERT INTO ${table} (${cols}) SELECT ${bucketExpr}, ${values} FROM t, k`,
    );
  await seed("rollup_day", 30, `${day} - t.i * 86400000`).run();
  await seed("rollup_hour", 30 * 24, `${hour} - t.i * 3600000`).run();
  // The consumer keeps the pool-wide hour rollup in step with rollup_hour; seeded rows get theirs here.
  const sums = "requests, attempts, successes, prompt_tokens, completion_tokens, total_tokens, latency_ms_sum, ttfb_ms_sum, ttfb_count";
  await keypool.db
    .prepare(
      `INSERT INTO rollup_pool_hour (bucket, ${sums}, latency_ms_max, ttfb_ms_max)
       SELECT bucket, ${sums.split(", ").map((c) => `SUM(${c})`).join(", ")}, MAX(latency_ms_max), MAX(ttfb_ms_max)
       FROM rollup_hour WHERE key_id LIKE 'stats-key-%' GROUP BY bucket
       ON CONFLICT (bucket) DO UPDATE SET ${sums.split(", ").map((c) => `${c} = ${c} + excluded.${c}`).join(", ")},
         latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max), ttfb_ms_max = MAX(ttfb_ms_max, excluded.ttfb_ms_max)`,
    )
    .run();
  await seed("rollup_minute", 144, `${minute} - (t.i * 10 + k.j % 10) * 60000`).run();
  const queries = {
    "summary (RPM, RPD, TPM, TPD, last 24 h)": "/stats/summary",
    "30-day series, by day": "/stats/series?bucket=day&count=30",
    "30-day series, by hour (720 points)": "/stats/series?bucket=hour&count=720",
    "30-day series of one key, by day": "/stats/series?bucket=day&count=30&keyId=stats-key-7",
    "30-day breakdown by key (top 100)": "/stats/breakdown?by=key&bucket=day&count=30",
  };
  /** @type {Record<string, number>} */
  const times = {};
  for (const [what, path] of Object.entries(queries)) {
    await keypool.admin("GET", path);
    const ms = [];
    for (let i = 0; i < 15; i++) {
      const t0 = performance.now();
      await keypool.admin("GET", path);
      ms.push(performance.now() - t0);
    }
    times[what] = percentile(ms, 0.5);
  }
  return times;
}
