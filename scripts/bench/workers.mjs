// @ts-check
/**
 * The Workers `npm run bench` (and `npm run profile`, and the chaos run under
 * --miniflare) measure, each in its own programmatic Miniflare — so each has one
 * workerd process whose CPU time /proc can tell — and the mock upstream they
 * call, in a child process of its own so that it does not share a thread with
 * the load generator:
 *   the null Worker — forwards to one of a few fixed keys and streams the answer back;
 *   the metering floor (bench/workers/metering-*.js) — only what counting usage
 *     needs, with and without a minimal event log;
 *   Keypool — gateway and consumer on the event queues, as `npm start` runs them, or
 *     with an entry swapped (the bench's variants, the chaos run's faults).
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { adminSession, provisionPool } from "../lib/admin-client.mjs";
import { migrationStatements } from "../lib/migrations.mjs";
import { queueConsumers, queueProducers } from "../lib/wrangler-config.mjs";
import { workerdProcesses } from "../lib/procfs.mjs";
import { ROOT, freePort, generateSecrets } from "../lib/stack.mjs";

/**
 * Something a load generator can call: its URL, the headers every request
 * carries, the workerd process whose CPU it costs (absent for the mock), how
 * many attempts its consumer has stored so far (for targets that store events),
 * and how long to wait after a run for work the store count does not show.
 * @typedef {{ url: string, headers: Record<string, string>, pid?: number, attempts?: () => Promise<number>, settleMs?: number }} Target
 */

/** @typedef {Target & { stop: () => Promise<void> }} Running */

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

/**
 * The null Worker, but every chunk of the answer passes through JavaScript: read
 * from the upstream's body and written on to the runtime's identity stream that
 * goes to the client, nothing else — the least a relay that may change a byte
 * (Keypool's, leaving out a usage chunk) does per chunk.
 */
const CHUNK_RELAY_WORKER = `
const KEYS = ["sk-null-0-aaaaaaaaaaaaaaaa", "sk-null-1-aaaaaaaaaaaaaaaa", "sk-null-2-aaaaaaaaaaaaaaaa"];
let n = 0;
export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const headers = new Headers({ "content-type": "application/json", authorization: "Bearer " + KEYS[n++ % KEYS.length] });
    const res = await fetch(env.UPSTREAM + url.pathname.replace(/^\\/v1/, ""), { method: "POST", headers, body: request.body });
    const reader = res.body.getReader();
    const { readable, writable } = new IdentityTransformStream();
    const writer = writable.getWriter();
    ctx.waitUntil((async () => {
      try {
        for (let r = await reader.read(); !r.done; r = await reader.read()) await writer.write(r.value);
        await writer.close();
      } catch (err) {
        await reader.cancel().catch(() => {});
        await writer.abort(err).catch(() => {});
      }
    })());
    return new Response(readable, res);
  },
};`;

const COMPAT = { compatibilityDate: "2026-04-20", compatibilityFlags: ["enable_request_signal"] };

/** The mock upstream in a child process; `behave` sets how every key answers. */
export async function startMock() {
  const child = spawn(process.execPath, [path.join(ROOT, "tools/mock-upstream/server.mjs")], {
    env: { ...process.env, MOCK_PORT: "0" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  /** @type {string} */
  const baseUrl = await new Promise((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (d) => {
      out += d;
      const m = /listening: (\S+)/.exec(out);
      if (m?.[1]) resolve(m[1]);
    });
    child.once("exit", (code) => reject(new Error(`the mock upstream exited (${code}) before listening`)));
  });
  return {
    /** ends in /v1 */
    baseUrl,
    pid: /** @type {number} */ (child.pid),
    /** @param {Record<string, unknown>} behavior */
    async behave(behavior) {
      const res = await fetch(`${baseUrl.replace(/\/v1$/, "")}/__mock/keys`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key: "*", ...behavior }),
      });
      if (!res.ok) throw new Error(`mock control failed: ${res.status}`);
    },
    stop() {
      child.kill();
    },
  };
}

/** The mock called straight, without any Worker: the floor of the floor. */
export function direct(/** @type {string} */ mockBaseUrl) {
  return { url: mockBaseUrl.replace(/\/v1$/, ""), headers: { authorization: "Bearer sk-direct-aaaaaaaaaaaaaaaa" } };
}

/** Process ids of the workerd processes this Node process has started. */
const workerdChildren = () => new Set(workerdProcesses((_pid, fields) => Number(fields[1]) === process.pid));

/**
 * Starts a Miniflare and finds the workerd process it spawned.
 * @param {ConstructorParameters<typeof Miniflare>[0]} options
 */
async function startMiniflare(options) {
  const before = workerdChildren();
  const mf = new Miniflare(options);
  await mf.ready;
  const pid = [...workerdChildren()].find((p) => !before.has(p));
  if (!pid) throw new Error("could not find the workerd process Miniflare started");
  return { mf, pid };
}

/**
 * The null Worker: the floor any Worker in this runtime pays; with `chunkRelay`,
 * the same with each chunk of the answer read and written on in JavaScript.
 * @param {string} work a scratch folder
 * @param {string} mockBaseUrl
 * @param {{ chunkRelay?: boolean }} [options]
 * @returns {Promise<Running>}
 */
export async function startNullWorker(work, mockBaseUrl, { chunkRelay = false } = {}) {
  const script = path.join(work, chunkRelay ? "chunk-relay.js" : "null.js");
  writeFileSync(script, chunkRelay ? CHUNK_RELAY_WORKER : NULL_WORKER);
  const port = await freePort();
  const { mf, pid } = await startMiniflare({
    modules: true,
    scriptPath: script,
    modulesRoot: work,
    ...COMPAT,
    port,
    host: "127.0.0.1",
    bindings: { UPSTREAM: mockBaseUrl },
  });
  return { url: `http://127.0.0.1:${port}`, headers: {}, pid, stop: () => mf.dispose() };
}

const FLOOR = path.join(ROOT, "bench/workers");

/**
 * The metering floor: a Worker that does only what counting usage needs — reads
 * the request and the answer whole — and, with `log`, ships one small event per
 * request to a queue whose consumer stores it as one D1 row. `attempts()` counts
 * the stored rows, so a run waits for them as for Keypool's.
 * @param {string} work
 * @param {string} mockBaseUrl
 * @param {{ log: boolean }} options
 * @returns {Promise<Running>}
 */
export async function startMeteringFloor(work, mockBaseUrl, { log }) {
  const port = await freePort();
  const proxy = {
    name: "floor",
    modules: true,
    scriptPath: path.join(FLOOR, "metering-proxy.js"),
    modulesRoot: FLOOR,
    ...COMPAT,
    bindings: { UPSTREAM: mockBaseUrl },
  };
  const options = log
    ? {
        d1Persist: path.join(work, "floor-d1"),
        workers: [
          { ...proxy, queueProducers: { EVENTS: { queueName: "floor-events" } } },
          // As Keypool's consumer in startKeypool: batches of up to 100 messages, at most a second apart.
          {
            name: "floor-consumer",
            modules: true,
            scriptPath: path.join(FLOOR, "metering-log-consumer.js"),
            modulesRoot: FLOOR,
            ...COMPAT,
            d1Databases: { DB: "floor-db" },
            queueConsumers: { "floor-events": { maxBatchTimeout: 1, maxBatchSize: 100 } },
          },
        ],
      }
    : proxy;
  const { mf, pid } = await startMiniflare({ host: "127.0.0.1", port, ...options });
  const target = { url: `http://127.0.0.1:${port}`, headers: {}, pid, stop: () => mf.dispose() };
  if (!log) return target;
  const db = await mf.getD1Database("DB", "floor-consumer");
  await db
    .prepare(
      "CREATE TABLE floor_events (id TEXT PRIMARY KEY, ts INTEGER, key INTEGER, model TEXT, status INTEGER, ms INTEGER, prompt INTEGER, completion INTEGER) WITHOUT ROWID",
    )
    .run();
  const attempts = async () => Number((await db.prepare("SELECT COUNT(*) AS n FROM floor_events").first())?.n ?? 0);
  return { ...target, attempts };
}

/** @typedef {{ gateway: string, consumer: string }} Bundles */

/**
 * Bundles the two Workers once; every Keypool instance runs the same files.
 * `consumerEntry` / `gatewayEntry` swap an entry (the chaos run's
 * test/fixtures/workers/consumer-faults.ts, the bench's variants in bench/workers/).
 * @param {string} work
 * @param {{ consumerEntry?: string, gatewayEntry?: string }} [entries]
 * @returns {Promise<Bundles>}
 */
export async function bundleKeypool(work, { consumerEntry = "stats-consumer/index.ts", gatewayEntry = "gateway/index.ts" } = {}) {
  const gateway = path.join(work, "gateway.js");
  const consumer = path.join(work, "consumer.js");
  await build({ entryPoints: [path.join(ROOT, gatewayEntry)], outfile: gateway, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  await build({ entryPoints: [path.join(ROOT, consumerEntry)], outfile: consumer, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  return { gateway, consumer };
}

/**
 * @typedef {object} KeypoolOptions
 * @property {number} [inspectorPort] the runtime's inspector (the chaos run reads the isolates' heaps)
 * @property {string[]} [keys] the upstream keys (default: `keyCount` made-up ones)
 * @property {Record<string, unknown>} [settings] applied before the pool is set up
 * @property {Record<string, string>} [consumerVars] given to the consumer (the chaos run's faults)
 * @property {boolean} [provision] false: no upstream, key or client key (the caller writes its own pool; `clientKey` is "")
 */

/**
 * Keypool (gateway + consumer on the event queues, like `npm start`) with `keyCount`
 * keys of the mock (or the `keys` given) and one client key. `attempts()` reads
 * how many attempts the rollups hold, so a run can wait until its events are stored.
 * @param {string} work
 * @param {Bundles} bundles
 * @param {string} name its state's folder under `work`
 * @param {string} mockBaseUrl
 * @param {number} keyCount
 * @param {KeypoolOptions} [options]
 */
export async function startKeypool(
  work,
  bundles,
  name,
  mockBaseUrl,
  keyCount,
  { inspectorPort = undefined, keys: given = undefined, settings = undefined, consumerVars = {}, provision = true } = {},
) {
  const secrets = generateSecrets();
  const port = await freePort();
  // The runtime's output (the Workers' console) is kept, for the chaos run's scan for secrets.
  let log = "";
  /** @param {import("node:stream").Readable} stream */
  const keep = (stream) => stream.on("data", (d) => (log += d));
  const state = path.join(work, name);
  const shared = {
    modules: true,
    modulesRoot: work,
    ...COMPAT,
    d1Databases: { DB: "keypool-db" },
    kvNamespaces: { SNAPSHOT: "keypool-kv" },
    // As both wrangler configs: the consumer writes the archive, the gateway's admin API reads it.
    r2Buckets: { ARCHIVE: "keypool-archive" },
  };
  const { mf, pid } = await startMiniflare({
    host: "127.0.0.1",
    port,
    inspectorPort,
    handleRuntimeStdio: (/** @type {import("node:stream").Readable} */ stdout, /** @type {import("node:stream").Readable} */ stderr) => (
      keep(stdout),
      keep(stderr)
    ),
    d1Persist: path.join(state, "d1"),
    kvPersist: path.join(state, "kv"),
    r2Persist: path.join(state, "r2"),
    workers: [
      {
        name: "gateway",
        scriptPath: bundles.gateway,
        ...shared,
        bindings: secrets,
        queueProducers: queueProducers("wrangler.gateway.toml"),
        serviceBindings: { ASSETS: async () => new Response(null, { status: 404 }) },
      },
      {
        name: "consumer",
        scriptPath: bundles.consumer,
        ...shared,
        bindings: consumerVars,
        // As wrangler.consumer.toml: every event queue, a failing batch retried up to 10 times, then dead-lettered.
        queueProducers: queueProducers("wrangler.consumer.toml"),
        queueConsumers: queueConsumers(),
      },
    ],
  });
  const db = await mf.getD1Database("DB", "gateway");
  await db.batch(migrationStatements().map((s) => db.prepare(s)));
  const url = `http://127.0.0.1:${port}`;
  const admin = await adminSession(url, secrets.ADMIN_PASSWORD);
  const keys = given ?? Array.from({ length: keyCount }, (_, i) => `sk-bench-${String(i).padStart(6, "0")}-aaaaaaaaaaaa`);
  const { clientKey } = provision
    ? await provisionPool(admin, url, {
        baseUrl: mockBaseUrl,
        models: ["mock-gpt"],
        keys,
        settings,
        clientName: "bench",
        timeoutMs: 120_000,
      })
    : { clientKey: "" };
  return {
    url,
    clientKey,
    headers: { authorization: `Bearer ${clientKey}` },
    pid,
    db,
    /** The snapshot's KV namespace, as the Workers see it. */
    kv: await mf.getKVNamespace("SNAPSHOT", "gateway"),
    /** The event archive's bucket, as the Workers see it. */
    archive: await mf.getR2Bucket("ARCHIVE", "gateway"),
    /** The consumer Worker, to hand queue batches to directly. */
    consumer: await mf.getWorker("consumer"),
    /** The gateway Worker, to run its cron (the scheduler) directly. */
    gateway: await mf.getWorker("gateway"),
    admin,
    secrets,
    /** What the runtime printed so far. */
    log: () => log,
    async attempts() {
      const row = await db.prepare("SELECT COALESCE(SUM(attempts), 0) AS n FROM rollup_minute WHERE client_key_id = '*'").first();
      return Number(row?.n ?? 0);
    },
    stop: () => mf.dispose(),
  };
}

/**
 * The fold alone (bench/workers/fold-shards.ts) over one D1 database and, beside
 * it in the same runtime, over `shards` databases by key, each with the
 * migrations applied: what one database's time becomes when the fold is split.
 * Batches are handed to `worker.queue("fold-one" | "fold-shards", messages)`.
 * @param {string} work
 * @param {number} shards
 */
export async function startFoldShards(work, shards) {
  const script = path.join(work, "fold-shards.js");
  await build({ entryPoints: [path.join(FLOOR, "fold-shards.ts")], outfile: script, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  const names = Array.from({ length: shards }, (_, i) => `SHARD_${i}`);
  const { mf, pid } = await startMiniflare({
    modules: true,
    scriptPath: script,
    modulesRoot: work,
    ...COMPAT,
    d1Persist: path.join(work, "fold-shards-d1"),
    d1Databases: Object.fromEntries([["ONE", "fold-one"], ...names.map((name) => [name, `fold-${name.toLowerCase()}`])]),
    // Where its publishes of the pool's usage go (and the ask to publish again, which nothing consumes).
    kvNamespaces: { USAGE: "fold-usage" },
    queueProducers: { PUBLISH: { queueName: "fold-publish" } },
  });
  const one = await mf.getD1Database("ONE");
  const dbs = [one, ...(await Promise.all(names.map((name) => mf.getD1Database(name))))];
  for (const db of dbs) await db.batch(migrationStatements().map((s) => db.prepare(s)));
  return { one, shards: dbs.slice(1), worker: await mf.getWorker(), pid, stop: () => mf.dispose() };
}
