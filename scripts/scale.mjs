// @ts-check
/**
 * `npm run scale`: where the design stops as the pool grows. For each pool size
 * (1,000, 10,000 and 100,000 keys by default) a fresh Keypool — the real gateway
 * and consumer bundles in one programmatic Miniflare, as the bench runs them —
 * gets a pool shaped like a large deployment written straight into its D1
 * (bench/scale-data.ts: an upstream per 1,000 keys serving 5 of 50 models, limits
 * and capacity readings, health facts, up to 1,000 client keys; keys sealed with
 * the deployment's real key). Then, measured:
 *
 * - the consumer's snapshot publish: wall time from the admin change to the new
 *   version in KV, and the runtime's CPU for it; the snapshot's bytes in KV;
 * - the gateway's first load of it (its first request: KV read, parse, validate,
 *   index): wall and CPU time, and the runtime's resident memory it adds;
 * - a refresh to the next version while the old one is held: how long until it is
 *   served, and the most resident memory it took above the runtime's before;
 * - the loaded pool's V8 heap, measured in Node (same engine) from the same text;
 * - picks per second of the gateway's key selection over that pool (in Node);
 * - the gateway's added latency: median of 100 chat requests through it minus
 *   the median of 100 straight to the mock upstream, one at a time;
 * - the consumer folding 20,000 attempt events over the pool's keys, models and
 *   clients, packed as the gateway sends them (50 a message, 100 messages a
 *   batch), straight into its queue handler: events a second, and CPU.
 *
 * A step that fails (a snapshot larger than KV takes, a publish that never
 * comes) is reported as such, and the sizes after it still run.
 *
 *   --sizes 1000,10000,100000   --write FILE (docs/scale.md)
 *   --smoke  one small pool, so `npm test` keeps the harness working (no figures judged)
 */
import { build } from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import v8 from "node:v8";
import vm from "node:vm";
import { flag, stringArg } from "./lib/args.mjs";
import { median } from "./lib/numbers.mjs";
import { cpuSeconds, rssMiB } from "./lib/procfs.mjs";
import { runHeading, writeGenerated } from "./lib/report-page.mjs";
import { ROOT } from "./lib/stack.mjs";
import { attemptEvents } from "./bench/consumer.mjs";
import { bundleKeypool, startKeypool, startMock } from "./bench/workers.mjs";

const SMOKE = flag("smoke");
const SIZES = (stringArg("sizes") ?? (SMOKE ? "200" : "1000,10000,100000")).split(",").map(Number);
const WRITE = stringArg("write");
const COMMAND = `npm run scale -- --sizes ${SIZES.join(",")}${SMOKE ? " --smoke" : ""}${WRITE ? ` --write ${WRITE}` : ""}`;
const log = (/** @type {string} */ m) => console.error(`scale: ${m}`);

v8.setFlagsFromString("--expose-gc");
const gc = /** @type {() => void} */ (vm.runInNewContext("gc"));

/** @typedef {Awaited<ReturnType<typeof startKeypool>>} Keypool */

/** @param {Keypool["db"]} db @param {string} table @param {Record<string, unknown>[]} rows */
async function insertRows(db, table, rows) {
  if (rows.length === 0) return;
  const names = Object.keys(/** @type {Record<string, unknown>} */ (rows[0]));
  const select = names.map((n) => `value->>'${n}'`).join(", ");
  const statements = [];
  for (let i = 0; i < rows.length; i += 500) {
    statements.push(db.prepare(`INSERT INTO ${table} (${names.join(", ")}) SELECT ${select} FROM json_each(?1)`).bind(JSON.stringify(rows.slice(i, i + 500))));
  }
  for (let i = 0; i < statements.length; i += 50) await db.batch(statements.slice(i, i + 50));
}

/** @param {Keypool["kv"]} kv @param {string} key the snapshot's KV key */
async function snapshotVersion(kv, key) {
  const { metadata } = await kv.getWithMetadata(key);
  return Number(/** @type {{ version?: number } | null} */ (metadata)?.version ?? 0);
}

/**
 * Polls until `done` holds, sampling the runtime's resident memory; the time it took and the highest sample.
 * @param {() => Promise<boolean>} done @param {number} pid @param {number} timeoutMs
 */
async function until(done, pid, timeoutMs) {
  const started = performance.now();
  let peak = 0;
  while (performance.now() - started < timeoutMs) {
    peak = Math.max(peak, rssMiB([pid])[pid] ?? 0);
    if (await done()) return { ms: performance.now() - started, peakMiB: peak };
    await new Promise((r) => setTimeout(r, 50));
  }
  return null;
}

/** Median milliseconds of `n` sequential POSTs of `body` to `url`. */
async function medianLatency(/** @type {string} */ url, /** @type {Record<string, string>} */ headers, /** @type {string} */ body, n = 100) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    times.push(performance.now() - started);
  }
  return median(times);
}

const work = mkdtempSync(path.join(tmpdir(), "keypool-scale-"));
const started = new Date();
/** @type {Record<string, string>[]} */
const results = [];
/** The figures of the largest pool measured, as numbers, for the headroom table. @type {{ keys: number, bytes?: number, publishCpuS?: number, loadCpuS?: number, heapMiB?: number, foldRate?: number } | null} */
let largest = null;
const mock = await startMock();
try {
  const dataFile = path.join(work, "scale-data.mjs");
  await build({ entryPoints: [path.join(ROOT, "bench/scale-data.ts")], outfile: dataFile, bundle: true, format: "esm", platform: "node", logLevel: "warning" });
  /**
   * bench/scale-data.ts, bundled.
   * @type {{
   *   poolRows(n: number, kek: string, baseUrl: string): Promise<{ upstreams: Record<string, unknown>[], keys: Record<string, unknown>[], health: Record<string, unknown>[],
   *     capacity: Record<string, unknown>[], clientKeys: Record<string, unknown>[], clientKey: string, firstModels: string[] }>,
   *   loadPool(text: string): unknown, parseSnapshot(text: string): unknown, selectionRateOver(snapshot: unknown, model: string, ms: number): number,
   *   SNAPSHOT_KV_KEY: string
   * }}
   */
  const data = await import(dataFile);
  const bundles = await bundleKeypool(work);

  for (const n of SIZES) {
    /** @type {Record<string, string>} */
    const r = { keys: n.toLocaleString("en-US") };
    results.push(r);
    log(`${n} keys: starting Keypool and writing the pool…`);
    const kp = await startKeypool(work, bundles, `scale-${n}`, mock.baseUrl, 0, { provision: false });
    try {
      const rows = await data.poolRows(n, kp.secrets.KEY_ENCRYPTION_KEY, mock.baseUrl);
      r.upstreams = String(rows.upstreams.length);
      r.clients = String(rows.clientKeys.length);
      await insertRows(kp.db, "upstreams", rows.upstreams);
      await insertRows(kp.db, "keys", rows.keys);
      await insertRows(kp.db, "key_health", rows.health);
      await insertRows(kp.db, "key_capacity", rows.capacity);
      await insertRows(kp.db, "client_keys", rows.clientKeys);

      // The consumer publishes the snapshot after an admin change.
      log(`${n} keys: the consumer's publish…`);
      const before = await snapshotVersion(kp.kv, data.SNAPSHOT_KV_KEY);
      const cpu0 = cpuSeconds(kp.pid);
      await kp.admin("PATCH", "/settings", { maxAttempts: 3 });
      const published = await until(async () => (await snapshotVersion(kp.kv, data.SNAPSHOT_KV_KEY)) > before, kp.pid, 300_000);
      if (!published) {
        const why = /Value length[^\n]*|exceeds[^\n]*|Error[^\n]*snapshot[^\n]*/i.exec(kp.log())?.[0] ?? "no new version within 300 s";
        r.snapshot = `not published: ${why.slice(0, 120)}`;
        continue;
      }
      const publishCpuS = cpuSeconds(kp.pid) - cpu0;
      r.publish = `${(published.ms / 1000).toFixed(1)} s wall, ${publishCpuS.toFixed(1)} s CPU`;
      largest = { keys: n, publishCpuS };
      const text = /** @type {string} */ (await kp.kv.get(data.SNAPSHOT_KV_KEY));
      const bytes = Buffer.byteLength(text);
      largest.bytes = bytes;
      r.snapshot = `${(bytes / 2 ** 20).toFixed(2)} MiB (${Math.round(bytes / n)} B/key)`;

      // The gateway's first request loads it.
      log(`${n} keys: the gateway's first load…`);
      const rss0 = rssMiB([kp.pid])[kp.pid] ?? 0;
      const cpu1 = cpuSeconds(kp.pid);
      const t1 = performance.now();
      const first = await fetch(`${kp.url}/healthz?deep=1`);
      const health = /** @type {{ snapshot?: { version: number } }} */ (await first.json());
      const loadCpuS = cpuSeconds(kp.pid) - cpu1;
      largest.loadCpuS = loadCpuS;
      r.firstLoad = `${Math.round(performance.now() - t1)} ms wall, ${Math.round(loadCpuS * 1000)} ms CPU`;
      const rss1 = rssMiB([kp.pid])[kp.pid] ?? 0;
      r.loadRss = `+${Math.round(rss1 - rss0)} MiB`;
      if ((health.snapshot?.version ?? 0) <= before) r.firstLoad += " (served an older version)";

      // A refresh to the next version while the old one is held.
      log(`${n} keys: a refresh with the old snapshot held…`);
      const current = await snapshotVersion(kp.kv, data.SNAPSHOT_KV_KEY);
      await kp.admin("PATCH", "/settings", { maxAttempts: 3 });
      const republished = await until(async () => (await snapshotVersion(kp.kv, data.SNAPSHOT_KV_KEY)) > current, kp.pid, 300_000);
      const rss2 = rssMiB([kp.pid])[kp.pid] ?? 0;
      const refreshed =
        republished &&
        (await until(
          async () => {
            const h = /** @type {{ snapshot?: { version: number } }} */ (await (await fetch(`${kp.url}/healthz?deep=1`)).json());
            return (h.snapshot?.version ?? 0) > current;
          },
          kp.pid,
          60_000,
        ));
      r.refresh = refreshed ? `${(refreshed.ms / 1000).toFixed(1)} s, peak +${Math.round(refreshed.peakMiB - rss2)} MiB` : "not served within 60 s";

      // The same pool in Node: its V8 heap, and selection over it.
      log(`${n} keys: heap and selection, in Node…`);
      // What the pool retains: the heap with it held, less the heap once it is let go.
      /** @type {{ pool: unknown }} */
      const holder = { pool: data.loadPool(text) };
      gc();
      gc();
      const held = process.memoryUsage().heapUsed;
      holder.pool = null;
      gc();
      gc();
      const heapMiB = (held - process.memoryUsage().heapUsed) / 2 ** 20;
      largest.heapMiB = heapMiB;
      r.heap = `${Math.round(heapMiB)} MiB`;
      const snapshot = data.parseSnapshot(text);
      r.picks = `${Math.round(data.selectionRateOver(snapshot, /** @type {string} */ (rows.firstModels[0]), SMOKE ? 50 : 1_000)).toLocaleString("en-US")}/s`;

      // The latency the gateway adds with this pool.
      log(`${n} keys: added latency…`);
      const body = JSON.stringify({ model: rows.firstModels[0], messages: [{ role: "user", content: "hi" }] });
      const count = SMOKE ? 10 : 100;
      const via = await medianLatency(`${kp.url}/v1/chat/completions`, { authorization: `Bearer ${rows.clientKey}` }, body, count);
      const straight = await medianLatency(`${mock.baseUrl}/chat/completions`, { authorization: "Bearer sk-scale-direct" }, body, count);
      r.added = `${(via - straight).toFixed(1)} ms`;

      // The consumer folding live traffic over this pool: packed as the gateway sends it, handed
      // straight to its queue handler. A batch that changes a key's state republishes the snapshot.
      log(`${n} keys: the consumer folding live traffic…`);
      const total = SMOKE ? 1_000 : 20_000;
      const modelsOf = new Map(rows.upstreams.map((u) => [String(u.id), /** @type {string[]} */ (JSON.parse(String(u.models)))]));
      const events = attemptEvents(total, `scale-${n}`, {
        keys: n,
        spreadMs: 3_000,
        target: (i) => {
          const key = /** @type {Record<string, unknown>} */ (rows.keys[(i * 7717) % rows.keys.length]);
          const models = modelsOf.get(String(key.upstream_id)) ?? ["model-00"];
          return {
            keyId: String(key.id),
            upstreamId: String(key.upstream_id),
            model: /** @type {string} */ (models[i % models.length]),
            clientKeyId: String(rows.clientKeys[i % rows.clientKeys.length]?.id),
          };
        },
      });
      const bodies = [];
      for (let i = 0; i < events.length; i += 50) bodies.push({ events: events.slice(i, i + 50) });
      const cpu2 = cpuSeconds(kp.pid);
      const t2 = performance.now();
      for (let i = 0; i < bodies.length; i += 100) {
        const messages = bodies.slice(i, i + 100).map((body, j) => ({ id: `scale-${n}-${i + j}`, timestamp: new Date(), attempts: 1, body }));
        const result = await kp.consumer.queue("keypool-events", messages);
        if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`a batch was not stored: ${JSON.stringify(result).slice(0, 200)}`);
      }
      const foldRate = total / ((performance.now() - t2) / 1000);
      largest.foldRate = foldRate;
      r.fold = `${Math.round(foldRate).toLocaleString("en-US")} events/s, ${((cpuSeconds(kp.pid) - cpu2) / (total / 1000)).toFixed(2)} s CPU per 1,000`;
    } catch (e) {
      r.error = e instanceof Error ? e.message.slice(0, 200) : String(e);
      log(`${n} keys: ${r.error}`);
    } finally {
      await kp.stop();
    }
  }
} finally {
  await mock.stop();
  rmSync(work, { recursive: true, force: true });
}

const columns = /** @type {const} */ ([
  ["keys", "keys"],
  ["upstreams", "upstreams"],
  ["clients", "client keys"],
  ["snapshot", "snapshot in KV"],
  ["publish", "consumer publish"],
  ["firstLoad", "gateway's first load"],
  ["loadRss", "runtime memory after it"],
  ["refresh", "refresh, old one held"],
  ["heap", "V8 heap of the pool (Node)"],
  ["picks", "selection picks"],
  ["added", "added latency (p50)"],
  ["fold", "consumer folding live traffic"],
  ["error", "stopped by"],
]);
const used = columns.filter(([k]) => results.some((r) => r[k] !== undefined));
const table = [
  `| ${used.map(([, h]) => h).join(" | ")} |`,
  `|${used.map(() => "---").join("|")}|`,
  ...results.map((r) => `| ${used.map(([k]) => r[k] ?? "—").join(" | ")} |`),
].join("\n");
/**
 * The limits the largest pool's figures meet, with the headroom each leaves: the
 * limits as docs/scale.md cites them, the loads from this run.
 */
function headroomTable() {
  const l = /** @type {{ keys: number, bytes?: number, publishCpuS?: number, loadCpuS?: number, heapMiB?: number, foldRate?: number } | null} */ (largest);
  if (!l) return "";
  const rows = [];
  const x = (/** @type {number} */ v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "— (too small to measure)");
  const mib = (/** @type {number} */ b) => `${(b / 2 ** 20).toFixed(1)} MiB`;
  if (l.bytes !== undefined) rows.push(["the snapshot as one KV value", "25 MiB a value", mib(l.bytes), x((25 * 2 ** 20) / l.bytes)]);
  if (l.publishCpuS !== undefined)
    rows.push([
      "consumer CPU, a publish a second (a key changed state every second)",
      "1 s of CPU a second",
      `${l.publishCpuS.toFixed(1)} s a publish`,
      x(1 / l.publishCpuS),
    ]);
  if (l.loadCpuS !== undefined)
    rows.push([
      "each gateway isolate's CPU, a new version a second",
      "1 s of CPU a second",
      `${Math.round(l.loadCpuS * 1000)} ms a version`,
      x(1 / l.loadCpuS),
    ]);
  if (l.heapMiB !== undefined && l.bytes !== undefined) {
    const peak = 2 * l.heapMiB + l.bytes / 2 ** 20;
    rows.push(["gateway isolate memory at a refresh: two pools and the new text", "128 MB an isolate", `${peak.toFixed(0)} MiB`, x(128e6 / 2 ** 20 / peak)]);
  }
  if (l.foldRate !== undefined)
    rows.push([
      "one consumer folding into D1 (10,000 req/s are about 10,500 events/s)",
      `${Math.round(l.foldRate).toLocaleString("en-US")} events/s measured`,
      "10,500 events/s",
      x(l.foldRate / 10_500),
    ]);
  return [
    `Headroom of the largest pool measured (${l.keys.toLocaleString("en-US")} keys) against the limits it meets:`,
    "",
    "| what | limit | load | headroom |",
    "|---|---|---|---|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
}

const page = `${runHeading(COMMAND, started, new Date())}\n\n${table}\n\n${headroomTable()}\n\n${SMOKE ? "A smoke run: a small pool, figures not meant to be read." : ""}`;
console.log(page);
if (WRITE) log(`written to ${writeGenerated(WRITE, page, "Scale")}`);
