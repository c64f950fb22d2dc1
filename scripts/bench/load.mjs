// @ts-check
/**
 * How `npm run bench` loads a target and reads what one run cost: autocannon
 * at many connections (throughput), a closed-loop client timed with
 * sub-millisecond precision at one (latency, first byte), the CPU time of the
 * target's workerd process from /proc, and — for a target that stores its
 * events — waiting until they are stored, so that the CPU read includes storing
 * them and the next run does not compete with this one's backlog.
 */
import autocannon from "autocannon";
import http from "node:http";
import { percentile } from "../lib/numbers.mjs";
import { cpuSeconds } from "../lib/procfs.mjs";

/** @typedef {import("./workers.mjs").Target} Target */

/**
 * What one run measured: requests/s, requests answered, p50 / p99 of the whole
 * answer and p50 of the first byte (ms; NaN where not measured), errors, CPU ms
 * per request (NaN without a process), events stored (NaN for a target that
 * stores none).
 * @typedef {{ rps: number, requests: number, p50: number, p99: number, ttfb: number, errors: number, cpuMs: number, counted: number }} Run
 */

/**
 * `connections` clients in a closed loop for `seconds` (autocannon): requests/s
 * and latency percentiles in whole ms.
 * @param {Target} target
 * @param {{ connections: number, seconds: number, body: unknown }} load
 * @returns {Promise<Omit<Run, "cpuMs" | "counted">>}
 */
export function loadMany(target, { connections, seconds, body }) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${target.url}/v1/chat/completions`,
        method: "POST",
        headers: { "content-type": "application/json", ...target.headers },
        body: JSON.stringify(body),
        connections,
        duration: seconds,
      },
      (err, result) =>
        err
          ? reject(err)
          : resolve({
              rps: result.requests.average,
              requests: result.requests.total,
              p50: result.latency.p50,
              p99: result.latency.p99,
              ttfb: NaN,
              errors: result.errors + result.non2xx,
            }),
    );
  });
}

/**
 * One client in a closed loop for `seconds`, timed with sub-millisecond
 * precision: requests/s, p50 / p99 of the whole answer and p50 of the time to
 * the first byte of the body (for a stream: its first event).
 * @param {Target} target
 * @param {{ seconds: number, body: unknown }} load
 * @returns {Promise<Omit<Run, "cpuMs" | "counted">>}
 */
async function loadOne(target, { seconds, body }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const { hostname, port } = new URL(target.url);
  const payload = JSON.stringify(body);
  /** @type {number[]} */
  const totals = [];
  /** @type {number[]} */
  const firsts = [];
  let errors = 0;
  const started = performance.now();
  const end = started + seconds * 1000;
  while (performance.now() < end) {
    const t0 = performance.now();
    /** @type {{ status: number | undefined, first: number }} */
    const { status, first } = await new Promise((resolve, reject) => {
      const req = http.request(
        {
          agent,
          hostname,
          port,
          path: "/v1/chat/completions",
          method: "POST",
          headers: { "content-type": "application/json", "content-length": Buffer.byteLength(payload), ...target.headers },
        },
        (res) => {
          let first = NaN;
          res.on("data", () => {
            if (Number.isNaN(first)) first = performance.now();
          });
          res.on("end", () => resolve({ status: res.statusCode, first }));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end(payload);
    });
    const t1 = performance.now();
    if (status !== 200) errors++;
    totals.push(t1 - t0);
    firsts.push(first - t0);
  }
  agent.destroy();
  const elapsed = (performance.now() - started) / 1000;
  return {
    rps: totals.length / elapsed,
    requests: totals.length,
    p50: percentile(totals, 0.5),
    p99: percentile(totals, 0.99),
    ttfb: percentile(firsts, 0.5),
    errors,
  };
}

/**
 * One measured run: load, then (for a target that stores events) wait until the
 * run's events are stored or stop arriving, then read the CPU it took.
 * @param {Target} target
 * @param {{ body: unknown }} scenario
 * @param {number} connections
 * @param {number} seconds
 * @returns {Promise<Run>}
 */
export async function measure(target, scenario, connections, seconds) {
  const before = target.attempts ? await target.attempts() : 0;
  const cpu0 = target.pid ? cpuSeconds(target.pid) : 0;
  const r = connections === 1 ? await loadOne(target, { seconds, body: scenario.body }) : await loadMany(target, { connections, seconds, body: scenario.body });
  let counted = NaN;
  if (target.attempts) {
    const deadline = Date.now() + 30_000;
    let last = -1;
    let stableSince = Date.now();
    for (;;) {
      const now = await target.attempts();
      if (now !== last) stableSince = Date.now();
      last = now;
      if (now - before >= r.requests || Date.now() - stableSince > 2_500 || Date.now() > deadline) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    counted = last - before;
  }
  // A target whose events are not counted gets a fixed while for its queue and consumer to finish.
  if (target.settleMs) await new Promise((res) => setTimeout(res, target.settleMs));
  const cpuMs = target.pid ? ((cpuSeconds(target.pid) - cpu0) * 1000) / r.requests : NaN;
  return { ...r, cpuMs, counted };
}
