import { describe, expect, it } from "vitest";
import {
  LATENCY_BOUNDS_S,
  alertSettingsSchema,
  defaultSettings,
  diffConditions,
  labelValue,
  latencyBucket,
  maskUrl,
  messageBody,
  signBody,
  snapshotSchema,
  verifySignature,
  PriceBook,
  type Condition,
  type DeliveredAlert,
  type KeyState,
  type StoredCondition,
} from "../../schema";
import { toBatchRows } from "../../stats-consumer/logic/rollup-rows";
import { clientConditions, poolConditions, type ClientQuotaRow } from "../../stats-consumer/logic/alert-conditions";
import { attemptEvent } from "../fixtures/events";

const alerts = alertSettingsSchema.parse({ cooldownMinutes: 0 });

function snapshot(
  keys: { id: string; state: KeyState; models?: string[]; upstream?: string; coolingUntil?: number }[],
  upstreams = [{ id: "u1", models: ["m1", "m2"], enabled: true }],
) {
  return snapshotSchema.parse({
    version: 1,
    generatedAt: 0,
    upstreams: upstreams.map((u) => ({
      id: u.id,
      name: `up ${u.id}`,
      baseUrl: "https://x.test/v1",
      kind: "custom",
      models: u.models,
      aliases: {},
      enabled: u.enabled,
    })),
    keys: keys.map((k) => ({
      id: k.id,
      upstreamId: k.upstream ?? "u1",
      secret: "v1.x.y",
      weight: 1,
      models: k.models ?? [],
      state: k.state,
      coolingUntil: k.state === "cooling" ? (k.coolingUntil ?? 1_000) : null,
      successRate: 1,
    })),
    clientKeys: [],
    settings: defaultSettings,
  });
}

describe("diffConditions", () => {
  const cond = (subject: string, kind: Condition["kind"], value: string): Condition => ({
    subject,
    kind,
    value,
    label: subject,
    detail: `${subject} is ${value}`,
  });

  it("fires new and changed conditions, resolves those gone, and groups one alert per kind and status", () => {
    const stored = new Map<string, StoredCondition>([
      ["key:a", { kind: "key_dead", value: "dead", label: "a" }],
      ["key:b", { kind: "key_failing", value: "failing", label: "b" }],
      ["key:c", { kind: "key_dead", value: "dead", label: "c" }],
    ]);
    const found = [
      cond("key:a", "key_dead", "dead"),
      cond("key:b", "key_exhausted", "exhausted"),
      cond("key:d", "key_dead", "dead"),
      cond("key:e", "key_dead", "dead"),
    ];
    const out = diffConditions(found, stored, true);
    expect(out.upserts.map((u) => u.subject)).toEqual(["key:b", "key:d", "key:e"]);
    expect(out.deletes).toEqual(["key:c"]);
    expect(out.alerts.map((a) => [a.kind, a.status, a.items.map((i) => i.subject)])).toEqual([
      ["key_exhausted", "firing", ["key:b"]],
      ["key_dead", "firing", ["key:d", "key:e"]],
      ["key_dead", "resolved", ["key:c"]],
    ]);
    expect(out.alerts[1]!.title).toBe("2 keys dead: the upstream refuses them");
    expect(diffConditions(found, stored, false).alerts.some((a) => a.status === "resolved")).toBe(false);
  });

  it("raises nothing when nothing changed, and one alert for a thousand keys at once", () => {
    const stored = new Map<string, StoredCondition>([["pool:active", { kind: "pool_active_keys", value: "below", label: "pool" }]]);
    expect(diffConditions([cond("pool:active", "pool_active_keys", "below")], stored, true)).toEqual({ upserts: [], deletes: [], alerts: [] });
    const thousand = Array.from({ length: 1000 }, (_, i) => cond(`key:${String(i).padStart(4, "0")}`, "key_dead", "dead"));
    const out = diffConditions(thousand, new Map(), true);
    expect(out.alerts).toHaveLength(1);
    expect(out.alerts[0]!.items).toHaveLength(1000);
    expect(out.alerts[0]!.title).toBe("1000 keys dead: the upstream refuses them");
  });
});

describe("poolConditions", () => {
  it("finds dead, exhausted and failing keys, low balances, and the pool's and each model's keys in service", () => {
    const s = snapshot([
      { id: "k1", state: "dead" },
      { id: "k2", state: "exhausted", models: ["m1"] },
      { id: "k3", state: "failing", models: ["m1"] },
      { id: "k4", state: "cooling", models: ["m1"], coolingUntil: 5_000 },
      { id: "k5", state: "active", models: ["m2"] },
      { id: "k6", state: "disabled" },
    ]);
    const extras = new Map([
      ["k1", { masked: "sk-1…aaaa", balance: null }],
      ["k5", { masked: "sk-5…eeee", balance: 0.4 }],
    ]);
    const found = poolConditions(s, extras, alerts);
    const bySubject = new Map(found.map((c) => [c.subject, c]));
    expect(bySubject.get("key:k1")).toMatchObject({ kind: "key_dead", label: "sk-1…aaaa (up u1)" });
    expect(bySubject.get("key:k2")!.kind).toBe("key_exhausted");
    expect(bySubject.get("key:k3")!.kind).toBe("key_failing");
    expect(bySubject.has("key:k6")).toBe(false);
    expect(bySubject.get("balance:k5")).toMatchObject({ kind: "low_balance", detail: "balance 0.4 (threshold 1)" });
    // In service: k4 and k5 of five enabled keys (k6 is disabled): 40 % < 50 %.
    expect(bySubject.get("pool:active")!.detail).toBe("2 of 5 enabled keys in service (40 %, threshold 50 %)");
    // m1: k1 (any model of the upstream), k2, k3, k4 — one in service, and cooling: 25 % is not below 25 %.
    expect(bySubject.has("model:m1:headroom")).toBe(false);
    expect(bySubject.get("model:m1:cooling")!.detail).toContain("all 1 keys in service are cooling");
    expect(bySubject.has("model:m2:cooling")).toBe(false);
  });

  it("looks only for kinds that are on, with per-upstream balance thresholds, and ignores disabled upstreams", () => {
    const s = snapshot(
      [
        { id: "k1", state: "dead" },
        { id: "k2", state: "active", upstream: "u2" },
        { id: "k3", state: "dead", upstream: "u3" },
      ],
      [
        { id: "u1", models: ["m1"], enabled: true },
        { id: "u2", models: ["m1"], enabled: true },
        { id: "u3", models: ["m1"], enabled: false },
      ],
    );
    const settings = alertSettingsSchema.parse({ rules: { key_dead: { enabled: false } }, lowBalanceByUpstream: { u2: 10 } });
    const found = poolConditions(s, new Map([["k2", { masked: "k2", balance: 5 }]]), settings);
    expect(found.map((c) => c.subject).sort()).toEqual(["balance:k2"]);
  });
});

describe("clientConditions", () => {
  const row = (used: Partial<ClientQuotaRow["used"]>, limits: Partial<ClientQuotaRow["limits"]>): ClientQuotaRow => ({
    id: "c1",
    name: "team",
    limits: { rpd: null, tpd: null, monthly_tokens: null, daily_budget: null, monthly_budget: null, ...limits },
    used: { dayRequests: 0, dayTokens: 0, dayCost: 0, monthTokens: 0, monthCost: 0, ...used },
  });

  it("warns at the threshold share and says full at all of it, per quota and period", () => {
    const found = clientConditions([row({ dayRequests: 8, monthCost: 1_000_000 }, { rpd: 10, monthly_budget: 1_000_000, tpd: 100 })], alerts, 100, 50, "USD");
    expect(found.map((c) => [c.subject, c.value])).toEqual([
      ["client:c1:rpd:100", "warn"],
      ["client:c1:monthly_budget:50", "full"],
    ]);
    expect(found[0]!.detail).toBe("8 of 10 requests today (80 %)");
    expect(clientConditions([row({ dayRequests: 7 }, { rpd: 10 })], alerts, 100, 50, "USD")).toEqual([]);
  });
});

describe("webhook messages", () => {
  const alert: DeliveredAlert = {
    id: "a1",
    kind: "key_dead",
    status: "firing",
    title: "30 keys dead",
    count: 30,
    items: Array.from({ length: 30 }, (_, i) => ({ subject: `key:${i}`, label: `sk-${i}…${"x".repeat(80)}`, detail: "refused" })),
    raisedAt: "2026-12-04T00:00:00.000Z",
  };

  it("signs `timestamp.body` with HMAC-SHA256 and verifies only the right secret within the window", async () => {
    const body = messageBody("webhook", [alert], "Keypool");
    expect(JSON.parse(body)).toEqual({ pool: "Keypool", alerts: [alert] });
    const signature = await signBody("whsec_test", 1_700_000_000, body);
    // The same HMAC as any other implementation of the documented scheme computes.
    const { createHmac } = await import("node:crypto");
    expect(signature).toBe(createHmac("sha256", "whsec_test").update(`1700000000.${body}`).digest("hex"));
    expect(await verifySignature("whsec_test", `v1=${signature}`, "1700000000", body, 1_700_000_100)).toBe(true);
    expect(await verifySignature("whsec_test", `v1=${signature}`, "1700000000", body, 1_700_000_301)).toBe(false);
    expect(await verifySignature("whsec_test", `v1=${signature}`, "1700000000", `${body} `, 1_700_000_000)).toBe(false);
    expect(await verifySignature("whsec_other", `v1=${signature}`, "1700000000", body, 1_700_000_000)).toBe(false);
    expect(await verifySignature("whsec_test", null, "1700000000", body, 1_700_000_000)).toBe(false);
  });

  it("writes Slack and Discord text, Discord within its 2,000 characters and with mentions off", () => {
    const slack = JSON.parse(messageBody("slack", [alert], "Keypool")) as { text: string };
    expect(slack.text.split("\n")[0]).toBe("⚠️ [Keypool] 30 keys dead");
    expect(slack.text).toContain("… and 10 more");
    const discord = JSON.parse(messageBody("discord", [alert, alert, alert], "Keypool")) as { content: string; allowed_mentions: unknown };
    expect(discord.content.length).toBeLessThanOrEqual(2_000);
    expect(discord.allowed_mentions).toEqual({ parse: [] });
  });

  it("masks a destination URL to its scheme, host and last four characters", () => {
    expect(maskUrl("https://hooks.slack.com/services/T000/B000/XXXXsecret1234")).toBe("https://hooks.slack.com/…1234");
    expect(maskUrl("https://example.com/")).toBe("https://example.com/");
  });
});

describe("metric counters", () => {
  it("puts a duration in its histogram bucket, +Inf past the last bound", () => {
    expect(latencyBucket(0)).toBe(0);
    expect(latencyBucket(100)).toBe(0);
    expect(latencyBucket(101)).toBe(1);
    expect(latencyBucket(120_000)).toBe(LATENCY_BOUNDS_S.length - 1);
    expect(latencyBucket(120_001)).toBe(LATENCY_BOUNDS_S.length);
  });

  it("sums attempts per upstream, model and hour from their rollup rows, buckets included", () => {
    const hour = 1_700_000_000_000 - (1_700_000_000_000 % 3_600_000);
    const prices = PriceBook.fromSnapshot([["m", "", 1_000_000, null, 2_000_000, null]]);
    const { metrics, metricAttempts } = toBatchRows(
      [
        attemptEvent({ ts: hour + 1, latencyMs: 50, ttfbMs: 20 }),
        attemptEvent({
          ts: hour + 2,
          latencyMs: 700,
          ttfbMs: null,
          outcome: "rate_limited",
          final: false,
          promptTokens: 0,
          completionTokens: 0,
          totalTokens: 0,
        }),
        attemptEvent({ ts: hour + 3_600_000, latencyMs: 50, model: "unpriced" }),
      ],
      "UTC",
      prices,
    );
    expect(metrics).toHaveLength(2);
    expect(metrics[0]).toMatchObject({ upstream: "u", model: "m", h: hour, n: 2, req: 1, ok: 1, rl: 1, pt: 1, ct: 1, cost: 3, ls: 750, fs: 20, fc: 1 });
    expect(metrics[0]!.lb).toEqual([1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
    expect(metrics[0]!.fb).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    expect(metrics[1]).toMatchObject({ model: "unpriced", h: hour + 3_600_000, cost: 0, unpriced: 1 });
    // The rows summed are not changed.
    expect(metricAttempts[0]!.lb).toEqual([1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("escapes label values as the text format wants", () => {
    expect(labelValue('a"b\\c\nd')).toBe('a\\"b\\\\c\\nd');
  });
});
