import { describe, expect, it } from "vitest";
import { DAY_MS, HOUR_MS, MINUTE_MS, ZONE_SETTLED_MS, dayStart, dayWindowStart, type DayRule } from "../../schema";
import { LIVE_SLACK_MS, lateBefore, liveFrom, planRangeCount, planWindowCount, poolDays } from "../../stats-consumer/logic/window-count";
import type { CountTerm } from "../../storage/rollup-sums";

/** Attempts at random instants over the 50 hours before `now`, folded into minute, hour and day buckets as the consumer folds them. */
function foldedTraffic(now: number, poolZone: string, seed: number) {
  let state = seed;
  const random = () => (state = (state * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
  const instants = Array.from({ length: 4_000 }, () => now - Math.floor(random() * 50 * HOUR_MS));
  const fold = (bucket: (ts: number) => number) => {
    const rows = new Map<number, number>();
    for (const ts of instants) rows.set(bucket(ts), (rows.get(bucket(ts)) ?? 0) + 1);
    return rows;
  };
  return {
    instants,
    minute: fold((ts) => Math.floor(ts / MINUTE_MS) * MINUTE_MS),
    hour: fold((ts) => Math.floor(ts / HOUR_MS) * HOUR_MS),
    day: fold((ts) => dayStart(ts, poolZone)),
  };
}

/** What the rollups give for the terms, as the consumer's statement sums them. */
function sumOf(terms: CountTerm[], rows: ReturnType<typeof foldedTraffic>): number {
  let sum = 0;
  for (const t of terms) {
    if (t.rows === "day") sum += t.sign * (rows.day.get(t.from) ?? 0);
    else for (const [bucket, n] of rows[t.rows]) if (bucket >= t.from && bucket < t.to) sum += t.sign * n;
  }
  return sum;
}

/** Buckets of one kind the terms read for a key: an open term up to `now`'s. */
function buckets(terms: CountTerm[], rows: CountTerm["rows"], now: number): number {
  const width = rows === "hour" ? HOUR_MS : MINUTE_MS;
  const end = (t: CountTerm) => Math.min(t.to, Math.floor(now / width) * width + width);
  return terms.filter((t) => t.rows === rows).reduce((n, t) => n + (rows === "day" ? 1 : Math.ceil((end(t) - t.from) / width)), 0);
}

describe("the sum of a key's day from the fewest rollup buckets", () => {
  const rules: DayRule[] = [
    { reset: "rolling" },
    { reset: "local", hour: 0, timeZone: "UTC" },
    { reset: "local", hour: 0, timeZone: "America/Los_Angeles" },
    { reset: "local", hour: 5, timeZone: "Europe/Berlin" },
    { reset: "local", hour: 0, timeZone: "Asia/Kolkata" },
    { reset: "local", hour: 9, timeZone: "Asia/Tokyo" },
  ];
  // Days around the US and EU changes of offset, and an ordinary one; every 37 minutes through each.
  const days = [Date.UTC(2026, 2, 8), Date.UTC(2026, 2, 29), Date.UTC(2026, 10, 1), Date.UTC(2026, 11, 5)];
  const instants = days.flatMap((d) => Array.from({ length: 40 }, (_, i) => d + i * 37 * MINUTE_MS + 13_000));

  for (const poolZone of ["UTC", "America/Los_Angeles", "Asia/Kolkata"]) {
    it(`is exact for every day rule at any hour, in a pool kept in ${poolZone}`, () => {
      let planned = 0;
      for (const [i, now] of instants.entries()) {
        const rows = foldedTraffic(now, poolZone, i + 1);
        for (const rule of rules) {
          const start = dayWindowStart(rule, now);
          const truth = rows.instants.filter((ts) => ts >= Math.ceil(start / MINUTE_MS) * MINUTE_MS).length;
          const from = Math.ceil(start / MINUTE_MS) * MINUTE_MS;
          const end = liveFrom(now);
          const beforeEnd = rows.instants.filter((ts) => ts >= from && ts < end).length;
          for (const usable of [poolDays(now, poolZone, 0), poolDays(now, poolZone, now), []]) {
            const what = `${rule.reset} ${"timeZone" in rule ? rule.timeZone : ""} at ${new Date(now).toISOString()}`;
            expect(sumOf(planWindowCount(start, now, usable), rows), what).toBe(truth);
            // The part of it before the hours a publish reads anew, which it keeps between publishes.
            if (from < end) expect(sumOf(planRangeCount(start, end, now, usable), rows), `${what}, before ${new Date(end).toISOString()}`).toBe(beforeEnd);
            planned++;
          }
        }
      }
      expect(planned).toBe(instants.length * rules.length * 3);
    });
  }

  it("reads no minute bucket retention may have pruned: a day begun off the hour before them counts its first hour whole", () => {
    let cut = 0;
    for (const [i, now] of instants.entries()) {
      const rows = foldedTraffic(now, "UTC", i + 1);
      for (const rule of rules) {
        const start = dayWindowStart(rule, now);
        const from = Math.ceil(start / MINUTE_MS) * MINUTE_MS;
        const floor = Math.floor(from / HOUR_MS) * HOUR_MS;
        const truth = rows.instants.filter((ts) => ts >= from).length;
        const wholeHour = rows.instants.filter((ts) => ts >= floor).length;
        const end = liveFrom(now);
        // The oldest minute kept: before the window's hour, inside it before the window, at the window, after it.
        for (const minutesFrom of [floor - MINUTE_MS, floor + 1, from, from + MINUTE_MS]) {
          for (const usable of [poolDays(now, "UTC", 0), []]) {
            const terms = planWindowCount(start, now, usable, minutesFrom);
            const what = `${rule.reset} ${"timeZone" in rule ? rule.timeZone : ""} at ${new Date(now).toISOString()}, minutes from ${new Date(minutesFrom).toISOString()}`;
            expect(
              terms.filter((t) => t.rows === "minute" && t.from < minutesFrom),
              what,
            ).toEqual([]);
            // Exact while the minutes it needs are kept; else its hour whole, never less than the window.
            expect(sumOf(terms, rows), what).toBe(from < minutesFrom && floor !== from ? wholeHour : truth);
            if (from < end) {
              const before = planRangeCount(start, end, now, usable, minutesFrom);
              expect(
                before.filter((t) => t.rows === "minute" && t.from < minutesFrom),
                what,
              ).toEqual([]);
              const inRange = (ts: number) => ts < end && ts >= (from < minutesFrom && floor !== from ? floor : from);
              expect(sumOf(before, rows), what).toBe(rows.instants.filter(inRange).length);
            }
            if (from < minutesFrom && floor !== from) cut++;
          }
        }
      }
    }
    // Windows off the hour whose minutes were cut, counted whole (Kolkata's and the others' off-the-minute starts).
    expect(cut).toBeGreaterThan(100);
  });

  it("reads at most 13 hour buckets, 30 minute buckets and 2 day buckets when the pool's days start on the hour", () => {
    for (const now of instants) {
      for (const poolZone of ["UTC", "America/Los_Angeles"]) {
        const usable = poolDays(now, poolZone, 0);
        for (const rule of rules) {
          const terms = planWindowCount(dayWindowStart(rule, now), now, usable);
          expect(buckets(terms, "hour", now)).toBeLessThanOrEqual(13);
          expect(buckets(terms, "minute", now)).toBeLessThanOrEqual(30);
          expect(buckets(terms, "day", now)).toBeLessThanOrEqual(2);
        }
      }
    }
  });

  it("reads today's day bucket alone for a key whose day is the pool's", () => {
    const now = Date.UTC(2026, 11, 5, 22, 30);
    const terms = planWindowCount(Date.UTC(2026, 11, 5), now, poolDays(now, "UTC", 0));
    expect(terms).toEqual([{ rows: "day", from: Date.UTC(2026, 11, 5), to: Infinity, sign: 1 }]);
  });

  it("reads midnight Pacific late in a UTC day as today's bucket and the hours before it from 8:00", () => {
    const now = Date.UTC(2026, 11, 5, 22, 30);
    const terms = planWindowCount(Date.UTC(2026, 11, 5, 8), now, poolDays(now, "UTC", 0));
    expect(terms).toEqual([
      { rows: "day", from: Date.UTC(2026, 11, 5), to: Infinity, sign: 1 },
      { rows: "hour", from: Date.UTC(2026, 11, 5), to: Date.UTC(2026, 11, 5, 8), sign: -1 },
    ]);
  });

  it("sums hours without the pool's days when none is usable, and for an hour into a day", () => {
    const now = Date.UTC(2026, 11, 5, 22, 30);
    expect(planWindowCount(Date.UTC(2026, 11, 5, 8), now, [])).toEqual([{ rows: "hour", from: Date.UTC(2026, 11, 5, 8), to: Infinity, sign: 1 }]);
    expect(planWindowCount(Date.UTC(2026, 11, 5, 22), now, poolDays(now, "UTC", 0))).toEqual([
      { rows: "hour", from: Date.UTC(2026, 11, 5, 22), to: Infinity, sign: 1 },
    ]);
  });

  it("reads anew the hours from the one before the current hour, and counts a fold late an hour earlier than that can reach", () => {
    const hour = Date.UTC(2026, 11, 5, 14);
    expect(liveFrom(hour + 30 * MINUTE_MS)).toBe(hour - HOUR_MS);
    // In the first minutes of an hour, the hour before the last one too.
    expect(liveFrom(hour + 4 * MINUTE_MS)).toBe(hour - 2 * HOUR_MS);
    // A fold that is not late writes no hour before lateBefore; a publish up to five minutes after the fold began
    // (its transaction and the clocks' difference) keeps no sum of an hour from there on.
    for (let t = hour; t < hour + HOUR_MS; t += MINUTE_MS) {
      expect(lateBefore(t)).toBeGreaterThanOrEqual(liveFrom(t + LIVE_SLACK_MS - 1));
      expect(lateBefore(t)).toBeLessThan(liveFrom(t + LIVE_SLACK_MS + HOUR_MS));
    }
  });

  it("uses only the days that began after the pool's time zone was set, with a margin for batches in flight", () => {
    const now = Date.UTC(2026, 11, 5, 22, 30);
    const today = Date.UTC(2026, 11, 5);
    expect(poolDays(now, "UTC", 0)).toEqual([
      { from: today - DAY_MS, to: today },
      { from: today, to: Infinity },
    ]);
    expect(poolDays(now, "UTC", today - DAY_MS - ZONE_SETTLED_MS + 1)).toEqual([{ from: today, to: Infinity }]);
    expect(poolDays(now, "UTC", today - ZONE_SETTLED_MS)).toEqual([{ from: today, to: Infinity }]);
    expect(poolDays(now, "UTC", today - ZONE_SETTLED_MS + 1)).toEqual([]);
    // Yesterday alone (today not usable) is no base: the sum needs the days up to now.
    expect(planWindowCount(today - 20 * HOUR_MS, now, [{ from: today - DAY_MS, to: today }])).toEqual(planWindowCount(today - 20 * HOUR_MS, now, []));
  });
});
