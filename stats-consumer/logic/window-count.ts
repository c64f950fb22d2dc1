import { HOUR_MS, MINUTE_MS, ZONE_SETTLED_MS, dayStart, hourStart } from "../../schema";
import type { CountTerm } from "../../storage/rollup-sums";

/**
 * How to sum a key's requests and tokens since its day began from the fewest
 * rollup buckets. The rollups hold minute and hour buckets (on the UTC clock)
 * and day buckets (the pool's days, in its time zone). A day that began at
 * another hour than the pool's — midnight Pacific in a pool kept in UTC, or a
 * rolling 24 hours — summed hour by hour reads up to 24 buckets a key late in
 * the day, and up to 59 minute buckets more for a window that does not begin
 * on the hour. Reading the pool's day buckets and adding or taking away the
 * hours between their start and the window's reads at most 13 hour buckets
 * (half a day, and the hour under way), 30 minute buckets and two day buckets.
 */

/** One of the pool's day buckets the sum may read: its start and the next day's (Infinity for today). */
export interface DayBucket {
  from: number;
  to: number;
}

/** Buckets of each kind a plan reads for one key at `now` (an open term up to the bucket under way). */
export function planBuckets(terms: readonly CountTerm[], now: number): Record<CountTerm["rows"], number> {
  const count = { minute: 0, hour: 0, day: 0 };
  for (const t of terms) {
    if (t.rows === "day") count.day++;
    else {
      const width = t.rows === "hour" ? HOUR_MS : MINUTE_MS;
      const to = Math.min(t.to, Math.floor(now / width) * width + width);
      count[t.rows] += Math.max(0, Math.ceil((to - t.from) / width));
    }
  }
  return count;
}

/** Buckets a plan reads for one key at `now`. */
export function planCost(terms: readonly CountTerm[], now: number): number {
  const { minute, hour, day } = planBuckets(terms, now);
  return minute + hour + day;
}

/**
 * The terms whose sum is the key rows of every minute bucket from `start` on
 * (a start within a minute counts from the next minute, as minute buckets can),
 * reading as few buckets as it can. `days` are the pool's day buckets the sum
 * may read, in order, the last one today: only those that follow each other
 * and start on the hour are used (a pool whose day starts at :30 sums hours).
 * `minutesFrom` is the oldest minute bucket retention keeps: a start off the
 * hour whose minutes may be pruned is counted from the start of its hour, so
 * the sum holds that hour whole — more than the window's, never less.
 */
export function planWindowCount(start: number, now: number, days: readonly DayBucket[], minutesFrom = -Infinity): CountTerm[] {
  const from = Math.ceil(start / MINUTE_MS) * MINUTE_MS;
  // The hour the sum of hours starts at, and the minutes that make up the difference.
  const anchors: { at: number; minutes: CountTerm[] }[] = [];
  const floor = hourStart(from);
  if (floor === from) anchors.push({ at: from, minutes: [] });
  else {
    if (from >= minutesFrom) anchors.push({ at: floor + HOUR_MS, minutes: [{ rows: "minute", from, to: floor + HOUR_MS, sign: 1 }] });
    if (floor >= minutesFrom) anchors.push({ at: floor, minutes: [{ rows: "minute", from: floor, to: from, sign: -1 }] });
    if (anchors.length === 0) anchors.push({ at: floor, minutes: [] });
  }
  // The day buckets usable as a base: a run ending with today, each starting where the one before ended.
  let usable = 0;
  if (days.length > 0 && days[days.length - 1]!.to > now) {
    usable = 1;
    while (usable < days.length && days[days.length - usable - 1]!.to === days[days.length - usable]!.from) usable++;
  }
  let best: CountTerm[] | null = null;
  let bestCost = Infinity;
  const consider = (terms: CountTerm[]) => {
    const cost = planCost(terms, now);
    if (cost < bestCost) [best, bestCost] = [terms, cost];
  };
  for (const { at, minutes } of anchors) {
    consider([...minutes, { rows: "hour", from: at, to: Infinity, sign: 1 }]);
    for (let k = 1; k <= usable; k++) {
      const base = days[days.length - k]!.from;
      if (base % HOUR_MS !== 0) continue;
      const dayTerms = days.slice(days.length - k).map((d): CountTerm => ({ rows: "day", from: d.from, to: d.to, sign: 1 }));
      const hours: CountTerm[] =
        base < at ? [{ rows: "hour", from: base, to: at, sign: -1 }] : base > at ? [{ rows: "hour", from: at, to: base, sign: 1 }] : [];
      consider([...minutes, ...dayTerms, ...hours]);
    }
  }
  return best!;
}

/**
 * Yesterday's and today's day buckets in the pool's `timeZone` that a sum may
 * read: those that began after the zone was set (`zoneSince`, 0 when it never
 * changed) — a day folded partly under another zone is summed from hours.
 */
export function poolDays(now: number, timeZone: string, zoneSince: number): DayBucket[] {
  const today = dayStart(now, timeZone);
  const yesterday = dayStart(today - 1, timeZone);
  return [
    { from: yesterday, to: today },
    { from: today, to: Infinity },
  ].filter((d) => d.from >= zoneSince + ZONE_SETTLED_MS);
}

/**
 * Most of a day's sum is of hours already past, which change only when the
 * consumer folds attempts that old: the publish keeps each key's sum of them
 * in D1 (storage/usage-kept.ts) and reads anew only the hours from `liveFrom`
 * on (two or three hour buckets). A fold of any attempt sent before
 * `lateBefore` — an hour before the hour it is folded in — adds it to the kept
 * sums in the same transaction. A fold that is not late writes no hour a
 * publish keeps as long as the publish reads its clock less than five minutes
 * after the fold read its own: room for a fold's transaction still open when a
 * publish begins, and for the clocks of two consumer isolates (tested in
 * window-count.test.ts).
 */
export const LIVE_SLACK_MS = 5 * MINUTE_MS;

/** Where the hours a publish at `now` reads anew begin: the hour before the current one (five minutes into it, the one before that). */
export function liveFrom(now: number): number {
  return hourStart(now - LIVE_SLACK_MS) - HOUR_MS;
}

/** A fold at `now` of an attempt sent before this is a late fold. */
export function lateBefore(now: number): number {
  return hourStart(now) - HOUR_MS;
}

/**
 * The terms whose sum is the key rows of the minute buckets in [start, end),
 * `end` on the hour: the cheaper of `planWindowCount` less the hours from `end`
 * on, and the hours from `start` to `end` (with `minutesFrom` as there).
 */
export function planRangeCount(start: number, end: number, now: number, days: readonly DayBucket[], minutesFrom = -Infinity): CountTerm[] {
  const cut = (open: CountTerm[]): CountTerm[] => {
    const i = open.findIndex((t) => t.rows === "hour" && t.to === Infinity && t.sign === 1 && t.from <= end);
    if (i >= 0) return open.map((t, j) => (j === i ? { ...t, to: end } : t));
    return [...open, { rows: "hour", from: end, to: Infinity, sign: -1 }];
  };
  const [planned, hours] = [cut(planWindowCount(start, now, days, minutesFrom)), cut(planWindowCount(start, now, [], minutesFrom))];
  return planCost(hours, now) <= planCost(planned, now) ? hours : planned;
}
