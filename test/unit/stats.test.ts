import { describe, expect, it } from "vitest";
import { bucketStarts, fillSeries, summarize, toMetrics } from "../../gateway/logic/stats";
import type { MetricSums } from "../../storage/rollup-sums";

describe("summarize", () => {
  const minute = 60_000 * 1000;
  const day = { requests: 100, tokens: 1_000 };
  const spend = { currency: "USD", today: { costMicros: 12, unpriced: 1 }, month: { costMicros: 345, unpriced: 2 } };

  it("counts the current minute fully and the previous one by the share still in the window", () => {
    const now = minute + 15_000; // a quarter into the current minute
    const s = summarize(
      [
        { bucket: minute - 60_000, requests: 40, tokens: 400 },
        { bucket: minute, requests: 3, tokens: 30 },
      ],
      { bucket: 0, ...day },
      { requests: 150, tokens: 1_500 },
      spend,
      now,
      "UTC",
    );
    expect(s).toEqual({ rpm: 33, tpm: 330, rpd: 100, tpd: 1_000, last24h: { requests: 150, tokens: 1_500 }, spend, timeZone: "UTC", generatedAt: now });
  });

  it("is zero with no traffic", () => {
    expect(summarize([], undefined, { requests: 0, tokens: 0 }, spend, 5, "Asia/Shanghai")).toMatchObject({ rpm: 0, rpd: 0, tpm: 0, tpd: 0 });
  });
});

describe("bucketStarts", () => {
  it("counts back whole minutes and hours from the current one", () => {
    const now = Date.UTC(2026, 10, 26, 10, 30, 15);
    expect(bucketStarts("minute", 3, now, "UTC")).toEqual([Date.UTC(2026, 10, 26, 10, 28), Date.UTC(2026, 10, 26, 10, 29), Date.UTC(2026, 10, 26, 10, 30)]);
    expect(bucketStarts("hour", 2, now, "UTC")).toEqual([Date.UTC(2026, 10, 26, 9), Date.UTC(2026, 10, 26, 10)]);
  });

  it("follows the zone's midnights for days, across a DST change", () => {
    const now = Date.UTC(2026, 2, 9, 12); // the day after New York springs forward
    expect(bucketStarts("day", 3, now, "America/New_York")).toEqual([Date.UTC(2026, 2, 7, 5), Date.UTC(2026, 2, 8, 5), Date.UTC(2026, 2, 9, 4)]);
    expect(bucketStarts("day", 2, now, "Asia/Shanghai")).toEqual([Date.UTC(2026, 2, 7, 16), Date.UTC(2026, 2, 8, 16)]);
  });
});

describe("series metrics", () => {
  const sums: MetricSums = {
    requests: 8,
    attempts: 10,
    successes: 6,
    rateLimited: 1,
    failures: 1,
    clientErrors: 1,
    aborted: 1,
    promptTokens: 30,
    completionTokens: 70,
    tokens: 100,
    estimatedTokens: 0,
    latencySum: 2_000,
    latencyMax: 900,
    ttfbSum: 400,
    ttfbCount: 8,
    costMicros: 1_234,
    unpriced: 2,
  };

  it("derives rates and averages from the sums", () => {
    expect(toMetrics(sums)).toMatchObject({ successRate: 6 / 8, latencyAvgMs: 200, ttfbAvgMs: 50, latencyMaxMs: 900, costMicros: 1_234, unpriced: 2 });
    expect(toMetrics(undefined)).toMatchObject({ requests: 0, successRate: null, latencyAvgMs: null, ttfbAvgMs: null });
  });

  it("emits one point per bucket with zeros where nothing was rolled up", () => {
    const points = fillSeries([{ bucket: 120, ...sums }], [60, 120, 180]);
    expect(points.map((p) => [p.t, p.requests])).toEqual([
      [60, 0],
      [120, 8],
      [180, 0],
    ]);
  });
});
