// @ts-check
/**
 * `npm run profile`: where the runtime's CPU goes, per request, for the null
 * Worker and for Keypool (10 keys, events on), side by side — the native view
 * that workerd's inspector does not give. The inspector's profile shows
 * JavaScript; most of a request's CPU in workerd is not JavaScript but the
 * runtime around it: the Web API calls JavaScript makes, the objects they
 * create and later free, promise plumbing, garbage collection, HTTP.
 *
 * Runs Linux `perf record -g` (Debian: linux-perf) on each workerd process
 * while autocannon loads it (50 connections, as `npm run bench`), then folds
 * every sampled stack into one category and every Web API call on it into a
 * per-API total. Figures are µs of CPU per request; the sampling adds a few
 * per cent of its own, and one run on a shared machine is noisy — compare
 * the two columns of one run, not runs.
 *
 *   node scripts/profile.mjs [--seconds N (6)] [--scenario I (0: chat JSON; see SCENARIOS)] [--apis N (20)]
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { SCENARIOS } from "./bench/http.mjs";
import { loadMany } from "./bench/load.mjs";
import { bundleKeypool, startKeypool, startMock, startNullWorker } from "./bench/workers.mjs";
import { numberArg } from "./lib/args.mjs";
import { cpuSeconds } from "./lib/procfs.mjs";

/** @typedef {import("./bench/workers.mjs").Target} Target */

const SECONDS = numberArg("seconds", 6);
const SCENARIO_INDEX = numberArg("scenario", 0);
const TOP_APIS = numberArg("apis", 20);
/** Samples per second; each sample stands for 1 / HZ s of CPU. */
const HZ = 1999;

const SCENARIO = SCENARIOS[SCENARIO_INDEX];
if (!SCENARIO) throw new Error(`--scenario is 0 to ${SCENARIOS.length - 1}`);
const scenario = SCENARIO;
if (spawnSync("perf", ["--version"]).status !== 0) {
  console.error(
    "npm run profile needs Linux perf (Debian: apt-get install linux-perf), allowed to sample this user's processes (kernel.perf_event_paranoid ≤ 2).",
  );
  process.exit(1);
}

/**
 * The category of one sampled stack (frames leaf first), first match wins:
 * [name, pattern, how many frames from the leaf it is looked for in]. Where
 * the time went, not who asked for it: everything the consumer's handler does
 * counts as the consumer, everything under a Web API call as that call.
 */
const CATEGORIES = /** @type {const} */ ([
  ["garbage collection", /Scavenger|cppgc::|MarkCompact|Sweeper|ConcurrentMarking|Heap::CollectGarbage|MinorGC|MinorMS/, Infinity],
  ["D1 (SQLite in its Durable Object)", /^(sqlite3|workerd::api::SqlStorage|workerd::(ActorSqlite|SqliteDatabase))/, Infinity],
  ["the stats consumer's queue handler", /QueueCustomEvent::run/, Infinity],
  ["Web APIs called from JavaScript (with what they call)", /jsg::\w*Callback|jsg\d+\w*Callback|CallApiCallback|HandleApiConstruct/, Infinity],
  ["promise and microtask machinery", /Promise|Microtask|AsyncFunction|Generator/, 1],
  ["JavaScript (compiled code, builtins, JSON)", /\[JIT\]|perf-\d+\.map|^Builtins_|^v8::internal::(Runtime_|Json)/, 1],
  ["kernel (syscalls, page faults)", /\[kernel\.kallsyms\]/, 1],
  ["HTTP in and out (kj)", /Http/, 8],
]);
const OTHER = "the rest of the runtime (event loop, I/O glue, allocation)";
/** A jsg callback frame: the frame just leaf-side of it is the Web API method JavaScript called. */
const CALLBACK = /jsg::\w*Callback|jsg\d+\w*Callback|CallApiCallback|HandleApiConstruct|FunctionCallbackArguments/;
const API = /^(workerd::api::[\w:]+?)(?:\(| |<|$)/;

/**
 * Folds `perf script` output: µs per request by category and by Web API.
 * @param {string} data the perf.data file
 * @param {number} requests the requests served while it was recorded
 */
async function fold(data, requests) {
  const perf = spawn("perf", ["script", "-i", data, "-F", "ip,sym,dso"], { stdio: ["ignore", "pipe", "ignore"] });
  /** @type {Map<string, number>} */
  const byCategory = new Map();
  /** @type {Map<string, number>} */
  const byApi = new Map();
  /** @type {string[]} */
  let frames = [];
  const add = (/** @type {Map<string, number>} */ map, /** @type {string} */ key) => map.set(key, (map.get(key) ?? 0) + 1);
  const flush = () => {
    if (frames.length === 0) return;
    const stack = frames;
    frames = [];
    let category = OTHER;
    for (const [name, pattern, depth] of CATEGORIES) {
      if (stack.slice(0, depth).some((f) => pattern.test(f))) {
        category = name;
        break;
      }
    }
    add(byCategory, category);
    const seen = new Set();
    for (let i = 1; i < stack.length; i++) {
      if (!CALLBACK.test(stack[i] ?? "")) continue;
      for (let j = i - 1; j >= 0; j--) {
        const m = API.exec(stack[j] ?? "");
        if (m?.[1]) {
          if (!seen.has(m[1])) add(byApi, m[1]);
          seen.add(m[1]);
          break;
        }
      }
    }
  };
  for await (const line of createInterface({ input: /** @type {import("node:stream").Readable} */ (perf.stdout) })) {
    if (line.trim() === "") flush();
    else if (/^\s+[0-9a-f]+ /.test(line))
      frames.push(
        line
          .trim()
          .replace(/^[0-9a-f]+ /, "")
          .replace(/\+0x[0-9a-f]+/, ""),
      );
  }
  flush();
  const perRequest = (/** @type {number} */ n) => (n * 1e6) / HZ / requests;
  return { byCategory: new Map([...byCategory].map(([k, v]) => [k, perRequest(v)])), byApi: new Map([...byApi].map(([k, v]) => [k, perRequest(v)])) };
}

/**
 * Loads a target at 50 connections while perf samples its workerd process.
 * @param {Target & { pid: number }} target
 * @param {string} work
 * @param {string} name
 */
async function profile(target, work, name) {
  await loadMany(target, { connections: 50, seconds: 1, body: scenario.body }); // warm-up
  const data = path.join(work, `${name}.perf`);
  const perf = spawn("perf", ["record", "-F", String(HZ), "-g", "-q", "-o", data, "-p", String(target.pid)], { stdio: "ignore" });
  await new Promise((res) => setTimeout(res, 500));
  const cpu0 = cpuSeconds(target.pid);
  const before = target.attempts ? await target.attempts() : 0;
  const r = await loadMany(target, { connections: 50, seconds: SECONDS, body: scenario.body });
  // Keypool: until the consumer has stored this run's events (bounded), so their CPU is in the profile.
  for (let waited = 0; target.attempts && waited < 10_000 && (await target.attempts()) - before < r.requests; waited += 200)
    await new Promise((res) => setTimeout(res, 200));
  const cpuMs = ((cpuSeconds(target.pid) - cpu0) * 1000) / r.requests;
  perf.kill("SIGINT");
  await new Promise((res) => perf.once("exit", res));
  return { requests: r.requests, rps: r.rps, cpuMs, ...(await fold(data, r.requests)) };
}

const work = mkdtempSync(path.join(tmpdir(), "keypool-profile-"));
const mock = await startMock();
/** @type {(() => Promise<void> | void)[]} */
const stops = [() => mock.stop()];
try {
  await mock.behave(scenario.behavior);
  const nullWorker = /** @type {Target & { pid: number, stop: () => Promise<void> }} */ (await startNullWorker(work, mock.baseUrl));
  stops.push(nullWorker.stop);
  const keypool = await startKeypool(work, await bundleKeypool(work), "kp10", mock.baseUrl, 10);
  stops.push(keypool.stop);
  console.error(`profiling ${scenario.name}, 50 connections, ${SECONDS} s each…`);
  const a = await profile(nullWorker, work, "null");
  const b = await profile(keypool, work, "keypool");
  const us = (/** @type {number | undefined} */ v) => (v === undefined ? "–" : v.toFixed(1));
  /** @param {Map<string, number>} ma @param {Map<string, number>} mb @param {string[]} keys */
  const rows = (ma, mb, keys) => keys.map((k) => `| ${k} | ${us(ma.get(k))} | ${us(mb.get(k))} | ${us((mb.get(k) ?? 0) - (ma.get(k) ?? 0))} |`).join("\n");
  const sum = (/** @type {Map<string, number>} */ m) => [...m.values()].reduce((x, y) => x + y, 0);
  console.log(`\nKeypool native profile — ${new Date().toISOString()}, ${scenario.name}, 50 connections, ${SECONDS} s, perf at ${HZ} Hz`);
  console.log(
    `null Worker: ${a.requests} requests, ${a.rps.toFixed(0)}/s, ${(a.cpuMs * 1000).toFixed(0)} µs CPU each (/proc); Keypool, 10 keys: ${b.requests}, ${b.rps.toFixed(0)}/s, ${(b.cpuMs * 1000).toFixed(0)} µs`,
  );
  console.log("\n| where the time went (µs of CPU per request) | null Worker | Keypool | difference |\n|---|---|---|---|");
  console.log(rows(a.byCategory, b.byCategory, [...CATEGORIES.map(([n]) => n), OTHER]));
  console.log(`| all sampled | ${us(sum(a.byCategory))} | ${us(sum(b.byCategory))} | ${us(sum(b.byCategory) - sum(a.byCategory))} |`);
  const apis = [...new Set([...a.byApi.keys(), ...b.byApi.keys()])].sort(
    (x, y) => (b.byApi.get(y) ?? 0) - (a.byApi.get(y) ?? 0) - ((b.byApi.get(x) ?? 0) - (a.byApi.get(x) ?? 0)),
  );
  console.log(
    `\n| Web API called from JavaScript, with what it calls (µs per request; nested calls count in each) | null Worker | Keypool | difference |\n|---|---|---|---|`,
  );
  console.log(rows(a.byApi, b.byApi, apis.slice(0, TOP_APIS)));
} finally {
  for (const stop of stops.reverse()) await stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(0);
