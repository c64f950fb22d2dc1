import { EVENT_VERSION, type KeypoolEvent } from "../schema";
import { retentionCutoffs, snapshotNeedsRefresh } from "./logic/retention";
import { pruneProjections, readSettings, readSnapshotGeneratedAt } from "./storage/scheduler-store";

/** What the host Worker hands the scheduler: its storage bindings, its event sink, a clock. */
export interface SchedulerDeps {
  db: D1Database;
  kv: KVNamespace;
  emit: (events: KeypoolEvent[]) => Promise<void>;
  now: () => number;
}

/** Republish the snapshot at least this often, so health timers (cooling) are reflected even without traffic. */
export const SNAPSHOT_MAX_AGE_MS = 10 * 60_000;

/**
 * One cron run: prunes projections past their retention horizons and asks the
 * consumer to republish a missing or stale snapshot. Returns what it did.
 */
export async function runScheduled(deps: SchedulerDeps): Promise<{ pruned: Record<string, number>; refreshRequested: boolean }> {
  const now = deps.now();
  const settings = await readSettings(deps.db);
  const pruned = await pruneProjections(deps.db, retentionCutoffs(settings, now));
  const generatedAt = await readSnapshotGeneratedAt(deps.kv);
  const refreshRequested = snapshotNeedsRefresh(generatedAt, now, SNAPSHOT_MAX_AGE_MS);
  if (refreshRequested) {
    await deps.emit([{ v: EVENT_VERSION, type: "admin", id: crypto.randomUUID(), ts: now, actor: "scheduler", action: "snapshot.refresh", target: null, detail: null }]);
  }
  return { pruned, refreshRequested };
}
