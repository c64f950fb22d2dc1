// @ts-check
/**
 * `npm run replay -- rebuild|requeue|refold [--from TIME] [--to TIME] [--source events|dead]`
 * against the running local stack (`npm start`): starts the job through the admin
 * API, waits for the consumer to finish it, prints the report. TIME is an ISO date
 * or epoch ms. KEYPOOL_URL (default http://127.0.0.1:$PORT) and KEYPOOL_ADMIN_PASSWORD
 * (default: .dev.vars) point it elsewhere. Exits 1 when a rebuild finds differences.
 * A refold takes the whole log (no --from or --to).
 */
import { adminFromEnv } from "./lib/admin-client.mjs";

const [kind, ...rest] = process.argv.slice(2);
if (kind !== "rebuild" && kind !== "requeue" && kind !== "refold") {
  console.error("usage: npm run replay -- rebuild|requeue|refold [--from TIME] [--to TIME] [--source events|dead]");
  process.exit(2);
}
/** @param {string} name */
const option = (name) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : undefined;
};
/** @param {string | undefined} value */
const time = (value) => {
  if (value === undefined) return undefined;
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  if (!Number.isFinite(ms)) throw new Error(`not a time: ${value}`);
  return ms;
};

const admin = await adminFromEnv();
const body = { kind, from: time(option("from")), to: time(option("to")), source: option("source") ?? "events" };
const { id } = /** @type {{ id: string }} */ (await admin("POST", "/replay", body));
console.log(`replay ${kind} started as job ${id}; waiting for the consumer…`);
const deadline = Date.now() + 15 * 60_000;
let job;
for (;;) {
  job = /** @type {{ status: string, report?: any }} */ (await admin("GET", `/replay/${id}`));
  if (job.status === "done" || job.status === "failed") break;
  if (Date.now() > deadline) throw new Error("the job did not finish within 15 minutes");
  await new Promise((r) => setTimeout(r, 500));
}
if (job.status === "failed") {
  console.error(`replay failed: ${job.report?.error}`);
  process.exit(1);
}
const report = job.report;
if (kind === "refold") {
  console.log(
    `refolded ${report.events} event(s) from ${report.objects} archived batch(es) into ${report.databases} database(s); ${report.unparseable} unparseable record(s) skipped`,
  );
} else if (kind === "requeue") {
  console.log(`requeued ${report.requeued} event(s) from ${report.objects} archived batch(es); ${report.unparseable} unparseable record(s) skipped`);
} else {
  console.log(`replayed ${report.events} event(s) from ${report.objects} archived batch(es)`);
  console.log("| projection | live rows | rebuilt rows | only live | only rebuilt |");
  console.log("|---|---|---|---|---|");
  for (const [table, d] of Object.entries(report.compared)) console.log(`| ${table} | ${d.live} | ${d.rebuilt} | ${d.onlyLive} | ${d.onlyRebuilt} |`);
  console.log(
    report.identical
      ? "identical: the projections are exactly what the log says."
      : "DIFFERENCES FOUND (samples in the job report: GET /admin/api/replay/" + id + ")",
  );
  if (!report.identical) process.exit(1);
}
