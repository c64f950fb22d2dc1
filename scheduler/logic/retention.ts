import { DAY_MS, HOUR_MS, type Settings } from "../../schema";

/** The cut-offs (epoch ms) before which each projection's rows are deleted. */
export interface RetentionCutoffs {
  rollup_minute: number;
  rollup_hour: number;
  rollup_pool_hour: number;
  rollup_day: number;
  seen_events: number;
}

/** Computes each table's horizon from the retention settings. */
export function retentionCutoffs(settings: Settings, now: number): RetentionCutoffs {
  const r = settings.retention;
  return {
    rollup_minute: now - r.minuteRollupHours * HOUR_MS,
    rollup_hour: now - r.hourRollupDays * DAY_MS,
    rollup_pool_hour: now - r.hourRollupDays * DAY_MS,
    rollup_day: now - r.dayRollupDays * DAY_MS,
    seen_events: now - r.dedupeHours * HOUR_MS,
  };
}

/** Whether the published snapshot is old enough (or missing) that the consumer should republish it. */
export function snapshotNeedsRefresh(generatedAt: number | null, now: number, maxAgeMs: number): boolean {
  return generatedAt === null || now - generatedAt > maxAgeMs;
}
