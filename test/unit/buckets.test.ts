import { describe, expect, it } from "vitest";
import { dayStart, hourStart, minuteStart, monthStart, nextMonthStart } from "../../schema";

describe("time buckets", () => {
  const ts = Date.UTC(2026, 10, 26, 17, 42, 13, 250);

  it("starts minutes and hours on UTC boundaries", () => {
    expect(minuteStart(ts)).toBe(Date.UTC(2026, 10, 26, 17, 42));
    expect(hourStart(ts)).toBe(Date.UTC(2026, 10, 26, 17));
  });

  it("starts a day at local midnight of the configured zone", () => {
    expect(dayStart(ts, "UTC")).toBe(Date.UTC(2026, 10, 26));
    // 17:42 UTC is 01:42 on the 27th in Beijing; that day began at 16:00 UTC on the 26th.
    expect(dayStart(ts, "Asia/Shanghai")).toBe(Date.UTC(2026, 10, 26, 16));
    // Kathmandu is UTC+5:45.
    expect(dayStart(ts, "Asia/Kathmandu")).toBe(Date.UTC(2026, 10, 26, 18, 15) - 86_400_000);
  });

  it("handles a day that began before a DST change", () => {
    // 2026-03-08 is the US spring-forward day; New York midnight was still UTC-5.
    const afternoon = Date.UTC(2026, 2, 8, 20);
    expect(dayStart(afternoon, "America/New_York")).toBe(Date.UTC(2026, 2, 8, 5));
    // 2026-11-01 is fall-back; midnight was UTC-4.
    expect(dayStart(Date.UTC(2026, 10, 1, 20), "America/New_York")).toBe(Date.UTC(2026, 10, 1, 4));
  });

  it("counts an instant at exactly midnight in the new day", () => {
    const midnight = Date.UTC(2026, 10, 26, 16);
    expect(dayStart(midnight, "Asia/Shanghai")).toBe(midnight);
    expect(dayStart(midnight - 1, "Asia/Shanghai")).toBe(midnight - 86_400_000);
  });

  it("starts each instant's day at the first instant of its local date, also in days around a change of offset", () => {
    // US and EU DST, Lord Howe's 30-minute DST, Brazil's former midnight changes (a day
    // without 00:00), Samoa skipping 30 December 2011, Kathmandu's +5:45. Instants are
    // asked in order, as the consumer asks them, so the per-zone memo is used throughout.
    const windows: [string, number][] = [
      ["America/New_York", Date.UTC(2026, 2, 7)],
      ["America/New_York", Date.UTC(2026, 9, 31)],
      ["Europe/London", Date.UTC(2026, 2, 28)],
      ["Australia/Lord_Howe", Date.UTC(2026, 3, 4)],
      ["America/Sao_Paulo", Date.UTC(2018, 10, 3)],
      ["America/Sao_Paulo", Date.UTC(2019, 1, 15)],
      ["Pacific/Apia", Date.UTC(2011, 11, 28)],
      ["Asia/Kathmandu", Date.UTC(2026, 10, 25)],
    ];
    for (const [zone, from] of windows) {
      const localDate = new Intl.DateTimeFormat("en-CA", { timeZone: zone, year: "numeric", month: "2-digit", day: "2-digit" });
      for (let t = from; t < from + 4 * 86_400_000; t += 420_000 + 1) {
        const start = dayStart(t, zone);
        expect(localDate.format(start), `${zone} ${new Date(t).toISOString()}`).toBe(localDate.format(t));
        expect(localDate.format(start - 1), `${zone} ${new Date(t).toISOString()}`).not.toBe(localDate.format(t));
      }
    }
  });
});

describe("monthStart", () => {
  it("is local midnight of the month's first day, and the next month's follows it", () => {
    const ts = Date.UTC(2026, 2, 15, 12); // 15 March 2026
    expect(monthStart(ts, "UTC")).toBe(Date.UTC(2026, 2, 1));
    expect(nextMonthStart(ts, "UTC")).toBe(Date.UTC(2026, 3, 1));
    // Los Angeles: 1 March at midnight PST (UTC−8); 1 April at midnight PDT (UTC−7).
    expect(monthStart(ts, "America/Los_Angeles")).toBe(Date.UTC(2026, 2, 1, 8));
    expect(nextMonthStart(ts, "America/Los_Angeles")).toBe(Date.UTC(2026, 3, 1, 7));
    // The first moment of a month belongs to it; the moment before, to the month before.
    expect(monthStart(Date.UTC(2026, 0, 1), "UTC")).toBe(Date.UTC(2026, 0, 1));
    expect(monthStart(Date.UTC(2026, 0, 1) - 1, "UTC")).toBe(Date.UTC(2025, 11, 1));
    expect(nextMonthStart(Date.UTC(2026, 11, 31, 23), "UTC")).toBe(Date.UTC(2027, 0, 1));
  });
});

describe("dayStart's cache", () => {
  it("answers today and tomorrow in turn without working a midnight out again (key selection asks both on every pick)", async () => {
    const { vi } = await import("vitest");
    const zone = "Europe/Berlin";
    const now = Date.UTC(2026, 11, 4, 12);
    const today = dayStart(now, zone);
    const tomorrow = dayStart(now + 86_400_000 + 2 * 3_600_000, zone);
    expect(tomorrow - today).toBe(86_400_000);
    const formatted = vi.spyOn(Intl.DateTimeFormat.prototype, "formatToParts");
    try {
      for (let i = 0; i < 1_000; i++) {
        expect(dayStart(now + i, zone)).toBe(today);
        expect(dayStart(now + 86_400_000 + 2 * 3_600_000 + i, zone)).toBe(tomorrow);
      }
      expect(formatted).not.toHaveBeenCalled();
    } finally {
      formatted.mockRestore();
    }
  });
});
