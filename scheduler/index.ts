import { EVENT_VERSION, newEventId, providerKinds, type KeypoolEvent, type ProbeEvent, type ProbeJob, type Settings } from "../schema";
import { deliverDue, evaluateGroup } from "../storage/alerts";
import { readProbeCandidates, type KeyProbeRow } from "../storage/keys";
import { readSettings } from "../storage/settings";
import { readPublishedGeneratedAt } from "../storage/snapshot-meta";
import { planProbes, probeJobsFor } from "./logic/probe-plan";
import { snapshotNeedsRefresh } from "./logic/snapshot-refresh";
import { probeAll } from "./probe";
import { pruneProjections } from "./storage/retention";
import type { FoldDatabases } from "../storage/fold-databases";

/** What the host Worker hands the scheduler: its storage bindings, its event sink, the network, a way to decrypt keys, a clock. */
export interface SchedulerDeps {
  db: D1Database;
  /** The fold's databases, `db` first, for retention and keys' health (`db` alone when absent). */
  foldDbs?: FoldDatabases;
  emit: (events: KeypoolEvent[]) => Promise<void>;
  /** Sends on the events the host kept when the queue refused them: events sent, messages still waiting. */
  drainOutbox: () => Promise<{ sent: number; waiting: number }>;
  fetch: typeof fetch;
  decrypt: (sealed: string) => Promise<string>;
  /** Opens sealed alert destinations (ALERT_ENCRYPTION_KEY). */
  openAlertSecret: (sealed: string) => Promise<string>;
  /** Hands probe jobs on to other invocations (the probes queue); a host without one hands nothing on. */
  sendProbeJobs?: (jobs: ProbeJob[]) => Promise<void>;
  now: () => number;
}

/** Republish the snapshot at least this often, so health timers (cooling) are reflected even without traffic. */
const SNAPSHOT_MAX_AGE_MS = 10 * 60_000;

export interface ScheduledReport {
  pruned: Record<string, number>;
  refreshRequested: boolean;
  probed: number;
  due: number;
  /** Keys handed on in probe jobs (settings `probeJobs`), and the jobs; or that sending them failed (the next run plans them again). */
  handedOn: { keys: number; jobs: number } | "failed";
  /** The event outbox drain: what it sent and what waits, or that it failed (the rows stay). */
  outbox: { sent: number; waiting: number } | "failed";
  /** Alerts this run raised (a stale snapshot) and the deliveries its sweep sent, failed or left to retry; or that it failed. */
  alerts: { raised: number; sent: number; failed: number; retrying: number } | "failed";
}

/** The keys of `candidates` due for a probe at `now`, least recently probed first, at most `limit`. */
function dueKeys(candidates: KeyProbeRow[], settings: Settings, now: number, limit: number): KeyProbeRow[] {
  return planProbes(
    candidates.map((c) => ({ ...c, livenessOnly: providerKinds[c.kind].probe.parse === null })),
    settings,
    now,
    limit,
  );
}

/**
 * One cron run: probes the keys that are due (oldest probe first, within the
 * probe budget, time budget and concurrency), prunes projections past their
 * retention horizons, and asks the consumer to republish a missing or stale
 * snapshot. Probe results are events; the consumer folds them into health.
 * When more keys are due than the budget and settings allow `probeJobs`, the
 * next ones due go out first as probe jobs of up to `probeBudget` keys each,
 * which other invocations probe meanwhile (`runProbeJob`).
 * First it sends on the events the queue refused earlier (the host's outbox); a
 * failure there is reported and the rest of the run goes on.
 */
export async function runScheduled(deps: SchedulerDeps): Promise<ScheduledReport> {
  const outbox = await deps.drainOutbox().catch((err: unknown) => {
    console.error(`keypool scheduler: event outbox drain failed: ${err instanceof Error ? err.name : "error"}`);
    return "failed" as const;
  });
  const now = deps.now();
  const settings = await readSettings(deps.db);
  const jobs = deps.sendProbeJobs ? settings.probeJobs : 0;
  const planned = dueKeys(await readProbeCandidates(deps.foldDbs ?? [deps.db]), settings, now, settings.probeBudget * (1 + jobs));
  const own = planned.slice(0, settings.probeBudget);
  const handedOn = await handOn(
    deps,
    probeJobsFor(
      planned.slice(settings.probeBudget).map((c) => c.keyId),
      settings.probeBudget,
      jobs,
      now,
    ),
  );
  const events: KeypoolEvent[] = await probeAll(
    own,
    { fetch: deps.fetch, decrypt: deps.decrypt, now: deps.now, newId: () => newEventId(deps.now()) },
    settings.probeConcurrency,
    now + settings.probeTimeBudgetMs,
  );
  const pruned = await pruneProjections(deps.foldDbs ?? [deps.db], settings, now);
  const generatedAt = await readPublishedGeneratedAt(deps.db);
  const refreshRequested = snapshotNeedsRefresh(generatedAt, now, SNAPSHOT_MAX_AGE_MS);
  if (refreshRequested) {
    events.push({ v: EVENT_VERSION, type: "admin", id: newEventId(now), ts: now, actor: "scheduler", action: "snapshot.refresh", target: null, detail: null });
  }
  await deps.emit(events);
  const alerts = await scheduledAlerts(deps, settings, generatedAt, now).catch((err: unknown) => {
    console.error(`keypool scheduler: alerts failed (the next run tries again): ${err instanceof Error ? err.message : "error"}`);
    return "failed" as const;
  });
  return { pruned, refreshRequested, probed: events.filter((e) => e.type === "probe").length, due: planned.length, handedOn, outbox, alerts };
}

/** Sends probe jobs on; a failure is logged and reported, and the keys wait for the next run. */
async function handOn(deps: SchedulerDeps, jobs: ProbeJob[]): Promise<ScheduledReport["handedOn"]> {
  if (jobs.length === 0 || !deps.sendProbeJobs) return { keys: 0, jobs: 0 };
  try {
    await deps.sendProbeJobs(jobs);
    return { keys: jobs.reduce((n, j) => n + j.keyIds.length, 0), jobs: jobs.length };
  } catch (err) {
    console.error(
      `keypool scheduler: handing on ${jobs.length} probe job(s) failed (the next run plans them again): ${err instanceof Error ? err.name : "error"}`,
    );
    return "failed";
  }
}

/**
 * One probe job, in an invocation of its own: probes those of the job's keys
 * that are still due (a key probed since, disabled, or deleted is skipped),
 * within the settings' concurrency and time budget, and emits the results.
 */
export async function runProbeJob(deps: SchedulerDeps, job: ProbeJob): Promise<{ probed: number; skipped: number }> {
  const now = deps.now();
  const settings = await readSettings(deps.db);
  const due = dueKeys(await readProbeCandidates(deps.foldDbs ?? [deps.db], job.keyIds), settings, now, job.keyIds.length);
  const events = await probeAll(
    due,
    { fetch: deps.fetch, decrypt: deps.decrypt, now: deps.now, newId: () => newEventId(deps.now()) },
    settings.probeConcurrency,
    now + settings.probeTimeBudgetMs,
  );
  await deps.emit(events);
  return { probed: events.length, skipped: job.keyIds.length - due.length };
}

/**
 * The scheduler's part of alerting: whether the published snapshot is older
 * than the threshold (the consumer republishes at least every ten minutes, so
 * an old one means it is not running or cannot write), and a sweep of the
 * deliveries whose retry is due, in case the consumer's own retry message was
 * lost — or the consumer is what is down.
 */
export async function scheduledAlerts(
  deps: SchedulerDeps,
  settings: Settings,
  generatedAt: number | null,
  now: number,
): Promise<{ raised: number; sent: number; failed: number; retrying: number }> {
  const rule = settings.alerts.rules.snapshot_stale;
  const ageMin = generatedAt === null ? 0 : (now - generatedAt) / 60_000;
  const found =
    rule.enabled && ageMin > rule.threshold
      ? [
          {
            subject: "snapshot:age",
            kind: "snapshot_stale" as const,
            value: "stale",
            label: "KV snapshot",
            detail: `last published ${Math.round(ageMin)} min ago (threshold ${rule.threshold} min): the consumer is not folding or cannot write`,
          },
        ]
      : [];
  const raised = await evaluateGroup(deps.db, "scheduler", found, settings.alerts, now);
  const sweep = await deliverDue({ db: deps.db, open: deps.openAlertSecret, fetch: deps.fetch, now: deps.now });
  return { raised, sent: sweep.sent, failed: sweep.failed, retrying: sweep.retrying };
}

/**
 * Probes the given keys now, whatever their schedule (the admin's "refresh
 * balance"); `"all"` takes every enabled key, least recently probed first, up to
 * the probe budget. Disabled keys are never probed. Emits and returns the results.
 */
export async function probeNow(deps: SchedulerDeps, keyIds: string[] | "all"): Promise<ProbeEvent[]> {
  const settings = await readSettings(deps.db);
  const wanted = keyIds === "all" ? null : new Set(keyIds);
  const targets = (await readProbeCandidates(deps.foldDbs ?? [deps.db]))
    .filter((c) => c.enabled && (wanted === null || wanted.has(c.keyId)))
    .sort((a, b) => a.lastProbeTs - b.lastProbeTs)
    .slice(0, settings.probeBudget);
  const events = await probeAll(
    targets,
    { fetch: deps.fetch, decrypt: deps.decrypt, now: deps.now, newId: () => newEventId(deps.now()) },
    settings.probeConcurrency,
    deps.now() + settings.probeTimeBudgetMs,
  );
  await deps.emit(events);
  return events;
}
