import type { KeypoolEvent } from "../../schema";
import { readingWins, type CapacityRow, type WindowReading } from "../../storage/key-capacity";

/**
 * What a batch's attempts say of their keys' rate-limit windows: per key and
 * window, the winning reading (the latest; see `readingWins`), its reset made an
 * instant. A reading is dated when its answer's headers arrived.
 */
export function toCapacityRows(events: KeypoolEvent[]): CapacityRow[] {
  const rows = new Map<string, CapacityRow>();
  for (const e of events) {
    if (e.type !== "attempt" || !e.rateLimit) continue;
    const at = e.ts + (e.ttfbMs ?? e.latencyMs);
    let row = rows.get(e.keyId);
    if (!row) rows.set(e.keyId, (row = { key: e.keyId, requests: null, tokens: null }));
    for (const window of ["requests", "tokens"] as const) {
      const w = e.rateLimit[window];
      if (!w) continue;
      const reading: WindowReading = { ts: at, limit: w.limit, remaining: w.remaining, resetAt: w.resetMs === null ? null : at + w.resetMs };
      const current = row[window];
      if (!current || readingWins(reading, current)) row[window] = reading;
    }
  }
  return [...rows.values()];
}
