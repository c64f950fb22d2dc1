import { afterEach, describe, expect, it } from "vitest";
import { env } from "cloudflare:workers";
import { FAKE_BASE_URL, FAKE_SSE, FAKE_USAGE, installFakeUpstream } from "./fake-upstream";
import { admin, chatBody, createPool, forgetSnapshot, gateway, resetAfterEach, waitFor, waitForRollup, waitForSnapshot } from "./helpers";
import { TEST_SECRETS } from "./secrets";

const uniqueKey = (label: string) => `sk-${label}-${crypto.randomUUID().replaceAll("-", "")}`;

function chat(clientKey: string, body: string, path = "/v1/chat/completions") {
  return gateway(path, {
    method: "POST",
    headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json", cookie: "session=secret" },
    body,
  });
}

const fakes = resetAfterEach(afterEach);

describe("errors in OpenAI shape", () => {
  it("answers an unknown /v1 route with a 404 error object", async () => {
    const res = await gateway("/v1/nope", { method: "POST" });
    expect(res.status).toBe(404);
    const body = await res.json();
    expect(body).toEqual({ error: { message: expect.stringContaining("/v1/nope"), type: "not_found_error", param: null, code: "unknown_route" } });
  });

  it("refuses a missing or unknown client key with 401", async () => {
    const missing = await gateway("/v1/chat/completions", { method: "POST", headers: { "content-type": "application/json" }, body: chatBody("m") });
    expect(missing.status).toBe(401);
    expect(((await missing.json()) as { error: { code: string } }).error.code).toBe("missing_api_key");
    const wrong = await chat("kp-not-a-real-key", chatBody("m"));
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as { error: { code: string } }).error.code).toBe("invalid_api_key");
  });
});

describe("admin API", () => {
  it("refuses a wrong password and issues a strict session cookie for the right one", async () => {
    const wrong = await gateway("/admin/api/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ password: "nope" }),
    });
    expect(wrong.status).toBe(401);
    const right = await gateway("/admin/api/login", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ password: TEST_SECRETS.ADMIN_PASSWORD }),
    });
    expect(right.status).toBe(200);
    const cookie = right.headers.get("set-cookie") ?? "";
    for (const flag of ["HttpOnly", "Secure", "SameSite=Strict", "Path=/admin"]) expect(cookie).toContain(flag);
    expect(right.headers.get("cache-control")).toBe("no-store");
  });

  it("requires a session for everything but login", async () => {
    const res = await gateway("/admin/api/keys");
    expect(res.status).toBe(401);
    const forged = await gateway("/admin/api/keys", { headers: { authorization: "Bearer eyJhbGciOiJub25lIn0.e30." } });
    expect(forged.status).toBe(401);
  });

  it("batch-adds keys from mixed separators, reports duplicates and invalid lines, and lists them masked", async () => {
    const up = await admin<{ id: string }>("POST", "/upstreams", { name: "mixed", baseUrl: `${FAKE_BASE_URL}/`, models: ["mixed-model"] });
    expect(up.status).toBe(201);
    const a = uniqueKey("a");
    const b = uniqueKey("b");
    const c = uniqueKey("c");
    const res = await admin<{ added: number; duplicates: number; invalid: { line: number }[] }>("POST", "/keys", {
      upstreamId: up.body.id,
      text: `${a}, ${b}\n${c}; ${a}\nshort\n`,
    });
    expect(res.body).toEqual({ added: 3, duplicates: 1, invalid: [{ line: 3, reason: expect.any(String) }] });
    const again = await admin<{ added: number; duplicates: number }>("POST", "/keys", { upstreamId: up.body.id, text: b });
    expect(again.body).toMatchObject({ added: 0, duplicates: 1 });

    const list = await admin("GET", "/keys?limit=1000");
    const text = JSON.stringify(list.body);
    for (const key of [a, b, c]) {
      expect(text).not.toContain(key);
      expect(text).toContain(`${key.slice(0, 5)}…${key.slice(-4)}`);
    }
    const stored = await env.DB.prepare("SELECT secret_enc FROM keys WHERE upstream_id = ?1").bind(up.body.id).all<{ secret_enc: string }>();
    expect(stored.results).toHaveLength(3);
    for (const row of stored.results) for (const key of [a, b, c]) expect(row.secret_enc).not.toContain(key.slice(3, 20));
  });

  it("probes chosen keys on demand and reports each result", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("probe")]);
    const fake = installFakeUpstream({});
    fakes.set(fake.restore);
    const keys = await admin<{ data: { id: string; upstreamId: string }[] }>("GET", "/keys?limit=1000");
    const keyId = keys.body.data.find((k) => k.upstreamId === pool.upstreamId)!.id;
    const res = await admin<{ data: { keyId: string; result: string; kind: string }[] }>("POST", "/keys/probe", { ids: [keyId] });
    expect(res.body.data).toEqual([expect.objectContaining({ keyId, result: "ok", kind: "recovery" })]);
    expect(fake.calls.map((c) => c.url)).toEqual([`${FAKE_BASE_URL}/models`]);
    expect((await admin("POST", "/keys/probe", {})).status).toBe(400);
    // The consumer folds the probe event; the key list then shows it.
    const listed = await waitFor(async () => {
      const r = await admin<{ data: { id: string; lastProbe: { result: string } | null; balance: number | null }[] }>("GET", "/keys?limit=1000");
      const k = r.body.data.find((x) => x.id === keyId);
      return k?.lastProbe ? k : undefined;
    }, "the probe to be folded");
    expect(listed).toMatchObject({ lastProbe: { result: "ok" }, balance: null });
  });

  it("rejects invalid bodies with a 400 naming the field", async () => {
    const res = await admin<{ error: { param: string; type: string } }>("POST", "/upstreams", { name: "x", baseUrl: "ftp://nope" });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ param: "baseUrl", type: "invalid_request_error" });
  });
});

describe("the slice: client → gateway → upstream → queue → consumer → stats", () => {
  it("forwards a chat completion unchanged with the pool key, and the consumer counts it", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("slice")]);
    const fake = installFakeUpstream({});
    fakes.set(fake.restore);

    const res = await chat(pool.clientKey, chatBody(pool.model, { extra_field: { kept: true } }));
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ object: "chat.completion", usage: FAKE_USAGE });
    expect(res.headers.get("x-keypool-attempts")).toBe("1");
    // Request and event ids are UUIDv7 (time first), so the consumer's dedupe window grows at its end.
    expect(res.headers.get("x-keypool-request-id")).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(res.headers.get("x-upstream")).toBe("yes");
    expect(res.headers.get("set-cookie")).toBeNull();

    expect(fake.calls).toHaveLength(1);
    const call = fake.calls[0]!;
    expect(call.url).toBe(`${FAKE_BASE_URL}/chat/completions`);
    expect(call.authorization).toBe(`Bearer ${pool.keys[0]}`);
    expect(call.headers.get("cookie")).toBeNull();
    expect(JSON.parse(call.body)).toMatchObject({ model: pool.model, extra_field: { kept: true } });

    const totals = await waitForRollup(pool.clientKeyId, (t) => (t.requests ?? 0) >= 1);
    expect(totals).toMatchObject({ requests: 1, attempts: 1, tokens: FAKE_USAGE.total_tokens });

    const series = await admin<{ points: { t: number; requests: number; attempts: number; tokens: number; successRate: number }[] }>(
      "GET",
      `/stats/series?bucket=minute&count=5&clientKeyId=${pool.clientKeyId}`,
    );
    expect(series.body.points).toHaveLength(5);
    expect(series.body.points.reduce((n, p) => n + p.requests, 0)).toBe(1);
    expect(series.body.points.find((p) => p.requests === 1)).toMatchObject({ attempts: 1, tokens: FAKE_USAGE.total_tokens, successRate: 1 });
    // The whole pool's hourly series comes from the pool-wide hour rollup, which the consumer keeps too.
    const poolSeries = await admin<{ points: { requests: number }[] }>("GET", "/stats/series?bucket=hour&count=2");
    expect(poolSeries.body.points.reduce((n, p) => n + p.requests, 0)).toBeGreaterThanOrEqual(1);
    const byModel = await admin<{ rows: { id: string; requests: number }[] }>(
      "GET",
      `/stats/breakdown?by=model&bucket=hour&count=1&upstreamId=${pool.upstreamId}`,
    );
    expect(byModel.body.rows).toEqual([expect.objectContaining({ id: pool.model, requests: 1 })]);
    // A client key's usage by model comes from its own rows (summed over keys); by upstream, from the keys' rows.
    const clientByModel = await admin<{ rows: { id: string; requests: number }[] }>(
      "GET",
      `/stats/breakdown?by=model&bucket=hour&count=1&clientKeyId=${pool.clientKeyId}`,
    );
    expect(clientByModel.body.rows).toEqual([expect.objectContaining({ id: pool.model, requests: 1 })]);
    const byUpstream = await admin<{ rows: { id: string; requests: number }[] }>("GET", `/stats/breakdown?by=upstream&bucket=hour&count=1&model=${pool.model}`);
    expect(byUpstream.body.rows).toEqual([expect.objectContaining({ id: pool.upstreamId, requests: 1 })]);
    // Each answer says how far back retention keeps its buckets (the settings' horizon for the bucket's size).
    const { retention } = (await admin<{ retention: Record<string, number> }>("GET", "/settings")).body;
    const horizon = {
      minute: retention.minuteRollupHours! * 3_600_000,
      hour: retention.hourRollupDays! * 86_400_000,
      day: retention.dayRollupDays! * 86_400_000,
    };
    for (const [bucket, kept] of Object.entries(horizon)) {
      const before = Date.now();
      const answers = [
        await admin<{ keptFrom: number }>("GET", `/stats/series?bucket=${bucket}&count=1`),
        await admin<{ keptFrom: number }>("GET", `/stats/breakdown?by=model&bucket=${bucket}&count=1`),
      ];
      const after = Date.now();
      for (const answer of answers) {
        expect(answer.body.keptFrom, bucket).toBeGreaterThanOrEqual(before - kept);
        expect(answer.body.keptFrom, bucket).toBeLessThanOrEqual(after - kept);
      }
    }
    // The rollups hold no key × client key rows: a read that needs one is refused, naming the parameter.
    for (const [query, param] of [
      [`/stats/series?bucket=hour&upstreamId=${pool.upstreamId}&clientKeyId=${pool.clientKeyId}`, "clientKeyId"],
      [`/stats/breakdown?by=key&bucket=hour&clientKeyId=${pool.clientKeyId}`, "clientKeyId"],
      [`/stats/breakdown?by=client&bucket=hour&upstreamId=${pool.upstreamId}`, "by"],
    ]) {
      const refused = await admin<{ error: { type: string; param: string; message: string } }>("GET", query!);
      expect({ query, status: refused.status, type: refused.body.error.type, param: refused.body.error.param }).toEqual({
        query,
        status: 400,
        type: "invalid_request_error",
        param,
      });
      expect(refused.body.error.message).toContain("request log");
    }
    const bad = await admin<{ error: { param: string } }>("GET", "/stats/series?bucket=week");
    expect(bad.status).toBe(400);
    expect(bad.body.error.param).toBe("bucket");

    const summary = await admin<{ rpm: number; rpd: number; tpm: number; tpd: number; last24h: { requests: number } }>("GET", "/stats/summary");
    expect(summary.body.last24h.requests).toBeGreaterThanOrEqual(1);
    expect(summary.body.rpd).toBeGreaterThanOrEqual(1);
    expect(summary.body.tpd).toBeGreaterThanOrEqual(FAKE_USAGE.total_tokens);
    expect(summary.body.rpm).toBeGreaterThanOrEqual(1);
  });

  it("carries what the upstream's rate-limit headers say into the key's capacity, pool-wide", async () => {
    const key = uniqueKey("ratelimit");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    const headers = {
      "content-type": "application/json",
      "x-ratelimit-limit-requests": "14400",
      "x-ratelimit-remaining-requests": "14399",
      "x-ratelimit-reset-requests": "6s",
      "x-ratelimit-limit-tokens": "6000",
      "x-ratelimit-remaining-tokens": "5988",
      "x-ratelimit-reset-tokens": "120ms",
    };
    const fake = installFakeUpstream({
      [key]: () => new Response(JSON.stringify({ id: "c1", object: "chat.completion", choices: [], usage: FAKE_USAGE }), { headers }),
    });
    fakes.set(fake.restore);
    const sent = Date.now();
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(200);
    // Read through: an answer without a declared length is metered as the client reads it, and its event follows the end.
    await res.arrayBuffer();
    const listed = await admin<{ data: { id: string }[] }>("GET", `/keys?upstreamId=${pool.upstreamId}`);
    const keyId = listed.body.data[0]!.id;
    const row = await waitFor(
      async () =>
        (await env.DB.prepare("SELECT * FROM key_capacity WHERE key_id = ?1")
          .bind(keyId)
          .first<{ req_ts: number; req_reset_at: number; tok_ts: number; tok_reset_at: number }>()) ?? undefined,
      "the capacity reading",
    );
    expect(row).toMatchObject({ req_limit: 14_400, req_remaining: 14_399, tok_limit: 6_000, tok_remaining: 5_988 });
    expect(row.req_ts).toBeGreaterThanOrEqual(sent);
    expect(row.req_reset_at - row.req_ts).toBe(6_000);
    expect(row.tok_reset_at - row.tok_ts).toBe(120);
  });

  it("retries a 429 on another key and counts one request with two attempts", async () => {
    const limited = uniqueKey("limited");
    const healthy = uniqueKey("healthy");
    const pool = await createPool(FAKE_BASE_URL, [limited, healthy]);
    const fake = installFakeUpstream({ [limited]: "rate_limit" });
    fakes.set(fake.restore);

    // Send until the limited key has been tried first once (selection is random).
    let res: Response | null = null;
    for (let i = 0; i < 20 && !fake.calls.some((c) => c.authorization === `Bearer ${limited}`); i++) {
      res = await chat(pool.clientKey, chatBody(pool.model));
      expect(res.status).toBe(200);
    }
    expect(res?.headers.get("x-keypool-attempts")).toBe("2");
    const beforeLimited = fake.calls.length;
    // The limited key is now cooling in this isolate: the next requests go straight to the healthy one.
    for (let i = 0; i < 5; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    expect(fake.calls.slice(beforeLimited).every((c) => c.authorization === `Bearer ${healthy}`)).toBe(true);
  });

  it("passes an upstream 400 through unchanged and does not retry it", async () => {
    const key = uniqueKey("badreq");
    const other = uniqueKey("other");
    const pool = await createPool(FAKE_BASE_URL, [key, other]);
    const fake = installFakeUpstream({ [key]: "bad_request", [other]: "bad_request" });
    fakes.set(fake.restore);
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: { message: "Unknown parameter: 'foo'", type: "invalid_request_error", param: "foo", code: null } });
    expect(fake.calls).toHaveLength(1);
  });

  it("relays an SSE stream byte for byte when the client asked for usage itself", async () => {
    const key = uniqueKey("stream");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    const fake = installFakeUpstream({ [key]: "stream" });
    fakes.set(fake.restore);
    const res = await chat(pool.clientKey, chatBody(pool.model, { stream: true, stream_options: { include_usage: true } }), "/chat/completions");
    expect(res.headers.get("content-type")).toBe("text/event-stream");
    expect(await res.text()).toBe(FAKE_SSE);
    expect(fake.calls[0]!.body).toBe(chatBody(pool.model, { stream: true, stream_options: { include_usage: true } }));
    const totals = await waitForRollup(pool.clientKeyId, (t) => (t.requests ?? 0) >= 1);
    expect(totals.tokens).toBe(FAKE_USAGE.total_tokens);
  });

  it("answers 404 for a model no upstream offers, and 503 for one whose upstream has no usable key", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("narrow")]);
    const unknown = await chat(pool.clientKey, chatBody(`${pool.model}-not-offered`));
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toMatchObject({ error: { code: "model_not_found", type: "invalid_request_error", param: "model" } });
    const keyless = `keyless-${crypto.randomUUID()}`;
    const up = await admin<{ id: string }>("POST", "/upstreams", { name: keyless, baseUrl: FAKE_BASE_URL, models: [keyless] });
    await waitForSnapshot((s) => s.upstreams.some((u) => u.id === up.body.id));
    forgetSnapshot(); // the isolate would look for the new snapshot only 2 s after its last look
    const none = await chat(pool.clientKey, chatBody(keyless));
    expect(none.status).toBe(503);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("no_key_for_model");
  });
});
