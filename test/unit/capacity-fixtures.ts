import type { KeyUsage } from "../../schema";

/** A minute boundary: 12:00 UTC, 04:00 in Los Angeles. */
export const T0 = Date.UTC(2026, 11, 4, 12, 0, 0);

/** A key's usage as the pool published it at T0's minute: nothing counted, unless `over` says otherwise. */
export function usageAt(over: Partial<KeyUsage> = {}): KeyUsage {
  return {
    minuteStart: T0,
    minute: { requests: 0, tokens: 0 },
    previousMinute: { requests: 0, tokens: 0 },
    dayStart: Date.UTC(2026, 11, 4),
    dayResetAt: Date.UTC(2026, 11, 5),
    day: { requests: 0, tokens: 0 },
    requests: null,
    tokens: null,
    countedTo: 0,
    ...over,
  };
}
