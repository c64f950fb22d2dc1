// @ts-check
/**
 * The stats consumer alone: events per second folded into local D1 by the real
 * consumer bundle and queue handler (Miniflare, the same D1/R2/KV/Queue
 * bindings as production), fed batches of 100 queue messages in the shapes
 * they arrive in.
 */
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import path from "node:path";
import { migrationStatements } from "../lib/migrations.mjs";
import { ROOT } from "../lib/stack.mjs";

/** Messages a queue batch delivers (max_batch_size), and events per packed message in the packed runs. */
const BATCH = 100;
const PACKED = 50;
const HOUR = 3_600_000;

/**
 * The message shapes, each with whether the consumer's goal applies: packed as
 * the gateway sends them (a 20 ms window's events in one message) — spread over
 * an hour of 50 keys, or as live traffic arrives over 10 and over 10,000 keys —
 * and one event a message (admin changes and probes, or any other producer;
 * the gateway never sends attempts that way).
 */
export const SHAPES = {
  [`packed as the gateway sends them (${PACKED} events a message, ${BATCH} messages a batch), 50 keys over an hour`]: {
    perMessage: PACKED,
    keys: 50,
    spreadMs: HOUR,
    goal: true,
  },
  "packed, as live traffic (the last 3 s), 10 keys": { perMessage: PACKED, keys: 10, spreadMs: 3_000, goal: true },
  "packed, as live traffic (the last 3 s), 10,000 keys": { perMessage: PACKED, keys: 10_000, spreadMs: 3_000, goal: true },
  [`one event a message (${BATCH} messages a batch), 50 keys over an hour`]: { perMessage: 1, keys: 50, spreadMs: HOUR, goal: false },
};

const OUTCOMES = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "rate_limited", "upstream_error", "client_error"];

/**
 * Attempt events over `keys` keys, 4 models and 5 clients: spread over `spreadMs` before now.
 * `target` replaces the made-up key, upstream, model and client (npm run scale uses its pool's).
 * @param {number} n
 * @param {string} run
 * @param {{ keys: number, spreadMs: number, target?: (i: number) => { keyId: string, upstreamId: string, model: string, clientKeyId: string } }} spread
 */
export function attemptEvents(n, run, { keys, spreadMs, target }) {
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const outcome = /** @type {string} */ (OUTCOMES[i % OUTCOMES.length]);
    const who = target ? target(i) : { keyId: `key-${(i * 7717) % keys}`, upstreamId: "up", clientKeyId: `client-${i % 5}`, model: `model-${i % 4}` };
    return {
      v: 1,
      type: "attempt",
      id: `bench-${run}-${i}-${now}`,
      ts: now - ((i * 7919) % spreadMs),
      requestId: `req-${run}-${i}`,
      attempt: 1,
      final: true,
      ...who,
      endpoint: "/chat/completions",
      stream: i % 2 === 0,
      status: outcome === "ok" ? 200 : 500,
      outcome,
      latencyMs: 100 + (i % 900),
      ttfbMs: 20 + (i % 80),
      promptTokens: 20,
      completionTokens: 80,
      totalTokens: 100,
      cachedTokens: 0,
      reasoningTokens: 0,
      usageSource: "upstream",
      retryAfterMs: outcome === "rate_limited" ? 1000 : null,
      // Most providers send their rate-limit headers with every answer, and each becomes a reading.
      rateLimit: {
        requests: { limit: 10_000, remaining: 9_999 - (i % 100), resetMs: 6 },
        tokens: { limit: 2_000_000, remaining: 1_999_900 - (i % 100) * 100, resetMs: 1 },
      },
    };
  });
}

/**
 * Folds `events` events of each shape, `runs` times, alternating shapes; events
 * per second by shape. Checks at the end that the rollups hold every attempt.
 * @param {string} work a scratch folder
 * @param {{ events: number, runs: number }} options
 * @returns {Promise<Record<string, number[]>>}
 */
export async function consumerRates(work, { events, runs }) {
  const script = path.join(work, "consumer.js");
  await build({
    entryPoints: [path.join(ROOT, "stats-consumer/index.ts")],
    outfile: script,
    bundle: true,
    format: "esm",
    platform: "neutral",
    logLevel: "warning",
  });
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
  });
  try {
    const db = await mf.getD1Database("DB");
    await db.batch(migrationStatements().map((s) => db.prepare(s)));
    const worker = await mf.getWorker();
    /** @type {Record<string, number[]>} */
    const rates = Object.fromEntries(Object.keys(SHAPES).map((shape) => [shape, []]));
    for (let run = 0; run < runs; run++) {
      for (const [s, [shape, { perMessage, ...spread }]] of Object.entries(SHAPES).entries()) {
        const all = attemptEvents(events, `${run}-${s}`, spread);
        /** @type {unknown[]} */
        const bodies = [];
        for (let i = 0; i < all.length; i += perMessage) bodies.push(perMessage === 1 ? all[i] : { events: all.slice(i, i + perMessage) });
        const started = performance.now();
        for (let i = 0; i < bodies.length; i += BATCH) {
          const messages = bodies.slice(i, i + BATCH).map((body, j) => ({ id: `m-${run}-${s}-${i + j}`, timestamp: new Date(), attempts: 1, body }));
          const result = await worker.queue("keypool-events", messages);
          if (result.outcome !== "ok" || result.retryBatch.retry) throw new Error(`batch ${i / BATCH} was not stored: ${JSON.stringify(result)}`);
        }
        rates[shape]?.push(events / ((performance.now() - started) / 1000));
      }
    }
    const totals = await db.prepare("SELECT SUM(attempts) AS attempts FROM rollup_minute WHERE client_key_id = '*'").first();
    const expected = events * runs * Object.keys(SHAPES).length;
    if (totals?.attempts !== expected) throw new Error(`rollups hold ${totals?.attempts} attempts, expected ${expected}`);
    return rates;
  } finally {
    await mf.dispose();
  }
}
