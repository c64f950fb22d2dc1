import { EVENT_VERSION, newEventId, type KeypoolEvent, type ProbeEvent } from "../schema";
import { readProbeCandidates } from "../storage/keys";
import { readSettings } from "../storage/settings";
import { readPublishedGeneratedAt } from "../storage/snapshot-meta";
import { planProbes } from "./logic/probe-plan";
import { snapshotNeedsRefresh } from "./logic/snapshot-refresh";
import { probeAll } from "./probe";
import { pruneProjections } from "./storage/retention";

/** What the host Worker hands the scheduler: its storage bindings, its event sink, the network, a way to decrypt keys, a clock. */
export interface SchedulerDeps {
  db: D1Database;
  emit: (events: KeypoolEvent[]) => Promise<void>;
  /** Sends on the events the host kept when the queue refused them: events sent, messages still waiting. */
  drainOutbox: () => Promise<{ sent: number; waiting: number }>;
  fetch: typeof fetch;
  decrypt: (sealed: string) => Promise<string>;
  now: () => number;
}

/** Republish the snapshot at least this often, so health timers (cooling) are reflected even without traffic. */
const SNAPSHOT_MAX_AGE_MS = 10 * 60_000;

export interface ScheduledReport {
  pruned: Record<string, number>;
  refreshRequested: boolean;
  probed: number;
  due: number;
  /** The event outbox drain: what it sent and what waits, or that it failed (the rows stay). */
  outbox: { sent: number; waiting: number } | "failed";
}

/**
 * One cron run: probes the keys that are due (oldest probe first, within the
 * probe budget, time budget and concurrency), prunes projections past their
 * retention horizons, and asks the consumer to republish a missing or stale
 * snapshot. Probe results are events; the consumer folds them into health.
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
  const candidates = await readProbeCandidates(deps.db);
  const planned = planProbes(candidates, settings, now);
  const byId = new Map(candidates.map((c) => [c.keyId, c]));
  const events: KeypoolEvent[] = await probeAll(
    planned.map((c) => byId.get(c.keyId)!),
    { fetch: deps.fetch, decrypt: deps.decrypt, now: deps.now, newId: () => newEventId(deps.now()) },
    settings.probeConcurrency,
    now + settings.probeTimeBudgetMs,
  );
  const pruned = await pruneProjections(deps.db, settings, now);
  const refreshRequested = snapshotNeedsRefresh(await readPublishedGeneratedAt(deps.db), now, SNAPSHOT_MAX_AGE_MS);
  if (refreshRequested) {
    events.push({ v: EVENT_VERSION, type: "admin", id: newEventId(now), ts: now, actor: "scheduler", action: "snapshot.refresh", target: null, detail: null });
  }
  await deps.emit(events);
  return { pruned, refreshRequested, probed: events.filter((e) => e.type === "probe").length, due: planned.length, outbox };
}

/**
 * Probes the given keys now, whatever their schedule (the admin's "refresh
 * balance"); `"all"` takes every enabled key, least recently probed first, up to
 * the probe budget. Disabled keys are never probed. Emits and returns the results.
 */
export async function probeNow(deps: SchedulerDeps, keyIds: string[] | "all"): Promise<ProbeEvent[]> {
  const settings = await readSettings(deps.db);
  const wanted = keyIds === "all" ? null : new Set(keyIds);
  const targets = (await readProbeCandidates(deps.db))
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
