import { describe, expect, it } from "vitest";
import type { AttemptEvent, Outcome } from "../../schema";
import { runScheduled } from "../../scheduler";
import { addUpstreamWithKeys, clock, fold, health, schedulerDeps } from "./scheduler-helpers";
import { attemptEvent } from "../fixtures/events";

const json = (body: unknown, status = 200) => Response.json(body, { status });

function attempt(keyId: string, outcome: Outcome, ts: number): AttemptEvent {
  const status = outcome === "auth_failed" ? 401 : 500;
  return attemptEvent({ keyId, outcome, ts, status, ttfbMs: null, promptTokens: 0, completionTokens: 0, totalTokens: 0, usageSource: "none" });
}

/** Probe answers of the fake providers, by URL and key. */
function providers(url: string, key: string): Response {
  if (key.startsWith("broken")) return json({ error: "boom" }, 500);
  if (key.startsWith("malformed")) return json({ data: { something: "else" } });
  if (key.startsWith("revoked")) return json({ error: { message: "invalid api key" } }, 401);
  if (url === "https://sf.test/v1/user/info") return json({ code: 20000, data: { totalBalance: key.startsWith("empty") ? "0" : "12.5" } });
  if (url === "https://ds.test/user/balance")
    return json({
      is_available: true,
      balance_infos: [
        { currency: "CNY", total_balance: "110.00" },
        { currency: "USD", total_balance: "5" },
      ],
    });
  if (url === "https://or.test/api/v1/key") return json({ data: { limit: 100, usage: 25, limit_remaining: 75 } });
  if (url === "https://oa.test/v1/models") return json({ object: "list", data: [] });
  return json({ error: "unexpected probe" }, 404);
}

/** The only requests a probe may make: GETs of balance or model-list endpoints. */
const FREE_PATHS = ["/v1/user/info", "/user/balance", "/api/v1/key", "/v1/models"];

describe("scheduler probes", () => {
  it("reads each provider's balance, records unreadable answers without changing state, and never makes a billed call", async () => {
    clock.t = Date.now();
    const [sf, sfMalformed, sfBroken] = await addUpstreamWithKeys("siliconflow", "https://sf.test/v1", ["sf-key-1", "malformed-1", "broken-1"]);
    const [ds] = await addUpstreamWithKeys("deepseek", "https://ds.test/v1", ["ds-key-1"]);
    const [or] = await addUpstreamWithKeys("openrouter", "https://or.test/api/v1", ["or-key-1"]);
    const [oa] = await addUpstreamWithKeys("openai", "https://oa.test/v1", ["oa-key-1"]);
    const [off] = await addUpstreamWithKeys("siliconflow", "https://sf.test/v1", ["disabled-1"], false);
    const { deps, calls } = schedulerDeps(providers);
    const report = await runScheduled(deps);
    expect(report.probed).toBe(6);
    expect(await health(sf!)).toMatchObject({ state: "active", balance: 12.5, probe: "ok" });
    expect(await health(ds!)).toMatchObject({ state: "active", balance: 115, probe: "ok" });
    expect(await health(or!)).toMatchObject({ state: "active", balance: 75, probe: "ok" });
    expect(await health(oa!)).toMatchObject({ state: "active", balance: null, probe: "ok" });
    expect(await health(sfMalformed!)).toMatchObject({ state: "active", balance: null, probe: "error" });
    expect(await health(sfBroken!)).toMatchObject({ state: "active", balance: null, probe: "error" });
    expect(await health(off!)).toMatchObject({ probe: "" });
    for (const call of calls) {
      expect(call.method).toBe("GET");
      expect(FREE_PATHS).toContain(new URL(call.url).pathname);
    }
    expect(calls.map((c) => c.authorization)).not.toContain("Bearer disabled-1");
  });

  it("marks a key at zero balance exhausted, and a key the provider rejects dead", async () => {
    clock.t = Date.now() + 10 * 3_600_000;
    const [empty] = await addUpstreamWithKeys("siliconflow", "https://sf.test/v1", ["empty-1"]);
    const [revoked] = await addUpstreamWithKeys("deepseek", "https://ds.test/v1", ["revoked-1"]);
    await runScheduled(schedulerDeps(providers).deps);
    expect(await health(empty!)).toMatchObject({ state: "exhausted", balance: 0 });
    expect((await health(revoked!)).state).toBe("dead");
  });

  it("probes a failing key only after its backoff, and a successful probe brings it back", async () => {
    const t0 = Date.now() + 20 * 3_600_000;
    clock.t = t0;
    const [key] = await addUpstreamWithKeys("openai", "https://oa.test/v1", ["oa-flaky"]);
    // Probed once while healthy, so it is not due for its hourly check.
    await runScheduled(schedulerDeps(providers).deps);
    await fold([0, 1, 2, 3, 4].map((i) => attempt(key!, "network_error", t0 + 1_000 + i * 1_000)));
    clock.t = t0 + 30_000;
    expect((await health(key!)).state).toBe("failing");
    const early = schedulerDeps(providers);
    await runScheduled(early.deps);
    expect(early.calls.filter((c) => c.authorization === "Bearer oa-flaky")).toHaveLength(0);
    expect((await health(key!)).state).toBe("failing");

    clock.t = t0 + 5_000 + 60_000;
    const due = schedulerDeps(providers);
    await runScheduled(due.deps);
    expect(due.calls.filter((c) => c.authorization === "Bearer oa-flaky")).toHaveLength(1);
    expect((await health(key!)).state).toBe("active");
  });

  it("keeps a dead key dead on a failed probe and checks it only daily", async () => {
    const t0 = Date.now() + 40 * 3_600_000;
    clock.t = t0;
    const [key] = await addUpstreamWithKeys("deepseek", "https://ds.test/v1", ["revoked-2"]);
    await fold([attempt(key!, "auth_failed", t0)]);
    clock.t = t0 + 60_000;
    const first = schedulerDeps(providers);
    await runScheduled(first.deps);
    expect(first.calls.filter((c) => c.authorization === "Bearer revoked-2")).toHaveLength(1);
    expect((await health(key!)).state).toBe("dead");
    clock.t = t0 + 12 * 3_600_000;
    const later = schedulerDeps(providers);
    await runScheduled(later.deps);
    expect(later.calls.filter((c) => c.authorization === "Bearer revoked-2")).toHaveLength(0);
    clock.t = t0 + 25 * 3_600_000;
    const daily = schedulerDeps(providers);
    await runScheduled(daily.deps);
    expect(daily.calls.filter((c) => c.authorization === "Bearer revoked-2")).toHaveLength(1);
    expect((await health(key!)).state).toBe("dead");
  });
});
