import { describe, expect, it } from "vitest";
import { capacityFigures } from "../../gateway/logic/capacity-figures";
import { providerKinds } from "../../schema";
import type { WindowReading } from "../../storage/key-capacity";
import { T0, usageAt } from "./capacity-fixtures";

const none = { requests: null, tokens: null };
const perMinute = providerKinds.openai.rateLimitHeaders;

const usage = usageAt;

const reading = (limit: number, remaining: number, resetAt: number | null): WindowReading => ({ ts: T0, limit, remaining, resetAt });

describe("a key's capacity figures", () => {
  it("shows configured limits with the pool's count, the minute sliding over the previous one", () => {
    const u = usage({ minute: { requests: 6, tokens: 900 }, previousMinute: { requests: 10, tokens: 0 }, day: { requests: 400, tokens: 50_000 } });
    const f = capacityFigures({ rpm: 20, rpd: 1_000, tpm: 2_000 }, u, none, perMinute, T0 + 15_000);
    // Three quarters of the previous minute's 10 still count: 6 + 7.5, shown whole.
    expect(f.rpm).toEqual({ used: 14, limit: 20, source: "configured", resetAt: T0 + 60_000 });
    expect(f.rpd).toEqual({ used: 400, limit: 1_000, source: "configured", resetAt: Date.UTC(2026, 11, 5) });
    expect(f.tpm).toMatchObject({ used: 900, limit: 2_000 });
    expect(f.tpd).toBeNull();
    expect(f.nearLimit).toBeCloseTo(14 / 20); // as shown
  });

  it("counts nothing from a minute or a day that has passed", () => {
    const u = usage({ minute: { requests: 9, tokens: 0 }, day: { requests: 999, tokens: 0 } });
    const f = capacityFigures({ rpm: 10, rpd: 1_000 }, u, none, perMinute, Date.UTC(2026, 11, 5, 0, 5));
    expect(f.rpm?.used).toBe(0);
    expect(f.rpd?.used).toBe(0);
    expect(f.nearLimit).toBe(0);
  });

  it("learns a limit from the provider's headers when none is configured, for the window the kind's headers describe", () => {
    const readings = { requests: reading(500, 120, T0 + 30_000), tokens: reading(40_000, 39_000, T0 + 5_000) };
    const openai = capacityFigures({}, undefined, readings, perMinute, T0 + 1_000);
    expect(openai.rpm).toEqual({ used: 380, limit: 500, source: "learned", resetAt: T0 + 30_000 });
    expect(openai.rpd).toBeNull();
    expect(openai.tpm).toMatchObject({ used: 1_000, limit: 40_000, source: "learned" });
    // Groq's requests headers count the day.
    const groq = capacityFigures({}, undefined, readings, providerKinds.groq.rateLimitHeaders, T0 + 1_000);
    expect(groq.rpm).toBeNull();
    expect(groq.rpd).toMatchObject({ used: 380, limit: 500, source: "learned" });
  });

  it("prefers the configured limit to what the provider said, and forgets a reading whose window has reset", () => {
    const readings = { requests: reading(500, 0, T0 + 30_000), tokens: reading(40_000, 0, T0 + 5_000) };
    const f = capacityFigures({ rpm: 50 }, usage({ minute: { requests: 5, tokens: 0 } }), readings, perMinute, T0 + 10_000);
    expect(f.rpm).toMatchObject({ used: 5, limit: 50, source: "configured" });
    expect(f.tpm).toBeNull();
    expect(f.nearLimit).toBeCloseTo(0.1);
  });

  it("has no share used when no limit is known", () => {
    expect(capacityFigures({}, usage(), none, perMinute, T0).nearLimit).toBeNull();
  });

  it("caps the share at the whole limit when the pool went over", () => {
    expect(capacityFigures({ rpd: 10 }, usage({ day: { requests: 12, tokens: 0 } }), none, perMinute, T0).nearLimit).toBe(1);
  });
});
