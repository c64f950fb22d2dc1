import { describe, expect, it } from "vitest";
import { DEFAULT_DAY, dayWindowStart, nextDayReset, type DayRule } from "../../schema";
import { buildPoolUsage, type ClientCounts, type UsageCounts } from "../../stats-consumer/logic/build-usage";
import { parsePoolUsage } from "../../gateway/logic/usage-view";
import type { CapacityKeyRow } from "../../storage/keys";

const MIN = 60_000;
const now = Date.UTC(2026, 11, 5, 14, 30, 12);
const thisMinute = now - (now % MIN);
const pacific: DayRule = { reset: "local", hour: 0, timeZone: "America/Los_Angeles" };
const rolling: DayRule = { reset: "rolling" };

const key = (keyId: string, over: Partial<CapacityKeyRow> = {}): CapacityKeyRow => ({
  keyId,
  limits: {},
  upstreamLimits: {},
  requests: null,
  tokens: null,
  ...over,
});
const noClients: ClientCounts = { month: 0, today: 0, minutes: new Map(), days: new Map() };

function published(keys: CapacityKeyRow[], counts: UsageCounts, clients = noClients) {
  const usage = buildPoolUsage(keys, counts, clients, 7, now);
  const parsed = parsePoolUsage(JSON.stringify(usage));
  if (!parsed) throw new Error("the published usage did not parse");
  return { usage, parsed };
}

describe("the pool's usage in columns", () => {
  it("reads back every key's counts, day window, readings and latest attempt, and holds only keys with a limit or a nearly-spent reading", () => {
    const keys = [
      key("utc", { limits: { rpm: 10, rpd: 100 } }),
      key("pacific", { upstreamLimits: { tpd: 5_000, day: pacific } }),
      key("rolling", { limits: { rpd: 50, day: rolling } }),
      key("pacific-2", { limits: { rpm: 3 }, upstreamLimits: { day: pacific } }),
      key("spent", { requests: { ts: now - 2_000, limit: 100, remaining: 4, resetAt: now + 30_000 } }),
      key("roomy", { tokens: { ts: now - 2_000, limit: 1_000, remaining: 900, resetAt: now + 30_000 } }),
      key("never", { limits: { rpm: 1 } }),
    ];
    const counts: UsageCounts = {
      minutes: new Map([
        [
          "utc",
          new Map([
            [thisMinute, { requests: 3, tokens: 300 }],
            [thisMinute - MIN, { requests: 5, tokens: 500 }],
            [thisMinute - 2 * MIN, { requests: 9, tokens: 9 }],
          ]),
        ],
        ["pacific", new Map([[thisMinute - MIN, { requests: 1, tokens: 40 }]])],
      ]),
      days: new Map([
        ["utc", { requests: 20, tokens: 2_000 }],
        ["pacific", { requests: 7, tokens: 700 }],
        ["rolling", { requests: 2, tokens: 0 }],
      ]),
      countedTo: new Map([
        ["utc", now - 1_500],
        ["pacific", now + 40],
        ["rolling", 1],
      ]),
    };
    const { usage, parsed } = published(keys, counts);
    expect(parsed.version).toBe(7);
    expect(parsed.view.at).toBe(now);
    const view = parsed.view.keys;
    expect(view.size).toBe(6);
    expect(view.has("utc")).toBe(true);
    expect(view.has("roomy")).toBe(false);
    expect(view.get("roomy")).toBeUndefined();
    expect(view.get("utc")).toEqual({
      minuteStart: thisMinute,
      minute: { requests: 3, tokens: 300 },
      previousMinute: { requests: 5, tokens: 500 },
      dayStart: dayWindowStart(DEFAULT_DAY, now),
      dayResetAt: nextDayReset(DEFAULT_DAY, now),
      day: { requests: 20, tokens: 2_000 },
      requests: null,
      tokens: null,
      countedTo: now - 1_500,
    });
    expect(view.get("pacific")).toMatchObject({
      minute: { requests: 0, tokens: 0 },
      previousMinute: { requests: 1, tokens: 40 },
      dayStart: dayWindowStart(pacific, now),
      dayResetAt: nextDayReset(pacific, now),
      day: { requests: 7, tokens: 700 },
      countedTo: now + 40,
    });
    expect(view.get("rolling")).toMatchObject({ dayStart: dayWindowStart(rolling, now), dayResetAt: nextDayReset(rolling, now), countedTo: 1 });
    expect(view.get("spent")).toMatchObject({
      requests: { at: now - 2_000, limit: 100, remaining: 4, resetAt: now + 30_000 },
      tokens: null,
      countedTo: 0,
      day: { requests: 0, tokens: 0 },
    });
    expect(view.get("never")).toMatchObject({ minute: { requests: 0, tokens: 0 }, countedTo: 0 });
    // Keys on one day rule share its window: UTC (the default, for "spent" and "never" too), Pacific, rolling.
    expect(usage.dayWindows).toHaveLength(3);
    expect(view.get("pacific-2")?.dayStart).toBe(view.get("pacific")?.dayStart);
  });

  it("reads client keys' usage as before", () => {
    const clients: ClientCounts = {
      month: Date.UTC(2026, 11, 1),
      today: Date.UTC(2026, 11, 5),
      minutes: new Map([["c1", new Map([[thisMinute, { requests: 2, tokens: 20 }]])]]),
      days: new Map([["c1", { day_requests: 4, day_tokens: 40, day_cost: 400, month_tokens: 80, month_cost: 800, last_at: now - 9 }]]),
    };
    const { parsed } = published([], { minutes: new Map(), days: new Map(), countedTo: new Map() }, clients);
    expect(parsed.view.keys.size).toBe(0);
    expect(parsed.view.clients?.get("c1")).toEqual({
      minuteStart: thisMinute,
      minute: { requests: 2, tokens: 20 },
      previousMinute: { requests: 0, tokens: 0 },
      dayStart: clients.today,
      day: { requests: 4, tokens: 40, costMicros: 400 },
      monthStart: clients.month,
      month: { tokens: 80, costMicros: 800 },
      countedTo: now - 9,
    });
  });

  it("refuses a value whose columns do not line up", () => {
    const { usage } = published([key("a", { limits: { rpm: 1 } }), key("b", { limits: { rpm: 1 } })], {
      minutes: new Map(),
      days: new Map(),
      countedTo: new Map(),
    });
    const broken = (change: (u: Record<string, unknown>) => void) => {
      const copy = structuredClone(usage) as unknown as Record<string, unknown>;
      change(copy);
      return parsePoolUsage(JSON.stringify(copy));
    };
    expect(broken(() => {})).not.toBeNull();
    expect(broken((u) => (u.keyCounts as number[]).pop())).toBeNull();
    expect(broken((u) => ((u.keyCounts as unknown[])[3] = "3"))).toBeNull();
    expect(broken((u) => ((u.keyCounts as number[])[4] = 1))).toBeNull();
    expect(broken((u) => ((u.keyCounts as number[])[12] = 0.5))).toBeNull();
    expect(broken((u) => ((u.keyIds as unknown[])[1] = 2))).toBeNull();
    expect(broken((u) => delete u.minuteStart)).toBeNull();
    expect(parsePoolUsage("{")).toBeNull();
    // The format before the columns (an object of tuples by key) is not taken for one.
    expect(
      parsePoolUsage(JSON.stringify({ version: 1, generatedAt: now, keys: { a: [thisMinute, 1, 1, 0, 0, 0, 0, 1, 1, null, null, 0] }, clients: {} })),
    ).toBeNull();
  });
});
