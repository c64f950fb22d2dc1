// @ts-check
/**
 * The HTTP side of `npm run bench`, side by side and alternating within each
 * repetition: the mock called straight, the null Worker, Keypool's gateway alone
 * (its events dropped), and Keypool with events on over 10 keys and over a large
 * pool, each request shape at 1 and 50 connections; then where Keypool's CPU
 * goes (the metering floor without and with its log, Keypool with one part
 * switched off), and the admin stats API over 30 days of rollups.
 */
import path from "node:path";
import { percentile } from "../lib/numbers.mjs";
import { measure } from "./load.mjs";
import { bundleKeypool, direct, startKeypool, startMeteringFloor, startMock, startNullWorker } from "./workers.mjs";

/** @typedef {import("./workers.mjs").Target} Target */
/** @typedef {import("./load.mjs").Run} Run */
/** @typedef {{ name: string, body: Record<string, unknown>, behavior: Record<string, unknown> }} Scenario */

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
 * through unread); a 20-chunk stream whose client asks for usage (as the Vercel
 * AI SDK and LangChain do), plain and paced 5 ms a chunk; and a stream whose
 * client does not ask, where Keypool asks the upstream itself and must take the
 * usage chunk out before the client sees it.
 * @type {Scenario[]}
 */
export const SCENARIOS = [
  { name: "chat JSON", body: { model: "mock-gpt", messages: MESSAGES }, behavior: { words: 20 } },
  {
    name: "chat SSE, 20 chunks",
    body: { model: "mock-gpt", messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
    behavior: { words: 20 },
  },
  {
    name: "chat SSE, 20 chunks 5 ms apart",
    body: { model: "mock-gpt", messages: MESSAGES, stream: true, stream_options: { include_usage: true } },
    behavior: { words: 20, chunkDelayMs: 5 },
  },
  { name: "chat SSE, 20 chunks, client did not ask for usage", body: { model: "mock-gpt", messages: MESSAGES, stream: true }, behavior: { words: 20 } },
  { name: "chat JSON, 44 kB prompt", body: { model: "mock-gpt", messages: LONG_MESSAGES }, behavior: { words: 20 } },
];

/**
 * Long streams as real answers come: hundreds to a thousand chunks, each its
 * own write, 1 ms apart; the client asking for usage or not (then Keypool asks
 * the upstream itself and leaves the usage chunk out, while the null Worker
 * passes the request as it is). The null Worker and Keypool side by side.
 */
export const LONG_STREAM = /** @type {const} */ ({
  chunks: [200, 1_000],
  connections: [1, 10],
  chunkDelayMs: 1,
  targets: ["null Worker", "chunk relay floor", "Keypool, 10 keys"],
});
/** The long streams' third target: the null Worker with each chunk read and written on in JavaScript (startNullWorker's `chunkRelay`). */
export const CHUNK_RELAY_FLOOR = "chunk relay floor";
/** @typedef {"asked" | "not asked"} UsageAsk */
/** The long-stream runs' key: whether the client asked for usage, chunks, connections, target. */
export const longKey = (/** @type {UsageAsk} */ ask, /** @type {number} */ chunks, /** @type {number} */ connections, /** @type {string} */ target) =>
  `${ask}|${chunks}|${connections}|${target}`;

/** The targets of the main table, in the order each repetition visits them. */
export const TARGETS = /** @type {const} */ (["direct", "null Worker", "Keypool gateway alone, 10 keys", "Keypool, 10 keys", "Keypool, large pool"]);
/** @typedef {(typeof TARGETS)[number]} TargetName */

/** The metering floor's two rows of the breakdown: without and with its log (see startMeteringFloor). */
const FLOORS = {
  "metering floor: reads the request and the answer whole, nothing else": false,
  "metering floor with a log: the same, plus one small event a request to a queue, stored as one D1 row": true,
};
export const FLOOR_WITH_LOG = "metering floor with a log: the same, plus one small event a request to a queue, stored as one D1 row";
const CONSUMER_STORES_NOTHING = "Keypool, consumer stores nothing (validates, publishes the snapshot; no archive, no D1 writes)";
const GATEWAY_ALONE = "Keypool gateway alone (events not sent: no queue sends, nothing for the consumer)";

/**
 * @typedef {object} HttpResults
 * @property {Record<string, Record<number, Record<TargetName, Run[]>>>} results by scenario, connections and target
 * @property {Record<string, Run[]>} breakdown by target
 * @property {Record<string, Run[]>} long long-stream runs by `longKey`
 * @property {Record<string, number>} stats median ms by query
 * @property {{ size: number, times: Record<string, number> }} requestLog median ms by page, over `size` requests
 * @property {number} largePool keys in the large pool
 */

/**
 * The long streams (`LONG_STREAM`), alternating the null Worker and Keypool
 * within each repetition.
 * @param {Awaited<ReturnType<typeof startMock>>} mock
 * @param {Record<(typeof LONG_STREAM.targets)[number], Target>} targets
 * @param {{ runs: number, smoke: boolean, log: (message: string) => void }} options
 * @returns {Promise<Record<string, Run[]>>}
 */
async function longStreams(mock, targets, { runs, smoke, log }) {
  /** @type {Record<string, Run[]>} */
  const out = {};
  for (const chunks of LONG_STREAM.chunks) {
    await mock.behave({ words: chunks, chunkDelayMs: LONG_STREAM.chunkDelayMs });
    for (const ask of /** @type {UsageAsk[]} */ (["asked", "not asked"])) {
      const body = { model: "mock-gpt", messages: MESSAGES, stream: true, ...(ask === "asked" ? { stream_options: { include_usage: true } } : {}) };
      for (const connections of LONG_STREAM.connections) {
        // Long enough for several whole streams at one connection (a 1,000-chunk one takes over a second).
        const seconds = smoke ? 0.5 : chunks >= 1_000 && connections === 1 ? 7 : 5;
        log(`a stream of ${chunks} chunks ${LONG_STREAM.chunkDelayMs} ms apart, usage ${ask}, ${connections} connection(s)…`);
        for (const t of LONG_STREAM.targets) await measure(targets[t], { body }, connections, smoke ? 0.3 : 1.5); // warm-up, not recorded
        for (let rep = 0; rep < runs; rep++)
          for (const t of LONG_STREAM.targets)
            (out[longKey(ask, chunks, connections, t)] ??= []).push(await measure(targets[t], { body }, connections, seconds));
      }
    }
  }
  return out;
}

/**
 * Every scenario at 1 and 50 connections against the targets, alternating
 * target by target within each repetition; then the breakdown and the stats API.
 * @param {string} work a scratch folder
 * @param {{ runs: number, log: (message: string) => void, smoke?: boolean }} options
 * @returns {Promise<HttpResults>}
 */
export async function runHttpBench(work, { runs, log, smoke = false }) {
  const largePool = smoke ? 100 : 10_000;
  const mock = await startMock();
  /** @type {(() => Promise<void> | void)[]} */
  const stops = [() => mock.stop()];
  try {
    const bundles = await bundleKeypool(work);
    const nullWorker = await startNullWorker(work, mock.baseUrl);
    stops.push(nullWorker.stop);
    log(`starting Keypool's gateway alone, Keypool with 10 keys and with ${largePool.toLocaleString("en-US")} keys…`);
    const aloneDir = path.join(work, "alone");
    const alone = await startKeypool(
      work,
      await bundleKeypool(aloneDir, { gatewayEntry: "bench/workers/gateway-without-events.ts" }),
      "alone",
      mock.baseUrl,
      10,
    );
    stops.push(alone.stop);
    const small = await startKeypool(work, bundles, "kp10", mock.baseUrl, 10);
    stops.push(small.stop);
    const large = await startKeypool(work, bundles, "large", mock.baseUrl, largePool);
    stops.push(large.stop);
    /** @type {Record<TargetName, Target>} */
    const targets = {
      direct: direct(mock.baseUrl),
      "null Worker": nullWorker,
      // Its events go nowhere: nothing to wait for, nothing to count.
      "Keypool gateway alone, 10 keys": { url: alone.url, headers: alone.headers, pid: alone.pid },
      "Keypool, 10 keys": small,
      "Keypool, large pool": large,
    };
    /** @type {HttpResults["results"]} */
    const results = {};
    for (const scenario of SCENARIOS) {
      await mock.behave(scenario.behavior);
      for (const connections of [1, 50]) {
        const seconds = smoke ? 0.5 : connections === 1 ? (scenario.behavior.chunkDelayMs ? 4 : 3) : 5;
        log(`${scenario.name}, ${connections} connection(s)…`);
        for (const name of TARGETS) await measure(targets[name], scenario, connections, smoke ? 0.3 : 1); // warm-up, not recorded
        const byTarget = /** @type {Record<TargetName, Run[]>} */ (Object.fromEntries(TARGETS.map((t) => [t, /** @type {Run[]} */ ([])])));
        for (let rep = 0; rep < runs; rep++) for (const name of TARGETS) byTarget[name].push(await measure(targets[name], scenario, connections, seconds));
        (results[scenario.name] ??= {})[connections] = byTarget;
      }
    }
    const chunkRelay = await startNullWorker(work, mock.baseUrl, { chunkRelay: true });
    stops.push(chunkRelay.stop);
    const long = await longStreams(mock, { ...targets, [CHUNK_RELAY_FLOOR]: chunkRelay }, { runs, smoke, log });
    log("where Keypool's CPU goes: chat JSON, 50 connections, with a part switched off…");
    const breakdown = await cpuBreakdown(
      work,
      mock,
      { nullWorker, keypool: small, alone: targets["Keypool gateway alone, 10 keys"] },
      { runs, seconds: smoke ? 0.3 : 5, stops },
    );
    log("stats API over 30 days × 1,000 keys of rollups…");
    const stats = await timeStatsApi(small);
    const logSize = smoke ? 20_000 : 1_000_000;
    log(`request log: pages over ${logSize.toLocaleString("en-US")} requests…`);
    const requestLog = { size: logSize, times: await timeRequestLog(small, logSize) };
    return { results, long, breakdown, stats, requestLog, largePool };
  } finally {
    for (const stop of stops.reverse()) await stop();
  }
}

/**
 * Chat JSON at 50 connections against the null Worker, the metering floor
 * without and with its log, Keypool, and Keypool with one part switched off at a
 * time, alternating: requests/s and CPU per request, so the table says how much
 * of Keypool's CPU the gateway, the queue and the consumer's storing each take,
 * and how much of it any proxy that meters and logs would pay too.
 * @param {string} work
 * @param {Awaited<ReturnType<typeof startMock>>} mock
 * @param {{ nullWorker: Target, keypool: Target, alone: Target }} started
 * @param {{ runs: number, seconds: number, stops: (() => Promise<void> | void)[] }} options
 * @returns {Promise<Record<string, Run[]>>}
 */
async function cpuBreakdown(work, mock, { nullWorker, keypool, alone }, { runs, seconds, stops }) {
  const scenario = /** @type {Scenario} */ (SCENARIOS[0]);
  await mock.behave(scenario.behavior);
  /** @type {Record<string, Target>} */
  const targets = { "null Worker": nullWorker };
  for (const [name, log] of Object.entries(FLOORS)) {
    const floor = await startMeteringFloor(path.join(work, `floor-${log ? "log" : "proxy"}`), mock.baseUrl, { log });
    stops.push(floor.stop);
    targets[name] = floor;
  }
  targets["Keypool, 10 keys"] = keypool;
  const dir = path.join(work, "stores-nothing");
  const storesNothing = await startKeypool(
    work,
    await bundleKeypool(dir, { consumerEntry: "bench/workers/consumer-stores-nothing.ts" }),
    "stores-nothing",
    mock.baseUrl,
    10,
  );
  stops.push(storesNothing.stop);
  // Its events are validated and dropped: nothing to count, a while for the queue and consumer to finish.
  targets[CONSUMER_STORES_NOTHING] = { url: storesNothing.url, headers: storesNothing.headers, pid: storesNothing.pid, settleMs: 1_500 };
  targets[GATEWAY_ALONE] = alone;
  for (const target of Object.values(targets)) await measure(target, scenario, 50, Math.min(seconds, 1)); // warm-up
  /** @type {Record<string, Run[]>} */
  const byTarget = Object.fromEntries(Object.keys(targets).map((t) => [t, []]));
  for (let rep = 0; rep < runs; rep++) for (const [name, target] of Object.entries(targets)) byTarget[name]?.push(await measure(target, scenario, 50, seconds));
  return byTarget;
}

/**
 * Fills the rollups with 30 days × 1,000 keys (hours and days for every key,
 * minutes every 10 minutes of the last day) of 4 models, used by 5 client keys
 * — a key's rows and, summed over keys, the client keys' (migration 0020),
 * and the same summed per upstream (of 10) and model (migration 0021) — then times the admin stats API the dashboard calls: median of 15 answers
 * each, in ms, over HTTP with a session.
 * @param {Awaited<ReturnType<typeof startKeypool>>} keypool
 * @returns {Promise<Record<string, number>>}
 */
async function timeStatsApi(keypool) {
  const now = Date.now();
  const minute = Math.floor(now / 60_000) * 60_000;
  const hour = Math.floor(now / 3_600_000) * 3_600_000;
  const day = Math.floor(now / 86_400_000) * 86_400_000;
  const cols =
    "bucket, key_id, model, client_key_id, requests, attempts, successes, prompt_tokens, completion_tokens, total_tokens, latency_ms_sum, latency_ms_max, ttfb_ms_sum, ttfb_ms_max, ttfb_count";
  // A key's row (summed over client keys), and a client key's (summed over keys: the 50 keys of each of the 20 model × client pairs).
  const keyValues = "'stats-key-' || k.j, 'model-' || (k.j % 4), '*', 60, 62, 59, 1200, 4800, 6000, 18000.0, 900, 2400.0, 90, 60";
  const clientValues = "'*', 'model-' || (k.j % 4), 'client-' || (k.j % 5), 3000, 3100, 2950, 60000, 240000, 300000, 900000.0, 900, 120000.0, 90, 3000";
  /** @param {string} table @param {number} count @param {string} bucketExpr */
  const seed = async (table, count, bucketExpr) => {
    for (const [values, keys] of /** @type {[string, number][]} */ ([
      [keyValues, 1000],
      [clientValues, 20],
    ]))
      await keypool.db
        .prepare(
          `WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < ${count - 1}),
           k(j) AS (SELECT 0 UNION ALL SELECT j + 1 FROM k WHERE j < ${keys - 1})
           INSERT INTO ${table} (${cols}) SELECT ${bucketExpr}, ${values} FROM t, k`,
        )
        .run();
  };
  await seed("rollup_day", 30, `${day} - t.i * 86400000`);
  await seed("rollup_hour", 30 * 24, `${hour} - t.i * 3600000`);
  // The consumer keeps the pool-wide hour rollup in step with rollup_hour; seeded rows get theirs here.
  const sums = "requests, attempts, successes, prompt_tokens, completion_tokens, total_tokens, latency_ms_sum, ttfb_ms_sum, ttfb_count";
  await keypool.db
    .prepare(
      `INSERT INTO rollup_pool_hour (bucket, ${sums}, latency_ms_max, ttfb_ms_max)
       SELECT bucket, ${sums
         .split(", ")
         .map((c) => `SUM(${c})`)
         .join(", ")}, MAX(latency_ms_max), MAX(ttfb_ms_max)
       FROM rollup_hour WHERE key_id LIKE 'stats-key-%' AND client_key_id = '*' GROUP BY bucket
       ON CONFLICT (bucket) DO UPDATE SET ${sums
         .split(", ")
         .map((c) => `${c} = ${c} + excluded.${c}`)
         .join(", ")},
         latency_ms_max = MAX(latency_ms_max, excluded.latency_ms_max), ttfb_ms_max = MAX(ttfb_ms_max, excluded.ttfb_ms_max)`,
    )
    .run();
  await seed("rollup_minute", 144, `${minute} - (t.i * 10 + k.j % 10) * 60000`);
  // And the upstream × model rows the consumer folds beside them: the seeded keys spread over 10 upstreams.
  const measures = `${sums}, latency_ms_max, ttfb_ms_max`;
  for (const grain of ["minute", "hour", "day"])
    await keypool.db
      .prepare(
        `INSERT INTO rollup_upstream_${grain} (bucket, upstream_id, model, ${measures})
         SELECT bucket, 'stats-upstream-' || (CAST(substr(key_id, 11) AS INTEGER) % 10), model, ${sums
           .split(", ")
           .map((c) => `SUM(${c})`)
           .join(", ")}, MAX(latency_ms_max), MAX(ttfb_ms_max)
         FROM rollup_${grain} WHERE key_id LIKE 'stats-key-%' AND client_key_id = '*' GROUP BY 1, 2, 3`,
      )
      .run();
  return timeAdminQueries(keypool, STATS_QUERIES);
}

/**
 * Fills the request log with `n` requests over the last 7 days (its default
 * retention) — 1,000 keys, 20 models, 100 client keys, one in ten retried, a
 * few percent failures — then times the pages the Requests page asks for:
 * median of 15 answers each, in ms, over HTTP with a session.
 * @param {Awaited<ReturnType<typeof startKeypool>>} keypool
 * @param {number} n
 * @returns {Promise<Record<string, number>>}
 */
async function timeRequestLog(keypool, n) {
  const now = Date.now();
  const week = 7 * 86_400_000;
  // Newest first as i grows; a UUIDv7-like id that sorts with its time.
  const rows = `WITH RECURSIVE t(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM t WHERE i < ${n - 1})
    SELECT i, ${now} - (i * ${Math.floor(week / n)}) AS ts, printf('%012x-bench-%08d', ${now} - i * ${Math.floor(week / n)}, i) AS id FROM t`;
  const outcome = "CASE WHEN i % 100 = 7 THEN 'rate_limited' WHEN i % 50 = 3 THEN 'upstream_error' WHEN i % 200 = 11 THEN 'client_error' ELSE 'ok' END";
  const status = "CASE WHEN i % 100 = 7 THEN 429 WHEN i % 50 = 3 THEN 502 WHEN i % 200 = 11 THEN 400 ELSE 200 END";
  await keypool.db
    .prepare(
      `INSERT INTO request_log (request_id, started_at, client_key_id, model, upstream_model, endpoint, stream, key_id, upstream_id, status, outcome,
         attempts, latency_ms, ttfb_ms, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source, cost_micros, unpriced, user_agent,
         attempt, error, final_ts, final_latency_ms, final_ttfb_ms, final_cost_micros, final_unpriced)
       SELECT id, ts, 'log-client-' || (i % 100), 'log-model-' || (i % 20), NULL, '/chat/completions', i % 2, 'log-key-' || ((i * 7) % 1000), 'log-up-' || (i % 5),
         ${status}, ${outcome}, 1 + (i % 10 = 0), 200 + (i * 37) % 4000, 50 + (i * 13) % 500, 100, 200, 300, 0, 0, 'upstream', 450, 0, 'bench/1.0',
         1 + (i % 10 = 0), NULL, CASE WHEN i % 10 = 0 THEN ts + 100 END, CASE WHEN i % 10 = 0 THEN 100 + (i * 37) % 3900 END,
         CASE WHEN i % 10 = 0 THEN 50 END, CASE WHEN i % 10 = 0 THEN 450 END, CASE WHEN i % 10 = 0 THEN 0 END
       FROM (${rows})`,
    )
    .run();
  // The attempt before the final one of each retried request (the final one is its request's row).
  await keypool.db
    .prepare(
      `INSERT INTO request_attempts (request_id, attempt, ts, final, key_id, upstream_id, client_key_id, model, upstream_model, endpoint, stream, status,
         outcome, latency_ms, ttfb_ms, prompt_tokens, completion_tokens, total_tokens, cached_tokens, reasoning_tokens, usage_source, cost_micros, unpriced, error, user_agent)
       SELECT id, 1, ts, 0, 'log-key-' || ((i * 11) % 1000), 'log-up-' || (i % 5), 'log-client-' || (i % 100), 'log-model-' || (i % 20), NULL, '/chat/completions',
         i % 2, 429, 'rate_limited', 100, NULL, 0, 0, 0, 0, 0, 'none', 0, 0, 'rate limited', 'bench/1.0'
       FROM (${rows}) WHERE i % 10 = 0`,
    )
    .run();
  // A page deep into the log: where the 50th page of everything begins.
  const deep = /** @type {{ data: { startedAt: number, requestId: string }[] }} */ (
    await keypool.admin("GET", `/requests?limit=500&cursor=${now - 86_400_000}_z`)
  );
  const last = deep.data.at(-1);
  const cursor = last ? `${last.startedAt}_${last.requestId}` : `${now}_z`;
  /** @type {Record<string, string>} */
  const queries = {
    "first page, no filter": "/requests",
    "first page, one client key": "/requests?clientKeyId=log-client-42",
    "first page, one model, last 24 h": `/requests?model=log-model-7&from=${now - 86_400_000}`,
    "first page, rate-limited only (1 %)": "/requests?outcome=rate_limited",
    "first page, 5xx only (2 %)": "/requests?status=5xx",
    "first page, failed only": "/requests?failed=true",
    "first page, one key (any attempt)": "/requests?keyId=log-key-123",
    "first page, slower than 4 s (none)": "/requests?minLatencyMs=4000&from=" + (now - 86_400_000),
    "a page a day back (cursor)": `/requests?cursor=${cursor}`,
    "one request by id": `/requests?requestId=${encodeURIComponent(last?.requestId ?? "none")}`,
  };
  return timeAdminQueries(keypool, queries);
}

/**
 * Each admin API query's median time over 15 answers (after one not counted), in ms, over HTTP with a session.
 * @param {Awaited<ReturnType<typeof startKeypool>>} keypool
 * @param {Record<string, string>} queries
 * @returns {Promise<Record<string, number>>}
 */
async function timeAdminQueries(keypool, queries) {
  /** @type {Record<string, number>} */
  const times = {};
  for (const [what, query] of Object.entries(queries)) {
    await keypool.admin("GET", query);
    /** @type {number[]} */
    const ms = [];
    for (let i = 0; i < 15; i++) {
      // A costly answer is kept for reuse (stats_cache, migration 0022): each timed answer is computed afresh.
      await keypool.db.prepare("DELETE FROM stats_cache").run();
      const t0 = performance.now();
      await keypool.admin("GET", query);
      ms.push(performance.now() - t0);
    }
    times[what] = percentile(ms, 0.5);
  }
  return times;
}

/** The admin stats queries the dashboard makes, timed over 30 days × 1,000 keys of rollups, and the goal of each (ms). */
const STATS_QUERIES = {
  "summary (RPM, RPD, TPM, TPD, last 24 h)": "/stats/summary",
  "30-day series, by day": "/stats/series?bucket=day&count=30",
  "30-day series, by hour (720 points)": "/stats/series?bucket=hour&count=720",
  "30-day series of one key, by day": "/stats/series?bucket=day&count=30&keyId=stats-key-7",
  "30-day breakdown by key (top 100)": "/stats/breakdown?by=key&bucket=day&count=30",
};
