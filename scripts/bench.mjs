// @ts-check
/**
 * `npm run bench`: every performance figure of docs/performance.md in one run,
 * printed as Markdown tables; with `--write FILE` also written into FILE's
 * generated section (with the date, the commit, the machine and this command).
 * All local, every loop bounded:
 * - over HTTP, side by side and alternating (scripts/bench/http.mjs): the mock
 *   upstream straight, the null Worker, Keypool's gateway alone and Keypool with
 *   events on over 10 and 10,000 keys, each in its own Miniflare; chat JSON (a
 *   one-word and a 44 kB prompt), SSE, paced SSE and SSE whose usage chunk
 *   Keypool hides, at 1 and 50 connections; where Keypool's CPU goes, against
 *   the metering floor; the admin stats API over 30 days × 1,000 keys of rollups;
 * - the stats consumer: events per second folded into local D1;
 * - key selection picks per second at 10 / 1,000 / 10,000 / 100,000 keys, and
 *   snapshot loading at 10,000 keys, in Node;
 * - the gateway bundle's gzipped size.
 *
 *   --events N  events per consumer run (20,000)   --runs N  repetitions (3)
 *   --write FILE  write the tables into FILE (docs/performance.md)
 *   --smoke  all of it for a fraction of a second each, 100 keys for the large
 *            pool; `npm test` runs it so the harness cannot rot (goals are not judged)
 */
import { build } from "esbuild";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { consumerRates } from "./bench/consumer.mjs";
import { runHttpBench } from "./bench/http.mjs";
import { benchReport } from "./bench/report.mjs";
import { flag, numberArg, stringArg } from "./lib/args.mjs";
import { runHeading, writeGenerated } from "./lib/report-page.mjs";
import { ROOT } from "./lib/stack.mjs";

const SMOKE = flag("smoke");
const EVENTS = numberArg("events", SMOKE ? 500 : 20_000);
const RUNS = numberArg("runs", SMOKE ? 1 : 3);
const WRITE = stringArg("write");
const COMMAND = `npm run bench -- --events ${EVENTS} --runs ${RUNS}${SMOKE ? " --smoke" : ""}${WRITE ? ` --write ${WRITE}` : ""}`;

const log = (/** @type {string} */ m) => console.error(`bench: ${m}`);
const started = new Date();
const work = mkdtempSync(path.join(tmpdir(), "keypool-bench-"));
for (const dir of ["consumer", "http"]) mkdirSync(path.join(work, dir));
try {
  log(`the consumer: ${EVENTS.toLocaleString("en-US")} events a shape, ${RUNS} run(s)…`);
  const consumer = await consumerRates(path.join(work, "consumer"), { events: EVENTS, runs: RUNS });

  log("key selection and snapshot loading, in Node…");
  const microFile = path.join(work, "micro.mjs");
  await build({ entryPoints: [path.join(ROOT, "bench/micro.ts")], outfile: microFile, bundle: true, format: "esm", platform: "node", logLevel: "warning" });
  /** @type {{ selectionRate(n: number, ms: number): number, snapshotLoadMs(n: number, runs: number): number[] }} (bench/micro.ts, bundled) */
  const micro = await import(microFile);
  /** @type {Record<number, number[]>} */
  const selection = {};
  for (const n of [10, 1_000, 10_000, 100_000]) selection[n] = Array.from({ length: RUNS }, () => micro.selectionRate(n, SMOKE ? 50 : 500));
  const snapshotLoad = micro.snapshotLoadMs(10_000, SMOKE ? 2 : 7).slice(SMOKE ? 1 : 2);

  const gatewayBundle = path.join(work, "gateway.min.js");
  await build({
    entryPoints: [path.join(ROOT, "gateway/index.ts")],
    outfile: gatewayBundle,
    bundle: true,
    format: "esm",
    platform: "neutral",
    minify: true,
    logLevel: "warning",
  });
  const bundleBytes = gzipSync(readFileSync(gatewayBundle)).length;

  const http = await runHttpBench(path.join(work, "http"), { runs: RUNS, smoke: SMOKE, log });

  const { markdown, missed } = benchReport({ consumer, selection, snapshotLoad, bundleBytes, http }, { smoke: SMOKE });
  const page = `${runHeading(COMMAND, started, new Date())}\n\n${markdown}`;
  console.log(`\n${page}\n`);
  if (!SMOKE && missed.length > 0) log(`${missed.length} goal(s) missed: ${missed.join("; ")}`);
  if (WRITE) log(`written to ${writeGenerated(WRITE, page, "Performance")}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
