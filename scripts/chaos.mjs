// @ts-check
/**
 * `npm run chaos`: the real local stack (both Workers in one `wrangler dev`)
 * against the mock upstream with a fault profile, driven through the official
 * openai SDK; prints one table of figures.
 *
 * Faulty upstream: 20 keys, a random 30 % of attempts fail (429 with
 * Retry-After, 500, a reset connection, a stall past the attempt timeout, an
 * answer cut off mid-way, an SSE line that is no field), 2 more keys answer 401
 * from the start. Requests at a fixed concurrency, half of them streamed (half
 * of those asking for usage themselves). Then, once the queue has drained:
 * requests, attempts and upstream-reported tokens in the rollups against what
 * the client sent and what the mock saw and reported — they must be equal.
 *
 *   --requests N (default 2,000)   --concurrency N (default 20)   --seed N (default 1)
 *   --miniflare  run the two Workers in programmatic Miniflare (as `npm run bench`
 *            does) instead of `wrangler dev`, without wrangler's dev proxy in front
 *   --smoke  200 requests, every goal enforced but the success rate (in a few
 *            hundred requests one request losing all six draws can miss 99.5 %
 *            by chance); `npm test` runs this, so the harness cannot rot.
 * Exits 1 when a goal is missed.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { Agent, fetch as undiciFetch } from "undici";
import { startMockUpstream } from "../tools/mock-upstream/server.mjs";
import { adminSession, waitForModel } from "./lib/admin-client.mjs";
import { applyMigrations, buildDashboard, freePort, generateSecrets, startWrangler } from "./lib/stack.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const SMOKE = process.argv.includes("--smoke");
const MINIFLARE = process.argv.includes("--miniflare");
const REQUESTS = arg("requests", SMOKE ? 200 : 2_000);
const CONCURRENCY = arg("concurrency", 20);
const SEED = arg("seed", 1);
const GOOD_KEYS = 20;
const DEAD_KEYS = 2;
const FAULT_RATE = 0.3;
/** The attempt timeout the run sets; the mock's stalls last longer. */
const ATTEMPT_TIMEOUT_MS = 1_500;

const log = (m) => console.error(`chaos: ${m}`);
const percentile = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))] ?? NaN;

const persistTo = mkdtempSync(path.join(tmpdir(), "keypool-chaos-"));
const mock = await startMockUpstream({ seed: SEED });
const keys = Array.from({ length: GOOD_KEYS + DEAD_KEYS }, (_, i) => `sk-chaos-${i}-${crypto.randomUUID().replaceAll("-", "")}`);
for (const key of keys.slice(0, GOOD_KEYS)) mock.setKeyBehavior(key, { faultRate: FAULT_RATE, stallMs: ATTEMPT_TIMEOUT_MS * 3, words: 12 });
for (const key of keys.slice(GOOD_KEYS)) mock.setKeyBehavior(key, { mode: "unauthorized" });
const settings = { maxAttempts: 6, attemptTimeoutMs: ATTEMPT_TIMEOUT_MS, requestDeadlineMs: 60_000 };

/** The stack under test with the pool and a client key: `wrangler dev`, or both Workers in Miniflare. */
async function startTarget() {
  if (MINIFLARE) {
    const { bundleKeypool, startKeypool } = await import("./lib/bench-http.mjs");
    const kp = await startKeypool(persistTo, await bundleKeypool(persistTo), "chaos", mock.baseUrl, 0, { keys, settings });
    return { url: kp.url, admin: kp.admin, clientKey: kp.clientKey, log: () => "(Miniflare: the runtime's log is not captured)", stop: kp.stop };
  }
  const secrets = generateSecrets();
  await buildDashboard({ quiet: true });
  await applyMigrations(persistTo, { quiet: true });
  const wrangler = startWrangler({ port: await freePort(), inspectorPort: await freePort(), persistTo, vars: secrets, quiet: true, logLevel: "info" });
  try {
    await wrangler.ready();
    const admin = await adminSession(wrangler.url, secrets.ADMIN_PASSWORD);
    await admin("PATCH", "/settings", settings);
    const upstream = /** @type {{ id: string }} */ (await admin("POST", "/upstreams", { name: "mock", baseUrl: mock.baseUrl, models: ["mock-gpt"] }));
    await admin("POST", "/keys", { upstreamId: upstream.id, text: keys.join("\n") });
    const clientKey = /** @type {{ key: string }} */ (await admin("POST", "/client-keys", { name: "chaos" })).key;
    await waitForModel(wrangler.url, clientKey, "mock-gpt", 60_000);
    return { url: wrangler.url, admin, clientKey, log: wrangler.log, stop: wrangler.stop };
  } catch (err) {
    await wrangler.stop();
    throw new Error(`${err instanceof Error ? err.message : err}\n${wrangler.log().slice(-3000)}`);
  }
}

let failed = false;
/** @type {Awaited<ReturnType<typeof startTarget>> | null} */
let stack = null;
try {
  stack = await startTarget();
  const { admin, clientKey } = stack;
  // A connection per request: a client reusing a kept-alive connection races the server
  // closing it (after an answer that was cut, say), and that request never reaches Keypool —
  // a transport failure the SDK would retry by default, here counted as "other".
  const fresh = new Agent({ pipelining: 0 });
  const openai = new OpenAI({
    baseURL: `${stack.url}/v1`,
    apiKey: clientKey,
    maxRetries: 0,
    timeout: 120_000,
    fetch: /** @type {typeof fetch} */ (/** @type {unknown} */ ((url, init) => undiciFetch(url, { ...init, dispatcher: fresh }))),
  });

  log(`${REQUESTS} requests at concurrency ${CONCURRENCY}, ${FAULT_RATE * 100} % faults on ${GOOD_KEYS} keys, ${DEAD_KEYS} keys answering 401…`);
  const outcome = { ok: 0, errorShape: 0, cutAfterStart: 0, devProxy: 0, other: 0 };
  /** @type {Record<string, number>} */
  const errorStatuses = {};
  const latencies = [];
  let next = 0;
  const started = Date.now();
  async function one(i) {
    const t0 = performance.now();
    const messages = [{ role: /** @type {const} */ ("user"), content: `chaos request ${i}` }];
    let began = false;
    try {
      if (i % 2 === 0) {
        const stream = await openai.chat.completions.create({ model: "mock-gpt", messages, stream: true, ...(i % 4 === 0 ? { stream_options: { include_usage: true } } : {}) });
        began = true;
        let finished = false;
        for await (const chunk of stream) if (chunk.choices[0]?.finish_reason) finished = true;
        // The SDK ends quietly when a stream stops short; an answer without its finish_reason was cut.
        if (!finished) throw new Error("the stream ended before its finish_reason");
      } else {
        await openai.chat.completions.create({ model: "mock-gpt", messages });
      }
      outcome.ok++;
    } catch (err) {
      if (err instanceof OpenAI.APIError && err.status === 503 && /restarted mid-request/.test(err.message)) {
        // wrangler dev's own proxy: its connection to the runtime failed before Keypool had the request.
        outcome.devProxy++;
      } else if (err instanceof OpenAI.APIError && typeof err.status === "number" && err.error && typeof err.error === "object") {
        outcome.errorShape++;
        errorStatuses[err.status] = (errorStatuses[err.status] ?? 0) + 1;
      } else if (began || /JSON|terminated|ECONNRESET|socket|body/i.test(String(err))) outcome.cutAfterStart++;
      else {
        outcome.other++;
        log(`unexpected failure: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      }
    }
    latencies.push(performance.now() - t0);
  }
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < REQUESTS) await one(next++);
    }),
  );
  const seconds = (Date.now() - started) / 1000;

  log("waiting for the queue to drain…");
  /** Today's totals for the model, from the day rollups. */
  const totals = async () => {
    const { rows } = /** @type {{ rows: { id: string, requests: number, attempts: number, tokens: number, estimatedTokens: number }[] }} */ (
      await admin("GET", "/stats/breakdown?by=model&bucket=day&count=2")
    );
    const row = rows.find((r) => r.id === "mock-gpt");
    return { requests: row?.requests ?? 0, attempts: row?.attempts ?? 0, tokens: row?.tokens ?? 0, estimated: row?.estimatedTokens ?? 0 };
  };
  let stored = await totals();
  for (let last = "", stable = Date.now(); Date.now() - stable < 5_000; await new Promise((r) => setTimeout(r, 250))) {
    stored = await totals();
    const now = JSON.stringify(stored);
    if (now !== last) stable = Date.now();
    last = now;
    if (stored.requests === REQUESTS - outcome.devProxy && stored.attempts === mock.stats.requests) break;
  }
  const list = /** @type {{ data: { state: string }[] }} */ (await admin("GET", "/keys?limit=100"));
  const states = list.data.reduce((acc, k) => ({ ...acc, [k.state]: (acc[k.state] ?? 0) + 1 }), /** @type {Record<string, number>} */ ({}));

  const served = outcome.ok / REQUESTS;
  const servedBeforeStart = outcome.ok / (REQUESTS - outcome.cutAfterStart - outcome.devProxy);
  const goals = [
    ["client requests answered successfully", `${outcome.ok} of ${REQUESTS} (${(served * 100).toFixed(2)} %)`, "–"],
    ["… of those neither cut after they began nor refused by the dev proxy", `${(servedBeforeStart * 100).toFixed(2)} %`, "≥ 99.5 %", SMOKE ? undefined : servedBeforeStart >= 0.995],
    ["failed in OpenAI error shape (no key could serve them), by status", `${outcome.errorShape} ${JSON.stringify(errorStatuses)}`, "–"],
    ["answers cut off by the upstream after they began (not retryable)", String(outcome.cutAfterStart), "–"],
    ...(MINIFLARE ? [] : [["refused by wrangler dev's proxy (\"worker restarted mid-request\"), never reaching Keypool", String(outcome.devProxy), "–"]]),
    ["other failures", String(outcome.other), "0", outcome.other === 0],
    ["attempts the mock saw / faults it injected", `${mock.stats.requests} / ${JSON.stringify(mock.stats.faults)}`, "–"],
    ["latency p50 / p99 (ms)", `${percentile(latencies, 0.5).toFixed(0)} / ${percentile(latencies, 0.99).toFixed(0)}`, "–"],
    ["throughput (requests/s)", (REQUESTS / seconds).toFixed(1), "–"],
    ["keys by state at the end", JSON.stringify(states), `${DEAD_KEYS} dead`, (states.dead ?? 0) === DEAD_KEYS],
    [
      `rollups: client requests = requests sent${MINIFLARE ? "" : " − refused by the dev proxy"}`,
      `${stored.requests} = ${REQUESTS - outcome.devProxy}`,
      "equal",
      stored.requests === REQUESTS - outcome.devProxy,
    ],
    ["rollups: attempts = attempts the mock saw", `${stored.attempts} = ${mock.stats.requests}`, "equal", stored.attempts === mock.stats.requests],
    ["rollups: upstream-reported tokens = tokens the mock reported", `${stored.tokens - stored.estimated} = ${mock.stats.reportedTokens}`, "equal", stored.tokens - stored.estimated === mock.stats.reportedTokens],
  ];
  console.log(`\nKeypool chaos run (${MINIFLARE ? "Miniflare" : "wrangler dev"}) — ${new Date().toISOString()}, node ${process.version}`);
  console.log(`command: npm run chaos -- --requests ${REQUESTS} --concurrency ${CONCURRENCY} --seed ${SEED}${MINIFLARE ? " --miniflare" : ""}${SMOKE ? " --smoke" : ""}\n`);
  console.log("| figure | value | goal |");
  console.log("|---|---|---|");
  for (const [what, value, goal, ok] of goals) {
    const verdict = ok === false ? " (missed)" : ok === undefined && goal !== "–" ? " (not checked with --smoke)" : "";
    console.log(`| ${what} | ${value}${verdict} | ${goal} |`);
  }
  failed = goals.some((g) => g[3] === false);
  if (failed) console.error(`chaos: a goal was missed; the end of the runtime's log:\n${stack.log().slice(-6000)}`);
} catch (err) {
  failed = true;
  console.error(`chaos: ${err instanceof Error ? err.stack : err}${stack ? `\n${stack.log().slice(-3000)}` : ""}`);
} finally {
  await stack?.stop();
  await mock.close();
  rmSync(persistTo, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
