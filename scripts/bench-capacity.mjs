// @ts-check
/**
 * `npm run bench:capacity`: how Keypool spends limited keys, against the mock
 * upstream enforcing per-key limits (fixed minute windows, and a UTC-day quota).
 * Two local stacks (`wrangler dev`, both Workers each): Keypool as it is, and
 * Keypool with `learnLimits` off — a key cooled only when refused, what it did
 * before it knew of limits — run side by side at once on the same mock so they
 * share the machine's noise. Every scenario has its own upstream, keys, model
 * and client: a way of knowing the limits and an offered load (open loop,
 * Poisson arrivals) as a share of the pool's capacity:
 *
 * - headers: the provider sends its rate-limit headers; nothing configured;
 * - configured: no headers; the limits configured in Keypool;
 * - 429s only: no headers, nothing configured: Keypool reads each key's limit
 *   from its first 429 of a window;
 * - reactive, headers / reactive, no headers: the same keys on the reactive stack;
 * - daily: a day's quota configured and enforced, no headers, offered 150 %
 *   until the pool's day is spent.
 *
 * Figures per scenario: upstream 429s per 1,000 client requests, client
 * success, Keypool's own 429s and how near their Retry-After came to when the
 * pool next served (the first success of a request sent after it), the spread of use across keys
 * (max ÷ min served), and the most 429s one key took in one window after its
 * first. Printed as Markdown; `--write FILE` puts it in FILE's generated section.
 *
 *   --minutes N  how long the load runs (3)   --keys N  keys per scenario (20)
 *   --rpm N  each key's requests per minute (10)   --write FILE
 *   --smoke  a few seconds, 3 keys: `npm test` runs it so the harness cannot rot (goals are not judged)
 *   --only TEXT  only the scenarios whose name holds TEXT (not with --write)
 *   --outcomes FILE  every client request's outcome, per scenario, as JSON (to look into a miss)
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { adminSession, provisionPool } from "./lib/admin-client.mjs";
import { flag, numberArg, stringArg } from "./lib/args.mjs";
import { median, percentile } from "./lib/numbers.mjs";
import { runHeading, writeGenerated } from "./lib/report-page.mjs";
import { ROOT, applyMigrations, buildDashboard, generateSecrets, startWranglerOnFreePorts } from "./lib/stack.mjs";
import { startMockUpstream } from "../tools/mock-upstream/server.mjs";
import { seeded } from "../tools/seeded.mjs";

const SMOKE = flag("smoke");
const MINUTES = numberArg("minutes", SMOKE ? 0.1 : 3);
const KEYS = numberArg("keys", SMOKE ? 3 : 20);
const RPM = numberArg("rpm", 10);
const WRITE = stringArg("write");
const ONLY = stringArg("only");
const OUTCOMES = stringArg("outcomes");
if (ONLY && WRITE) throw new Error("--only measures part of the table: it cannot --write it");
const COMMAND = `npm run bench:capacity -- --minutes ${MINUTES} --keys ${KEYS} --rpm ${RPM}${SMOKE ? " --smoke" : ""}${WRITE ? ` --write ${WRITE}` : ""}`;
const log = (/** @type {string} */ m) => console.error(`bench:capacity: ${m}`);

/** A day's quota per key in the daily scenario: the pool's day runs out about a third of the way into the run. */
const DAILY_QUOTA = Math.max(2, Math.round((RPM * 1.5 * MINUTES) / 3));

/**
 * @typedef {{ name: string, mode: "headers" | "configured" | "429s" | "reactive" | "daily", stack: "keypool" | "reactive", load: number,
 *   mock: Record<string, unknown>, keypool: Record<string, unknown> }} Scenario
 */

/** @type {Scenario[]} */
const SCENARIOS = [];
for (const load of [0.5, 0.9, 1.5]) {
  const at = `${load * 100} %`;
  SCENARIOS.push(
    { name: `headers, ${at}`, mode: "headers", stack: "keypool", load, mock: { requests: RPM, headers: true }, keypool: {} },
    { name: `configured, ${at}`, mode: "configured", stack: "keypool", load, mock: { requests: RPM }, keypool: { rpm: RPM } },
    { name: `429s only, ${at}`, mode: "429s", stack: "keypool", load, mock: { requests: RPM }, keypool: {} },
    { name: `reactive, headers, ${at}`, mode: "reactive", stack: "reactive", load, mock: { requests: RPM, headers: true }, keypool: {} },
    { name: `reactive, no headers, ${at}`, mode: "reactive", stack: "reactive", load, mock: { requests: RPM }, keypool: {} },
  );
}
SCENARIOS.push({
  name: "daily, 150 %",
  mode: "daily",
  stack: "keypool",
  load: 1.5,
  mock: { requests: RPM, dailyRequests: DAILY_QUOTA },
  keypool: { rpm: RPM, rpd: DAILY_QUOTA },
});

if (ONLY) SCENARIOS.splice(0, SCENARIOS.length, ...SCENARIOS.filter((s) => s.name.includes(ONLY)));

/** One client request's outcome: when it was sent and answered, its status, and for Keypool's own 429s the Retry-After in ms. */
/** @typedef {{ at: number, doneAt: number, status: number, retryAfterMs: number | null, keypool429: boolean }} Outcome */

/**
 * Offers `rate` requests a second, Poisson arrivals, for `ms`; resolves with every outcome once all are answered.
 * @param {string} url @param {string} clientKey @param {string} model @param {number} rate @param {number} ms @param {() => number} random
 */
async function offer(url, clientKey, model, rate, ms, random) {
  /** @type {Promise<Outcome>[]} */
  const pending = [];
  const end = Date.now() + ms;
  let next = Date.now();
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Say hello" }] });
  while (next < end) {
    const wait = next - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const at = Date.now();
    pending.push(
      fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json" },
        body,
      }).then(
        async (res) => {
          const text = await res.text();
          const keypool429 = res.status === 429 && text.includes('"all_keys_cooling"');
          const ms = res.headers.get("retry-after-ms");
          return { at, doneAt: Date.now(), status: res.status, retryAfterMs: keypool429 && ms !== null ? Number(ms) : null, keypool429 };
        },
        () => ({ at, doneAt: Date.now(), status: 0, retryAfterMs: null, keypool429: false }),
      ),
    );
    next += (-Math.log(1 - random()) / rate) * 1000;
  }
  return Promise.all(pending);
}

/**
 * How near each of Keypool's 429s came to the pool's next success: the moment its Retry-After named (from when the
 * 429 arrived) less when the first request sent after it succeeded — requests keep arriving, some waiting a moment
 * for room, so that is when the pool had room again (none: it never did in the run, and the moment is the day's
 * reset instead). A request sent before the 429 may have taken the last room and be answered after it: its success
 * says nothing of room freeing.
 * @param {Outcome[]} outcomes
 * @param {number | null} fallback when capacity frees if no later request succeeded (epoch ms), or null to skip those
 */
function retryAfterErrors(outcomes, fallback) {
  const successes = outcomes.filter((o) => o.status === 200).sort((a, b) => a.doneAt - b.doneAt);
  /** @type {number[]} */
  const errors = [];
  for (const o of outcomes) {
    if (!o.keypool429 || o.retryAfterMs === null) continue;
    const next = successes.find((s) => s.at >= o.doneAt)?.doneAt;
    const freed = next ?? fallback;
    if (freed !== null) errors.push(o.doneAt + o.retryAfterMs - freed);
  }
  return errors;
}

const fmt = (/** @type {number} */ n, digits = 1) => n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits });

const started = new Date();
if (!existsSync(path.join(ROOT, "admin/dist/index.html"))) await buildDashboard({ quiet: true });
const mock = await startMockUpstream();
/** @type {{ stop(): Promise<void> }[]} */
const running = [];

/**
 * One local Keypool (both Workers) with fresh state, its settings patched as given.
 * @param {Record<string, unknown>} settings
 */
async function startKeypool(settings) {
  const secrets = generateSecrets();
  const persistTo = mkdtempSync(path.join(tmpdir(), "keypool-capacity-"));
  await applyMigrations(persistTo, { quiet: true });
  const wrangler = await startWranglerOnFreePorts({ persistTo, vars: secrets, quiet: true });
  running.push({
    async stop() {
      await wrangler.stop();
      rmSync(persistTo, { recursive: true, force: true });
    },
  });
  const admin = await adminSession(wrangler.url, secrets.ADMIN_PASSWORD);
  await admin("PATCH", "/settings", settings);
  return { url: wrangler.url, admin };
}

try {
  const stacks = { keypool: await startKeypool({}), reactive: await startKeypool({ learnLimits: false }) };
  log(`${SCENARIOS.length} scenarios of ${KEYS} keys at ${RPM} requests a minute each, ${MINUTES} minute(s) of load…`);
  const pools = [];
  for (const [i, s] of SCENARIOS.entries()) {
    const model = `capacity-${i}`;
    const keys = Array.from({ length: KEYS }, (_, k) => `sk-capacity-${i}-${k}-${crypto.randomUUID().replaceAll("-", "")}`);
    for (const key of keys) mock.setKeyBehavior(key, { limits: s.mock });
    const { url, admin } = stacks[s.stack];
    const pool = await provisionPool(admin, url, { baseUrl: mock.baseUrl, models: [model], keys, name: model, clientName: model, limits: s.keypool });
    pools.push({ scenario: s, url, model, keys, clientKey: pool.clientKey });
  }
  const capacityPerSecond = (KEYS * RPM) / 60;
  const random = seeded(20);
  const runs = await Promise.all(
    pools.map(async (p) => ({
      ...p,
      outcomes: await offer(p.url, p.clientKey, p.model, capacityPerSecond * p.scenario.load, MINUTES * 60_000, random),
    })),
  );

  if (OUTCOMES) writeFileSync(OUTCOMES, JSON.stringify(runs.map((r) => ({ scenario: r.scenario.name, outcomes: r.outcomes }))));
  const nextMidnight = Math.ceil(Date.now() / 86_400_000) * 86_400_000;
  const rows = [];
  /** @type {string[]} */
  const missed = [];
  for (const r of runs) {
    const sent = r.outcomes.length;
    const ok = r.outcomes.filter((o) => o.status === 200).length;
    const keypool429 = r.outcomes.filter((o) => o.keypool429).length;
    const upstream429 = r.keys.reduce((n, k) => n + Object.values(mock.stats.limitedByKey[k] ?? {}).reduce((a, b) => a + b, 0), 0);
    const served = r.keys.map((k) => mock.stats.served[k]?.requests ?? 0);
    const spread = Math.min(...served) > 0 ? Math.max(...served) / Math.min(...served) : Infinity;
    // After each key's first refused window: the most 429s it took in one window.
    const worstLater = Math.max(
      0,
      ...r.keys.map((k) => {
        const windows = Object.entries(mock.stats.limitedByKey[k] ?? {}).sort(([a], [b]) => Number(a) - Number(b));
        return Math.max(0, ...windows.slice(1).map(([, n]) => n));
      }),
    );
    const errors = retryAfterErrors(r.outcomes, r.scenario.mode === "daily" ? nextMidnight : null).map(Math.abs);
    const within1s = errors.length > 0 ? errors.filter((e) => e <= 1_000).length / errors.length : null;
    const overDay = r.scenario.mode === "daily" ? Math.max(...served) : null;
    const per1000 = sent > 0 ? (upstream429 / sent) * 1_000 : 0;
    const success = sent > 0 ? ok / sent : 0;
    rows.push({ r, sent, ok, keypool429, upstream429, per1000, success, spread, worstLater, errors, within1s, overDay });

    // The issue's targets, judged on full runs only.
    const { mode, load } = r.scenario;
    if (load <= 0.9 && (mode === "headers" || mode === "configured")) {
      if (per1000 > 1) missed.push(`${r.scenario.name}: ${fmt(per1000)} upstream 429s per 1,000 (goal ≤ 1)`);
      if (success < 0.999) missed.push(`${r.scenario.name}: ${fmt(success * 100, 2)} % success (goal ≥ 99.9 %)`);
    }
    if (mode === "429s" && worstLater > 1) missed.push(`${r.scenario.name}: a key took ${worstLater} 429s in one window after its first (goal ≤ 1)`);
    if (load > 1 && mode !== "reactive" && within1s !== null && within1s < 1)
      missed.push(`${r.scenario.name}: ${fmt(within1s * 100)} % of Retry-After within 1 s (goal 100 %)`);
    if (overDay !== null && overDay > DAILY_QUOTA) missed.push(`${r.scenario.name}: a key served ${overDay} requests in a day of ${DAILY_QUOTA}`);
  }

  const table = [
    "| Scenario | Client requests | Success | Upstream 429s per 1,000 | Keypool's 429s | Retry-After within 1 s of the next success (p50 / p95 off) | Spread of use (max ÷ min) | Most 429s in one window after a key's first |",
    "|---|---:|---:|---:|---:|---|---:|---:|",
    ...rows.map(
      (x) =>
        `| ${x.r.scenario.name} | ${x.sent.toLocaleString("en-US")} | ${fmt(x.success * 100, 2)} % | ${fmt(x.per1000)} | ${x.keypool429.toLocaleString("en-US")} | ${
          x.within1s === null ? "—" : `${fmt(x.within1s * 100)} % (${fmt(median(x.errors) / 1000, 2)} s / ${fmt(percentile(x.errors, 0.95) / 1000, 2)} s)`
        } | ${Number.isFinite(x.spread) ? fmt(x.spread, 2) : "∞"} | ${x.worstLater} |`,
    ),
  ].join("\n");
  const daily = rows.find((x) => x.r.scenario.mode === "daily");
  const markdown = [
    `${SCENARIOS.length} scenarios side by side on two local stacks (Keypool, and Keypool with \`learnLimits\` off: reactive), each ${KEYS} keys limited by the mock to ${RPM} requests a minute (fixed minute windows), offered ${MINUTES} minute(s) of Poisson arrivals at the share of the pool's capacity named (${fmt(capacityPerSecond, 2)} requests a second is 100 %). The daily scenario's keys also have a day of ${DAILY_QUOTA} requests, configured and enforced; its most used key served ${daily?.overDay ?? "—"}.`,
    "",
    table,
    "",
    missed.length > 0 ? `Goals missed: ${missed.join("; ")}.` : SMOKE ? "A smoke run: goals not judged." : "Every goal met.",
  ].join("\n");
  const page = `${runHeading(COMMAND, started, new Date())}\n\n${markdown}`;
  console.log(`\n${page}\n`);
  if (!SMOKE && missed.length > 0) log(`${missed.length} goal(s) missed`);
  if (WRITE) log(`written to ${writeGenerated(WRITE, page, "Capacity")}`);
} finally {
  for (const r of running) await r.stop();
  await mock.close();
}
