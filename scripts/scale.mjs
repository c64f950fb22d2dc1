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
 * - the consumer's first publish, which reads every key and writes the key
 *   parts and the head: wall time from the admin change to the new version in
 *   KV, and the runtime's CPU; the snapshot's bytes in KV (parts, head, the
 *   largest single value);
 * - the gateway's first load of it (its first request: every part read,
 *   validated, assembled, indexed): wall and CPU time, and the resident memory
 *   it adds;
 * - a publish of states (what a change of key state costs from then on: the
 *   head rewritten over the parts) and the gateway's refresh to it: wall, CPU,
 *   peak resident memory;
 * - in Node (same engine), from the texts in KV: the V8 heap an isolate holds
 *   for the pool, and the CPU and heap of a new version of states with 1% of the
 *   keys changed, assembled over the parts held;
 * - picks per second of the gateway's key selection over that pool (in Node);
 * - the gateway's added latency: median of 100 chat requests through it minus
 *   the median of 100 straight to the mock upstream, one at a time;
 * - the consumer folding 20,000 attempt events over the pool's keys, models and
 *   clients, packed as the gateway sends them (50 a message, 100 messages a
 *   batch), straight into its queue handler, onto the rollup rows an hour of
 *   10,000 req/s would hold already: events a second, and CPU; D1's own
 *   time for it, part by part, as the consumer counts it for /metrics; then as
 *   many events again marked as the gateway marks them with `requestLogSample`
 *   SAMPLED_LOG, for the request log's part and the rows an event with a sample;
 * - the pool's usage it published meanwhile: its bytes, the CPU an isolate
 *   spends taking it (in Node) and selection's picks a second with it; then one
 *   publish of it on its own (a batch of the control message alone): wall and CPU;
 *   and, over the dashboard's volume of rollups, one as the keys count their day
 *   and with every day a rolling day: the first (past hours read and kept in
 *   D1), with them kept, moving them on an hour, and read from hours alone (wall,
 *   each the quickest of three);
 * - one scheduler run with 1,000 probes due, and the queues' messages a second
 *   from the gateway's event batcher at 10,000 requests a second (simulated),
 *   to one queue and spread over the event queues the gateway's config binds.
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
import { eventQueueNames } from "./lib/wrangler-config.mjs";
import { ROOT } from "./lib/stack.mjs";
import { attemptEvents } from "./bench/consumer.mjs";
import { bundleKeypool, startFoldShards, startKeypool, startMock } from "./bench/workers.mjs";

/** The round trip the probe round is measured against besides the local mock's own (a provider's, across the internet). */
const PROBE_RTT_MS = 300;
/** The `requestLogSample` the fold is measured with a second time: the share of successes the request log keeps. */
const SAMPLED_LOG = 0.01;

const SMOKE = flag("smoke");
const SIZES = (stringArg("sizes") ?? (SMOKE ? "200" : "1000,10000,100000")).split(",").map(Number);
const WRITE = stringArg("write");
const COMMAND = `npm run scale -- --sizes ${SIZES.join(",")}${SMOKE ? " --smoke" : ""}${WRITE ? ` --write ${WRITE}` : ""}`;
const log = (/** @type {string} */ m) => console.error(`scale: ${m}`);

v8.setFlagsFromString("--expose-gc");
const gc = /** @type {() => void} */ (vm.runInNewContext("gc"));

/** @typedef {Awaited<ReturnType<typeof startKeypool>>} Keypool */

/**
 * Inserts rows (objects with the same columns) into a table; `orIgnore` skips those whose key is there already.
 * @param {Keypool["db"]} db @param {string} table @param {Record<string, unknown>[]} rows @param {boolean} [orIgnore]
 */
async function insertRows(db, table, rows, orIgnore = false) {
  if (rows.length === 0) return;
  const names = Object.keys(/** @type {Record<string, unknown>} */ (rows[0]));
  const select = names.map((n) => `value->>'${n}'`).join(", ");
  const statements = [];
  for (let i = 0; i < rows.length; i += 500) {
    statements.push(
      db
        .prepare(`INSERT ${orIgnore ? "OR IGNORE " : ""}INTO ${table} (${names.join(", ")}) SELECT ${select} FROM json_each(?1)`)
        .bind(JSON.stringify(rows.slice(i, i + 500))),
    );
  }
  for (let i = 0; i < statements.length; i += 50) await db.batch(statements.slice(i, i + 50));
}

/** The local D1 database's size in bytes, as D1 reports it after a statement. @param {Keypool["db"]} db */
async function databaseBytes(db) {
  return Number((await db.prepare("SELECT 1").run()).meta.size_after ?? 0);
}

/**
 * The rows in each of Keypool's tables (D1's and SQLite's own left out).
 * @param {Keypool["db"]} db
 * @returns {Promise<Map<string, number>>}
 */
async function tableRows(db) {
  const { results } = await db
    .prepare(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_cf\\_%' ESCAPE '\\' AND name <> 'd1_migrations'",
    )
    .all();
  const names = results.map((r) => String(/** @type {{ name: unknown }} */ (r).name));
  const counts = await db.batch(names.map((name) => db.prepare(`SELECT COUNT(*) AS n FROM "${name}"`)));
  return new Map(names.map((name, i) => [name, Number(/** @type {{ n: unknown }} */ (counts[i]?.results[0])?.n ?? 0)]));
}

/**
 * Distinct rows `events` make when each lands on one of `combos` rows evenly at random (the expected count).
 * @param {number} events @param {number} combos
 */
function distinctRows(events, combos) {
  return combos * (1 - Math.exp(-events / combos));
}

/**
 * Writes rollup rows as the fold keeps them (migration 0020) straight into
 * D1: for each of the last 48 hours `perHour` key rows into rollup_hour,
 * spread over the pool's keys (`keyIdPrefix` and 12 digits) and 50 models,
 * and a tenth as many client rows, spread over its client keys and the 50
 * models (100,000 keys × 5 models to 1,000 client keys × 50 models, the
 * largest pool's proportion); for each of the last 60 minutes, and of the
 * hour a day ago, `perMinute` and a tenth into rollup_minute; today's and
 * yesterday's day rows summed from the hours. In a small pool some land on the same row and
 * are skipped. Returns the rows written and what a rollup_hour row takes in D1
 * (its primary key and index included).
 * @param {Keypool["db"]} db @param {string} keyIdPrefix @param {number} keys @param {number} clients @param {number} perHour @param {number} perMinute
 */
async function rollupVolume(db, keyIdPrefix, keys, clients, perHour, perMinute) {
  const HOUR = 3_600_000;
  const now = Date.now();
  const values = "1, 1, 1, 100, 50, 150, 900, 900, 300, 300, 1";
  const columns =
    "bucket, key_id, model, client_key_id, requests, attempts, successes, prompt_tokens, completion_tokens, total_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count";
  /** @param {string} table @param {number} bucket @param {number} count @param {number} salt */
  const fill = async (table, bucket, count, salt) => {
    const run = (/** @type {string} */ select, /** @type {number} */ n, /** @type {unknown[]} */ ...params) =>
      db
        .prepare(`WITH RECURSIVE i(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM i WHERE x < ?2 - 1) INSERT OR IGNORE INTO ${table} (${columns}) ${select}`)
        .bind(bucket, n, salt, ...params)
        .run()
        .then((result) => Number(result.meta.changes ?? 0));
    const keyRows = await run(
      `SELECT ?1, ?5 || printf('%012d', (x * 7717 + ?3) % ?4), 'model-' || printf('%02d', (x + ?3) % 50), '*', ${values} FROM i`,
      count,
      keys,
      keyIdPrefix,
    );
    const clientRows = await run(
      `SELECT ?1, '*', 'model-' || printf('%02d', (x + ?3) % 50), 'scale-client-' || ((x * 31 + ?3) % ?4), ${values} FROM i`,
      Math.max(1, Math.round(count / 10)),
      clients,
    );
    // The upstream × model rows the consumer folds beside them (migration 0021): the bucket's key rows summed per upstream
    // and model, added to what the fold of live traffic wrote there already.
    await db
      .prepare(
        `INSERT INTO ${table.replace("rollup_", "rollup_upstream_")} (bucket, upstream_id, model, requests, attempts, successes, prompt_tokens, completion_tokens,
           total_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count)
         SELECT r.bucket, k.upstream_id, r.model, SUM(r.requests), SUM(r.attempts), SUM(r.successes), SUM(r.prompt_tokens), SUM(r.completion_tokens),
           SUM(r.total_tokens), SUM(r.latency_ms_sum), MAX(r.latency_ms_max), SUM(r.ttfb_ms_sum), MAX(r.ttfb_ms_max), SUM(r.ttfb_count)
         FROM ${table} r JOIN keys k ON k.id = r.key_id WHERE r.bucket = ?1 AND r.client_key_id = '*' GROUP BY 1, 2, 3
         ON CONFLICT (bucket, upstream_id, model) DO UPDATE SET ${UPSTREAM_SUMS.map((c) => `${c} = ${c} + excluded.${c}`).join(", ")},
           latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max), ttfb_ms_max = MAX(ttfb_ms_max, excluded.ttfb_ms_max)`,
      )
      .bind(bucket)
      .run();
    return { keyRows, clientRows };
  };
  const before = await databaseBytes(db);
  let hourRows = 0;
  let keyHourRows = 0;
  for (let h = 0; h < 48; h++) {
    const written = await fill("rollup_hour", now - (now % HOUR) - h * HOUR, perHour, h * 7919);
    keyHourRows += written.keyRows;
    hourRows += written.keyRows + written.clientRows;
  }
  const hourRowBytes = ((await databaseBytes(db)) - before) / hourRows;
  // Today's day rows (UTC, the pool's zone) as the fold would hold them after a day like the last 24 hours: each key
  // and model's hour rows summed, added to what live traffic folded there.
  await db
    .prepare(
      `INSERT INTO rollup_day (bucket, key_id, model, client_key_id, ${UPSTREAM_SUMS.join(", ")}, latency_ms_max, ttfb_ms_max)
       SELECT ?1, key_id, model, '*', ${UPSTREAM_SUMS.map((c) => `SUM(${c})`).join(", ")}, MAX(latency_ms_max), MAX(ttfb_ms_max)
       FROM rollup_hour WHERE bucket > ?2 AND client_key_id = '*' AND key_id LIKE ?3 GROUP BY key_id, model
       ON CONFLICT (bucket, key_id, model, client_key_id) DO UPDATE SET ${UPSTREAM_SUMS.map((c) => `${c} = ${c} + excluded.${c}`).join(", ")},
         latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max), ttfb_ms_max = MAX(ttfb_ms_max, excluded.ttfb_ms_max)`,
    )
    .bind(now - (now % 86_400_000), now - 86_400_000, `${keyIdPrefix}%`)
    .run();
  // Yesterday's day rows likewise (its hour rows summed), and the minute rows of the hour a day ago: what a key's day
  // that began yesterday reads besides today's rows (window-count.ts).
  const midnight = now - (now % 86_400_000);
  await db
    .prepare(
      `INSERT INTO rollup_day (bucket, key_id, model, client_key_id, ${UPSTREAM_SUMS.join(", ")}, latency_ms_max, ttfb_ms_max)
       SELECT ?1, key_id, model, '*', ${UPSTREAM_SUMS.map((c) => `SUM(${c})`).join(", ")}, MAX(latency_ms_max), MAX(ttfb_ms_max)
       FROM rollup_hour WHERE bucket >= ?1 AND bucket < ?2 AND client_key_id = '*' AND key_id LIKE ?3 GROUP BY key_id, model
       ON CONFLICT (bucket, key_id, model, client_key_id) DO NOTHING`,
    )
    .bind(midnight - 86_400_000, midnight, `${keyIdPrefix}%`)
    .run();
  const dayAgo = now - 86_400_000 - ((now - 86_400_000) % HOUR);
  for (let m = 0; m < 60; m++) await fill("rollup_minute", dayAgo + m * 60_000, perMinute, m * 15_485_863);
  let keyMinuteRows = 0;
  let clientMinuteRows = 0;
  for (let m = 0; m < 60; m++) {
    const written = await fill("rollup_minute", now - (now % 60_000) - m * 60_000, perMinute, m * 104_729);
    keyMinuteRows += written.keyRows;
    clientMinuteRows += written.clientRows;
  }
  const upstream = await db
    .prepare("SELECT COUNT(*) AS n, COUNT(DISTINCT bucket) AS buckets FROM rollup_upstream_minute WHERE bucket > ?1")
    .bind(now - 3_600_000)
    .first();
  const upstreamMinuteRows = Number(upstream?.n ?? 0) / Math.max(1, Number(upstream?.buckets ?? 1));
  return { hourRowBytes, hourRows, keyHourRows, minuteRows: keyMinuteRows + clientMinuteRows, keyMinuteRows, clientMinuteRows, upstreamMinuteRows };
}

/** Events a minute at 10,000 requests a second (1.05 events a request). */
const EVENTS_A_MINUTE = 10_500 * 60;

/**
 * The share of events that find their rollup row already there when a bucket's
 * row takes `lambda` events on average (arriving at random): all but the first
 * of each row's events.
 * @param {number} lambda
 */
function foundShare(lambda) {
  return lambda <= 0 ? 0 : 1 - (1 - Math.exp(-lambda)) / lambda;
}

/**
 * Writes the rollup rows traffic at 10,000 requests a second would already
 * hold when `events` arrive, so the fold is measured as it runs mid-hour —
 * updating rows more than creating them — and not as the first traffic ever
 * seen. A key × model row of a minute takes 630,000 / (keys × models) events
 * a minute (1.3 at 100,000 keys serving 5 models: 43% of events find theirs),
 * an hour's row 60 times that, a day's 1,440 times; likewise for client key ×
 * model rows. Each event's rows are written for that share of the events,
 * chosen evenly. The pool's days are UTC (its time zone is the default).
 * Returns the share of events that found their key's minute row.
 * @param {Keypool["db"]} db
 * @param {{ keyId: string, model: string, clientKeyId: string, ts: number }[]} events
 * @param {number} keyPairs @param {number} clientPairs
 * @param {number} [eventsAMinute] the events a minute this database folds (one of several by key folds a share)
 */
async function steadyRollups(db, events, keyPairs, clientPairs, eventsAMinute = EVENTS_A_MINUTE) {
  const buckets = /** @type {const} */ ([
    ["rollup_minute", 1, 60_000],
    ["rollup_hour", 60, 3_600_000],
    ["rollup_day", 1_440, 86_400_000],
  ]);
  for (const [table, minutes, ms] of buckets) {
    for (const [kind, pairs] of /** @type {const} */ ([
      ["key", keyPairs],
      ["client", clientPairs],
    ])) {
      const share = foundShare((eventsAMinute * minutes) / pairs);
      // Low-discrepancy choice (the golden ratio's fractions): a share of the events, spread over the traffic.
      const rows = events
        .filter((_, i) => (i * 0.6180339887 + (kind === "key" ? 0 : 0.5)) % 1 < share)
        .map((e) => ({
          bucket: e.ts - (e.ts % ms),
          key_id: kind === "key" ? e.keyId : "*",
          model: e.model,
          client_key_id: kind === "client" ? e.clientKeyId : "*",
          requests: 1,
          attempts: 1,
          successes: 1,
          last_at: e.ts,
        }));
      await insertRows(db, table, rows, true);
    }
  }
  return foundShare(eventsAMinute / keyPairs);
}

/**
 * The D1 databases bound when the fold is measured split beside one (stats-consumer/logic/fold-shards.ts): the first
 * keeps the configuration, the audit log and the kept answers, and the keys spread over the others.
 */
const FOLD_SHARDS = 13;
/** The databases of those the keys spread over. */
const KEY_DATABASES = FOLD_SHARDS - 1;

/**
 * What D1 spent on the fold in a database (its own statements' time, µs, and the rows written as billed), as the
 * fold-shards Worker stores it in meta after every batch. @param {Keypool["db"]} db
 */
async function foldWork(db) {
  const { results } = await db.prepare("SELECT name, value FROM meta WHERE name LIKE 'd1!_fold!_%' ESCAPE '!'").all();
  let us = 0;
  let written = 0;
  for (const row of results) {
    const name = String(row.name);
    if (name.endsWith("_us")) us += Number(row.value);
    else if (name.endsWith("_rows_written")) written += Number(row.value);
  }
  return { us, written };
}

/** The rows a database holds in its rollups and in its dedupe window. @param {Keypool["db"]} db */
async function heldRows(db) {
  const { results } = await db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rollup!_%' ESCAPE '!'").all();
  const rollupTables = results.map((r) => String(r.name));
  const row = await db
    .prepare(`SELECT ${rollupTables.map((t) => `(SELECT COUNT(*) FROM ${t})`).join(" + ")} AS rollups, (SELECT COUNT(*) FROM seen_events) AS seen`)
    .first();
  return { rollups: Number(row?.rollups ?? 0), seen: Number(row?.seen ?? 0) };
}

/**
 * The fold alone (bench/workers/fold-shards.ts) into one D1 database and, beside it in the same runtime, into
 * FOLD_SHARDS databases (the configuration's, and KEY_DATABASES the keys spread over): the same traffic into each, every request logged and then the request log sampled,
 * each database first holding the rollup rows 10,000 requests a second already hold in it mid-hour (one of
 * several by key folds its share of the events over its share of the keys, and every client key). Returns D1's own
 * time an event of the whole traffic (s) and rows written an event: the one database's, the busiest of the several and
 * theirs together. Then, with the pool's configuration in each's first database, D1's own time (s) for a publish of
 * the pool's usage from the one and from the several: the one's, and the busiest's of the several (the quickest of
 * three each).
 * @param {string} n a label
 * @typedef {{ keyId: string, model: string, clientKeyId: string, ts: number, requestId: string, logged?: boolean }[]} Traffic
 * @param {Traffic} events
 * @param {Traffic} sampled the next traffic, its requests marked as the request log's sample keeps them
 * @param {Traffic} skewed the next, sampled likewise, half its requests from one client key
 * @param {string[]} keyIds @param {number} keyPairs @param {number} clientPairs
 * @param {{ health: Record<string, unknown>[], capacity: Record<string, unknown>[] }} state every key's health and capacity rows, as the pool holds them
 * @param {Record<"upstreams" | "keys" | "client_keys", Record<string, unknown>[]>} config the pool's configuration rows
 * @param {(id: string, n: number) => number} foldShardOf
 */
async function foldOverShards(n, events, sampled, skewed, keyIds, keyPairs, clientPairs, state, config, foldShardOf) {
  const fs = await startFoldShards(path.join(work, `fold-shards-${n}`), FOLD_SHARDS);
  try {
    // Each traffic is folded mid-hour: the rows of its events' keys and client keys there before it, in the shares above.
    const all = [...events, ...sampled, ...skewed];
    await steadyRollups(fs.one, all, keyPairs, clientPairs);
    await insertRows(fs.one, "key_health", state.health);
    await insertRows(fs.one, "key_capacity", state.capacity);
    for (const [i, db] of fs.shards.entries()) {
      const ours = (/** @type {Record<string, unknown>} */ row) => foldShardOf(String(row.key_id), FOLD_SHARDS) === i;
      await insertRows(db, "key_health", state.health.filter(ours));
      await insertRows(db, "key_capacity", state.capacity.filter(ours));
      const mine = all.filter((e) => foldShardOf(e.keyId, FOLD_SHARDS) === i);
      const keys = keyIds.filter((id) => foldShardOf(id, FOLD_SHARDS) === i).length;
      // The first holds no key's rows.
      if (mine.length > 0) await steadyRollups(db, mine, (keyPairs * keys) / keyIds.length, clientPairs, (EVENTS_A_MINUTE * mine.length) / all.length);
    }
    /** Folds `traffic` through one queue, as the consumer receives it (batches of 100 messages of 50 events). @param {string} queue @param {Traffic} traffic */
    const fold = async (queue, traffic) => {
      for (let i = 0; i < traffic.length; i += 5_000) {
        const messages = [];
        for (let j = i; j < Math.min(i + 5_000, traffic.length); j += 50)
          messages.push({ id: `${queue}-${n}-${j}`, timestamp: new Date(), attempts: 1, body: { events: traffic.slice(j, j + 50) } });
        const result = await fs.worker.queue(queue, messages);
        if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`a batch was not folded: ${JSON.stringify(result).slice(0, 200)}`);
      }
    };
    /** What the databases spent on `traffic`, an event. @param {Traffic} traffic */
    const measure = async (traffic) => {
      const dbs = [fs.one, ...fs.shards];
      const before = await Promise.all(dbs.map(foldWork));
      const heldBefore = await Promise.all(dbs.map(heldRows));
      await fold("fold-one", traffic);
      await fold("fold-shards", traffic);
      const after = await Promise.all(dbs.map(foldWork));
      const heldAfter = await Promise.all(dbs.map(heldRows));
      const spent = after.map((a, i) => ({
        s: (a.us - (before[i]?.us ?? 0)) / 1e6 / traffic.length,
        written: (a.written - (before[i]?.written ?? 0)) / traffic.length,
        rollups: ((heldAfter[i]?.rollups ?? 0) - (heldBefore[i]?.rollups ?? 0)) / traffic.length,
        seen: ((heldAfter[i]?.seen ?? 0) - (heldBefore[i]?.seen ?? 0)) / traffic.length,
      }));
      const [one, ...shards] = spent;
      return {
        one: /** @type {{ s: number, written: number, rollups: number, seen: number }} */ (one),
        busiest: Math.max(...shards.map((x) => x.s)),
        first: /** @type {{ s: number }} */ (shards[0]).s,
        all: shards.reduce((sum, x) => sum + x.s, 0),
        allWritten: shards.reduce((sum, x) => sum + x.written, 0),
        /** Rollup rows and dedupe rows created an event, over them all. */
        allRollups: shards.reduce((sum, x) => sum + x.rollups, 0),
        allSeen: shards.reduce((sum, x) => sum + x.seen, 0),
      };
    };
    const logged = await measure(events);
    const sampledFold = await measure(sampled);
    const skewedFold = await measure(skewed);

    // The usage publish over the counts just folded: the configuration in the first database of each, as a deployment
    // holds it; D1's own time for it in each database, as the consumer counts it (usage_publish).
    for (const db of [fs.one, fs.shards[0]])
      for (const [table, rows] of Object.entries(config)) await insertRows(/** @type {Keypool["db"]} */ (db), table, rows);
    /** @param {Keypool["db"]} db */
    const publishWork = async (db) => Number((await db.prepare("SELECT value FROM meta WHERE name = 'd1_usage_publish_us'").first())?.value ?? 0);
    /** Each database's D1 time (s) for the quickest of three publishes from one, or from the several. @param {"one" | "shards"} to */
    const publishOn = async (to) => {
      const dbs = to === "one" ? [fs.one] : fs.shards;
      /** @type {number[] | null} */
      let best = null;
      for (let run = 0; run < 3; run++) {
        await /** @type {Keypool["db"]} */ (dbs[0]).prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
        const before = await Promise.all(dbs.map(publishWork));
        const res = await fs.worker.fetch(`http://fold-shards/publish?to=${to}`, { method: "POST" });
        const body = /** @type {{ version?: number | null }} */ (await res.json().catch(() => ({})));
        if (!res.ok || typeof body.version !== "number") throw new Error(`the usage was not published from ${to}: HTTP ${res.status}`);
        const after = await Promise.all(dbs.map(publishWork));
        const spent = after.map((a, i) => (a - (before[i] ?? 0)) / 1e6);
        if (best === null || Math.max(...spent) < Math.max(...best)) best = spent;
      }
      return /** @type {number[]} */ (best);
    };
    const [publishOne] = await publishOn("one");
    const publishShards = await publishOn("shards");
    const publish = {
      one: /** @type {number} */ (publishOne),
      busiest: Math.max(...publishShards),
      first: /** @type {number} */ (publishShards[0]),
      others: Math.max(...publishShards.slice(1)),
    };
    return { logged, sampled: sampledFold, skewed: skewedFold, publish };
  } finally {
    await fs.stop();
  }
}

/**
 * How often the consumer publishes the pool's usage when one publish takes `seconds`: every second, or as much less
 * often as keeps a publish to its share of the time, at least every 30 s (`USAGE_SPACING`).
 * @param {number} seconds @param {{ minMs: number, maxMs: number, share: number }} spacing
 */
function spacedEveryS(seconds, spacing) {
  return Math.min(spacing.maxMs, Math.max(spacing.minMs, (seconds * 1000) / spacing.share)) / 1000;
}

/** The summed columns rollupVolume writes into the upstream × model rollups and today's day rows. */
const UPSTREAM_SUMS = [
  "requests",
  "attempts",
  "successes",
  "prompt_tokens",
  "completion_tokens",
  "total_tokens",
  "latency_ms_sum",
  "ttfb_ms_sum",
  "ttfb_count",
];

/**
 * The snapshot's version as its small version key says (written after the head and parts). Polled every 50 ms while
 * a publish is timed: reading the head's metadata instead fetched the whole head (419 KiB at 100,000 keys) from the
 * runtime each time, and that CPU counted as the publish's.
 * @param {Keypool["kv"]} kv @param {string} key the snapshot's version key
 */
async function snapshotVersion(kv, key) {
  return Number((await kv.get(key)) ?? 0);
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

/** A heap difference as "+1.2 MiB" or "−0.2 MiB" (a difference this small is within the collector's noise). */
const signedMiB = (/** @type {number} */ v) => `${v < 0 ? "−" : "+"}${Math.abs(v).toFixed(1)} MiB`;

/** Median milliseconds of `n` sequential POSTs of `body` to `url`. */
async function medianLatency(/** @type {string} */ url, /** @type {Record<string, string>} */ headers, /** @type {string} */ body, n = 100) {
  const times = [];
  const send = () => fetch(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body });
  for (let i = 0; i < n; i++) {
    let started = performance.now();
    let res;
    try {
      res = await send();
    } catch {
      // Node reuses a kept-alive connection the runtime may have closed while it sat idle through the Node-side
      // measurements (seconds at 100,000 keys): "fetch failed" before any answer. Once more, timed afresh; a runtime
      // that is gone fails this one too.
      started = performance.now();
      res = await send();
    }
    await res.arrayBuffer();
    if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
    times.push(performance.now() - started);
  }
  return median(times);
}

/** Messages a second one queue takes (Cloudflare Queues, read 2026-12-04; docs/scale.md links the page). */
const QUEUE_LIMIT = 5_000;
// D1 on Workers Paid (docs/scale.md cites the pages): rows written a month included and the price of a million more,
// storage included and the price of a GB a month more, and the storage an account holds in all its databases.
const D1_WRITES_INCLUDED = 50e6;
const D1_PRICE_A_MILLION_WRITES = 1;
const D1_STORAGE_INCLUDED_GB = 5;
const D1_PRICE_A_GB_MONTH = 0.75;
const D1_ACCOUNT_STORAGE_BYTES = 1e12;
/** The event queues the gateway sends to, as its config binds them. */
const EVENT_QUEUES = eventQueueNames().length;
/** The busy isolates the headroom table's queue row is read at. */
const QUEUE_MODEL_ISOLATES = 5_000;
let queueTable = "";
/** The busiest event queue's messages a second at QUEUE_MODEL_ISOLATES busy isolates (not measured in a smoke run). */
let queueHeadroom = 0;
const work = mkdtempSync(path.join(tmpdir(), "keypool-scale-"));
const started = new Date();
/** @type {Record<string, string>[]} */
const results = [];
/**
 * The figures of the largest pool measured, as numbers, for the headroom table.
 * @typedef {{ keys: number, bytes?: number, largestValue?: number, headBytes?: number, publishCpuS?: number, stateCpuS?: number, loadCpuS?: number,
 *   heapMiB?: number, versionCpuS?: number, versionMiB?: number, movedCpuS?: number, movedMiB?: number, foldRate?: number, foldD1S?: number, foldRowsWritten?: number, minuteRowsFound?: number, sampledLog?: { share: number, failed: number, foldD1S: number, eventTableRows: number, rowsWritten: number },
 *   shards?: Record<"logged" | "sampled" | "skewed", { one: { s: number, written: number, rollups: number, seen: number }, busiest: number, first: number, all: number, allWritten: number, allRollups: number, allSeen: number }> & { publish: { one: number, busiest: number, first: number, others: number } },
 *   usageBytes?: number, usageCpuS?: number, usagePublishS?: number, usageEveryS?: number, usageDay?: { todayS: number, todayRows: number, plannedS: number, planned: PlanRead, keptS: number, kept: PlanRead, keptRows: number, movedS: number, moved: PlanRead, hoursS: number, hours: PlanRead, shapes: Record<"otherHour" | "rolling" | "hoursOnly", PlanRead["buckets"][]> }, bytesPerEvent?: number, rowsPerEvent?: number, eventTableRows?: number, dedupeRowBytes?: number, hourRowBytes?: number, hourRows?: number, keyHourRows?: number,
 *   dashboard?: { byKey: number, byClient: number, oneKey: number, minutes: number, keys: number, headroom: number, hourSeries: number, hourByUpstream: number, hourByClient: number, hourByKey: number, summary: number, hourByKeyReused: number }, keyMinuteRows?: number, clientMinuteRows?: number, upstreamMinuteRows?: number, probeRate?: number, probeCpuS?: number, probeBudget?: number, probedAtRtt?: number,
 *   trace?: { batches: number, eventsPerBatch: number, lastBytes: number, spanS: number, mayHold: number, foundS: number, foundCpuS: number, missS: number, missCpuS: number, missListed: number, missRead: number } }} Figures
 * @typedef {{ rows: number, buckets: { hour: number, minute: number, day: number } }} PlanRead
 * @type {Figures | null}
 */
let largest = null;
/**
 * How long the gateway reuses a costly stats answer (gateway/logic/reuse-windows.ts, from the bundled data module).
 * @type {{ factor: number, longestMs: { breakdown: { minute: number }, headroom: number } } | null}
 */
let reuse = null;
/** @type {{ minMs: number, maxMs: number, share: number } | null} how the consumer spaces its usage publishes (schema's USAGE_SPACING) */
let usageSpacing = null;
/** The longest list of key ids the usage publish reads a day window for in one statement (bytes of JSON). */
let idListBytes = 0;
/**
 * How long the default settings keep each table (schema/settings.ts).
 * @type {{ minuteRollupHours: number, hourRollupDays: number, dayRollupDays: number, dedupeHours: number, requestLogDays: number } | null}
 */
let retention = null;
/**
 * The shortest retention the settings allow (schema/settings.ts), from the data module.
 * @type {{ minuteRollupHours: number, hourRollupDays: number, dayRollupDays: number, dedupeHours: number, requestLogDays: number } | null}
 */
let leastRetention = null;
/** How long the upstream × model minute rows are kept at least (UPSTREAM_MINUTE_HOURS, schema/settings.ts), from the bundle. */
let upstreamMinuteHours = 0;
/**
 * Fills the event archive as 10,000 requests a second do (batches as the queue model finds them at a thousand busy
 * gateway isolates), for the whole span a search covers, hours before the traffic folded so far: every batch with the
 * filter of its request ids the consumer gives it, the body of the last one whole — it holds the request looked up —
 * and of the others one line (a search reads a batch only when its filter may hold the id). Then looks up through the
 * admin API that request, and one in no batch: wall and runtime CPU, and what the second listed and read.
 * @param {Keypool} kp
 * @param {{ newEventId(now: number): string, EVENTS_PREFIX: string, archiveKey(prefix: string, now: number, batchId: string): string,
 *   idFilter(ids: Iterable<string>): string, idFilterMayHold(filter: string, id: string): boolean,
 *   ARCHIVE_SEARCH: { afterMs: number }, queueMessages(isolates: number, requestsPerSecond: number, seconds: number, uncapped?: boolean, queues?: number): Promise<{ messagesPerSecond: number }> }} data
 * @param {Record<string, unknown>[]} templates attempt events over the pool, whose keys, models and clients the batches take
 */
async function traceThroughArchive(kp, data, templates) {
  const { messagesPerSecond } = await data.queueMessages(SMOKE ? 10 : 1_000, 10_000, SMOKE ? 1 : 10, false, EVENT_QUEUES);
  // A consumer batch holds up to 100 messages, and each event queue hands one over at least once a second.
  const batchesPerSecond = Math.max(EVENT_QUEUES, messagesPerSecond / 100);
  const eventsPerBatch = Math.min(SMOKE ? 50 : Infinity, Math.round(EVENTS_A_MINUTE / 60 / batchesPerSecond));
  const batches = SMOKE ? 40 : Math.ceil((data.ARCHIVE_SEARCH.afterMs / 1000) * batchesPerSecond);
  const made = Date.now() - 3 * 3_600_000;
  const target = data.newEventId(made);
  let lastBytes = 0;
  let mayHold = 0;
  let t = 0;
  for (let k = 0; k < batches; k += 16) {
    await Promise.all(
      Array.from({ length: Math.min(16, batches - k) }, async (_, j) => {
        const at = made + Math.round(((k + j) * 1000) / batchesPerSecond);
        const last = k + j === batches - 1;
        const events = [];
        for (let i = 0; i < eventsPerBatch; i++) {
          const e = /** @type {Record<string, unknown>} */ (templates[t++ % templates.length]);
          const ts = at - 2_000 - (i % 1_000);
          // The request looked up: the first event of the last batch, made when its id says.
          events.push({ ...e, id: data.newEventId(ts), ts, requestId: last && i === 0 ? target : data.newEventId(ts - 50), logged: false });
        }
        const requestIds = data.idFilter(events.map((e) => e.requestId));
        if (!last && data.idFilterMayHold(requestIds, target)) mayHold++;
        const text = (last ? events : events.slice(0, 1)).map((e) => JSON.stringify(e)).join("\n") + "\n";
        if (last) lastBytes = Buffer.byteLength(text);
        await kp.archive.put(data.archiveKey(data.EVENTS_PREFIX, at, crypto.randomUUID()), text, {
          customMetadata: { records: String(events.length), requestIds },
        });
      }),
    );
  }
  /** One lookup through the admin API: wall seconds, the runtime's CPU seconds, the answer. @param {string} id */
  const lookUp = async (id) => {
    const cpu = cpuSeconds(kp.pid);
    const t0 = performance.now();
    const answer = await kp.admin("GET", `/requests/${id}`).catch((/** @type {Error} */ e) => e);
    return { wallS: (performance.now() - t0) / 1000, cpuS: cpuSeconds(kp.pid) - cpu, answer };
  };
  const found = await lookUp(target);
  const record = /** @type {{ requestId?: string, source?: string }} */ (found.answer);
  if (record.requestId !== target || record.source !== "archive") throw new Error(`the archived request was not found: ${String(found.answer).slice(0, 200)}`);
  const miss = await lookUp(data.newEventId(made + 1));
  const said =
    miss.answer instanceof Error ? /nor do the (\d+) batches .*\((all read|(\d+) read, the others' filters ruling it out)\)/.exec(miss.answer.message) : null;
  if (!said) throw new Error(`a request in no batch was not answered 404 as expected: ${String(miss.answer).slice(0, 300)}`);
  return {
    batches,
    eventsPerBatch,
    lastBytes,
    spanS: batches / batchesPerSecond,
    mayHold,
    foundS: found.wallS,
    foundCpuS: found.cpuS,
    missS: miss.wallS,
    missCpuS: miss.cpuS,
    missListed: Number(said[1]),
    missRead: said[3] === undefined ? Number(said[1]) : Number(said[3]),
  };
}

const mock = await startMock();
try {
  const dataFile = path.join(work, "scale-data.mjs");
  await build({ entryPoints: [path.join(ROOT, "bench/scale-data.ts")], outfile: dataFile, bundle: true, format: "esm", platform: "node", logLevel: "warning" });
  /**
   * bench/scale-data.ts, bundled.
   * @type {{
   *   poolRows(n: number, kek: string, baseUrl: string): Promise<{ upstreams: Record<string, unknown>[], keys: Record<string, unknown>[], health: Record<string, unknown>[],
   *     capacity: Record<string, unknown>[], clientKeys: Record<string, unknown>[], clientKey: string, firstModels: string[] }>,
   *   isolateOver(texts: Map<string, string>): { load(headText: string): Promise<{ snapshot: unknown, index: unknown }> },
   *   headWithCooledKeys(headText: string, ids: string[], share: number, now: number): string,
   *   headWithEveryPartNew(headText: string, texts: Map<string, string>): string,
   *   selectionRateOver(snapshot: unknown, model: string, ms: number, usage?: unknown): number,
   *   parsePoolUsage(text: string): { version: number, view: unknown } | null,
   *   queueMessages(isolates: number, requestsPerSecond: number, seconds: number, uncapped?: boolean, queues?: number):
   *     Promise<{ messagesPerSecond: number, per1000: number, busiestQueuePerSecond: number, longestWaitMs: number }>,
   *   SNAPSHOT_KV_KEY: string, SNAPSHOT_VERSION_KV_KEY: string, USAGE_KV_KEY: string, KEY_ID_PREFIX: string, USAGE_SPACING: { minMs: number, maxMs: number, share: number },
   *   REUSE_FACTOR: number, REUSE_LONGEST_MS: { breakdown: { minute: number }, headroom: number },
   *   poolDays(now: number, timeZone: string, zoneSince: number): { from: number, to: number }[],
   *   planRangeCount(start: number, end: number, now: number, days: { from: number, to: number }[]): { rows: string, from: number, to: number, sign: number }[],
   *   liveFrom(now: number): number,
   *   planWindowCount(start: number, now: number, days: { from: number, to: number }[]): { rows: string, from: number, to: number, sign: number }[],
   *   planCost(terms: { rows: string, from: number, to: number, sign: number }[], now: number): number,
   *   planBuckets(terms: { rows: string, from: number, to: number }[], now: number): { hour: number, minute: number, day: number },
   *   dayCountStart(rule: { reset: "rolling" } | { reset: "local", hour: number, timeZone: string }, now: number): number,
   *   DAY_ID_LIST_BYTES: number, defaultSettings: { retention: NonNullable<typeof retention> }, LEAST_RETENTION: NonNullable<typeof retention>, UPSTREAM_MINUTE_HOURS: number, D1_WORKS: readonly string[], keptInRequestLog(requestId: string, attempts: readonly { outcome: string }[], sample: number): boolean,
   *   foldShardOf(id: string, n: number): number,
   *   newEventId(now: number): string, EVENTS_PREFIX: string, archiveKey(prefix: string, now: number, batchId: string): string,
   *   ARCHIVE_SEARCH: { beforeMs: number, afterMs: number, maxObjects: number }, idFilter(ids: Iterable<string>): string, idFilterMayHold(filter: string, id: string): boolean
   * }}
   */
  const data = await import(dataFile);
  reuse = { factor: data.REUSE_FACTOR, longestMs: data.REUSE_LONGEST_MS };
  usageSpacing = data.USAGE_SPACING;
  idListBytes = data.DAY_ID_LIST_BYTES;
  retention = data.defaultSettings.retention;
  leastRetention = data.LEAST_RETENTION;
  upstreamMinuteHours = data.UPSTREAM_MINUTE_HOURS;
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

      // The consumer's first publish reads every key and writes the key parts and the head.
      log(`${n} keys: the consumer's publish of every key…`);
      const before = await snapshotVersion(kp.kv, data.SNAPSHOT_VERSION_KV_KEY);
      const cpu0 = cpuSeconds(kp.pid);
      await kp.admin("PATCH", "/settings", { maxAttempts: 3 });
      const published = await until(async () => (await snapshotVersion(kp.kv, data.SNAPSHOT_VERSION_KV_KEY)) > before, kp.pid, 300_000);
      if (!published) {
        const why = /Value length[^\n]*|exceeds[^\n]*|Error[^\n]*snapshot[^\n]*/i.exec(kp.log())?.[0] ?? "no new version within 300 s";
        r.snapshot = `not published: ${why.slice(0, 120)}`;
        continue;
      }
      const publishCpuS = cpuSeconds(kp.pid) - cpu0;
      r.publish = `${(published.ms / 1000).toFixed(1)} s wall, ${publishCpuS.toFixed(1)} s CPU`;
      /** @type {Figures} */
      const l = { keys: n, publishCpuS };
      largest = l;
      const headText = /** @type {string} */ (await kp.kv.get(data.SNAPSHOT_KV_KEY));
      const texts = new Map([[data.SNAPSHOT_KV_KEY, headText]]);
      for (const name of /** @type {{ keyParts: string[] }} */ (JSON.parse(headText)).keyParts) texts.set(name, /** @type {string} */ (await kp.kv.get(name)));
      const sizes = [...texts.values()].map((t) => Buffer.byteLength(t));
      l.bytes = sizes.reduce((a, b) => a + b, 0);
      l.largestValue = Math.max(...sizes);
      l.headBytes = /** @type {number} */ (sizes[0]);
      r.snapshot = `${(l.bytes / 2 ** 20).toFixed(2)} MiB in ${texts.size - 1} part${texts.size === 2 ? "" : "s"} + head of ${(l.headBytes / 1024).toFixed(0)} KiB; largest value ${(l.largestValue / 2 ** 20).toFixed(2)} MiB`;

      // The gateway's first request loads all of it.
      log(`${n} keys: the gateway's first load…`);
      const rss0 = rssMiB([kp.pid])[kp.pid] ?? 0;
      const cpu1 = cpuSeconds(kp.pid);
      const t1 = performance.now();
      const first = await fetch(`${kp.url}/healthz?deep=1`);
      const health = /** @type {{ snapshot?: { version: number } }} */ (await first.json());
      const loadCpuS = cpuSeconds(kp.pid) - cpu1;
      l.loadCpuS = loadCpuS;
      r.firstLoad = `${Math.round(performance.now() - t1)} ms wall, ${Math.round(loadCpuS * 1000)} ms CPU`;
      const rss1 = rssMiB([kp.pid])[kp.pid] ?? 0;
      r.loadRss = `+${Math.round(rss1 - rss0)} MiB`;
      if ((health.snapshot?.version ?? 0) <= before) r.firstLoad += " (served an older version)";

      // A publish of states (what a key's change of state costs from now on), and the gateway's refresh to it.
      log(`${n} keys: a publish of states, and the gateway's refresh to it…`);
      const current = await snapshotVersion(kp.kv, data.SNAPSHOT_VERSION_KV_KEY);
      const cpu3 = cpuSeconds(kp.pid);
      await kp.admin("PATCH", "/settings", { maxAttempts: 2 });
      const republished = await until(async () => (await snapshotVersion(kp.kv, data.SNAPSHOT_VERSION_KV_KEY)) > current, kp.pid, 300_000);
      const stateCpuS = cpuSeconds(kp.pid) - cpu3;
      if (republished) {
        l.stateCpuS = stateCpuS;
        r.statePublish = `${(republished.ms / 1000).toFixed(1)} s wall, ${Math.round(stateCpuS * 1000)} ms CPU`;
      } else r.statePublish = "not published within 300 s";
      // The isolate looks again 2 s after its last look: wait that out, then time the refresh itself.
      await new Promise((res) => setTimeout(res, 2_100));
      const rss2 = rssMiB([kp.pid])[kp.pid] ?? 0;
      const cpu4 = cpuSeconds(kp.pid);
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
      r.refresh = refreshed
        ? `${(refreshed.ms / 1000).toFixed(2)} s, ${Math.round((cpuSeconds(kp.pid) - cpu4) * 1000)} ms CPU, peak +${Math.max(0, Math.round(refreshed.peakMiB - rss2))} MiB`
        : "not served within 60 s";

      // The same pool in Node: the heap an isolate holds, what a new version of states adds and costs, selection.
      log(`${n} keys: heap, a version of states, selection, in Node…`);
      const ids = rows.keys.map((k) => String(k.id));
      /** @type {{ a: unknown, b: unknown }} */
      const holder = { a: null, b: null };
      gc();
      gc();
      const empty = process.memoryUsage().heapUsed;
      const isolate = data.isolateOver(texts);
      const loaded = await isolate.load(headText);
      holder.a = loaded;
      gc();
      gc();
      const held = process.memoryUsage().heapUsed;
      l.heapMiB = (held - empty) / 2 ** 20;
      r.heap = `${Math.round(l.heapMiB)} MiB`;
      /** CPU and heap (with the pool held) of loading `head` as the isolate's next version. @param {string} head */
      const nextVersion = async (head) => {
        holder.b = null;
        gc();
        gc();
        const before = process.memoryUsage().heapUsed;
        const cpuStart = process.cpuUsage();
        holder.b = await isolate.load(head);
        const used = process.cpuUsage(cpuStart);
        gc();
        gc();
        return { cpuS: (used.user + used.system) / 1e6, mib: (process.memoryUsage().heapUsed - before) / 2 ** 20 };
      };
      // A wave of 429s cooled 1% of the keys: the next head, assembled over the parts held.
      const next = data.headWithCooledKeys(headText, ids, 0.01, Date.now());
      const version = await nextVersion(next);
      [l.versionCpuS, l.versionMiB] = [version.cpuS, version.mib];
      r.version = `${Math.round(version.cpuS * 1000)} ms CPU, ${signedMiB(version.mib)} while both are held`;
      // The worst change of parts: every key in a part of a new name (the part count doubled).
      const moved = await nextVersion(data.headWithEveryPartNew(next, texts));
      [l.movedCpuS, l.movedMiB] = [moved.cpuS, moved.mib];
      r.moved = `${Math.round(moved.cpuS * 1000)} ms CPU, ${signedMiB(moved.mib)} while both are held`;
      r.picks = `${Math.round(data.selectionRateOver(loaded.snapshot, /** @type {string} */ (rows.firstModels[0]), SMOKE ? 50 : 1_000)).toLocaleString("en-US")}/s`;
      holder.a = null;
      holder.b = null;

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
      /** `total` events over the pool: the i-th on the key (i + offset) × 7717 (every key once before any twice), its models and the client keys in turn. @param {string} run @param {number} offset */
      const traffic = (run, offset) =>
        attemptEvents(total, run, {
          keys: n,
          spreadMs: 3_000,
          target: (i) => {
            const key = /** @type {Record<string, unknown>} */ (rows.keys[((i + offset) * 7717) % rows.keys.length]);
            const models = modelsOf.get(String(key.upstream_id)) ?? ["model-00"];
            return {
              keyId: String(key.id),
              upstreamId: String(key.upstream_id),
              model: /** @type {string} */ (models[i % models.length]),
              clientKeyId: String(rows.clientKeys[i % rows.clientKeys.length]?.id),
            };
          },
          // Event and request ids as the gateway makes them (UUIDv7: the time first), so the tables keyed by them grow
          // where they do in production.
        }).map((e) => ({ ...e, id: data.newEventId(e.ts), requestId: data.newEventId(e.ts - 50) }));
      const events = traffic(`scale-${n}`, 0);
      // The rows an hour of such traffic already holds: the fold updates them as it does mid-hour.
      const keyPairs = rows.keys.length * Math.max(...[...modelsOf.values()].map((m) => m.length));
      const clientPairs = rows.clientKeys.length * new Set([...modelsOf.values()].flat()).size;
      l.minuteRowsFound = await steadyRollups(kp.db, events, keyPairs, clientPairs);
      const bodies = [];
      for (let i = 0; i < events.length; i += 50) bodies.push({ events: events.slice(i, i + 50) });
      // What D1 itself spends on the fold (its statements' meta.duration), as the consumer counts it for /metrics: a
      // consumer isolate stores its counts with its next fold, so one event is folded before the traffic and one after.
      const foldParts = data.D1_WORKS.filter((w) => w.startsWith("fold_")).map((w) => w.slice("fold_".length));
      /** @param {string} tag */
      const foldOne = async (tag) => {
        const first = /** @type {{ keyId: string, upstreamId: string, model: string, clientKeyId: string }} */ (events[0]);
        const who = { keyId: first.keyId, upstreamId: first.upstreamId, model: first.model, clientKeyId: first.clientKeyId };
        const [one] = attemptEvents(1, `scale-${n}-${tag}`, { keys: n, spreadMs: 1, target: () => who });
        const result = await kp.consumer.queue("keypool-events", [{ id: `scale-${n}-${tag}`, timestamp: new Date(), attempts: 1, body: { events: [one] } }]);
        if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`a batch was not stored: ${JSON.stringify(result).slice(0, 200)}`);
        const counted = await kp.db.prepare("SELECT name, value FROM meta WHERE name LIKE 'd1!_fold!_%' ESCAPE '!'").all();
        const m = new Map(counted.results.map((row) => [String(row.name), Number(row.value)]));
        return {
          parts: new Map(foldParts.map((part) => [part, m.get(`d1_fold_${part}_us`) ?? 0])),
          // Rows written as D1 bills them: a row of a table and one of each index its write touches.
          written: new Map(foldParts.map((part) => [part, m.get(`d1_fold_${part}_rows_written`) ?? 0])),
          events: m.get("d1_fold_events") ?? 0,
        };
      };
      const d1Before = await foldOne("d1-before");
      const sizeBefore = await databaseBytes(kp.db);
      const rowsBefore = await tableRows(kp.db);
      const cpu2 = cpuSeconds(kp.pid);
      const t2 = performance.now();
      for (let i = 0; i < bodies.length; i += 100) {
        const messages = bodies.slice(i, i + 100).map((body, j) => ({ id: `scale-${n}-${i + j}`, timestamp: new Date(), attempts: 1, body }));
        const result = await kp.consumer.queue("keypool-events", messages);
        if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`a batch was not stored: ${JSON.stringify(result).slice(0, 200)}`);
      }
      const foldRate = total / ((performance.now() - t2) / 1000);
      l.foldRate = foldRate;
      // What the fold added to D1 (every projection: rollups, request log, dedupe window, health), by event.
      l.bytesPerEvent = ((await databaseBytes(kp.db)) - sizeBefore) / total;
      // Which tables those bytes went to: the rows each gained, per 1,000 events (updated rows are not counted).
      const rowsAfter = await tableRows(kp.db);
      const gained = [...rowsAfter]
        .map(([name, after]) => /** @type {[string, number]} */ ([name, ((after - (rowsBefore.get(name) ?? 0)) / total) * 1000]))
        .filter(([, per1000]) => per1000 >= 0.5)
        .sort((a, b) => b[1] - a[1]);
      const rowsPerEvent = gained.reduce((sum, [, per1000]) => sum + per1000 / 1000, 0);
      l.rowsPerEvent = rowsPerEvent;
      // The tables that gain rows with every event whatever the traffic (the rollups are modelled by their bound).
      l.eventTableRows = gained.filter(([name]) => !name.startsWith("rollup_")).reduce((sum, [, per1000]) => sum + per1000 / 1000, 0);
      // The pool's usage the consumer published meanwhile (at most once a second), and what an isolate spends taking it.
      const usageText = await kp.kv.get(data.USAGE_KV_KEY);
      if (usageText) {
        l.usageBytes = Buffer.byteLength(usageText);
        const cpuUsage = process.cpuUsage();
        const usage = data.parsePoolUsage(usageText);
        const spent = process.cpuUsage(cpuUsage);
        if (!usage) throw new Error("the published usage did not parse");
        l.usageCpuS = (spent.user + spent.system) / 1e6;
        // Selection reads a key's usage when it weighs the key: picks with it, beside the picks without it above.
        const picks = data.selectionRateOver(loaded.snapshot, /** @type {string} */ (rows.firstModels[0]), SMOKE ? 50 : 1_000, usage.view);
        r.usage = `${(l.usageBytes / 2 ** 20).toFixed(2)} MiB; ${Math.round(l.usageCpuS * 1000)} ms CPU to take it (Node); ${Math.round(picks).toLocaleString("en-US")} picks/s with it`;
      }
      const foldCpu = (cpuSeconds(kp.pid) - cpu2) / (total / 1000);
      const d1After = await foldOne("d1-after");
      const folded = Math.max(1, d1After.events - d1Before.events);
      /** µs of D1's own time an event, by part of the fold. */
      const perPart = foldParts.map(
        (part) => /** @type {[string, number]} */ ([part, ((d1After.parts.get(part) ?? 0) - (d1Before.parts.get(part) ?? 0)) / folded]),
      );
      l.foldD1S = perPart.reduce((sum, [, us]) => sum + us, 0) / 1e6;
      /** Rows written an event by these parts of the fold, between two counts. */
      const writtenOf = (/** @type {typeof d1After} */ to, /** @type {typeof d1After} */ from, /** @type {number} */ events, /** @type {string[]} */ parts) =>
        parts.reduce((sum, part) => sum + (to.written.get(part) ?? 0) - (from.written.get(part) ?? 0), 0) / events;
      l.foldRowsWritten = writtenOf(d1After, d1Before, folded, foldParts);

      // The same traffic again with the request log keeping a sample (`requestLogSample`), as the gateway marks it: every
      // failed attempt (a share of these events: `attemptEvents`) and SAMPLED_LOG of the successes. Only the request log's statements do
      // less, so its part is compared with the part above and the fold taken as the first with that part replaced (the
      // rest of this second fold lands on rows the first one made).
      log(`${n} keys: the fold again, the request log keeping a sample…`);
      const sampled = traffic(`scale-${n}-sampled`, total).map((e) => ({ ...e, logged: data.keptInRequestLog(e.requestId, [e], SAMPLED_LOG) }));
      const sampledRowsBefore = await tableRows(kp.db);
      for (let i = 0; i < sampled.length; i += 5_000) {
        const messages = [];
        for (let j = i; j < Math.min(i + 5_000, sampled.length); j += 50)
          messages.push({ id: `scale-${n}-sampled-${j}`, timestamp: new Date(), attempts: 1, body: { events: sampled.slice(j, j + 50) } });
        const result = await kp.consumer.queue("keypool-events", messages);
        if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`a batch was not stored: ${JSON.stringify(result).slice(0, 200)}`);
      }
      const sampledRowsAfter = await tableRows(kp.db);
      const d1Sampled = await foldOne("d1-sampled");
      const sampledFolded = Math.max(1, d1Sampled.events - d1After.events);
      const logPart = (/** @type {typeof d1After} */ to, /** @type {typeof d1After} */ from, /** @type {number} */ events) =>
        ((to.parts.get("request_log") ?? 0) - (from.parts.get("request_log") ?? 0)) / events;
      const [logAll, logSampled] = [logPart(d1After, d1Before, folded), logPart(d1Sampled, d1After, sampledFolded)];
      l.sampledLog = {
        share: sampled.filter((e) => e.logged).length / sampled.length,
        failed: sampled.filter((e) => e.outcome !== "ok").length / sampled.length,
        foldD1S: l.foldD1S - (logAll - logSampled) / 1e6,
        rowsWritten: l.foldRowsWritten - writtenOf(d1After, d1Before, folded, ["request_log"]) + writtenOf(d1Sampled, d1After, sampledFolded, ["request_log"]),
        // Rows an event in the tables that grow with every event, as above.
        eventTableRows: [...sampledRowsAfter]
          .map(([name, after]) => /** @type {[string, number]} */ ([name, (after - (sampledRowsBefore.get(name) ?? 0)) / sampled.length]))
          .filter(([name, perEvent]) => !name.startsWith("rollup_") && perEvent >= 0.0005)
          .reduce((sum, [, perEvent]) => sum + perEvent, 0),
      };
      r.fold =
        `${Math.round(foldRate).toLocaleString("en-US")} events/s, ${foldCpu.toFixed(2)} s CPU per 1,000, ` +
        `mid-hour at 10,000 req/s (${Math.round((l.minuteRowsFound ?? 0) * 100)}% of events find their key's minute row, nearly all their hour and day rows); ` +
        `D1's own time ${(l.foldD1S * 1e6).toFixed(0)} µs an event (${Math.round(1 / l.foldD1S).toLocaleString("en-US")} events a second of it: ` +
        `${perPart
          .sort((a, b) => b[1] - a[1])
          .map(([part, us]) => `${part.replaceAll("_", " ")} ${us.toFixed(0)}`)
          .join(", ")}); ` +
        `keeping ${Math.round(l.sampledLog.share * 100)}% of these requests in the request log (requestLogSample ${SAMPLED_LOG}, every failure kept), ` +
        `the request log ${logSampled.toFixed(0)} µs an event where it was ${logAll.toFixed(0)}: the fold ${(l.sampledLog.foldD1S * 1e6).toFixed(0)} µs; ` +
        `D1 rows written (as billed, index rows included) ${l.foldRowsWritten.toFixed(1)} an event (${foldParts
          .map((part) => /** @type {[string, number]} */ ([part, writtenOf(d1After, d1Before, folded, [part])]))
          .sort((a, b) => b[1] - a[1])
          .map(([part, n]) => `${part.replaceAll("_", " ")} ${n.toFixed(1)}`)
          .join(", ")}), ${l.sampledLog.rowsWritten.toFixed(1)} with the sample`;

      // The same fold split over KEY_DATABASES databases by key (and the configuration's), measured beside one database in a runtime of its own.
      log(`${n} keys: the fold over ${KEY_DATABASES} databases by key, beside one…`);
      const shardSampled = traffic(`scale-${n}-shards-sampled`, total).map((e) => ({ ...e, logged: data.keptInRequestLog(e.requestId, [e], SAMPLED_LOG) }));
      // Client keys are seldom even: half the requests from one.
      const hot = String(rows.clientKeys[0]?.id);
      const shardSkewed = traffic(`scale-${n}-shards-skewed`, 2 * total).map((e, i) => ({
        ...e,
        clientKeyId: i % 2 === 0 ? hot : e.clientKeyId,
        logged: data.keptInRequestLog(e.requestId, [e], SAMPLED_LOG),
      }));
      const shards = await foldOverShards(
        String(n),
        traffic(`scale-${n}-shards`, 0),
        shardSampled,
        shardSkewed,
        rows.keys.map((k) => String(k.id)),
        keyPairs,
        clientPairs,
        { health: rows.health, capacity: rows.capacity },
        { upstreams: rows.upstreams, keys: rows.keys, client_keys: rows.clientKeys },
        data.foldShardOf,
      );
      l.shards = shards;
      const us = (/** @type {number} */ sec) => (sec * 1e6).toFixed(0);
      r.fold +=
        `; split over ${KEY_DATABASES} D1 databases by key (and the configuration's, the first of ${FOLD_SHARDS}), beside one database in a runtime of their own: ` +
        `the busiest ${us(shards.logged.busiest)} µs an event of all the traffic where the one spent ${us(shards.logged.one.s)} ` +
        `(${(shards.logged.one.s / shards.logged.busiest).toFixed(1)}× less; the ${FOLD_SHARDS} together ${us(shards.logged.all)}, the configuration's ${us(shards.logged.first)}), ` +
        `with the request log sampled ${us(shards.sampled.busiest)} where the one spent ${us(shards.sampled.one.s)} ` +
        `(${(shards.sampled.one.s / shards.sampled.busiest).toFixed(1)}× less; rollup rows created ${shards.sampled.allRollups.toFixed(2)} an event over them where the one created ${shards.sampled.one.rollups.toFixed(2)}, dedupe rows ${shards.sampled.allSeen.toFixed(2)} where it wrote ${shards.sampled.one.seen.toFixed(2)}), and with half the requests from one client key ${us(shards.skewed.busiest)} where the one spent ${us(shards.skewed.one.s)} ` +
        `(${(shards.skewed.one.s / shards.skewed.busiest).toFixed(1)}× less); rows written ${shards.logged.allWritten.toFixed(1)} an event over the ${FOLD_SHARDS} ` +
        `where the one wrote ${shards.logged.one.written.toFixed(1)} (${shards.sampled.allWritten.toFixed(1)} and ${shards.sampled.one.written.toFixed(1)} sampled); ` +
        `a publish of the pool's usage from them, D1's time in the configuration's ${Math.round(shards.publish.first * 1000)} ms and in the busiest by key ${Math.round(shards.publish.others * 1000)} where the one spent ${Math.round(shards.publish.one * 1000)}`;

      // The dedupe window's bytes a row apart from the request log's, whose retentions differ: ids added alone as the fold
      // adds them — about ten a millisecond, time-ordered within a few seconds — past every id there.
      const dedupeIds = SMOKE ? 2_000 : 20_000;
      const idsFrom = Date.now() + 3_600_000;
      const seenBytes = await databaseBytes(kp.db);
      await insertRows(
        kp.db,
        "seen_events",
        Array.from({ length: dedupeIds }, (_, i) => {
          const ts = idsFrom + Math.floor(i / 10) - ((i * 7919) % 3_000);
          return { ts, id: data.newEventId(ts) };
        }),
      );
      l.dedupeRowBytes = ((await databaseBytes(kp.db)) - seenBytes) / dedupeIds;

      // One publish of the pool's usage on its own (a batch of the control message alone), over the counts just folded:
      // the work some consumer does every second while traffic flows.
      log(`${n} keys: a publish of the pool's usage…`);
      /** One publish of the pool's usage through a control message of its own: its wall time and the runtime's CPU (s). @param {string} tag */
      const publishTimed = async (tag) => {
        await kp.db.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
        const before = data.parsePoolUsage((await kp.kv.get(data.USAGE_KV_KEY)) ?? "")?.version ?? 0;
        const cpu = cpuSeconds(kp.pid);
        const t = performance.now();
        const done = await kp.consumer.queue("keypool-events", [
          { id: `scale-${n}-${tag}`, timestamp: new Date(), attempts: 1, body: { control: "publish-usage" } },
        ]);
        const seconds = (performance.now() - t) / 1000;
        const cpuS = cpuSeconds(kp.pid) - cpu;
        const after = data.parsePoolUsage((await kp.kv.get(data.USAGE_KV_KEY)) ?? "")?.version ?? 0;
        if (done.outcome !== "ok" || after <= before) throw new Error("the control message did not publish the pool's usage");
        return { seconds, cpuS };
      };
      /**
       * The quickest of three publishes, each after `prepare` (this machine is shared: the best of three is the one
       * least slowed by others). @param {string} tag @param {() => Promise<unknown>} [prepare]
       */
      const bestPublish = async (tag, prepare = async () => {}) => {
        let best = { seconds: Infinity, cpuS: 0 };
        for (let i = 0; i < 3; i++) {
          await prepare();
          const run = await publishTimed(`${tag}-${i}`);
          if (run.seconds < best.seconds) best = run;
        }
        return best;
      };
      const usage = await bestPublish("usage");
      l.usagePublishS = usage.seconds;
      l.usageEveryS = spacedEveryS(usage.seconds, data.USAGE_SPACING);
      r.usagePublish = `${usage.seconds.toFixed(2)} s wall, ${Math.round(usage.cpuS * 1000)} ms CPU`;
      r.bytes = `${Math.round(l.bytesPerEvent)} bytes an event, ${rowsPerEvent.toFixed(1)} new rows an event — per 1,000 events: ${gained
        .map(([name, per1000]) => `${name} ${Math.round(per1000).toLocaleString("en-US")}`)
        .join(", ")}`;

      // The dashboard's heaviest reads over a volume of rollups: rows written straight into rollup_hour (48 hours)
      // and rollup_minute (60 minutes) over the pool's keys, 50 models and its client keys.
      const perHour = SMOKE ? 500 : 20_000;
      const perMinute = SMOKE ? 100 : 10_000;
      log(
        `${n} keys: the dashboard's reads over up to ${(48 * perHour).toLocaleString("en-US")} hour and ${(60 * perMinute).toLocaleString("en-US")} minute rollup rows…`,
      );
      const volume = await rollupVolume(kp.db, data.KEY_ID_PREFIX, n, rows.clientKeys.length, perHour, perMinute);
      l.hourRowBytes = volume.hourRowBytes;
      l.hourRows = volume.hourRows;
      l.keyHourRows = volume.keyHourRows;
      /**
       * The best of three runs of an admin read, in ms (on this machine one run can take half as long again as the next),
       * each computed afresh: a costly answer is kept for reuse (stats_cache), and what is measured here is its cost.
       * @param {string} path
       */
      const timed = async (path) => {
        let best = Infinity;
        for (let run = 0; run < 3; run++) {
          await kp.db.prepare("DELETE FROM stats_cache").run();
          const t = performance.now();
          await kp.admin("GET", path);
          best = Math.min(best, performance.now() - t);
        }
        return best;
      };
      const reads = {
        byKey: await timed("/stats/breakdown?by=key&bucket=hour&count=48"),
        byClient: await timed("/stats/breakdown?by=client&bucket=hour&count=48"),
        oneKey: await timed(`/stats/series?bucket=hour&count=48&keyId=${rows.keys[0]?.id}`),
        minutes: await timed("/stats/breakdown?by=model&bucket=minute&count=60"),
        keys: await timed("/keys?sort=-nearLimit&limit=50"),
        headroom: await timed("/stats/headroom"),
        // The rest of what the Overview asks every 5 s for its default range, the last hour by minute.
        hourSeries: await timed("/stats/series?bucket=minute&count=60"),
        hourByUpstream: await timed("/stats/breakdown?by=upstream&bucket=minute&count=60"),
        hourByClient: await timed("/stats/breakdown?by=client&bucket=minute&count=60"),
        hourByKey: await timed("/stats/breakdown?by=key&bucket=minute&count=60"),
        summary: await timed("/stats/summary"),
        // And what a page pays while the by-key answer is kept: read back from stats_cache (the best of three after one computes it).
        hourByKeyReused: await (async () => {
          await kp.db.prepare("DELETE FROM stats_cache").run();
          await kp.admin("GET", "/stats/breakdown?by=key&bucket=minute&count=60");
          let best = Infinity;
          for (let run = 0; run < 3; run++) {
            const t = performance.now();
            await kp.admin("GET", "/stats/breakdown?by=key&bucket=minute&count=60");
            best = Math.min(best, performance.now() - t);
          }
          return best;
        })(),
      };
      l.dashboard = reads;

      // The usage publish again, now that the rollups hold a day: first as the pool is (its keys' days begin at midnight
      // UTC, the pool's: today's day rows), then with every upstream's day made a rolling day — the first publish of it,
      // which reads the past hours as window-count.ts plans them and keeps their sums in D1, the next, which reads the
      // sums, the one each hour that moves them on, and one reading the past hours from hours alone, as on the day after
      // the pool's time zone changes: a read long enough to time rows by.
      log(`${n} keys: a publish of the pool's usage over a day of rollups…`);
      /** The key rows a plan reads, and its buckets of each kind. @param {{ rows: string, from: number, to: number }[]} terms @param {number} at */
      const planRead = async (terms, at) => {
        const counts = await kp.db.batch(
          terms.map((t) =>
            t.rows === "day"
              ? kp.db.prepare("SELECT COUNT(*) AS n FROM rollup_day WHERE bucket = ?1 AND client_key_id = '*'").bind(t.from)
              : kp.db
                  .prepare(`SELECT COUNT(*) AS n FROM rollup_${t.rows} WHERE bucket >= ?1 AND bucket < ?2 AND client_key_id = '*'`)
                  .bind(t.from, Number.isFinite(t.to) ? t.to : Number.MAX_SAFE_INTEGER),
          ),
        );
        const rowsRead = counts.reduce((sum, c) => sum + Number(/** @type {{ n?: unknown }} */ (c.results[0])?.n ?? 0), 0);
        return { rows: rowsRead, buckets: data.planBuckets(terms, at) };
      };
      const midnight = Date.now() - (Date.now() % 86_400_000);
      const todayRows = Number(
        (await kp.db.prepare("SELECT COUNT(*) AS n FROM rollup_day WHERE bucket = ?1 AND client_key_id = '*'").bind(midnight).first())?.n ?? 0,
      );
      const todayPublishS = (await bestPublish("usage-today")).seconds;
      const { results: upstreamLimits } = await kp.db.prepare("SELECT id, limits FROM upstreams").all();
      // A rolling day counts from the start of the hour a day ago; the publish reads its past hours once and keeps their
      // sums (storage/usage-kept.ts): the first publish reads them, the next ones the sums and the hours from `liveFrom` on.
      // Near the pool's midnight a rolling day is cheaper read from the pool's day rows, and the publish keeps nothing
      // (usage-store.ts: `dayReads`); the sums are then measured with a day that began twelve hours before.
      /** @param {{ reset: "rolling" } | { reset: "local", hour: number, timeZone: string }} rule @param {number} at */
      const keepsSums = (rule, at) => {
        const start = data.dayCountStart(rule, at);
        const live = [{ rows: "hour", from: data.liveFrom(at), to: Infinity, sign: 1 }];
        return start < data.liveFrom(at) && data.planCost(data.planWindowCount(start, at, data.poolDays(at, "UTC", 0)), at) > data.planCost(live, at);
      };
      const now = Date.now();
      /** @type {{ reset: "rolling" } | { reset: "local", hour: number, timeZone: string }} */
      const rule = [0, 10, 20].every((m) => keepsSums({ reset: "rolling" }, now + m * 60_000))
        ? { reset: "rolling" }
        : { reset: "local", hour: (new Date(now).getUTCHours() + 12) % 24, timeZone: "UTC" };
      const ruleName =
        rule.reset === "rolling"
          ? "a rolling day"
          : `a day beginning at ${String(rule.hour).padStart(2, "0")}:00 UTC (a rolling day at this hour reads the day rows)`;
      await kp.db.prepare(`UPDATE upstreams SET limits = json_set(limits, '$.day', json(?1))`).bind(JSON.stringify(rule)).run();
      const rollingStart = (/** @type {number} */ at) => data.dayCountStart(rule, at);
      /** The terms a publish at `at` reads for a rolling day: the past hours unless kept, and the hours read anew. @param {number} at @param {boolean} kept @param {boolean} usable */
      const rollingRead = (at, kept, usable) => {
        const live = [{ rows: "hour", from: data.liveFrom(at), to: Infinity, sign: 1 }];
        return kept ? live : [...data.planRangeCount(rollingStart(at), data.liveFrom(at), at, usable ? data.poolDays(at, "UTC", 0) : []), ...live];
      };
      const plannedAt = Date.now();
      const planned = await planRead(rollingRead(plannedAt, false, true), plannedAt);
      // The first publish of a rolling day reads every key's past hours and keeps their sums, a row a key (usage_kept).
      const dropKept = () => kp.db.prepare("DELETE FROM usage_kept").run();
      const plannedS = (await bestPublish("usage-rolling", dropKept)).seconds;
      const keptRows = Number((await kp.db.prepare("SELECT COUNT(*) AS n FROM usage_kept").first())?.n ?? 0);
      const keptAt = Date.now();
      const kept = await planRead(rollingRead(keptAt, true, true), keptAt);
      const keptS = (await bestPublish("usage-kept")).seconds;
      // The publish each hour moves every row on: each row set back an hour, as the publish an hour before left it, is
      // moved on by the hour that left the hours read anew and less the hour the rolling day left.
      const setBack = () => kp.db.prepare("UPDATE usage_kept SET start = start - 3600000, through = through - 3600000").run();
      const movedAt = Date.now();
      const movedTerms = [
        { rows: "hour", from: data.liveFrom(movedAt) - 3_600_000, to: data.liveFrom(movedAt), sign: 1 },
        { rows: "hour", from: rollingStart(movedAt) - 3_600_000, to: rollingStart(movedAt), sign: -1 },
      ];
      const movedOn = await planRead([...movedTerms, ...rollingRead(movedAt, true, true)], movedAt);
      const movedS = (await bestPublish("usage-moved", setBack)).seconds;
      // The first publish again, reading the past hours from hours alone, as for a day or two after the pool's zone
      // changes: a long read, to time rows by (and it writes every key's row again).
      const zoneSince = await kp.db.prepare("SELECT time_zone_since AS t FROM settings WHERE id = 1").first();
      const setZoneSince = (/** @type {number} */ t) => kp.db.prepare("UPDATE settings SET time_zone_since = ?1 WHERE id = 1").bind(t).run();
      if (!zoneSince || Number((await setZoneSince(Date.now())).meta.changes) !== 1) throw new Error("the pool's settings row is missing");
      const hoursAt = Date.now();
      const hours = await planRead(rollingRead(hoursAt, false, false), hoursAt);
      const hoursS = (await bestPublish("usage-hours", dropKept)).seconds;
      await setZoneSince(Number(zoneSince.t));
      await kp.db.batch(upstreamLimits.map((u) => kp.db.prepare("UPDATE upstreams SET limits = ?2 WHERE id = ?1").bind(u.id, u.limits)));
      // What a publish that reads the past hours reads for each kind of day window at every minute of a day, in a pool kept
      // in UTC: a day that begins at another hour (h:00 UTC, for each h: midnight Pacific is 8:00), a rolling day, and
      // either from hours alone.
      /** @param {(at: number) => number} startAt @param {boolean} usable */
      const shapes = (startAt, usable) => {
        const seen = new Map();
        for (let m = 0; m < 1_440; m++) {
          const at = midnight + m * 60_000 + 30_000;
          const start = startAt(at);
          const live = [{ rows: "hour", from: data.liveFrom(at), to: Infinity, sign: 1 }];
          const fixed = start < data.liveFrom(at) ? data.planRangeCount(start, data.liveFrom(at), at, usable ? data.poolDays(at, "UTC", 0) : []) : [];
          const b = data.planBuckets([...fixed, ...live], at);
          seen.set(`${b.hour}:${b.minute}:${b.day}`, b);
        }
        return [...seen.values()];
      };
      const atHour = (/** @type {number} */ h) => (/** @type {number} */ at) => data.dayCountStart({ reset: "local", hour: h, timeZone: "UTC" }, at);
      const dayShapes = {
        otherHour: Array.from({ length: 24 }, (_, h) => shapes(atHour(h), true)).flat(),
        rolling: shapes((at) => data.dayCountStart({ reset: "rolling" }, at), true),
        hoursOnly: [
          ...shapes((at) => data.dayCountStart({ reset: "rolling" }, at), false),
          ...Array.from({ length: 24 }, (_, h) => shapes(atHour(h), false)).flat(),
        ],
      };
      l.usageDay = { todayS: todayPublishS, todayRows, plannedS, planned, keptS, kept, keptRows, movedS, moved: movedOn, hoursS, hours, shapes: dayShapes };
      const described = (/** @type {{ rows: number, buckets: { hour: number, minute: number, day: number } }} */ read) =>
        `${read.rows.toLocaleString("en-US")} key rows (${read.buckets.hour} hour, ${read.buckets.minute} minute, ${read.buckets.day} day buckets)`;
      r.usagePublish +=
        `; over today's ${todayRows.toLocaleString("en-US")} key day rows: ${todayPublishS.toFixed(2)} s wall; ` +
        `${ruleName} at ${new Date(plannedAt).toISOString().slice(11, 16)} UTC, its past hours read and kept, ${described(planned)}: ${plannedS.toFixed(2)} s wall; ` +
        `with ${keptRows.toLocaleString("en-US")} kept sums, ${described(kept)}: ${keptS.toFixed(2)} s wall; moving them on an hour, ${described(movedOn)}: ${movedS.toFixed(2)} s wall; ` +
        `read from hours alone, ${described(hours)}: ${hoursS.toFixed(2)} s wall`;
      l.keyMinuteRows = volume.keyMinuteRows;
      l.clientMinuteRows = volume.clientMinuteRows;
      l.upstreamMinuteRows = volume.upstreamMinuteRows;
      r.dashboard =
        `by key, 48 h: ${Math.round(reads.byKey)} ms; by client, 48 h: ${Math.round(reads.byClient)} ms; one key's series, 48 h: ${Math.round(reads.oneKey)} ms; ` +
        `by model, 60 min: ${Math.round(reads.minutes)} ms; keys nearest a limit: ${Math.round(reads.keys)} ms; headroom: ${Math.round(reads.headroom)} ms; ` +
        `the rest of the Overview's last hour: series ${Math.round(reads.hourSeries)} ms, by upstream ${Math.round(reads.hourByUpstream)} ms, by client ${Math.round(reads.hourByClient)} ms, ` +
        `by key ${Math.round(reads.hourByKey)} ms (${Math.round(reads.hourByKeyReused)} ms while kept), summary ${Math.round(reads.summary)} ms ` +
        `(over ${volume.hourRows.toLocaleString("en-US")} hour rollup rows, ${volume.keyHourRows.toLocaleString("en-US")} of them keys', ${volume.minuteRows.toLocaleString("en-US")} minute rollup rows, ` +
        `and ${Math.round(volume.upstreamMinuteRows).toLocaleString("en-US")} upstream × model rows a minute; ${Math.round(volume.hourRowBytes)} bytes a row)`;

      // One scheduler run with probes due: the keys idle since their last probe (a liveness probe is due after an
      // hour without a success) and a budget a paid plan allows; how many it probed, how long it took, its CPU.
      log(`${n} keys: one probe round…`);
      const budget = SMOKE ? 20 : 1_000;
      await kp.admin("PATCH", "/settings", { probeBudget: budget });
      await kp.db
        .prepare("UPDATE key_health SET last_ok_ts = 0, last_probe_ts = 0 WHERE key_id IN (SELECT id FROM keys ORDER BY id LIMIT ?1)")
        .bind(2 * budget)
        .run();
      const logged = kp.log().length;
      const cpu5 = cpuSeconds(kp.pid);
      const t5 = performance.now();
      await kp.gateway.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
      const round = await until(async () => /keypool scheduler: probed \d+ of \d+ due/.test(kp.log().slice(logged)), kp.pid, 120_000);
      const line = /keypool scheduler: probed (\d+) of (\d+) due/.exec(kp.log().slice(logged));
      if (round && line) {
        const probed = Number(line[1]);
        l.probeRate = probed / ((performance.now() - t5) / 1000);
        l.probeCpuS = (cpuSeconds(kp.pid) - cpu5) / Math.max(1, probed);
        r.probes = `${probed} probed in ${((performance.now() - t5) / 1000).toFixed(2)} s (${Math.round(l.probeRate).toLocaleString("en-US")}/s against a local mock), ${(l.probeCpuS * 1000).toFixed(1)} ms CPU a probe`;
        l.probeBudget = budget;
        // The same round against a provider's round trip: the mock answers every request 300 ms late, so the run's
        // connections (probeConcurrency) and its time budget (probeTimeBudgetMs), not its CPU, bound what it probes.
        await mock.behave({ delayMs: PROBE_RTT_MS });
        await kp.db
          .prepare("UPDATE key_health SET last_ok_ts = 0, last_probe_ts = 0 WHERE key_id IN (SELECT id FROM keys ORDER BY id LIMIT ?1 OFFSET ?2)")
          .bind(2 * budget, 2 * budget)
          .run();
        const loggedRtt = kp.log().length;
        const t6 = performance.now();
        await kp.gateway.scheduled({ cron: "* * * * *", scheduledTime: new Date() });
        const slow = await until(async () => /keypool scheduler: probed \d+ of \d+ due/.test(kp.log().slice(loggedRtt)), kp.pid, 120_000);
        const slowLine = /keypool scheduler: probed (\d+) of (\d+) due/.exec(kp.log().slice(loggedRtt));
        await mock.behave({});
        if (slow && slowLine) {
          const seconds = (performance.now() - t6) / 1000;
          l.probedAtRtt = Number(slowLine[1]);
          r.probes += `; at a ${PROBE_RTT_MS} ms round trip, ${l.probedAtRtt.toLocaleString("en-US")} probed in ${seconds.toFixed(1)} s`;
        } else r.probes += `; at a ${PROBE_RTT_MS} ms round trip, no run reported within 120 s`;
      } else r.probes = "no run reported within 120 s";

      // Tracing a request the log left out, at 10,000 requests a second: the admin API reads it from the event archive,
      // as many batches as a search reads at most, each as many events as the consumer gets a batch at that rate from
      // a thousand busy isolates (the queue model below), the request in the last one. Once, at the largest pool.
      if (n === SIZES.at(-1)) {
        log(`${n} keys: a request traced through the event archive…`);
        l.trace = await traceThroughArchive(kp, data, events);
      }
    } catch (e) {
      const cause = e instanceof Error && e.cause instanceof Error ? ` (${e.cause.message})` : "";
      r.error = e instanceof Error ? `${e.message}${cause}`.slice(0, 200) : String(e);
      log(`${n} keys: ${r.error}; the runtime's last words:\n${kp.log().split("\n").slice(-15).join("\n")}`);
    } finally {
      await kp.stop();
    }
  }
  // The queue: messages a second from the gateway's isolates at 10,000 requests a second, on a simulated clock.
  log("queue messages from many isolates (simulated clock)…");
  const seconds = SMOKE ? 1 : 10;
  const rows = [];
  for (const isolates of SMOKE ? [1, 10] : [1, 10, 100, 1_000, 2_000, 5_000]) {
    const window = await data.queueMessages(isolates, 10_000, seconds, true);
    const capped = await data.queueMessages(isolates, 10_000, seconds, false, EVENT_QUEUES);
    const x = (/** @type {number} */ m) => `${(QUEUE_LIMIT / m).toFixed(2)}×`;
    const rate = (/** @type {number} */ m) => Math.round(m).toLocaleString("en-US");
    rows.push(
      `| ${isolates.toLocaleString("en-US")} | ${rate(window.messagesPerSecond)} (${Math.round(window.per1000)} per 1,000 requests) | ${x(window.messagesPerSecond)} | ` +
        `${rate(capped.messagesPerSecond)} (${Math.round(capped.per1000)} per 1,000 requests) | ${x(capped.messagesPerSecond)} | ` +
        `${rate(capped.busiestQueuePerSecond)} | ${x(capped.busiestQueuePerSecond)} | ${Math.round(capped.longestWaitMs)} ms |`,
    );
    if (isolates === QUEUE_MODEL_ISOLATES) queueHeadroom = capped.busiestQueuePerSecond;
  }
  queueTable = [
    `Queue messages a second at 10,000 requests a second spread evenly over the gateway's busy isolates (${seconds} s simulated, arrivals at random, 1.05 events a request): each isolate's real \`EventBatcher\` on a simulated clock, with only the 20 ms window, with the cap of batches a second an isolate sends — all to one queue —, and with the cap over the ${EVENT_QUEUES} event queues wrangler.gateway.toml binds, each isolate's messages taking them in turn (now; the busiest queue's share). Headroom against one queue's ${QUEUE_LIMIT.toLocaleString("en-US")} messages a second:`,
    "",
    `| busy isolates | messages/s, window only, one queue | headroom | messages/s, window and cap, one queue | headroom | busiest of ${EVENT_QUEUES} queues, messages/s | headroom | longest an event waited |`,
    "|---|---|---|---|---|---|---|---|",
    ...rows,
  ].join("\n");
} finally {
  await mock.stop();
  rmSync(work, { recursive: true, force: true });
}

const columns = /** @type {const} */ ([
  ["keys", "keys"],
  ["upstreams", "upstreams"],
  ["clients", "client keys"],
  ["snapshot", "snapshot in KV"],
  ["publish", "consumer: publish of every key"],
  ["firstLoad", "gateway's first load"],
  ["loadRss", "runtime memory after it"],
  ["statePublish", "consumer: publish of states"],
  ["refresh", "gateway's refresh to it"],
  ["heap", "V8 heap of the pool (Node)"],
  ["version", "a version of states, 1% of keys changed (Node)"],
  ["moved", "a version with every part new (Node)"],
  ["picks", "selection picks"],
  ["added", "added latency (p50)"],
  ["fold", "consumer folding live traffic"],
  ["usage", "the pool's usage in KV after it"],
  ["usagePublish", "consumer: a publish of the pool's usage"],
  ["bytes", "D1 added by the fold"],
  ["dashboard", "the dashboard's heaviest reads"],
  ["probes", "one probe round (budget 1,000; smoke: 20)"],
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
  const l = /** @type {Figures | null} */ (largest);
  if (!l) return "";
  const rows = [];
  /** The storage the account holds at the default retention (bytes), with every request logged and with a sample. */
  const bill = { held: /** @type {number | null} */ (null), heldSampled: /** @type {number | null} */ (null) };
  /** The share of one D1 database's time the work beside the fold takes: the usage publish's largest (as spaced) and an open Overview's. */
  /** The share of the one database's rows one of KEY_DATABASES holds, for the Overview's reads. */
  let shardReads = { upstream: 1, client: 1, key: 1 };
  const d1Shares = {
    publish: 0,
    overview: /** @type {number | null} */ (null),
    overviewOfKeyDatabase: /** @type {number | null} */ (null),
    overviewOfFirst: /** @type {number | null} */ (null),
  };
  const x = (/** @type {number} */ v) => (Number.isFinite(v) ? `${v.toFixed(2)}×` : "— (too small to measure)");
  const mib = (/** @type {number} */ b) => `${(b / 2 ** 20).toFixed(2)} MiB`;
  const ms = (/** @type {number} */ sec) => `${Math.round(sec * 1000)} ms`;
  if (l.largestValue !== undefined)
    rows.push(["the largest KV value of the snapshot (a key part or the head)", "25 MiB a value", mib(l.largestValue), x((25 * 2 ** 20) / l.largestValue)]);
  if (l.stateCpuS !== undefined)
    rows.push([
      "consumer CPU, a publish of states a second (keys change state every second)",
      "1 s of CPU a second",
      `${ms(l.stateCpuS)} a publish`,
      x(1 / l.stateCpuS),
    ]);
  if (l.publishCpuS !== undefined)
    rows.push([
      "consumer CPU, a publish of every key (after a change of keys: at most one a second, in one invocation)",
      "30 s of CPU an invocation",
      `${l.publishCpuS.toFixed(1)} s a publish`,
      x(30 / l.publishCpuS),
    ]);
  if (l.versionCpuS !== undefined)
    rows.push(["each gateway isolate's CPU, a new version of states a second", "1 s of CPU a second", `${ms(l.versionCpuS)} a version`, x(1 / l.versionCpuS)]);
  if (l.loadCpuS !== undefined)
    rows.push(["an isolate's first request, which loads every part", "30 s of CPU a request", `${ms(l.loadCpuS)}`, x(30 / l.loadCpuS)]);
  if (l.heapMiB !== undefined && l.versionMiB !== undefined)
    rows.push([
      "gateway isolate memory at a refresh of states: the pool and the next version",
      "128 MB an isolate",
      `${(l.heapMiB + l.versionMiB).toFixed(0)} MiB`,
      x(128e6 / 2 ** 20 / (l.heapMiB + l.versionMiB)),
    ]);
  if (l.heapMiB !== undefined && l.movedMiB !== undefined && l.largestValue !== undefined) {
    // Plus six parts' text, read at once.
    const peak = l.heapMiB + l.movedMiB + (6 * l.largestValue) / 2 ** 20;
    rows.push([
      "gateway isolate memory when every part is new: the pool, the next one, six parts' text",
      "128 MB an isolate",
      `${peak.toFixed(0)} MiB`,
      x(128e6 / 2 ** 20 / peak),
    ]);
  }
  if (l.foldRate !== undefined)
    rows.push([
      "one consumer folding into D1 (10,000 req/s are about 10,500 events/s)",
      `${Math.round(l.foldRate).toLocaleString("en-US")} events/s it folds (measured)`,
      "10,500 events/s",
      x(l.foldRate / 10_500),
    ]);
  if (l.foldD1S !== undefined)
    rows.push([
      "one D1 database executing the fold's statements, their own time alone (meta.duration; the consumer's Worker runs apart, several at once)",
      "1 s of the database a second (it runs one statement at a time)",
      `${(l.foldD1S * 1e6).toFixed(0)} µs an event (measured): ${(10_500 * l.foldD1S).toFixed(2)} s a second`,
      x(1 / (10_500 * l.foldD1S)),
    ]);
  if (l.sampledLog !== undefined)
    rows.push([
      `the same, the request log keeping every failure and ${SAMPLED_LOG * 100}% of successes (\`requestLogSample\` ${SAMPLED_LOG}; ${Math.round(l.sampledLog.share * 100)}% of the events measured, ${Math.round(l.sampledLog.failed * 10)} in 10 of which failed)`,
      "1 s of the database a second",
      `${(l.sampledLog.foldD1S * 1e6).toFixed(0)} µs an event (measured): ${(10_500 * l.sampledLog.foldD1S).toFixed(2)} s a second`,
      x(1 / (10_500 * l.sampledLog.foldD1S)),
    ]);
  if (l.shards !== undefined && l.foldD1S !== undefined && l.sampledLog !== undefined) {
    // Measured in a runtime of their own beside one database: the busiest's time, and the fold above scaled by the ratio
    // of the two there (the one database measured there lacks what this run's holds beside the rollups); the larger counts.
    for (const [kind, above] of /** @type {const} */ ([
      ["logged", l.foldD1S],
      ["sampled", l.sampledLog.foldD1S],
    ])) {
      const m = l.shards[kind];
      const scaled = above * (m.busiest / m.one.s);
      const load = Math.max(m.busiest, scaled);
      rows.push([
        `${kind === "logged" ? `one of ${KEY_DATABASES} D1 databases the fold is split over by key (the busiest), executing its statements` : `the same, the request log keeping every failure and ${SAMPLED_LOG * 100}% of successes`}: measured ${(m.busiest * 1e6).toFixed(0)} µs an event of all the traffic beside ${(m.one.s * 1e6).toFixed(0)} for one database in the same runtime (the ${KEY_DATABASES} and the configuration's together ${(m.all * 1e6).toFixed(0)}); the fold above (${(above * 1e6).toFixed(0)} µs) scaled by that ratio, ${(scaled * 1e6).toFixed(0)}; the larger taken`,
        "1 s of the database a second",
        `${(load * 1e6).toFixed(0)} µs an event: ${(10_500 * load).toFixed(2)} s a second`,
        x(1 / (10_500 * load)),
      ]);
    }
  }
  if (l.usageBytes !== undefined && l.usageCpuS !== undefined) {
    rows.push(["the pool's usage as one KV value", "25 MiB a value", mib(l.usageBytes), x((25 * 2 ** 20) / l.usageBytes)]);
    rows.push(["each gateway isolate's CPU taking the usage, a new one a second", "1 s of CPU a second", `${ms(l.usageCpuS)} a version`, x(1 / l.usageCpuS)]);
  }
  // Rollup rows a bucket at 10,500 events/s (migration 0020): distinct key × model rows among the bucket's events over
  // 100,000 keys × 5 models, and client × model rows over 1,000 client keys × 50 models, events landing evenly.
  const KEY_COMBOS = 100_000 * 5;
  const CLIENT_COMBOS = 1_000 * 50;
  // Upstream × model pairs: 100 upstreams, each serving 5 models.
  const UPSTREAM_COMBOS = 100 * 5;
  /** @param {number} seconds */
  const rollupRows = (seconds) =>
    distinctRows(10_500 * seconds, KEY_COMBOS) + distinctRows(10_500 * seconds, CLIENT_COMBOS) + distinctRows(10_500 * seconds, UPSTREAM_COMBOS);
  if (l.bytesPerEvent !== undefined && l.rowsPerEvent !== undefined && l.eventTableRows !== undefined) {
    const rollupsADay = 1_440 * rollupRows(60) + 24 * rollupRows(3_600) + rollupRows(86_400);
    // The retention the settings default to.
    const r = /** @type {NonNullable<typeof retention>} */ (retention);
    // Bytes a row: a rollup row's as measured on the hour rows written for the dashboard's reads (its primary key and
    // index included); the dedupe window's as measured alone; the request log's from what the fold added beside the
    // rollup rows it created and its dedupe rows (one an event).
    const rollupRowBytes = l.hourRowBytes ?? l.bytesPerEvent / l.rowsPerEvent;
    const eventTableBytes = Math.max(0, l.bytesPerEvent - (l.rowsPerEvent - l.eventTableRows) * rollupRowBytes);
    const dedupeRowBytes = Math.min(l.dedupeRowBytes ?? eventTableBytes / l.eventTableRows, eventTableBytes);
    const logRows = Math.max(0, l.eventTableRows - 1);
    const logRowBytes = logRows > 0 ? (eventTableBytes - dedupeRowBytes) / logRows : 0;
    const aDay = 10_500 * 86_400;
    const perDay = rollupsADay * rollupRowBytes + aDay * (dedupeRowBytes + logRows * logRowBytes);
    rows.push([
      `D1 storage: what the fold adds in a day at 10,500 events/s — rollups bounded by keys × models, client keys × models and upstreams × models, ${(rollupsADay / 1e6).toFixed(0)} M rows a day at ${Math.round(rollupRowBytes)} bytes a row; the request log, ${((logRows * aDay) / 1e6).toFixed(0)} M (${logRows.toFixed(1)} rows an event) at ${Math.round(logRowBytes)} bytes a row as the fold wrote them; the dedupe window, ${(aDay / 1e6).toFixed(0)} M (a row an event) at ${Math.round(dedupeRowBytes)} bytes a row (measured alone) (minute rollups are kept ${r.minuteRollupHours} h, the request log ${r.requestLogDays} days, hour rollups ${r.hourRollupDays} days)`,
      "10 GB a database",
      `${(perDay / 1e9).toFixed(0)} GB a day`,
      x(10e9 / perDay),
    ]);
    if (l.sampledLog !== undefined) {
      const sampledPerDay = rollupsADay * rollupRowBytes + aDay * (dedupeRowBytes + Math.max(0, l.sampledLog.eventTableRows - 1) * logRowBytes);
      rows.push([
        `the same, the request log keeping every failure and ${SAMPLED_LOG * 100}% of successes: ${l.sampledLog.eventTableRows.toFixed(2)} rows an event in those tables (measured; ${Math.round(l.sampledLog.failed * 10)} in 10 of its events failed), the dedupe window's one among them`,
        "10 GB a database",
        `${(sampledPerDay / 1e9).toFixed(0)} GB a day`,
        x(10e9 / sampledPerDay),
      ]);
    }
    // What the account holds once every table is at its retention (the settings' defaults), in all its databases however
    // they are split: the dedupe window's row an event for its hours, the request log's rows for its days.
    /** How long retention `k` keeps each table, as the rows below say it. @param {NonNullable<typeof retention>} k */
    const retentionText = (k) => {
      const byUpstream = Math.max(k.minuteRollupHours, upstreamMinuteHours);
      return [
        `minute rollups ${k.minuteRollupHours} h`,
        ...(byUpstream !== k.minuteRollupHours ? [`the pool's by upstream ${byUpstream} h`] : []),
        `hour rollups ${k.hourRollupDays} days`,
        `day rollups ${k.dayRollupDays} days`,
        `the dedupe window ${k.dedupeHours} h`,
        `the request log ${k.requestLogDays} day${k.requestLogDays === 1 ? "" : "s"}`,
      ].join(", ");
    };
    /**
     * What the tables hold at retention `k` with `eventTableRows` rows an event in the request log and dedupe window
     * (the window's one among them), the rollup rows a bucket of so many seconds `bucketRows` gives and the window's
     * rows an event `seenRows` (several databases: each holds the id of every event it folded a part of). The upstream ×
     * model rows of a minute, `upstreamRows` of those, are kept at least UPSTREAM_MINUTE_HOURS (schema/settings.ts).
     * @param {number} eventTableRows @param {NonNullable<typeof retention>} [k] @param {(seconds: number) => number} [bucketRows] @param {number} [seenRows] @param {(seconds: number) => number} [upstreamRows]
     */
    const held = (
      eventTableRows,
      k = r,
      bucketRows = rollupRows,
      seenRows = 1,
      upstreamRows = (/** @type {number} */ s) => distinctRows(10_500 * s, UPSTREAM_COMBOS),
    ) =>
      (1_440 * bucketRows(60) * (k.minuteRollupHours / 24) +
        1_440 * upstreamRows(60) * (Math.max(0, upstreamMinuteHours - k.minuteRollupHours) / 24) +
        24 * bucketRows(3_600) * k.hourRollupDays +
        bucketRows(86_400) * k.dayRollupDays) *
        rollupRowBytes +
      aDay * ((k.dedupeHours / 24) * dedupeRowBytes * seenRows + k.requestLogDays * Math.max(0, eventTableRows - 1) * logRowBytes);
    bill.held = held(l.eventTableRows);
    rows.push([
      `D1 storage held by the account, every database however the data is split, at the default retention (${retentionText(r)}), at the rows a day above`,
      "1 TB an account (Workers Paid; more on request)",
      `${(bill.held / 1e12).toFixed(1)} TB`,
      x(D1_ACCOUNT_STORAGE_BYTES / bill.held),
    ]);
    if (l.sampledLog !== undefined) {
      bill.heldSampled = held(l.sampledLog.eventTableRows);
      rows.push([
        `the same, the request log keeping every failure and ${SAMPLED_LOG * 100}% of successes`,
        "1 TB an account",
        `${(bill.heldSampled / 1e12).toFixed(1)} TB`,
        x(D1_ACCOUNT_STORAGE_BYTES / bill.heldSampled),
      ]);
      const least = /** @type {NonNullable<typeof leastRetention>} */ (leastRetention);
      // The least each horizon may be: what the pool itself reads of the rollups (docs/operations.md, "Retention").
      const leastAccount = held(l.sampledLog.eventTableRows, least);
      rows.push([
        `the same at the shortest retention the settings allow, what limits, quotas and the dashboard read (${retentionText(least)})`,
        "1 TB an account",
        `${(leastAccount / 1e12).toFixed(2)} TB`,
        x(D1_ACCOUNT_STORAGE_BYTES / leastAccount),
      ]);
      const m = l.shards?.sampled;
      if (m !== undefined) {
        // Split over `count` databases by key, each folding an N-th of the events: an N-th of the key × model rows, its
        // own client × model and upstream × model rows (those its events touch: bounded as above, events landing evenly),
        // the id of each event it folded a part of — its key's database's, and its request's when the log keeps it — and
        // an N-th of the request log. With a client key's rows in its own database instead (item 30: measured and
        // reverted), an N-th of the client rows, and the id in the client key's database too.
        const logged = l.sampledLog.share;
        const sampledRows = l.sampledLog.eventTableRows;
        /** @param {number} count @param {boolean} clientsApart */
        const bucketRows = (count, clientsApart) => (/** @type {number} */ seconds) =>
          count *
          (distinctRows((10_500 * seconds) / count, KEY_COMBOS / count) +
            distinctRows((10_500 * seconds) / count, clientsApart ? CLIENT_COMBOS / count : CLIENT_COMBOS) +
            distinctRows((10_500 * seconds) / count, UPSTREAM_COMBOS));
        /** The databases an event's id is in, on average. @param {number} count @param {boolean} clientsApart */
        const idsAnEvent = (count, clientsApart) =>
          clientsApart ? (1 / count) * (1 + logged * (1 - 1 / count)) + (1 - 1 / count) * (2 + logged * (1 - 2 / count)) : 1 + logged * (1 - 1 / count);
        /** What `count` databases hold together at retention `k`. @param {NonNullable<typeof retention>} k @param {number} count @param {boolean} [clientsApart] */
        const split = (k, count, clientsApart = false) =>
          held(
            sampledRows,
            k,
            bucketRows(count, clientsApart),
            idsAnEvent(count, clientsApart),
            (seconds) => count * distinctRows((10_500 * seconds) / count, UPSTREAM_COMBOS),
          );
        const together = bucketRows(KEY_DATABASES, false);
        const perDatabase = split(r, KEY_DATABASES) / KEY_DATABASES;
        const leastHeld = split(least, KEY_DATABASES);
        // The fewest databases each holding at most half its limit at that retention, by trying: more databases by key
        // hold more client-key and upstream rows together, so it is not the total divided by 5 GB.
        const LIMIT = 4_096;
        /** @param {boolean} clientsApart */
        const enoughFor = (clientsApart) => {
          let count = KEY_DATABASES;
          while (count < LIMIT && split(least, count, clientsApart) / count > 5e9) count++;
          return count;
        };
        const [byKey, apart] = [enoughFor(false), enoughFor(true)];
        const enough = (/** @type {number} */ count, /** @type {boolean} */ clientsApart) =>
          count < LIMIT
            ? `${count.toLocaleString("en-US")} (${(split(least, count, clientsApart) / 1e9).toFixed(0)} GB together)`
            : `none up to ${LIMIT.toLocaleString("en-US")} (one of them would hold ${(split(least, LIMIT, clientsApart) / LIMIT / 1e9).toFixed(1)} GB)`;
        rows.push([
          `the same, split over ${KEY_DATABASES} D1 databases by key: what one of them holds (an N-th of the ${(split(r, KEY_DATABASES) / 1e12).toFixed(1)} TB they hold together: ${(together(60) / rollupRows(60)).toFixed(2)}× the rollup rows of a minute, ${(together(3_600) / rollupRows(3_600)).toFixed(2)}× of an hour, ${(together(86_400) / rollupRows(86_400)).toFixed(2)}× of a day — each folds its own client-key and upstream rows; measured, ${m.allRollups.toFixed(2)} rollup rows created an event over them against ${m.one.rollups.toFixed(2)} in one, mid-hour — and ${idsAnEvent(KEY_DATABASES, false).toFixed(2)} dedupe rows an event, ${m.allSeen.toFixed(2)} measured, against 1)`,
          "10 GB a database",
          `${(perDatabase / 1e9).toFixed(0)} GB`,
          x(10e9 / perDatabase),
        ]);
        rows.push([
          `the same at the shortest retention the settings allow (${retentionText(least)}): ${(leastHeld / 1e9).toFixed(0)} GB together. Databases by key for 2×: ${enough(byKey, false)}; with a client key's rows in its own database (item 30, reverted): ${enough(apart, true)}; the deploy binds at most 64`,
          "10 GB a database",
          `${(leastHeld / KEY_DATABASES / 1e9).toFixed(0)} GB`,
          x((10e9 * KEY_DATABASES) / leastHeld),
        ]);
        // The count that holds it, as a deployment would be sized: the keys over that many, the configuration in its own.
        if (byKey < LIMIT) {
          const atCount = split(least, byKey);
          rows.push([
            `the same over ${byKey} D1 databases by key, the count above, and the configuration's (\`npm run deploy -- --fold-databases ${byKey + 1}\`${byKey + 1 > 64 ? ": more than the deploy binds" : ""}): what one of them holds`,
            "10 GB a database",
            `${(atCount / byKey / 1e9).toFixed(1)} GB`,
            x((10e9 * byKey) / atCount),
          ]);
        }
      }
    }
  }
  if (l.dashboard !== undefined && l.keyHourRows !== undefined) {
    // The by-key read sums key rows only: rollup_hour's key rows an hour at 10,000 req/s (36 M requests).
    const perHour = distinctRows(36e6, KEY_COMBOS);
    const scaled = (l.dashboard.byKey / 1000) * ((48 * perHour) / l.keyHourRows);
    rows.push([
      `the dashboard's usage by key over 48 h, at 10,000 req/s (${Math.round(perHour).toLocaleString("en-US")} key rows of rollup_hour an hour; measured on ${l.keyHourRows.toLocaleString("en-US")} key rows, scaled by rows)`,
      "30 s a D1 query",
      `${scaled.toFixed(0)} s`,
      x(30 / scaled),
    ]);
    rows.push([
      "the dashboard's key list sorted by nearest a limit (every key read)",
      "30 s a D1 query",
      `${Math.round(l.dashboard.keys)} ms`,
      x(30_000 / l.dashboard.keys),
    ]);
    rows.push(["the dashboard's headroom (every key read)", "30 s a D1 query", `${Math.round(l.dashboard.headroom)} ms`, x(30_000 / l.dashboard.headroom)]);
  }
  if (l.dashboard !== undefined && l.keyMinuteRows && l.clientMinuteRows && reuse) {
    // The Overview's default range (the last hour by minute), asked every 5 s. The series, by model, by upstream and the
    // summary sum upstream × model rows (at most upstreams × their models a bucket whatever the traffic: 100 × 5 here) and
    // are asked anew each refresh; the volume holds fewer a minute, so they are scaled by rows to the bound. The busiest keys and
    // client keys are scaled by rows to an hour of rollup_minute at 10,000 req/s, and like the headroom (every key,
    // whatever the traffic) are reused while younger than REUSE_FACTOR times what they took, up to their longest: a
    // refresh pays its share of one computation in each such window (and a read of the kept answer, counted below).
    const REFRESH_MS = 5_000;
    const d = l.dashboard;
    const keyRows = 60 * distinctRows(10_500 * 60, KEY_COMBOS);
    const clientRows = 60 * distinctRows(10_500 * 60, CLIENT_COMBOS);
    const { factor, longestMs } = reuse;
    /** @param {number} ms what one computation takes @param {number} longest */
    const share = (ms, longest) => ms * Math.min(1, REFRESH_MS / Math.min(longest, factor * ms));
    const byKey = d.hourByKey * (keyRows / l.keyMinuteRows);
    const byClient = d.hourByClient * (clientRows / l.clientMinuteRows);
    const upstreamRows = Math.max(1, l.upstreamMinuteRows ?? 1);
    const fresh = (d.hourSeries + d.minutes + d.hourByUpstream + d.summary) * Math.max(1, UPSTREAM_COMBOS / upstreamRows);
    const kept = share(byKey, longestMs.breakdown.minute) + share(byClient, longestMs.breakdown.minute) + share(d.headroom, longestMs.headroom);
    const perRefresh = (fresh + kept + 3 * d.hourByKeyReused) / 1000;
    d1Shares.overview = perRefresh / (REFRESH_MS / 1000);
    // Split over KEY_DATABASES databases by key, each read scaled by the rows a database holds of what the one database
    // holds: an N-th of the key rows, but nearly every upstream × model row and most client-key rows (each folds an
    // N-th of the traffic into all of them), and an N-th of the keys' state for the headroom; the configuration's
    // database reads every key for the headroom and keeps the answers (each taken whole there).
    const aMinute = 10_500 * 60;
    const held = (/** @type {number} */ combos) => distinctRows(aMinute / KEY_DATABASES, combos) / distinctRows(aMinute, combos);
    shardReads = { upstream: held(UPSTREAM_COMBOS), client: held(CLIENT_COMBOS), key: 1 / KEY_DATABASES };
    const keptOfKeyDatabase =
      share(byKey * shardReads.key, longestMs.breakdown.minute) +
      share(byClient * shardReads.client, longestMs.breakdown.minute) +
      share(d.headroom * shardReads.key, longestMs.headroom);
    d1Shares.overviewOfKeyDatabase = (fresh * shardReads.upstream + keptOfKeyDatabase) / 1000 / (REFRESH_MS / 1000);
    d1Shares.overviewOfFirst = (share(d.headroom, longestMs.headroom) + 3 * d.hourByKeyReused) / 1000 / (REFRESH_MS / 1000);
    rows.push([
      `the dashboard's Overview, last hour by minute, at 10,000 req/s: the series, by model and by upstream from ${UPSTREAM_COMBOS.toLocaleString("en-US")} upstream × model rows a minute and the summary, ${Math.round(fresh)} ms a refresh (measured on ${Math.round(upstreamRows).toLocaleString("en-US")} a minute, scaled by rows); by key (${(byKey / 1000).toFixed(1)} s over ${(keyRows / 1e6).toFixed(1)} M key rows), by client key (${(byClient / 1000).toFixed(1)} s over ${(clientRows / 1e6).toFixed(1)} M client-key rows; both measured on ${l.keyMinuteRows.toLocaleString("en-US")} and ${l.clientMinuteRows.toLocaleString("en-US")} rows, scaled by rows) and the headroom (${Math.round(d.headroom)} ms) reused, ${Math.round(kept)} ms a refresh, and ${Math.round(3 * d.hourByKeyReused)} ms reading them kept`,
      "5 s of D1 a refresh (the page asks every 5 s; one database answers one query at a time)",
      `${perRefresh.toFixed(1)} s a refresh`,
      x(5 / perRefresh),
    ]);
  }
  if (l.usagePublishS !== undefined) {
    const every = l.usageEveryS ?? 1;
    d1Shares.publish = Math.max(d1Shares.publish, l.usagePublishS / every);
    rows.push([
      "the consumer's publish of the pool's usage while traffic flows: its share of the time (its D1 reads hold the one database meanwhile; a publish that takes long spaces them out, `USAGE_SPACING`)",
      "all of it",
      `${ms(l.usagePublishS)} a publish (wall), one every ${every.toFixed(1)} s`,
      x(every / l.usagePublishS),
    ]);
  }
  // (Without kept sums measured, the rows below would have nothing to scale.)
  if (l.usagePublishS !== undefined && l.usageDay !== undefined && l.usageDay.hours.rows > 0 && l.usageDay.keptRows > 0 && usageSpacing) {
    // The same publish through a day of 10,000 req/s. A key whose day began at the pool's midnight reads today's day
    // rows, a few a key (measured over the volume's, about as many as the bound). Any other key's day is its past hours'
    // sum, kept in D1, and the two or three hours from `liveFrom` read anew; once an hour the kept sums move on by an
    // hour or two, and the first publish that finds none reads the past hours as window-count.ts plans them — the plan
    // that reads the most rows at scale over every minute of a day is the one judged. What the publish adds over its
    // figure above for the rollup rows it reads is taken to grow with them; spaced as `USAGE_SPACING` spaces it.
    const spacing = usageSpacing;
    const u = l.usageDay;
    const base = l.usagePublishS;
    /** @param {number} measuredS @param {number} measuredRows @param {number} rowsAtScale */
    const scaledPublish = (measuredS, measuredRows, rowsAtScale) => base + (Math.max(0, measuredS - base) / Math.max(1, measuredRows)) * rowsAtScale;
    const every = (/** @type {number} */ seconds) => spacedEveryS(seconds, spacing);
    const dayRowsAtScale = distinctRows(10_500 * 86_400, KEY_COMBOS);
    const atScale = { hour: distinctRows(10_500 * 3_600, KEY_COMBOS), minute: distinctRows(10_500 * 60, KEY_COMBOS), day: dayRowsAtScale };
    /** The plan among `plans` that reads the most rows at scale, and those rows. @param {PlanRead["buckets"][]} plans */
    const costliest = (plans) =>
      plans
        .map((b) => ({ b, rows: b.hour * atScale.hour + b.minute * atScale.minute + b.day * atScale.day }))
        .reduce((most, p) => (p.rows > most.rows ? p : most));
    const today = scaledPublish(u.todayS, u.todayRows, dayRowsAtScale);
    d1Shares.publish = Math.max(d1Shares.publish, today / every(today));
    rows.push([
      `the same publish late in a day at 10,000 req/s, keys whose day begins at the pool's midnight (the default): today's ${(dayRowsAtScale / 1e6).toFixed(1)} M key rows of rollup_day (measured: ${ms(u.todayS)} over ${u.todayRows.toLocaleString("en-US")}; the difference from the publish above scaled by rows)`,
      "all of it",
      `${ms(today)} a publish (wall), one every ${every(today).toFixed(1)} s`,
      x(every(today) / today),
    ]);
    // What the publish takes a row of the rollups it reads, and what writing a row a key takes: the publish that reads
    // the past hours from hours alone and writes every key's sum, and the one that moves every sum on (a row a key
    // written likewise, and its hour buckets read), less the publishes without them — two equations, the rows of
    // each known, taking the two kinds of writes alike.
    const [fillS, fillRows] = [Math.max(0, u.hoursS - base), u.hours.rows];
    const [moveS, moveRows] = [Math.max(0, u.movedS - u.keptS), Math.max(0, u.moved.rows - u.kept.rows)];
    const perRowS = Math.max(0, fillS - moveS) / Math.max(1, fillRows - moveRows);
    const moveOnS = Math.max(0, moveS - perRowS * moveRows);
    // What the kept sums themselves cost a publish (a row a key: it grows with the keys, not the traffic).
    const keptSumsS = Math.max(0, u.keptS - base - perRowS * u.kept.rows);
    const measured = `measured: the publish with ${u.keptRows.toLocaleString("en-US")} kept sums ${ms(u.keptS)}, moving them on ${ms(u.movedS)}, reading the past hours from hours alone ${ms(u.hoursS)} over ${u.hours.rows.toLocaleString("en-US")} rows; so ${(perRowS * 1e6).toFixed(1)} µs a rollup row, scaled by rows, and ${ms(keptSumsS)} for the kept sums, ${ms(moveOnS)} for writing them, taken as they are`;
    /** @param {string} what @param {{ b: PlanRead["buckets"], rows: number }} read @param {number} fixedS */
    const publishRow = (what, read, fixedS) => {
      const seconds = base + fixedS + perRowS * read.rows;
      d1Shares.publish = Math.max(d1Shares.publish, seconds / every(seconds));
      rows.push([
        `the same, ${what}: ${read.b.hour} hour, ${read.b.minute} minute and ${read.b.day} day buckets, ${(read.rows / 1e6).toFixed(1)} M key rows (${measured})`,
        "all of it",
        `${ms(seconds)} a publish (wall), one every ${every(seconds).toFixed(1)} s`,
        x(every(seconds) / seconds),
      ]);
    };
    // The hours read anew: three in the first five minutes of an hour, two after. Once an hour the sums move on: a
    // rolling day's start moves at the hour (an hour bucket taken away, with the three hours read anew) and the hours
    // read anew five minutes later (an hour bucket added, with two read anew) — at most four hour buckets a publish
    // while traffic flows (a publish every 30 s at least). After an hour or more with no traffic, the first publish
    // moves both ends as far as three hours, the hours it adds and those read anew holding little.
    publishRow(
      "keys whose day is not the pool's (another hour, or a rolling day): each key's kept sum of its past hours, and the hours read anew",
      { b: { hour: 3, minute: 0, day: 0 }, rows: 3 * atScale.hour },
      keptSumsS,
    );
    publishRow("the publish each hour that moves the kept sums on an hour", { b: { hour: 4, minute: 0, day: 0 }, rows: 4 * atScale.hour }, keptSumsS + moveOnS);
    // Once: the first publish after the upgrade (or after three hours without one) reads every key's past hours and
    // keeps their sums — at worst from hours and minutes alone, in the day or two after the pool's zone changed.
    const first = costliest([...u.shapes.otherHour, ...u.shapes.rolling, ...u.shapes.hoursOnly]);
    const firstS = base + moveOnS + perRowS * first.rows;
    rows.push([
      `the first publish that finds no kept sums (after the upgrade to migration 0024, or three hours without a publish), once: every key's past hours read and kept, at the minute of the day that reads the most — ${first.b.hour} hour, ${first.b.minute} minute and ${first.b.day} day buckets, ${(first.rows / 1e6).toFixed(1)} M key rows (at the rates above); the fold waits meanwhile`,
      "15 minutes of wall time a consumer invocation",
      `${ms(firstS)} once`,
      x(900 / firstS),
    ]);
    // Its statements: a list of keys' fill a statement, each list as many UUIDs (39 bytes of JSON) as one statement
    // takes — the rows read and the rows written shared among the lists.
    const lists = Math.ceil((u.keptRows * 39) / idListBytes);
    const statementS = (moveOnS + perRowS * first.rows) / lists;
    rows.push([
      `the longest statement of that publish: one list's fill, ${Math.ceil(u.keptRows / lists).toLocaleString("en-US")} keys (${lists} list${lists === 1 ? "" : "s"} of at most ${Math.round(idListBytes / 1000)} KB of ids for ${u.keptRows.toLocaleString("en-US")} keys)`,
      "30 s a D1 query",
      `${ms(statementS)}`,
      x(30 / statementS),
    ]);
  }
  if (queueHeadroom > 0)
    rows.push([
      `the busiest event queue at ${QUEUE_MODEL_ISOLATES.toLocaleString("en-US")} busy gateway isolates, ${EVENT_QUEUES} queues (the queue table below)`,
      `${QUEUE_LIMIT.toLocaleString("en-US")} messages a second a queue`,
      `${Math.round(queueHeadroom).toLocaleString("en-US")} messages a second`,
      x(QUEUE_LIMIT / queueHeadroom),
    ]);
  if (l.foldD1S !== undefined && d1Shares.overview !== null) {
    // One database answers the fold, the usage publishes and the dashboard one statement at a time: their shares add.
    const fold = 10_500 * l.foldD1S;
    const all = fold + d1Shares.publish + d1Shares.overview;
    rows.push([
      `one D1 database's time, all that shares it at 10,000 req/s: the fold's statements ${fold.toFixed(2)} s a second, the pool's usage publish at most ${d1Shares.publish.toFixed(2)} (the costliest publish above, as spaced; its wall time, taken as all D1), an open Overview ${d1Shares.overview.toFixed(2)} (its row above, a refresh every 5 s)`,
      "1 s of the database a second",
      `${all.toFixed(2)} s a second`,
      x(1 / all),
    ]);
    if (l.sampledLog !== undefined) {
      const sampledAll = 10_500 * l.sampledLog.foldD1S + d1Shares.publish + d1Shares.overview;
      rows.push([
        `the same, the request log keeping every failure and ${SAMPLED_LOG * 100}% of successes: the fold's statements ${(10_500 * l.sampledLog.foldD1S).toFixed(2)} s a second`,
        "1 s of the database a second",
        `${sampledAll.toFixed(2)} s a second`,
        x(1 / sampledAll),
      ]);
    }
    if (l.shards !== undefined && l.sampledLog !== undefined && d1Shares.overviewOfKeyDatabase !== null && d1Shares.overviewOfFirst !== null) {
      // Split by key: the busiest database by key — its fold as measured above (the larger of the two figures), the
      // usage publish above scaled by what that database spent on a publish against the one database (measured side by
      // side), the Overview by rows — and the configuration's database beside them, likewise.
      const m = l.shards.sampled;
      const p = l.shards.publish;
      const pct = (/** @type {number} */ v) => `${Math.round(v * 100)}%`;
      const keyFold = 10_500 * Math.max(m.busiest, l.sampledLog.foldD1S * (m.busiest / m.one.s));
      const keyPublish = d1Shares.publish * (p.others / p.one);
      const keyAll = keyFold + keyPublish + d1Shares.overviewOfKeyDatabase;
      rows.push([
        `one of ${KEY_DATABASES} D1 databases by key (the busiest), all that shares it at 10,000 req/s, the request log sampled: its fold's statements ${keyFold.toFixed(2)} s a second (its row above); its part of the usage publish ${keyPublish.toFixed(2)} (above, scaled by ${(p.others / p.one).toFixed(2)}: D1's time for a publish in the busiest of them, ${Math.round(p.others * 1000)} ms, against ${Math.round(p.one * 1000)} in one, measured side by side); of an open Overview ${d1Shares.overviewOfKeyDatabase.toFixed(2)} (its row above, each read scaled by the rows the database holds: ${pct(shardReads.upstream)} of the upstream × model rows, ${pct(shardReads.client)} of the client-key rows, ${pct(shardReads.key)} of the key rows and of the keys' state)`,
        "1 s of the database a second",
        `${keyAll.toFixed(2)} s a second`,
        x(1 / keyAll),
      ]);
      // The same with half the requests from one client key.
      const k = l.shards.skewed;
      const skewedFold = 10_500 * Math.max(k.busiest, l.sampledLog.foldD1S * (k.busiest / k.one.s));
      const skewedAll = skewedFold + keyPublish + d1Shares.overviewOfKeyDatabase;
      rows.push([
        `the same, half the requests from one client key (client keys are seldom even): the busiest database's fold ${skewedFold.toFixed(2)} s a second (measured ${(k.busiest * 1e6).toFixed(0)} µs an event of all the traffic beside ${(k.one.s * 1e6).toFixed(0)} for one database; the fold above scaled by that ratio, the larger taken), the publish and the Overview as above`,
        "1 s of the database a second",
        `${skewedAll.toFixed(2)} s a second`,
        x(1 / skewedAll),
      ]);
      const firstFold = 10_500 * m.first;
      const firstPublish = d1Shares.publish * (p.first / p.one);
      const firstAll = firstFold + firstPublish + d1Shares.overviewOfFirst;
      rows.push([
        `the configuration's database beside them (DB), all that shares it: its fold (the admin events; measured) ${firstFold.toFixed(2)} s a second; its part of the usage publish ${firstPublish.toFixed(2)} (the keys' configuration read: ${Math.round(p.first * 1000)} ms a publish against ${Math.round(p.one * 1000)} in one, measured side by side); of an open Overview ${d1Shares.overviewOfFirst.toFixed(2)} (the headroom's every key and the kept answers, whole)`,
        "1 s of the database a second",
        `${firstAll.toFixed(2)} s a second`,
        x(1 / firstAll),
      ]);
    }
  }
  if (l.trace !== undefined) {
    const t = l.trace;
    rows.push([
      `tracing a request the log left out at 10,000 req/s: the admin API searching the event archive over the ${t.batches.toLocaleString("en-US")} batches of ${t.eventsPerBatch} events the consumer folds in ${t.spanS >= 120 ? `${(t.spanS / 60).toFixed(0)} minutes` : `${t.spanS.toFixed(0)} s`}${SMOKE ? "" : ", the span a search covers"}, each with its filter of request ids, the request in the last (${Math.round(t.lastBytes / 1024)} KiB); ${t.mayHold} other batch(es) whose filter let its id through, read too (written here as one line each; whole, each would add a batch's bytes); CPU is the runtime's, local R2 included`,
      "30 s of CPU a request",
      `${ms(t.foundCpuS)} CPU, ${t.foundS.toFixed(1)} s wall (a request in none of them: ${ms(t.missCpuS)}, ${t.missS.toFixed(1)} s; ${t.missListed.toLocaleString("en-US")} batches listed, ${t.missRead} read)`,
      x(30 / Math.max(t.foundCpuS, t.missCpuS)),
    ]);
  }
  if (l.probeCpuS !== undefined && l.probeBudget !== undefined)
    rows.push([
      `the scheduler's CPU for a run of ${l.probeBudget.toLocaleString("en-US")} probes`,
      "30 s of CPU an invocation",
      `${(l.probeCpuS * l.probeBudget).toFixed(1)} s a run`,
      x(30 / (l.probeCpuS * l.probeBudget)),
    ]);
  if (l.probedAtRtt !== undefined) {
    // A balance (or liveness) probe an hour for every key, against what the cron's run a minute probes at a provider's
    // round trip (measured), alone or with `probeJobs` jobs handed to the probes queue, each an invocation probing as much.
    const due = l.keys / 60;
    for (const jobs of [0, 10])
      rows.push([
        `balance probes an hour (\`balanceProbeIntervalMs\`) for ${l.keys.toLocaleString("en-US")} keys at a ${PROBE_RTT_MS} ms round trip, \`probeJobs\` ${jobs}: ${jobs === 0 ? "the cron's run a minute" : `the run and ${jobs} jobs a minute, each probing what it does`} (measured: ${l.probedAtRtt.toLocaleString("en-US")} a run)`,
        `${((1 + jobs) * l.probedAtRtt).toLocaleString("en-US")} probes a minute`,
        `${Math.round(due).toLocaleString("en-US")} a minute`,
        x(((1 + jobs) * l.probedAtRtt) / due),
      ]);
  }
  // What D1 bills for the fold at 10,000 req/s, from the rows written it counted and the storage held above.
  const billRows = [];
  const month = 10_500 * 86_400 * 30;
  const writes = (/** @type {number} */ perEvent) => (Math.max(0, perEvent * month - D1_WRITES_INCLUDED) / 1e6) * D1_PRICE_A_MILLION_WRITES;
  const storage = (/** @type {number} */ bytes) => Math.max(0, bytes / 1e9 - D1_STORAGE_INCLUDED_GB) * D1_PRICE_A_GB_MONTH;
  const usd = (/** @type {number} */ v) => `$${Math.round(v).toLocaleString("en-US")}`;
  if (l.foldRowsWritten !== undefined)
    billRows.push([
      "every request in the request log",
      `${l.foldRowsWritten.toFixed(1)} an event: ${((l.foldRowsWritten * month) / 1e9).toFixed(0)} billion a month, ${usd(writes(l.foldRowsWritten))}`,
      bill.held === null ? "—" : `${(bill.held / 1e12).toFixed(1)} TB: ${usd(storage(bill.held))}`,
    ]);
  if (l.sampledLog !== undefined)
    billRows.push([
      `the request log keeping every failure and ${SAMPLED_LOG * 100}% of successes (${Math.round(l.sampledLog.share * 100)}% of the events measured)`,
      `${l.sampledLog.rowsWritten.toFixed(1)} an event: ${((l.sampledLog.rowsWritten * month) / 1e9).toFixed(0)} billion a month, ${usd(writes(l.sampledLog.rowsWritten))}`,
      bill.heldSampled === null ? "—" : `${(bill.heldSampled / 1e12).toFixed(1)} TB: ${usd(storage(bill.heldSampled))}`,
    ]);
  return [
    `Headroom of the largest pool measured (${l.keys.toLocaleString("en-US")} keys) against the limits it meets:`,
    "",
    "| what | limit | load | headroom |",
    "|---|---|---|---|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
    ...(billRows.length > 0
      ? [
          "",
          `What D1 bills a month (30 days) for the fold at 10,000 requests a second, at the rows written it counted (D1 bills a row of each index a write touches too) and the storage held above, Workers Paid prices: ${usd(D1_PRICE_A_MILLION_WRITES)} a million rows written beyond ${D1_WRITES_INCLUDED / 1e6} million, ${usd(D1_PRICE_A_GB_MONTH * 100)} for 100 GB a month beyond ${D1_STORAGE_INCLUDED_GB} GB:`,
          "",
          "| the fold | rows written | storage held |",
          "|---|---|---|",
          ...billRows.map((row) => `| ${row.join(" | ")} |`),
        ]
      : []),
  ].join("\n");
}

const page = `${runHeading(COMMAND, started, new Date())}\n\n${table}\n\n${headroomTable()}\n\n${queueTable}\n\n${SMOKE ? "A smoke run: a small pool, figures not meant to be read." : ""}`;
console.log(page);
if (WRITE) log(`written to ${writeGenerated(WRITE, page, "Scale")}`);
