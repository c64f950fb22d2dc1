import { afterEach, describe, expect, it } from "vitest";
import { FAKE_BASE_URL, FAKE_USAGE, installFakeUpstream } from "./fake-upstream";
import { env } from "cloudflare:workers";
import { USAGE_KV_KEY, newEventId, type StatsHeadroom } from "../../schema";
import { parsePoolUsage } from "../../gateway/logic/usage-view";
import { isolate } from "../fixtures/workers/gateway";
import { admin, adminToken, chatBody, createPool, forgetSnapshot, gateway, resetAfterEach, waitFor, waitForSnapshot } from "./helpers";
import { attemptEvent } from "../fixtures/events";

const uniqueKey = (label: string) => `sk-${label}-${crypto.randomUUID().replaceAll("-", "")}`;
const fakes = resetAfterEach(afterEach);

async function chat(clientKey: string, body: string): Promise<Response> {
  const res = await gateway("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json" },
    body,
  });
  return new Response(await res.arrayBuffer(), res);
}

/** A chat answer with the given rate-limit headers. */
function answer(headers: Record<string, string>): Response {
  return new Response(JSON.stringify({ id: "c1", object: "chat.completion", choices: [], usage: FAKE_USAGE }), {
    headers: { "content-type": "application/json", ...headers },
  });
}

async function keyIds(upstreamId: string): Promise<Map<string, string>> {
  const listed = await admin<{ data: { id: string; masked: string }[] }>("GET", `/keys?upstreamId=${upstreamId}`);
  return new Map(listed.body.data.map((k) => [k.masked, k.id]));
}
const masked = (k: string) => `${k.slice(0, 5)}…${k.slice(-4)}`;

describe("limits as data", () => {
  it("sets limits on an upstream and on keys (one, or many by filter), shows own and effective apart, and refuses bad ones", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("lim-a"), uniqueKey("lim-b")], {
      limits: { rpm: 60, rpd: 1_000, day: { reset: "local", hour: 0, timeZone: "America/Los_Angeles" } },
    });
    const ids = [...(await keyIds(pool.upstreamId)).values()];
    expect((await admin("PATCH", `/keys/${ids[0]}`, { limits: { rpd: 500 } })).status).toBe(200);
    const list = await admin<{ data: { id: string; limits: object; effectiveLimits: object }[] }>("GET", `/keys?upstreamId=${pool.upstreamId}`);
    const view = (id: string) => list.body.data.find((k) => k.id === id)!;
    expect(view(ids[0]!)).toMatchObject({
      limits: { rpd: 500 },
      effectiveLimits: { rpm: 60, rpd: 500, day: { reset: "local", hour: 0, timeZone: "America/Los_Angeles" } },
    });
    expect(view(ids[1]!)).toMatchObject({ limits: {}, effectiveLimits: { rpm: 60, rpd: 1_000 } });
    const batch = await admin<{ matched: number; changed: number }>("POST", "/keys/batch", {
      action: "limits",
      filter: { upstreamId: pool.upstreamId },
      limits: { tpm: 10_000 },
    });
    expect(batch.body).toEqual({ matched: 2, changed: 2 });
    for (const bad of [{ rpm: 0 }, { rpd: "many" }, { day: { reset: "local", hour: 25, timeZone: "UTC" } }, { rps: 1 }]) {
      const res = await admin<{ error: { param: string } }>("PATCH", `/upstreams/${pool.upstreamId}`, { limits: bad });
      expect(res.status).toBe(400);
      expect(res.body.error.param).toMatch(/^limits/);
    }
    expect((await admin("POST", "/keys/batch", { action: "limits", ids })).status).toBe(400);
    const snapshot = await waitForSnapshot((s) => s.keys.some((k) => k.id === ids[0] && k.limits?.tpm === 10_000));
    expect(snapshot.upstreams.find((u) => u.id === pool.upstreamId)?.limits).toMatchObject({ rpm: 60, rpd: 1_000 });
  });
});

describe("scheduling by capacity", () => {
  it("does not send a request the provider said it has no room for: an empty window waits for its reset on another key", async () => {
    const [full, free] = [uniqueKey("full"), uniqueKey("free")];
    const pool = await createPool(FAKE_BASE_URL, [full, free]);
    const empty = { "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "40s" };
    const fake = installFakeUpstream({
      [full]: () => answer(empty),
      [free]: () => answer({ "x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "59", "x-ratelimit-reset-requests": "1s" }),
    });
    fakes.set(fake.restore);
    for (let i = 0; i < 12; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    // Once `full` said its window is empty, nothing more went to it.
    expect(fake.calls.filter((c) => c.authorization === `Bearer ${full}`)).toHaveLength(1);
  });

  it("answers 429 with Retry-After when its only key is at a configured per-minute limit, without calling the upstream", async () => {
    const key = uniqueKey("rpm");
    const pool = await createPool(FAKE_BASE_URL, [key], { limits: { rpm: 3 } });
    const fake = installFakeUpstream({});
    fakes.set(fake.restore);
    // Clear of the end of a minute, so the three land in one.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_500 - intoMinute));
    for (let i = 0; i < 3; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    const refused = await chat(pool.clientKey, chatBody(pool.model));
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { type: "rate_limit_error", code: "all_keys_cooling" } });
    // The three count whole until the minute ends, and are all gone a minute after they were sent.
    const retryAfterMs = Number(refused.headers.get("retry-after-ms"));
    expect(retryAfterMs).toBeGreaterThanOrEqual(60_000 - (Date.now() % 60_000) - 1_000);
    expect(retryAfterMs).toBeLessThanOrEqual(62_000);
    expect(refused.headers.get("retry-after")).toBe(String(Math.ceil(retryAfterMs / 1000)));
    expect(fake.calls).toHaveLength(3);
  });

  it("cools a key whose quota is spent until its provider's day resets, pool-wide, instead of a short cooldown", async () => {
    const [spent, other] = [uniqueKey("quota"), uniqueKey("quota-other")];
    const day = { reset: "local", hour: 0, timeZone: "America/Los_Angeles" } as const;
    const pool = await createPool(FAKE_BASE_URL, [spent, other], { limits: { day } });
    const quota = {
      error: {
        message: "You exceeded your current quota, please check your plan and billing details.",
        type: "insufficient_quota",
        param: null,
        code: "insufficient_quota",
      },
    };
    const fake = installFakeUpstream({ [spent]: () => new Response(JSON.stringify(quota), { status: 429, headers: { "content-type": "application/json" } }) });
    fakes.set(fake.restore);
    // Selection is random: requests until it has tried the spent key (one in two each time; 40 misses in a row
    // would be a one-in-a-trillion chance), then more, which must never reach it again.
    const triedSpent = () => fake.calls.filter((c) => c.authorization === `Bearer ${spent}`).length;
    for (let i = 0; i < 40 && triedSpent() === 0; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    for (let i = 0; i < 8; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    expect(triedSpent()).toBe(1);
    const id = (await keyIds(pool.upstreamId)).get(masked(spent))!;
    const snapshot = await waitForSnapshot((s) => s.keys.some((k) => k.id === id && k.state === "cooling"));
    const cooling = snapshot.keys.find((k) => k.id === id)!.coolingUntil!;
    // Midnight in Los Angeles is 07:00 or 08:00 UTC, within the next 24 hours.
    expect(new Date(cooling).getUTCMinutes()).toBe(0);
    expect([7, 8]).toContain(new Date(cooling).getUTCHours());
    expect(cooling - Date.now()).toBeGreaterThan(0);
    expect(cooling - Date.now()).toBeLessThanOrEqual(86_400_000);
  });

  it("counts other isolates' traffic through the pool's usage: a key whose day the pool says is spent gets no request", async () => {
    const key = uniqueKey("pool-day");
    const pool = await createPool(FAKE_BASE_URL, [key], { limits: { rpd: 3 } });
    const id = (await keyIds(pool.upstreamId)).get(masked(key))!;
    const fake = installFakeUpstream({});
    fakes.set(fake.restore);
    // Three requests served elsewhere (another isolate, another location) reach the consumer as events.
    const now = Date.now();
    const events = [0, 1, 2].map((i) =>
      attemptEvent({
        id: newEventId(now),
        ts: now - i,
        keyId: id,
        upstreamId: pool.upstreamId,
        clientKeyId: pool.clientKeyId,
        model: pool.model,
        latencyMs: 5,
        ttfbMs: 5,
      }),
    );
    await env.DB.prepare("UPDATE meta SET value = 0 WHERE name = 'usage_published_at'").run();
    await env.EVENTS.send({ events });
    await waitFor(async () => {
      const usage = parsePoolUsage((await env.SNAPSHOT.get(USAGE_KV_KEY, "text")) ?? "")?.view;
      return usage?.keys.get(id)?.day.requests === 3 ? true : undefined;
    }, "the pool's usage to count them");
    // The key list shows the day spent, and a near-limit filter finds the key.
    const near = await admin<{ data: { id: string; capacity: { rpd: object; rpm: null; nearLimit: number } }[] }>(
      "GET",
      `/keys?upstreamId=${pool.upstreamId}&nearLimit=0.9&sort=-nearLimit`,
    );
    expect(near.body.data).toHaveLength(1);
    expect(near.body.data[0]!.capacity).toMatchObject({ rpd: { used: 3, limit: 3, source: "configured" }, rpm: null, nearLimit: 1 });
    // So do the headroom figures, for the upstream and the model, and the Prometheus gauges.
    const headroom = await admin<StatsHeadroom>("GET", "/stats/headroom");
    const spent = { rpd: { limit: 3, used: 3, free: 0, keys: 1, unknownKeys: 0 }, rpm: { limit: 0, used: 0, free: 0, keys: 0, unknownKeys: 1 } };
    expect(headroom.body.byUpstream.find((u) => u.id === pool.upstreamId)).toMatchObject(spent);
    expect(headroom.body.byModel.find((m) => m.model === pool.model)).toMatchObject(spent);
    expect(headroom.body.pool.rpd.used).toBeGreaterThanOrEqual(3);
    const metrics = await (await gateway("/admin/api/metrics", { headers: { authorization: `Bearer ${await adminToken()}` } })).text();
    expect(metrics).toContain(`keypool_capacity_used{window="rpd",upstream="${pool.upstreamId}"} 3`);
    expect(metrics).toContain(`keypool_capacity_free{window="rpd",upstream="${pool.upstreamId}"} 0`);
    forgetSnapshot();
    const refused = await chat(pool.clientKey, chatBody(pool.model));
    expect(refused.status).toBe(429);
    // Until the provider's day resets: midnight UTC by default.
    const midnight = Math.ceil((Date.now() + 1) / 86_400_000) * 86_400_000;
    expect(Math.abs(Number(refused.headers.get("retry-after")) - (midnight - Date.now()) / 1000)).toBeLessThanOrEqual(2);
    expect(fake.calls).toHaveLength(0);
  });

  it("reads a 429 that says nothing as the key's limit for its window: what it was sent this minute, less the refused one", async () => {
    const key = uniqueKey("silent");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    let served = 0;
    const fake = installFakeUpstream({
      [key]: () =>
        ++served <= 4
          ? answer({})
          : new Response(JSON.stringify({ error: { message: "Too many requests", type: "rate_limit_error", param: null, code: null } }), { status: 429 }),
    });
    fakes.set(fake.restore);
    // Clear of the end of a minute, so the five land in one.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 50_000) await new Promise((r) => setTimeout(r, 60_500 - intoMinute));
    for (let i = 0; i < 4; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    const refused = await chat(pool.clientKey, chatBody(pool.model));
    expect(refused.status).toBe(429);
    const id = (await keyIds(pool.upstreamId)).get(masked(key))!;
    const nextMinute = Math.ceil(Date.now() / 60_000) * 60_000;
    expect(isolate.observations.capacity.learned(id).requests).toMatchObject({ limit: 4, remaining: 0 });
    expect(Math.abs(isolate.observations.capacity.learned(id).requests!.resetAt! - nextMinute)).toBeLessThanOrEqual(1_000);
    // The client is told when the key frees: its cooldown, the setting's 20 s by default.
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(19);
  });

  it("prefers the key with more of its window left, so limited keys run down together", async () => {
    const [low, high] = [uniqueKey("low"), uniqueKey("high")];
    const pool = await createPool(FAKE_BASE_URL, [low, high]);
    const left = (remaining: number) => () =>
      answer({ "x-ratelimit-limit-requests": "1000", "x-ratelimit-remaining-requests": String(remaining), "x-ratelimit-reset-requests": "1m" });
    const fake = installFakeUpstream({ [low]: left(50), [high]: left(950) });
    fakes.set(fake.restore);
    for (let i = 0; i < 60; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    const toLow = fake.calls.filter((c) => c.authorization === `Bearer ${low}`).length;
    // With 5 % left against 95 %, the low key takes a small share (after the first answers told the isolate).
    expect(toLow).toBeLessThan(15);
    // The key list shows the limit the provider stated, and sorts the nearer key first.
    const listed = await waitFor(async () => {
      const list = await admin<{ data: { masked: string; capacity: { rpm: { used: number; source: string } | null } }[] }>(
        "GET",
        `/keys?upstreamId=${pool.upstreamId}&sort=-nearLimit`,
      );
      return list.body.data.every((k) => k.capacity.rpm !== null) ? list.body.data : undefined;
    }, "the providers' readings to reach the key list");
    expect(listed.map((k) => k.masked)).toEqual([masked(low), masked(high)]);
    expect(listed.map((k) => k.capacity.rpm)).toEqual([
      { used: 950, limit: 1_000, source: "learned", resetAt: expect.any(Number) },
      { used: 50, limit: 1_000, source: "learned", resetAt: expect.any(Number) },
    ]);
  });
});
