/**
 * Time buckets of the usage rollups: the contract between the consumer that writes
 * `rollup_*` rows and the stats API that reads them. A bucket is identified by the
 * epoch ms at which it starts.
 */

export const MINUTE_MS = 60_000;
export const HOUR_MS = 3_600_000;
export const DAY_MS = 86_400_000;

export function minuteStart(ts: number): number {
  return Math.floor(ts / MINUTE_MS) * MINUTE_MS;
}

export function hourStart(ts: number): number {
  return Math.floor(ts / HOUR_MS) * HOUR_MS;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    formatters.set(timeZone, f);
  }
  return f;
}

/** The wall-clock time in `timeZone` at instant `ts`, read as if it were UTC. */
function wallClockAsUtc(ts: number, timeZone: string): number {
  const parts: Record<string, number> = {};
  for (const p of formatterFor(timeZone).formatToParts(ts)) if (p.type !== "literal") parts[p.type] = Number(p.value);
  return Date.UTC(parts.year!, parts.month! - 1, parts.day!, parts.hour!, parts.minute!, parts.second!);
}

/** The zone's offset from UTC at `ts`, in ms (whole seconds: the formatter has no ms). */
function offsetAt(ts: number, timeZone: string): number {
  return wallClockAsUtc(ts, timeZone) - Math.floor(ts / 1000) * 1000;
}

/** The most recent local midnight in `timeZone` at or before `ts`, worked out from the zone's offsets. */
function localMidnight(ts: number, timeZone: string): number {
  const wallMidnight = Math.floor((ts + offsetAt(ts, timeZone)) / DAY_MS) * DAY_MS;
  // Local midnight = wall midnight shifted by the zone's offset at that moment; the
  // second pass settles the offset when a DST change happened earlier that day.
  let guess = wallMidnight - offsetAt(ts, timeZone);
  guess = wallMidnight - offsetAt(guess, timeZone);
  return guess <= ts ? guess : guess - DAY_MS;
}

/**
 * The local days each zone was last asked about, as [start, end), newest first:
 * the consumer asks once per event, nearly always about today; key selection asks
 * about today and tomorrow (when a key's day resets) on every pick. Working a
 * midnight out costs three `formatToParts` calls — more than the rest of folding
 * an event or picking a key — so a few days are kept, not one.
 */
const recentDays = new Map<string, { start: number; end: number }[]>();
const DAYS_KEPT = 4;

/**
 * A day bucket (`rollup_day`, `rollup_client_day`) is folded wholly in the
 * pool's time zone when the zone was set at least this long before the day
 * began: every batch that folded its attempts read the settings after they
 * were written (the gateway's and the consumer's clocks are far closer than
 * this). A day that began earlier holds only what was folded after the change;
 * its sums come from hour and minute buckets.
 */
export const ZONE_SETTLED_MS = 5 * MINUTE_MS;

/** The instant of the most recent local midnight in `timeZone` at or before `ts`. */
export function dayStart(ts: number, timeZone: string): number {
  const days = recentDays.get(timeZone);
  const known = days?.find((d) => ts >= d.start && ts < d.end);
  if (known) return known.start;
  const start = localMidnight(ts, timeZone);
  // A local day lasts 23 to 25 hours: 26 hours on is inside the next one, whose start ends this.
  const end = localMidnight(start + DAY_MS + 2 * HOUR_MS, timeZone);
  if (ts < end) recentDays.set(timeZone, [{ start, end }, ...(days ?? [])].slice(0, DAYS_KEPT));
  return start;
}

/** The local month each zone was last asked about, as [start, end): client quotas ask on every request. */
const lastMonth = new Map<string, { start: number; end: number }>();

/** The instant the local month containing `ts` began in `timeZone`: midnight of its first day. */
export function monthStart(ts: number, timeZone: string): number {
  const month = lastMonth.get(timeZone);
  if (month && ts >= month.start && ts < month.end) return month.start;
  const start = firstOfMonth(ts, timeZone);
  const end = firstOfMonth(start + 32 * DAY_MS, timeZone);
  if (ts < end) lastMonth.set(timeZone, { start, end });
  return start;
}

function firstOfMonth(ts: number, timeZone: string): number {
  let start = dayStart(ts, timeZone);
  // Walk back a day at a time to the 1st (at most 30 steps; each a cached or cheap midnight).
  for (;;) {
    const day = new Date(wallClockAsUtc(start, timeZone)).getUTCDate();
    if (day === 1) return start;
    start = dayStart(start - HOUR_MS, timeZone);
  }
}

/** The instant the local month after the one containing `ts` begins in `timeZone`. */
export function nextMonthStart(ts: number, timeZone: string): number {
  // 32 days after a month's first midnight is inside the next month.
  return monthStart(monthStart(ts, timeZone) + 32 * DAY_MS, timeZone);
}
