import { describe, expect, it } from "vitest";
import { fillSeries, summarize } from "../../gateway/logic/stats";

describe("summarize", () => {
  const minute = 60_000 * 1000;

  it("counts the current minute fully and the previous one by the share still in the window", () => {
    const now = minute + 15_000; // a quarter into the current minute
    const s = summarize(
      [
        { bucket: minute - 60_000, requests: 40, tokens: 400 },
        { bucket: minute, requests: 3, tokens: 30 },
      ],
      { bucket: 0, requests: 100, tokens: 1_000 },
      now,
      "UTC",
    );
    expect(s).toEqual({ rpm: 33, tpm: 330, rpd: 100, tpd: 1_000, timeZone: "UTC", generatedAt: now });
  });

  it("is zero with no traffic", () => {
    expect(summarize([], undefined, 5, "Asia/Shanghai")).toMatchObject({ rpm: 0, rpd: 0, tpm: 0, tpd: 0 });
  });
});

describe("fillSeries", () => {
  it("emits one point per bucket with zeros where nothing was rolled up", () => {
    expect(fillSeries([{ bucket: 120, requests: 2, tokens: 9 }], 60, 180, 60)).toEqual([
      { t: 60, requests: 0, tokens: 0 },
      { t: 120, requests: 2, tokens: 9 },
      { t: 180, requests: 0, tokens: 0 },
    ]);
  });
});
