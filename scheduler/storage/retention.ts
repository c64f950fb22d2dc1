import type { Settings } from "../../schema";
import { pruneAlerts } from "../../storage/alerts";
import { pruneSeenEvents, seenEventsCutoff } from "../../storage/dedupe-window";
import type { FoldDatabases } from "../../storage/fold-databases";
import { requestLogCutoff, pruneRequestLog } from "../../storage/request-log";
import { pruneRollups, rollupCutoffs } from "../../storage/rollups";
import { pruneCachedAnswers } from "../../storage/stats-cache";

/** Kept stats answers (stats_cache) not recomputed for this long are deleted: no page asks for them any more. */
const CACHED_ANSWER_DAYS = 1;

/**
 * Deletes rollup rows, dedupe ids, the request log and alert history past their retention horizons, and kept
 * stats answers no page asks for, through the modules that own those tables — the kept answers aside, the only
 * write the scheduler makes to the consumer's projections. One transaction a database: the fold's tables in each of
 * the fold's databases, the alerts and kept answers in the first. Returns the rows deleted per table, over all.
 */
export async function pruneProjections(dbs: FoldDatabases, settings: Settings, now: number): Promise<Record<string, number>> {
  const cutoffs = rollupCutoffs(settings, now);
  const deleted = await Promise.all(
    dbs.map(async (db, i) => {
      const statements: [table: string, statement: D1PreparedStatement][] = [
        ...pruneRollups(db, cutoffs).map((r): [string, D1PreparedStatement] => [r.table, r.statement]),
        ["seen_events", pruneSeenEvents(db, seenEventsCutoff(settings, now))],
        ...pruneRequestLog(db, requestLogCutoff(settings, now)).map((s, j): [string, D1PreparedStatement] => [j === 0 ? "request_log" : "request_attempts", s]),
        ...(i === 0
          ? [
              ...pruneAlerts(db, now - settings.retention.alertDays * 86_400_000).map((s, j): [string, D1PreparedStatement] => [j === 1 ? "alerts" : "", s]),
              ["stats_cache", pruneCachedAnswers(db, now - CACHED_ANSWER_DAYS * 86_400_000)] as [string, D1PreparedStatement],
            ]
          : []),
      ];
      const results = await db.batch(statements.map(([, s]) => s));
      return statements.map(([table], j): [string, number] => [table, results[j]?.meta.changes ?? 0]);
    }),
  );
  const totals: Record<string, number> = {};
  for (const [table, n] of deleted.flat()) if (table !== "") totals[table] = (totals[table] ?? 0) + n;
  return totals;
}
