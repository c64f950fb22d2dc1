// @ts-check
/**
 * `npm run bench`'s tables, as Markdown: the goals first (each measured value
 * against its goal), then every figure they come from.
 */
import { SHAPES } from "./consumer.mjs";
import { median } from "../lib/numbers.mjs";
import { CHUNK_RELAY_FLOOR, FLOOR_WITH_LOG, LONG_STREAM, SCENARIOS, TARGETS, longKey } from "./http.mjs";

/** @typedef {import("./load.mjs").Run} Run */
/** @typedef {import("./http.mjs").HttpResults} HttpResults */

/**
 * @typedef {object} BenchResults
 * @property {Record<string, number[]>} consumer events/s by message shape
 * @property {Record<number, number[]>} selection picks/s by pool size
 * @property {number[]} snapshotLoad ms to load a 10,000-key snapshot
 * @property {number} bundleBytes the gateway bundle, minified and gzipped
 * @property {HttpResults} http
 */

/** @param {number} x */
const fmt = (x) => Math.round(x).toLocaleString("en-US");
/** @param {number} x */
const ms = (x) => (Number.isNaN(x) ? "–" : x.toFixed(2));

/**
 * The median of `f` over runs.
 * @param {Run[]} runs
 * @param {(r: Run) => number} f
 */
const med = (runs, f) => median(runs.map(f));

/**
 * "median (min – max)" of requests/s, and how many errors the runs had.
 * @param {Run[]} runs
 */
function throughput(runs) {
  const rps = runs.map((r) => r.rps);
  const errors = runs.reduce((n, r) => n + r.errors, 0);
  return `${fmt(median(rps))} (${fmt(Math.min(...rps))} – ${fmt(Math.max(...rps))})${errors ? ` ${errors} errors` : ""}`;
}

/**
 * Events stored / responses counted over a target's runs; "–" for a target that stores none.
 * @param {Run[]} runs
 */
function stored(runs) {
  if (runs.every((r) => Number.isNaN(r.counted))) return "–";
  return `${fmt(runs.reduce((n, r) => n + r.counted, 0))} / ${fmt(runs.reduce((n, r) => n + r.requests, 0))}`;
}

/**
 * The goals and every figure of a run, as Markdown.
 * @param {BenchResults} b
 * @param {{ smoke: boolean }} options
 * @returns {{ markdown: string, missed: string[] }}
 */
export function benchReport(b, { smoke }) {
  const { results, long, breakdown, stats, requestLog, largePool } = b.http;
  const out = [];
  /** @type {string[]} */
  const missed = [];
  const label = (/** @type {string} */ t) => (t === "Keypool, large pool" ? `Keypool, ${fmt(largePool)} keys` : t);
  /** @param {string} scenario @param {number} c @param {import("./http.mjs").TargetName} t */
  const runsOf = (scenario, c, t) => results[scenario]?.[c]?.[t] ?? [];
  const [json, sse, paced] = SCENARIOS.map((s) => s.name);
  const nullOf = (/** @type {string} */ s, /** @type {number} */ c, /** @type {(r: Run) => number} */ f) => med(runsOf(s, c, "null Worker"), f);

  /** @type {string[][]} */
  const goals = [];
  const section = (/** @type {string} */ title) => goals.push([`**${title}**`, "", ""]);
  /**
   * @param {string} what
   * @param {number} value
   * @param {string} goal
   * @param {((v: number) => boolean) | null} ok
   * @param {number} digits
   */
  const goal = (what, value, goal, ok, digits = 2) => {
    const met = ok === null || Number.isNaN(value) ? null : ok(value);
    if (met === false) missed.push(what);
    const shown = Number.isNaN(value) ? "–" : digits === 0 ? fmt(value) : value.toFixed(digits);
    goals.push([what, `${shown}${met === false ? " (missed)" : ""}`, goal]);
  };
  const atLeast = (/** @type {number} */ g) => (/** @type {number} */ v) => v >= g;
  const atMost = (/** @type {number} */ g) => (/** @type {number} */ v) => v <= g;

  section("(a) Keypool's gateway alone (its events not sent) against the null Worker, 50 connections");
  for (const s of [json, sse]) {
    if (!s) continue;
    goal(
      `${s}: throughput ÷ null Worker's`,
      med(runsOf(s, 50, "Keypool gateway alone, 10 keys"), (r) => r.rps) / nullOf(s, 50, (r) => r.rps),
      "≥ 0.80",
      atLeast(0.8),
    );
    goal(
      `${s}: CPU per request ÷ null Worker's`,
      med(runsOf(s, 50, "Keypool gateway alone, 10 keys"), (r) => r.cpuMs) / nullOf(s, 50, (r) => r.cpuMs),
      "≤ 1.30",
      atMost(1.3),
    );
  }
  section("(b) The stats consumer: events folded into local D1 per second (packed as the gateway sends them)");
  for (const [shape, rates] of Object.entries(b.consumer)) {
    const applies = SHAPES[/** @type {keyof typeof SHAPES} */ (shape)]?.goal ?? false;
    goal(shape, median(rates), applies ? "≥ 5,000" : "– (the gateway never sends this shape)", applies ? atLeast(5_000) : null, 0);
  }
  section(`(c) The whole pipeline, events on (Keypool, 10 keys) against the metering floor with its log: ${json}, 50 connections`);
  const pipeline = breakdown["Keypool, 10 keys"] ?? [];
  const floorLog = breakdown[FLOOR_WITH_LOG] ?? [];
  goal("CPU per request ÷ the floor's", med(pipeline, (r) => r.cpuMs) / med(floorLog, (r) => r.cpuMs), "– (reported)", null);
  goal("throughput ÷ the floor's", med(pipeline, (r) => r.rps) / med(floorLog, (r) => r.rps), "– (reported)", null);
  section("Latency and streaming, Keypool with events on: 10 keys | large pool, 1 connection");
  for (const t of /** @type {const} */ (["Keypool, 10 keys", "Keypool, large pool"])) {
    if (!json || !sse || !paced) break;
    goal(`${label(t)} — ${json}: added p50 latency (ms)`, med(runsOf(json, 1, t), (r) => r.p50) - nullOf(json, 1, (r) => r.p50), "≤ 0.30", atMost(0.3));
    goal(`${label(t)} — ${sse}: added time to first byte (ms)`, med(runsOf(sse, 1, t), (r) => r.ttfb) - nullOf(sse, 1, (r) => r.ttfb), "≤ 0.50", atMost(0.5));
    goal(
      `${label(t)} — ${paced}: total time ÷ null Worker's`,
      med(runsOf(paced, 1, t), (r) => r.p50) / nullOf(paced, 1, (r) => r.p50),
      "≤ 1.02",
      atMost(1.02),
      3,
    );
  }
  const [few, many] = LONG_STREAM.chunks;
  /** Median of `f` over a long-stream cell. */
  const longMed = (
    /** @type {import("./http.mjs").UsageAsk} */ ask,
    /** @type {number} */ chunks,
    /** @type {number} */ c,
    /** @type {string} */ t,
    /** @type {(r: Run) => number} */ f,
  ) => med(long[longKey(ask, chunks, c, t)] ?? [], f);
  /** CPU ms a target (Keypool unless said) adds to a stream over the null Worker's. */
  const addedCpu = (/** @type {import("./http.mjs").UsageAsk} */ ask, /** @type {number} */ chunks, /** @type {number} */ c, t = "Keypool, 10 keys") =>
    longMed(ask, chunks, c, t, (r) => r.cpuMs) - longMed(ask, chunks, c, "null Worker", (r) => r.cpuMs);
  /** What a target adds per chunk: the growth of its added CPU from the short stream to the long one, per chunk more (µs). */
  const perChunk = (/** @type {import("./http.mjs").UsageAsk} */ ask, /** @type {number} */ c, t = "Keypool, 10 keys") =>
    ((addedCpu(ask, many, c, t) - addedCpu(ask, few, c, t)) / (many - few)) * 1000;
  const [, manyConnections] = LONG_STREAM.connections;
  section(`Long streams, ${LONG_STREAM.chunkDelayMs} ms a chunk, Keypool with events on (10 keys) against the null Worker`);
  for (const ask of /** @type {const} */ (["asked", "not asked"])) {
    const who = ask === "asked" ? "client asked for usage" : "client did not ask (Keypool leaves its usage chunk out)";
    goal(`${who}: added CPU per chunk (µs), ${manyConnections} connections`, perChunk(ask, manyConnections), "≤ 5", atMost(5), 1);
    goal(`${who}: a ${fmt(many)}-chunk stream's added CPU (ms), ${manyConnections} connections`, addedCpu(ask, many, manyConnections), "≤ 10", atMost(10));
    goal(
      `${who}: a ${fmt(many)}-chunk stream's total time ÷ null Worker's, 1 connection`,
      longMed(ask, many, 1, "Keypool, 10 keys", (r) => r.p50) / longMed(ask, many, 1, "null Worker", (r) => r.p50),
      "≤ 1.02",
      atMost(1.02),
      3,
    );
    goal(
      `${who}: added time to first byte (ms), ${fmt(few)} chunks, 1 connection`,
      longMed(ask, few, 1, "Keypool, 10 keys", (r) => r.ttfb) - longMed(ask, few, 1, "null Worker", (r) => r.ttfb),
      "≤ 0.50",
      atMost(0.5),
    );
  }
  goal(
    `${CHUNK_RELAY_FLOOR} (each chunk read and written on in JavaScript, nothing else): added CPU per chunk (µs), ${manyConnections} connections`,
    perChunk("not asked", manyConnections, CHUNK_RELAY_FLOOR),
    "– (reported)",
    null,
    1,
  );
  section("Selection, snapshot, stats API, bundle");
  const picks = (/** @type {number} */ n) => median(b.selection[n] ?? []);
  goal("key selection: picks/s at 100,000 keys ÷ at 10 keys", picks(100_000) / picks(10), "≥ 0.50", atLeast(0.5));
  goal("snapshot load at 10,000 keys: parse + validate + index (ms)", median(b.snapshotLoad), "≤ 50", atMost(50), 1);
  for (const [what, t] of Object.entries(stats)) {
    const limit = what.startsWith("summary") ? 50 : what.includes("series") ? 150 : null;
    goal(`stats API: ${what} (ms)`, t, limit === null ? "–" : `≤ ${limit}`, limit === null ? null : atMost(limit), 1);
  }
  for (const [what, t] of Object.entries(requestLog.times)) goal(`request log, ${fmt(requestLog.size)} requests: ${what} (ms)`, t, "≤ 100", atMost(100), 1);
  goal("gateway bundle, minified, gzipped (kB)", b.bundleBytes / 1024, "≤ 1,024", atMost(1024), 1);

  out.push("### Goals\n");
  if (smoke)
    out.push("A `--smoke` run: a fraction of a second per figure, 100 keys for the large pool — it shows the harness works, not how fast Keypool is.\n");
  out.push("| measured | value | goal |", "|---|---|---|", ...goals.map((r) => `| ${r.join(" | ")} |`));

  out.push("\n### Over HTTP, side by side\n");
  out.push(
    "| scenario | connections | target | requests/s median (min – max) | p50 ms | p99 ms | first byte p50 ms | CPU ms / request | events stored / requests |",
    "|---|---|---|---|---|---|---|---|---|",
  );
  for (const { name } of SCENARIOS) {
    for (const c of [1, 50]) {
      for (const t of TARGETS) {
        const runs = runsOf(name, c, t);
        out.push(
          `| ${name} | ${c} | ${label(t)} | ${throughput(runs)} | ${ms(med(runs, (r) => r.p50))} | ${ms(med(runs, (r) => r.p99))} | ${ms(med(runs, (r) => r.ttfb))} | ${t === "direct" ? "–" : ms(med(runs, (r) => r.cpuMs))} | ${stored(runs)} |`,
        );
      }
    }
  }

  out.push(`\n### Long streams: chunks ${LONG_STREAM.chunkDelayMs} ms apart, each its own write\n`);
  out.push(
    "Added per chunk: how much more CPU Keypool adds to a stream of " +
      `${fmt(many)} chunks than to one of ${fmt(few)}, per chunk more — what a longer answer costs, apart from what every request costs.\n`,
  );
  out.push(
    "| usage | chunks | connections | target | requests/s median (min – max) | p50 ms | first byte p50 ms | CPU ms / request | added over null Worker ms |",
    "|---|---|---|---|---|---|---|---|---|",
  );
  for (const ask of /** @type {const} */ (["asked", "not asked"])) {
    for (const chunks of LONG_STREAM.chunks) {
      for (const c of LONG_STREAM.connections) {
        for (const t of LONG_STREAM.targets) {
          const runs = long[longKey(ask, chunks, c, t)] ?? [];
          const added = t === "null Worker" ? "–" : ms(addedCpu(ask, chunks, c, t));
          out.push(
            `| ${ask} | ${fmt(chunks)} | ${c} | ${t} | ${throughput(runs)} | ${ms(med(runs, (r) => r.p50))} | ${ms(med(runs, (r) => r.ttfb))} | ${ms(med(runs, (r) => r.cpuMs))} | ${added} |`,
          );
        }
      }
    }
  }
  for (const ask of /** @type {const} */ (["asked", "not asked"]))
    for (const c of LONG_STREAM.connections)
      out.push(
        `\nAdded per chunk, usage ${ask}, ${c} connection(s): Keypool ${perChunk(ask, c).toFixed(1)} µs, ${CHUNK_RELAY_FLOOR} ${perChunk(ask, c, CHUNK_RELAY_FLOOR).toFixed(1)} µs.`,
      );

  out.push(`\n### Where Keypool's CPU goes: ${json}, 50 connections\n`);
  const nullCpu = med(breakdown["null Worker"] ?? [], (r) => r.cpuMs);
  out.push("| target | requests/s median (min – max) | CPU ms / request | ÷ null Worker's | events stored / requests |", "|---|---|---|---|---|");
  for (const [target, runs] of Object.entries(breakdown)) {
    const cpu = med(runs, (r) => r.cpuMs);
    out.push(`| ${target} | ${throughput(runs)} | ${ms(cpu)} | ${(cpu / nullCpu).toFixed(2)} | ${stored(runs)} |`);
  }

  out.push("\n### In-process figures\n");
  out.push("| measurement | median | min – max | runs |", "|---|---|---|---|");
  const row = (/** @type {string} */ what, /** @type {number[]} */ xs, digits = 0) => {
    const f = (/** @type {number} */ x) => (digits === 0 ? fmt(x) : x.toFixed(digits));
    out.push(`| ${what} | ${f(median(xs))} | ${f(Math.min(...xs))} – ${f(Math.max(...xs))} | ${xs.length} |`);
  };
  for (const [shape, xs] of Object.entries(b.consumer)) row(`consumer: events folded into local D1 per second, ${shape}`, xs);
  for (const [n, xs] of Object.entries(b.selection)) row(`key selection: picks per second, ${fmt(Number(n))} keys`, xs);
  row("snapshot load at 10,000 keys: parse + validate + index (ms)", b.snapshotLoad, 1);

  out.push("\n### Admin stats API over 30 days × 1,000 keys of rollups\n");
  out.push("| query | median ms (15 answers) |", "|---|---|");
  for (const [what, t] of Object.entries(stats)) out.push(`| ${what} | ${t.toFixed(1)} |`);

  out.push(`\n### Request log over ${fmt(requestLog.size)} requests (7 days, 1,000 keys, 100 client keys)\n`);
  out.push("| page | median ms (15 answers) |", "|---|---|");
  for (const [what, t] of Object.entries(requestLog.times)) out.push(`| ${what} | ${t.toFixed(1)} |`);
  return { markdown: out.join("\n"), missed };
}
