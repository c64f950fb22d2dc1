import { describe, expect, it } from "vitest";
import { keptInRequestLog } from "../../schema";

/** Request ids shaped like the gateway's (UUIDv7: the time, then random hex), from a seeded generator so the counts below are fixed. */
function requestIds(n: number): string[] {
  let state = 0x2545f491;
  const hex = (digits: number) => {
    let out = "";
    for (let i = 0; i < digits; i++) {
      state = (Math.imul(state, 1_103_515_245) + 12_345) >>> 0;
      out += (state >>> 28).toString(16);
    }
    return out;
  };
  const t = Date.UTC(2026, 11, 5).toString(16).padStart(12, "0");
  return Array.from({ length: n }, (_, i) => {
    const time = (Number.parseInt(t, 16) + i).toString(16).padStart(12, "0");
    return `${time.slice(0, 8)}-${time.slice(8)}-7${hex(3)}-8${hex(3)}-${hex(12)}`;
  });
}

const OK = [{ outcome: "ok" }];

describe("keptInRequestLog", () => {
  it("keeps every request with a failed or a retried attempt, whatever the share", () => {
    for (const sample of [0, 0.01, 0.5]) {
      expect(keptInRequestLog("r", [{ outcome: "upstream_error" }], sample)).toBe(true);
      expect(keptInRequestLog("r", [{ outcome: "client_error" }], sample)).toBe(true);
      expect(keptInRequestLog("r", [{ outcome: "rate_limited" }, { outcome: "ok" }], sample)).toBe(true);
    }
  });

  it("keeps every plain success at 1 and none at 0", () => {
    const ids = requestIds(1_000);
    expect(ids.every((id) => keptInRequestLog(id, OK, 1))).toBe(true);
    expect(ids.some((id) => keptInRequestLog(id, OK, 0))).toBe(false);
  });

  it("keeps about the share asked of plain successes, the same ones every time, and a smaller share's within a larger one's", () => {
    const ids = requestIds(100_000);
    const kept = (sample: number) => ids.filter((id) => keptInRequestLog(id, OK, sample));
    const [one, ten] = [kept(0.01), kept(0.1)];
    // 1,000 and 10,000 expected; the bounds are several standard deviations wide.
    expect(one.length).toBeGreaterThan(800);
    expect(one.length).toBeLessThan(1_200);
    expect(ten.length).toBeGreaterThan(9_400);
    expect(ten.length).toBeLessThan(10_600);
    expect(kept(0.01)).toEqual(one);
    const inTen = new Set(ten);
    expect(one.every((id) => inTen.has(id))).toBe(true);
  });
});
