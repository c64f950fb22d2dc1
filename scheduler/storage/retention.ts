import type { Settings } from "../../schema";
import { pruneAlerts } from "../../storage/alerts";
import { pruneSeenEvents, seenEventsCutoff } from "../../storage/dedupe-window";
import { requestLogCutoff, pruneRequestLog } from "../../storage/request-log";
import { pruneRollups, rollupCutoffs } from "../../storage/rollups";
import { pruneCachedAnswers } from "../../storage/stats-cache";

/** Kept stats answers (stats_cache) not recomputed for this long are deleted: no page asks for them any more. */
const CACHED_ANSWER_DAYS = 1;

/**
 * Deletes rollup rows, dedupe ids, the request log and alert history past their retention horizons, and kept
 * stats answers no page asks for, in one transaction, through the modules that own those tables — the kept answers
 * aside, the only write the scheduler makes to the consumer's projections. Returns the rows deleted per table.
 */
export async function pruneProjections(db: D1Database, settings: Settings, now: number): Promise<Record<string, number>> {
  const rollups = pruneRollups(db, rollupCutoffs(settings, now));
  const results = await db.batch([
    ...rollups.map((r) => r.statement),
    pruneSeenEvents(db, seenEventsCutoff(settings, now)),
    ...pruneRequestLog(db, requestLogCutoff(settings, now)),
    ...pruneAlerts(db, now - settings.retention.alertDays * 86_400_000),
    pruneCachedAnswers(db, now - CACHED_ANSWER_DAYS * 86_400_000),
  ]);
  const changes = results.map((r) => r.meta.changes ?? 0);
  const n = rollups.length;
  return {
    ...Object.fromEntries(rollups.map((r, i) => [r.table, changes[i]!])),
    seen_events: changes[n]!,
    request_log: changes[n + 1]!,
    request_attempts: changes[n + 2]!,
    alerts: changes[n + 4]!,
    stats_cache: changes.at(-1)!,
  };
}
