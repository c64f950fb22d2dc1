// @ts-check
/**
 * Parts 1 and 2 of the chaos run: client traffic through the openai SDK, how
 * each request ended, and the totals the rollups must hold once the queue has
 * drained — the burst against a fresh stack and mock, with or without faults.
 */
import OpenAI from "openai";
import { tickScheduler } from "../lib/stack.mjs";
import { CONCURRENCY, FAULT_RATE, REQUESTS, SEED, log, sleep } from "./config.mjs";
import { sdkFor, startFaultyMock, startStack } from "./stack.mjs";

/**
 * How one request ended: ok, errorShape (an OpenAI error from Keypool), cut (the
 * upstream stopped an answer that had begun), devProxy (wrangler's proxy refused
 * it before Keypool had it) or other; its status (errorShape) and how long it took.
 * @typedef {{ outcome: "ok" | "errorShape" | "cut" | "devProxy" | "other", status?: number, ms: number }} Outcome
 */

/**
 * One request of the mix and how it ended.
 * @param {OpenAI} openai
 * @param {number} i
 * @param {"burst" | "soak"} mix
 * @returns {Promise<Outcome>}
 */
export async function oneRequest(openai, i, mix) {
  const t0 = performance.now();
  const messages = [
    { role: /** @type {const} */ ("user"), content: `chaos request ${i}${mix === "soak" && i % 8 === 7 ? " with a longer prompt".repeat(40) : ""}` },
  ];
  const kind =
    mix === "burst"
      ? i % 4 === 0
        ? "stream+usage"
        : i % 2 === 0
          ? "stream"
          : "json"
      : ["json", "json", "json", "stream", "stream", "stream+usage", "embeddings", "json"][i % 8];
  let began = false;
  /** @type {Outcome} */
  const result = { outcome: "ok", ms: 0 };
  try {
    if (kind === "embeddings") {
      await openai.embeddings.create({ model: "mock-gpt", input: [`chaos ${i}`, "second input"] });
    } else if (kind !== "json") {
      const stream = await openai.chat.completions.create({
        model: "mock-gpt",
        messages,
        stream: true,
        ...(kind === "stream+usage" ? { stream_options: { include_usage: true } } : {}),
      });
      began = true;
      let finished = false;
      for await (const chunk of stream) if (chunk.choices[0]?.finish_reason) finished = true;
      // The SDK ends quietly when a stream stops short; an answer without its finish_reason was cut.
      if (!finished) throw new Error("the stream ended before its finish_reason");
    } else {
      await openai.chat.completions.create({ model: "mock-gpt", messages });
    }
  } catch (err) {
    if (err instanceof OpenAI.APIError && err.status === 503 && /restarted mid-request/.test(err.message)) result.outcome = "devProxy";
    else if (err instanceof OpenAI.APIError && typeof err.status === "number" && err.error && typeof err.error === "object") {
      result.outcome = "errorShape";
      result.status = err.status;
    } else if (began || /JSON|terminated|ECONNRESET|socket|body/i.test(String(err))) result.outcome = "cut";
    else {
      result.outcome = "other";
      log(`unexpected failure: ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
    }
  }
  result.ms = performance.now() - t0;
  return result;
}

/**
 * Outcome counts of a list of results, and the share served of those that could be.
 * @param {Outcome[]} results
 */
export function tally(results) {
  const t = { sent: results.length, ok: 0, errorShape: 0, cut: 0, devProxy: 0, other: 0, statuses: /** @type {Record<string, number>} */ ({}) };
  for (const r of results) {
    t[r.outcome]++;
    if (r.status) t.statuses[r.status] = (t.statuses[r.status] ?? 0) + 1;
  }
  return { ...t, servedOfServable: t.ok / Math.max(1, t.sent - t.cut - t.devProxy) };
}
/** @typedef {ReturnType<typeof tally>} Tally */

/** @typedef {{ requests: number, attempts: number, reported: number }} Stored */

/**
 * Waits until the queue has drained: today's totals for the model, from the day rollups,
 * equal what was sent and seen (or stop changing for 5 s).
 * @param {import("../lib/admin-client.mjs").AdminCall} admin
 * @param {() => number} expectRequests
 * @param {() => number} expectAttempts
 * @returns {Promise<Stored>}
 */
export async function drainedTotals(admin, expectRequests, expectAttempts) {
  const totals = async () => {
    const { rows } = /** @type {{ rows: { id: string, requests: number, attempts: number, tokens: number, estimatedTokens: number }[] }} */ (
      await admin("GET", "/stats/breakdown?by=model&bucket=day&count=2")
    );
    const row = rows.find((r) => r.id === "mock-gpt");
    return { requests: row?.requests ?? 0, attempts: row?.attempts ?? 0, reported: (row?.tokens ?? 0) - (row?.estimatedTokens ?? 0) };
  };
  let stored = await totals();
  for (let last = "", stable = Date.now(); Date.now() - stable < 5_000; await sleep(250)) {
    stored = await totals();
    const now = JSON.stringify(stored);
    if (now !== last) stable = Date.now();
    last = now;
    if (stored.requests === expectRequests() && stored.attempts === expectAttempts()) break;
  }
  return stored;
}

/**
 * The sum of the first capture of `pattern` over every match in `text`.
 * @param {string} text
 * @param {RegExp} pattern
 */
const sumOf = (text, pattern) => [...text.matchAll(pattern)].reduce((n, m) => n + Number(m[1]), 0);

/**
 * Ticks the scheduler until every event the gateway kept in the outbox has been
 * sent on and nothing waits (at most 60 s): events the gateway's queue refused
 * reach the consumer only this way. It first lets the last requests' sends
 * finish their retries (50 + 250 ms) and land in the outbox.
 * @param {{ url: string, log: () => string }} stack
 */
async function drainOutbox(stack) {
  const reports = () => [...stack.log().matchAll(/keypool scheduler: .*, outbox (.*)$/gm)].map((m) => m[1]);
  const counts = () => {
    const log = stack.log();
    return { kept: sumOf(log, /(\d+) event\(s\) kept in the outbox/g), sentOn: sumOf(log, /outbox (\d+) event\(s\) sent/g) };
  };
  await sleep(2_000);
  // Done when two ticks in a row (a second apart) find everything kept sent on and nothing waiting.
  for (let settled = 0, deadline = Date.now() + 60_000; settled < 2 && Date.now() < deadline; await sleep(1_000)) {
    const seen = reports().length;
    await tickScheduler(stack.url);
    while (reports().length === seen && Date.now() < deadline) await sleep(100);
    const last = reports().at(-1) ?? "";
    const { kept, sentOn } = counts();
    settled = (last === "empty" || last.endsWith(" 0 message(s) waiting")) && kept === sentOn ? settled + 1 : 0;
  }
  const refused = JSON.parse([...stack.log().matchAll(/keypool gateway faults: (\{.*\})/g)].at(-1)?.[1] ?? "null")?.refused ?? 0;
  return { ...counts(), refused: Number(refused) };
}

/**
 * The burst of REQUESTS at CONCURRENCY against a fresh stack and mock; its figures and totals.
 * @param {Record<string, unknown> | null} consumerFaults
 * @param {Record<string, unknown> | null} [gatewayFaults]
 */
export async function burstRun(consumerFaults, gatewayFaults = null) {
  const { mock, keys } = await startFaultyMock(FAULT_RATE, SEED);
  const stack = await startStack(mock.baseUrl, keys, consumerFaults, gatewayFaults);
  try {
    const openai = sdkFor(stack);
    /** @type {Outcome[]} */
    const results = [];
    let next = 0;
    const started = Date.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < REQUESTS) results.push(await oneRequest(openai, next++, "burst"));
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const t = tally(results);
    // The attempts the traffic made, before any scheduler tick (whose probes the mock would count too).
    const attemptsSeen = mock.stats.requests;
    const outbox = gatewayFaults ? await drainOutbox(stack) : null;
    const stored = await drainedTotals(
      stack.admin,
      () => REQUESTS - t.devProxy,
      () => (gatewayFaults ? attemptsSeen : mock.stats.requests),
    );
    const list = /** @type {{ data: { state: string }[] }} */ (await stack.admin("GET", "/keys?limit=100"));
    const states = list.data.reduce((acc, k) => ({ ...acc, [k.state]: (acc[k.state] ?? 0) + 1 }), /** @type {Record<string, number>} */ ({}));
    const injected = [...stack.log().matchAll(/keypool consumer faults: (\{.*\})/g)].at(-1)?.[1];
    return {
      t,
      seconds,
      stored,
      mock,
      attemptsSeen: gatewayFaults ? attemptsSeen : mock.stats.requests,
      states,
      latencies: results.map((r) => r.ms),
      /** @type {Record<string, number> | null} */
      injected: injected ? JSON.parse(injected) : null,
      outbox,
    };
  } finally {
    await stack.stop();
    await mock.close();
  }
}
