import { describe, expect, it } from "vitest";
import { defaultSettings, failureEntry, probeJobSchema, providerKinds, type HealthFacts } from "../../schema";
import { nextProbeAt, planProbes, probeJobsFor, type ProbeCandidate } from "../../scheduler/logic/probe-plan";
import { probeUrl } from "../../scheduler/probe";

describe("provider balance parsers", () => {
  it("reads SiliconFlow, DeepSeek and OpenRouter answers", () => {
    expect(providerKinds.siliconflow.probe.parse({ data: { totalBalance: "3.20" } })).toEqual({ balance: 3.2 });
    expect(providerKinds.deepseek.probe.parse({ is_available: false, balance_infos: [] })).toEqual({ balance: 0 });
    expect(providerKinds.deepseek.probe.parse({ balance_infos: [{ total_balance: "1.5" }, { total_balance: "2" }] })).toEqual({ balance: 3.5 });
    expect(providerKinds.openrouter.probe.parse({ data: { limit: 10, usage: 4 } })).toEqual({ balance: 6 });
    expect(providerKinds.openrouter.probe.parse({ data: { limit: null, usage: 4 } })).toEqual({ balance: null });
  });

  it("calls an unreadable answer malformed instead of guessing", () => {
    expect(providerKinds.siliconflow.probe.parse({ data: { totalBalance: "lots" } })).toBe("malformed");
    expect(providerKinds.deepseek.probe.parse({ balance_infos: [{ total_balance: null }] })).toBe("malformed");
    expect(providerKinds.openrouter.probe.parse("nope")).toBe("malformed");
  });

  it("builds probe URLs from the base URL or its origin, and never a billed endpoint", () => {
    expect(probeUrl({ keyId: "k", kind: "deepseek", baseUrl: "https://api.deepseek.com/v1", secretEnc: "" })).toBe("https://api.deepseek.com/user/balance");
    expect(probeUrl({ keyId: "k", kind: "siliconflow", baseUrl: "https://api.siliconflow.cn/v1", secretEnc: "" })).toBe(
      "https://api.siliconflow.cn/v1/user/info",
    );
    expect(probeUrl({ keyId: "k", kind: "openrouter", baseUrl: "https://openrouter.ai/api/v1", secretEnc: "" })).toBe("https://openrouter.ai/api/v1/key");
    for (const kind of Object.values(providerKinds)) expect(kind.probe.path).not.toMatch(/completions|embeddings|images|audio|responses/);
  });
});

describe("probe planning", () => {
  const facts = (f: Partial<HealthFacts> = {}): HealthFacts => ({
    lastOkTs: 0,
    lastRateLimitTs: 0,
    coolUntil: 0,
    lastAuthFailTs: 0,
    lastNoBalanceTs: 0,
    failures: [],
    ...f,
  });
  const candidate = (keyId: string, f: Partial<HealthFacts> = {}, lastProbeTs = 0, enabled = true): ProbeCandidate => ({
    keyId,
    enabled,
    facts: facts(f),
    lastProbeTs,
  });

  it("never probes disabled or cooling keys", () => {
    expect(nextProbeAt(candidate("a", {}, 0, false), defaultSettings, 1e9)).toBeNull();
    expect(nextProbeAt(candidate("b", { lastRateLimitTs: 5, coolUntil: 2e9 }), defaultSettings, 1e9)).toBeNull();
  });

  it("backs off a failing key: 1 min after its last failure, then at growing intervals", () => {
    const failures = [1, 2, 3, 4, 5].map((i) => failureEntry(1_000_000 + i, `e${i}`));
    const failing = (lastProbeTs: number) => candidate("f", { failures }, lastProbeTs);
    expect(nextProbeAt(failing(0), defaultSettings, 1_000_010)).toBe(1_000_005 + 60_000);
    // Failing for an hour: probed every 30 minutes.
    expect(nextProbeAt(failing(1_000_005 + 3_600_000), defaultSettings, 1_000_005 + 3_600_000)).toBe(1_000_005 + 3_600_000 + 1_800_000);
  });

  it("counts a success by traffic as a liveness check, but not as a balance reading", () => {
    const hour = defaultSettings.balanceProbeIntervalMs;
    const now = 10 * hour;
    // Probed long ago, served a request successfully a minute ago.
    const served = { ...candidate("s", { lastOkTs: now - 60_000 }, now - 3 * hour) };
    expect(nextProbeAt({ ...served, livenessOnly: true }, defaultSettings, now)).toBe(now - 60_000 + hour);
    expect(nextProbeAt({ ...served, livenessOnly: false }, defaultSettings, now)).toBe(now - 2 * hour);
    // No success since its last probe: due an interval after the probe, either way.
    const idle = { ...candidate("i", { lastOkTs: now - 5 * hour }, now - 2 * hour), livenessOnly: true };
    expect(nextProbeAt(idle, defaultSettings, now)).toBe(now - hour);
    // A busy pool of liveness-only keys plans no probe at all.
    const busy = Array.from({ length: 100 }, (_, i) => ({ ...candidate(`b${i}`, { lastOkTs: now - i * 1_000 }, 0), livenessOnly: true }));
    expect(planProbes(busy, defaultSettings, now)).toEqual([]);
  });

  it("takes the least recently probed due keys, up to the budget", () => {
    const keys = Array.from({ length: 50 }, (_, i) => candidate(`k${i}`, {}, i * 10));
    const plan = planProbes(keys, { ...defaultSettings, probeBudget: 3 }, 10_000_000);
    expect(plan.map((c) => c.keyId)).toEqual(["k0", "k1", "k2"]);
    // A run that hands jobs on plans further, in the same order.
    expect(planProbes(keys, { ...defaultSettings, probeBudget: 3 }, 10_000_000, 7).map((c) => c.keyId)).toEqual(["k0", "k1", "k2", "k3", "k4", "k5", "k6"]);
  });
});

describe("probe jobs", () => {
  const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `key-${String(from + i).padStart(4, "0")}`);

  it("hands keys on in order, a budget a job, no more jobs than allowed", () => {
    const jobs = probeJobsFor(ids(10), 3, 5, 1_000);
    expect(jobs.map((j) => j.keyIds)).toEqual([ids(3), ids(3, 3), ids(3, 6), ids(1, 9)]);
    for (const job of jobs) expect(probeJobSchema.parse(job)).toEqual({ type: "probe-job", keyIds: job.keyIds, plannedAt: 1_000 });
    // Two jobs allowed: the keys past them wait for the next run.
    expect(probeJobsFor(ids(10), 3, 2, 1_000).map((j) => j.keyIds)).toEqual([ids(3), ids(3, 3)]);
    expect(probeJobsFor(ids(6), 3, 2, 1_000).map((j) => j.keyIds)).toEqual([ids(3), ids(3, 3)]);
    expect(probeJobsFor(ids(10), 3, 0, 1_000)).toEqual([]);
    expect(probeJobsFor([], 3, 5, 1_000)).toEqual([]);
  });

  it("keeps a job's ids under the bytes a queue message takes", () => {
    // Eight bytes of JSON an id: "key-0000", each with two quotes and a comma, is 11.
    const jobs = probeJobsFor(ids(10), 1_000, 10, 1_000, 35);
    expect(jobs.map((j) => j.keyIds.length)).toEqual([3, 3, 3, 1]);
    expect(jobs.flatMap((j) => j.keyIds)).toEqual(ids(10));
    // The largest job at the default budget: a thousand UUIDs fit a message.
    const uuids = Array.from({ length: 1_000 }, () => crypto.randomUUID());
    const [job] = probeJobsFor(uuids, 1_000, 1, 1_000);
    expect(job!.keyIds).toHaveLength(1_000);
    expect(new TextEncoder().encode(JSON.stringify(job)).byteLength).toBeLessThan(128_000);
  });

  it("refuses a message that is not a probe job", () => {
    expect(probeJobSchema.safeParse({ type: "probe-job", keyIds: [], plannedAt: 1 }).success).toBe(false);
    expect(probeJobSchema.safeParse({ type: "probe-job", keyIds: ids(1_001), plannedAt: 1 }).success).toBe(false);
    expect(probeJobSchema.safeParse({ events: [] }).success).toBe(false);
  });
});
