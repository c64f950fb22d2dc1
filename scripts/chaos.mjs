// @ts-check
/**
 * `npm run chaos`: the real local stack (both Workers in one `wrangler dev`)
 * against the mock upstream with fault profiles, driven through the official
 * openai SDK; prints one table of figures with their goals, and with
 * `--write FILE` writes it into FILE's generated section (docs/reliability.md).
 *
 * 1. Faulty upstream (chaos/traffic.mjs): 20 keys, a random 30 % of attempts fail
 *    (429 with Retry-After, 500, a reset connection, a stall past the attempt
 *    timeout, an answer cut off mid-way, an SSE line that is no field), 2 more
 *    keys answer 401 from the start. Requests at a fixed concurrency, half of them
 *    streamed (half of those asking for usage themselves).
 * 2. Nothing lost, nothing doubled: once the queue has drained, requests, attempts
 *    and upstream-reported tokens in the rollups must equal what the client sent
 *    and what the mock saw and reported. Checked after run 1, and after two more
 *    runs of the same traffic whose consumer has faults injected
 *    (test/fixtures/workers/consumer-faults.ts): every batch delivered twice, and D1
 *    failing on 10 % of batches; and after one whose gateway's queue refuses half
 *    its sends (test/fixtures/workers/gateway-faults.ts), so events wait in the
 *    outbox until the scheduler, ticked here, sends them on.
 * 3. Bad input (chaos/security.mjs): test/worker/hostile-input.test.ts (npm test)
 *    sends what the fetch API can; here raw sockets send what it cannot (CR, LF,
 *    NUL in headers, folding, huge and countless headers) to the running stack.
 * 4. Soak (chaos/soak.mjs): steady mixed traffic (chat, streams, embeddings; 10 %
 *    faults) at a fixed rate; the success rate per window (no drift); the Keypool
 *    isolates' JS heap after a forced collection, read through the inspector (no
 *    growth trend), and the workerd processes' resident memory, sampled throughout.
 * 5. Secrets: everything the runtime printed during all of the above holds no
 *    upstream key, client key or secret; forged admin JWTs are refused; CORS on
 *    /v1 follows the setting and /admin never answers cross-origin.
 *
 *   --requests N (default 2,000)   --concurrency N (default 20)   --seed N (default 1)
 *   --soak-seconds N (default 600; 0 skips the soak)   --soak-rate N requests/s (default 40)
 *   --miniflare  run the two Workers in programmatic Miniflare (as `npm run bench`
 *            does) instead of `wrangler dev`, without wrangler's dev proxy in front
 *   --write FILE  write the table into FILE's generated section
 *   --smoke  200 requests a run and a 30 s soak; every goal enforced but the
 *            statistical ones (success rates, memory trend), which a few hundred
 *            requests cannot show; `npm test` runs this, so the harness cannot rot.
 * Exits 1 when a goal is missed.
 */
import { percentile } from "./lib/numbers.mjs";
import { runHeading, writeGenerated } from "./lib/report-page.mjs";
import { buildDashboard } from "./lib/stack.mjs";
import * as C from "./chaos/config.mjs";
import { Report } from "./chaos/report.mjs";
import { leaks, printed, secretsHeld, securityChecks } from "./chaos/security.mjs";
import { memoryTrend, soakRun } from "./chaos/soak.mjs";
import { burstRun } from "./chaos/traffic.mjs";

const pct = (/** @type {number} */ x) => `${(x * 100).toFixed(2)} %`;
const signed = (/** @type {number} */ x, /** @type {number} */ digits) => `${x >= 0 ? "+" : ""}${x.toFixed(digits)}`;

const report = new Report();
const { row, section } = { row: report.row.bind(report), section: report.section.bind(report) };
const started = new Date();
/** @type {string[]} Extra tables after the main one (the soak by window). */
const extra = [];

/** Parts 1 and 2: the burst, then the same traffic with the consumer's and the gateway's faults. */
async function burstParts() {
  C.log(`1. ${C.REQUESTS} requests at concurrency ${C.CONCURRENCY}, ${C.FAULT_RATE * 100} % faults on ${C.GOOD_KEYS} keys, ${C.DEAD_KEYS} keys answering 401…`);
  const base = await burstRun(null);
  section("1. Faulty upstream");
  row("client requests answered successfully", `${base.t.ok} of ${C.REQUESTS} (${pct(base.t.ok / C.REQUESTS)})`);
  row(
    "… of those neither cut after they began nor refused by the dev proxy",
    pct(base.t.servedOfServable),
    "≥ 99.5 %",
    report.statistical(base.t.servedOfServable >= 0.995),
  );
  row("failed in OpenAI error shape (no key could serve them), by status", `${base.t.errorShape} ${JSON.stringify(base.t.statuses)}`);
  row("answers cut off by the upstream after they began (not retryable)", String(base.t.cut));
  if (!C.MINIFLARE) row('refused by wrangler dev\'s proxy ("worker restarted mid-request"), never reaching Keypool', String(base.t.devProxy));
  row("other failures", String(base.t.other), "0", base.t.other === 0);
  row("attempts the mock saw / faults it injected", `${base.mock.stats.requests} / ${JSON.stringify(base.mock.stats.faults)}`);
  row("latency p50 / p99 (ms)", `${percentile(base.latencies, 0.5).toFixed(0)} / ${percentile(base.latencies, 0.99).toFixed(0)}`);
  row("throughput (requests/s)", (C.REQUESTS / base.seconds).toFixed(1));
  row("keys by state at the end", JSON.stringify(base.states), `${C.DEAD_KEYS} dead`, (base.states.dead ?? 0) === C.DEAD_KEYS);

  section("2. Nothing lost, nothing doubled");
  report.totals("run 1", base.stored, C.REQUESTS, base.t.devProxy, base.mock);
  for (const [label, faults] of /** @type {const} */ ([
    ["every batch delivered twice", { redeliver: true, seed: C.SEED }],
    ["D1 failing on 10 % of batches", { d1FailRate: 0.1, seed: C.SEED }],
  ])) {
    C.log(`2. the same traffic, the consumer with ${label}…`);
    const run = await burstRun(faults);
    const i = run.injected;
    const redeliver = "redeliver" in faults;
    const what = redeliver
      ? `${i?.handledTwice ?? "?"} batches handled twice, ${i?.resent ?? "?"} events sent back to the queue`
      : `${i?.d1FailedBefore ?? "?"} handled with D1 down (the queue retried them), ${i?.d1FailedAfter ?? "?"} committed with the answer lost, of ${i?.batches ?? "?"} batches`;
    const injectedAny = i !== null && (redeliver ? (i.handledTwice ?? 0) > 0 : (i.d1FailedBefore ?? 0) + (i.d1FailedAfter ?? 0) > 0);
    row(`${label}: faults the consumer injected`, what, "> 0", injectedAny);
    report.totals(label, run.stored, C.REQUESTS, run.t.devProxy, run.mock);
    row(`${label}: other failures`, String(run.t.other), "0", run.t.other === 0);
  }
  const refusing = "the gateway's queue refusing half its sends";
  if (C.MINIFLARE) row(`${refusing}: not run under --miniflare (it needs wrangler dev's scheduler route)`, "–");
  else {
    C.log(`2. the same traffic, ${refusing}…`);
    const run = await burstRun(null, { queueFailRate: 0.5, seed: C.SEED });
    const o = run.outbox ?? { kept: 0, sentOn: 0, refused: 0 };
    row(
      `${refusing}: sends refused; events refused three times, kept in the outbox / sent on by the cron`,
      `${o.refused}; ${o.kept} / ${o.sentOn}`,
      "> 0, equal",
      o.refused > 0 && o.kept > 0 && o.kept === o.sentOn,
    );
    report.totals(refusing, run.stored, C.REQUESTS, run.t.devProxy, run.mock, run.attemptsSeen);
    row(`${refusing}: other failures`, String(run.t.other), "0", run.t.other === 0);
  }
}

/** Part 4, with parts 3 and 5's live checks against the soaked stack; returns those checks. */
async function soakPart() {
  C.log(`4. soak: ${C.SOAK_SECONDS} s of mixed traffic at ${C.SOAK_RATE} requests/s, ${C.SOAK_FAULT_RATE * 100} % faults…`);
  const soak = await soakRun(securityChecks);
  section(`4. Soak: ${C.SOAK_SECONDS} s at ${C.SOAK_RATE} requests/s (chat, streams, embeddings; ${C.SOAK_FAULT_RATE * 100} % faults)`);
  row(`requests sent / skipped (over ${C.SOAK_MAX_IN_FLIGHT} in flight)`, `${soak.t.sent} / ${soak.skipped}`, "0 skipped", soak.skipped === 0);
  row(
    "answered successfully, of those neither cut nor refused by the dev proxy",
    pct(soak.t.servedOfServable),
    "≥ 99.5 %",
    report.statistical(soak.t.servedOfServable >= 0.995),
  );
  const worst = Math.min(...soak.windows.map((w) => w.servedOfServable));
  row(`… the worst ${C.SMOKE ? "5-second" : "minute"} window (error-rate drift)`, pct(worst), "≥ 99.5 % in every window", report.statistical(worst >= 0.995));
  row("other failures", String(soak.t.other), "0", soak.t.other === 0);
  const warmUpS = Math.min(120, C.SOAK_SECONDS / 5);
  for (const name of Object.keys(soak.heaps[0]?.by ?? {})) {
    const trend = memoryTrend(
      soak.heaps.map((h) => ({ x: h.x, y: h.by[name] ?? NaN })),
      warmUpS,
    );
    row(
      `${name} isolate: JS heap in use after a collection (MiB), after warm-up → end; fitted trend`,
      `${trend.start.toFixed(1)} → ${trend.end.toFixed(1)}; ${signed(trend.perMinute, 2)} MiB/min = ${signed(trend.growth * 100, 1)} % over ${trend.minutes.toFixed(1)} min`,
      `≤ +${C.MEMORY_GROWTH_LIMIT * 100} %`,
      Number.isNaN(trend.growth) ? undefined : report.statistical(trend.growth <= C.MEMORY_GROWTH_LIMIT),
    );
  }
  for (const pid of Object.keys(soak.rss.at(-1)?.by ?? {})) {
    const trend = memoryTrend(
      soak.rss.map((m) => ({ x: m.x, y: m.by[pid] ?? NaN })),
      warmUpS,
    );
    row(
      `workerd ${pid}, ${soak.roles[pid] ?? "?"}: resident memory (MiB), start → after warm-up → end; fitted trend`,
      `${(soak.rss[0]?.by[pid] ?? NaN).toFixed(0)} → ${trend.start.toFixed(0)} → ${trend.end.toFixed(0)}; ${signed(trend.perMinute, 1)} MiB/min = ${signed(trend.growth * 100, 1)} %`,
    );
  }
  report.totals("soak", soak.stored, soak.t.sent, soak.t.devProxy, soak.mock);
  extra.push(
    `### The soak by ${C.SMOKE ? "5-second" : "minute"} window\n`,
    "| from (s) | requests | served (of servable) | cut | p50 (ms) | workerd RSS (MiB) |",
    "|---|---|---|---|---|---|",
  );
  for (const w of soak.windows) extra.push(`| ${w.from} | ${w.sent} | ${pct(w.servedOfServable)} | ${w.cut} | ${w.p50.toFixed(0)} | ${w.memory.toFixed(0)} |`);
  return soak.checks;
}

/**
 * Parts 3 and 5: the raw requests, the scan of everything printed, the forged JWTs, CORS.
 * @param {import("./chaos/security.mjs").SecurityChecks | null} checks
 */
function securityParts(checks) {
  if (checks) {
    section("3. Bad input the fetch API cannot send (the rest: test/worker/hostile-input.test.ts)");
    // RFC 9112 lets a server take a bare CR or an obsolete fold as a space and a bare LF as a line end
    // instead of refusing the message; workerd does, so those are served — the client's own headers,
    // of which Keypool forwards only its allowlist, never an injected one.
    const mayServe = new Set(["bare CR in a header value", "bare LF splitting a header", "obsolete line folding"]);
    const ok = Object.entries(checks.raw.answers).every(
      ([what, a]) => a === "closed" || (Number(a) >= 400 && Number(a) < 500) || (mayServe.has(what) && a === "200"),
    );
    row(
      "raw requests: CR, LF, NUL in a header, folding, a space in a name, a 1 MiB header, 10,000 headers",
      JSON.stringify(checks.raw.answers),
      "4xx or closed; bare CR/LF and folding may be served (RFC 9112)",
      ok,
    );
    row(
      "… an injected header reaching the upstream / a good raw request right after",
      `${checks.raw.injectedUpstream} / ${checks.raw.good}`,
      "0 / 200",
      checks.raw.injectedUpstream === 0 && checks.raw.good === "200",
    );
  }
  section("5. Secrets");
  const allPrinted = printed.join("\n");
  const found = leaks(allPrinted);
  row(
    "runtime output scanned for every upstream key, client key and secret (any 16 characters in a row)",
    `${(allPrinted.length / 1024).toFixed(0)} KiB of ${C.MINIFLARE ? "workerd" : "wrangler"} output, ${secretsHeld.size} secrets: ${found.length === 0 ? "none found" : `found ${found.join(", ")}`}`,
    "none",
    found.length === 0 && allPrinted.length > 0,
  );
  if (!checks) return;
  const { jwt, anyOrigin, adminCrossOrigin, listed, unlisted } = checks;
  row(
    "admin JWT: valid HS256 (control) / alg none / HS512 / HS256 with another secret",
    `${jwt.valid} / ${jwt.none} / ${jwt.otherAlg} / ${jwt.otherSecret}`,
    "200 / 401 / 401 / 401",
    jwt.valid === 200 && jwt.none === 401 && jwt.otherAlg === 401 && jwt.otherSecret === 401,
  );
  row(
    "CORS default: /v1 preflight from any origin",
    `${anyOrigin.status}, allow-origin ${anyOrigin.acao}`,
    "204, *",
    anyOrigin.status === 204 && anyOrigin.acao === "*",
  );
  row("CORS on /admin (a cross-origin read with a valid token)", `allow-origin ${adminCrossOrigin.acao ?? "absent"}`, "absent", adminCrossOrigin.acao === null);
  row(
    "CORS with corsOrigins [https://app.example]: listed / other origin's preflight",
    `${listed.status} ${listed.acao} / ${unlisted.status} ${unlisted.acao ?? "–"}`,
    "204 https://app.example / 403 –",
    listed.status === 204 && listed.acao === "https://app.example" && unlisted.status === 403 && unlisted.acao === null,
  );
}

let failed = false;
try {
  if (!C.MINIFLARE) await buildDashboard({ quiet: true });
  await burstParts();
  const checks = C.SOAK_SECONDS > 0 ? await soakPart() : null;
  securityParts(checks);
  const heading = `${runHeading(C.command(), started, new Date())}\n- **Runtime:** ${C.MINIFLARE ? "both Workers in programmatic Miniflare" : "both Workers in one `wrangler dev`"}`;
  const page = [heading, "", report.markdown(), "", ...extra].join("\n");
  console.log(`\n${page}\n`);
  failed = report.failed();
  if (failed) console.error(`chaos: a goal was missed; the end of the runtime's output:\n${printed.join("\n").slice(-6000)}`);
  if (C.WRITE) C.log(`written to ${writeGenerated(C.WRITE, page, "Reliability")}`);
} catch (err) {
  failed = true;
  console.error(`chaos: ${err instanceof Error ? err.stack : err}\n${printed.join("\n").slice(-3000)}`);
}
process.exit(failed ? 1 : 0);
