import { describe, expect, it } from "vitest";
import { DEFAULT_DAY, dayWindowStart, effectiveLimits, limitsSchema, nextDayReset, type DayRule } from "../../schema";

const utc = (iso: string) => Date.parse(iso);
const pacific: DayRule = { reset: "local", hour: 0, timeZone: "America/Los_Angeles" };

describe("a provider's day", () => {
  it("starts at midnight Pacific, in winter (UTC−8) and in summer (UTC−7)", () => {
    expect(dayWindowStart(pacific, utc("2026-12-04T12:00:00Z"))).toBe(utc("2026-12-04T08:00:00Z"));
    expect(dayWindowStart(pacific, utc("2026-12-04T07:59:59Z"))).toBe(utc("2026-12-03T08:00:00Z"));
    expect(dayWindowStart(pacific, utc("2026-07-04T12:00:00Z"))).toBe(utc("2026-07-04T07:00:00Z"));
    expect(nextDayReset(pacific, utc("2026-12-04T12:00:00Z"))).toBe(utc("2026-12-05T08:00:00Z"));
  });

  it("resets at a local hour other than midnight", () => {
    const beijing8: DayRule = { reset: "local", hour: 8, timeZone: "Asia/Shanghai" };
    // 08:00 in Beijing is 00:00 UTC.
    expect(dayWindowStart(beijing8, utc("2026-12-04T12:00:00Z"))).toBe(utc("2026-12-04T00:00:00Z"));
    expect(dayWindowStart(beijing8, utc("2026-12-03T23:30:00Z"))).toBe(utc("2026-12-03T00:00:00Z"));
    expect(nextDayReset(beijing8, utc("2026-12-03T23:30:00Z"))).toBe(utc("2026-12-04T00:00:00Z"));
  });

  it("crosses a daylight saving change: the day after the clocks move is 23 or 25 hours", () => {
    // The US springs forward on 2026-03-08 and falls back on 2026-11-01.
    expect(nextDayReset(pacific, utc("2026-03-08T09:00:00Z"))).toBe(utc("2026-03-09T07:00:00Z"));
    expect(dayWindowStart(pacific, utc("2026-03-08T09:00:00Z"))).toBe(utc("2026-03-08T08:00:00Z"));
    expect(nextDayReset(pacific, utc("2026-11-01T08:00:00Z"))).toBe(utc("2026-11-02T08:00:00Z"));
    expect(dayWindowStart(pacific, utc("2026-11-01T08:00:00Z"))).toBe(utc("2026-11-01T07:00:00Z"));
  });

  it("is UTC midnight when the provider does not say, and the last 24 hours when it rolls", () => {
    const now = utc("2026-12-04T12:34:56Z");
    expect(dayWindowStart(DEFAULT_DAY, now)).toBe(utc("2026-12-04T00:00:00Z"));
    expect(nextDayReset(DEFAULT_DAY, now)).toBe(utc("2026-12-05T00:00:00Z"));
    expect(dayWindowStart({ reset: "rolling" }, now)).toBe(now - 86_400_000);
  });

  it("resets exactly at the boundary, never at `now` itself", () => {
    const boundary = utc("2026-12-05T08:00:00Z");
    expect(dayWindowStart(pacific, boundary)).toBe(boundary);
    expect(nextDayReset(pacific, boundary)).toBe(utc("2026-12-06T08:00:00Z"));
  });
});

describe("limits", () => {
  it("validates: positive whole numbers, a known zone, nothing else", () => {
    expect(limitsSchema.safeParse({ rpm: 60, rpd: 1_000, tpm: 100_000, tpd: 1_000_000, day: pacific }).success).toBe(true);
    for (const bad of [
      { rpm: 0 },
      { rpd: 1.5 },
      { tpm: -1 },
      { day: { reset: "local", hour: 24, timeZone: "UTC" } },
      { day: { reset: "local", hour: 0, timeZone: "Mars/Base" } },
      { rps: 5 },
    ]) {
      expect(limitsSchema.safeParse(bad).success).toBe(false);
    }
  });

  it("takes a key's own limits over its upstream's, one by one", () => {
    expect(effectiveLimits({ rpm: 60, rpd: 1_000, day: pacific }, { rpd: 500 })).toEqual({ rpm: 60, rpd: 500, day: pacific });
  });
});
