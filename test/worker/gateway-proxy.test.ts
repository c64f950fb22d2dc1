import { afterEach, describe, expect, it } from "vitest";
import { exports } from "cloudflare:workers";
import OpenAI from "openai";
import { FAKE_BASE_URL, FAKE_SSE, FAKE_USAGE, installFakeUpstream } from "./fake-upstream";
import { admin, chatBody, createPool, forgetSnapshot, gateway, resetAfterEach, waitFor, waitForRollup } from "./helpers";

const uniqueKey = (label: string) => `sk-${label}-${crypto.randomUUID().replaceAll("-", "")}`;

/** Sends a chat completion and reads the whole answer, as a client does (metering ends when the body does). */
async function chat(clientKey: string, body: string): Promise<Response> {
  const res = await gateway("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json" },
    body,
  });
  return new Response(await res.arrayBuffer(), res);
}

const fakes = resetAfterEach(afterEach);

describe("streaming", () => {
  it("asks the upstream for usage when the client did not, and drops only that chunk", async () => {
    const key = uniqueKey("inject");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    const fake = installFakeUpstream({ [key]: "stream" });
    fakes.set(fake.restore);
    const res = await chat(pool.clientKey, chatBody(pool.model, { stream: true }));
    const text = await res.text();
    const usageFrame = `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":${JSON.stringify(FAKE_USAGE)}}\n\n`;
    expect(text).toBe(FAKE_SSE.replace(usageFrame, ""));
    expect(JSON.parse(fake.calls[0]!.body)).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    const r = await waitForRollup(pool.clientKeyId, (x) => (x.requests ?? 0) >= 1);
    expect(r.tokens).toBe(FAKE_USAGE.total_tokens);
  });
});

describe("failure policy", () => {
  it("avoids a key the upstream rejects with 401 and serves the request with another", async () => {
    const dead = uniqueKey("dead");
    const alive = uniqueKey("alive");
    const pool = await createPool(FAKE_BASE_URL, [dead, alive]);
    const fake = installFakeUpstream({ [dead]: "unauthorized" });
    fakes.set(fake.restore);
    for (let i = 0; i < 10; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    expect(fake.calls.filter((c) => c.authorization === `Bearer ${dead}`)).toHaveLength(1);
    const r = await waitForRollup(pool.clientKeyId, (x) => (x.requests ?? 0) >= 10);
    expect(r).toMatchObject({ requests: 10, attempts: 11, auth_failed: 1 });
    const listed = await admin<{ data: { masked: string; successRate: number | null; state: string }[] }>("GET", `/keys?upstreamId=${pool.upstreamId}`);
    const view = (k: string) => listed.body.data.find((x) => x.masked === `${k.slice(0, 5)}…${k.slice(-4)}`);
    expect(view(alive)).toMatchObject({ successRate: 1, state: "active" });
    expect(view(dead)).toMatchObject({ successRate: 0, state: "dead" });
  });

  it("answers 429 with Retry-After when every key is cooling for longer than it may wait", async () => {
    const key = uniqueKey("cool");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    const fake = installFakeUpstream({ [key]: "rate_limit" });
    fakes.set(fake.restore);
    const first = await chat(pool.clientKey, chatBody(pool.model));
    expect(first.status).toBe(429); // the upstream's own answer, the only key having failed
    const second = await chat(pool.clientKey, chatBody(pool.model));
    expect(second.status).toBe(429);
    expect(second.headers.get("retry-after")).toMatch(/^(29|30)$/);
    expect(await second.json()).toMatchObject({ error: { type: "rate_limit_error", code: "all_keys_cooling" } });
    expect(fake.calls).toHaveLength(1);
  });

  it("waits for a key that recovers within the cooling wait instead of failing", async () => {
    const key = uniqueKey("brief");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    let calls = 0;
    const fake = installFakeUpstream({
      [key]: () => {
        calls++;
        return calls === 1
          ? new Response('{"error":{"message":"slow down"}}', { status: 429, headers: { "retry-after": "1", "content-type": "application/json" } })
          : Response.json({ choices: [], usage: FAKE_USAGE });
      },
    });
    fakes.set(fake.restore);
    expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(429);
    const started = Date.now();
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(200);
    expect(Date.now() - started).toBeGreaterThanOrEqual(700);
  });

  it("retries a 5xx and a dropped connection on other keys", async () => {
    const broken = uniqueKey("500");
    const dropped = uniqueKey("drop");
    const fine = uniqueKey("fine");
    const pool = await createPool(FAKE_BASE_URL, [broken, dropped, fine]);
    const fake = installFakeUpstream({
      [broken]: "server_error",
      [dropped]: () => {
        throw new TypeError("Network connection lost.");
      },
    });
    fakes.set(fake.restore);
    for (let i = 0; i < 6; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
  });

  it("after failed attempts, waits for an untried key that is cooling briefly instead of giving up", async () => {
    const [cool, bad1, bad2] = [uniqueKey("cool"), uniqueKey("bad1"), uniqueKey("bad2")];
    const pool = await createPool(FAKE_BASE_URL, [cool, bad1, bad2]);
    let coolCalls = 0;
    let othersFail = false;
    const ok = () =>
      new Response(JSON.stringify({ id: "c1", object: "chat.completion", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }), {
        headers: { "content-type": "application/json" },
      });
    const boom = () =>
      new Response(JSON.stringify({ error: { message: "boom", type: "server_error", param: null, code: null } }), {
        status: 500,
        headers: { "content-type": "application/json" },
      });
    const fake = installFakeUpstream({
      // The first call to `cool` answers 429 with Retry-After: 1, later ones succeed.
      [cool]: () =>
        ++coolCalls === 1
          ? new Response(JSON.stringify({ error: { message: "slow down", type: "rate_limit_error", param: null, code: null } }), {
              status: 429,
              headers: { "content-type": "application/json", "retry-after": "1" },
            })
          : ok(),
      [bad1]: () => (othersFail ? boom() : ok()),
      [bad2]: () => (othersFail ? boom() : ok()),
    });
    fakes.set(fake.restore);
    // Traffic until `cool` has answered its 429 (and so cools for a second in this isolate).
    for (let i = 0; i < 30 && coolCalls === 0; i++) expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    expect(coolCalls).toBe(1);
    othersFail = true;
    // Both other keys fail; the cooling one is back within the cooling wait: the request waits and succeeds.
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(200);
    expect(coolCalls).toBe(2);
  });

  it("still uses keys that just failed transiently when every key has, instead of refusing the request", async () => {
    const keys = [uniqueKey("flaky-a"), uniqueKey("flaky-b")];
    const pool = await createPool(FAKE_BASE_URL, keys);
    const calls = new Map<string, number>();
    // Each key fails its first call with a 500, then works.
    const flaky = (req: Request) => {
      const key = req.headers.get("authorization")!;
      calls.set(key, (calls.get(key) ?? 0) + 1);
      return calls.get(key) === 1
        ? new Response(JSON.stringify({ error: { message: "boom", type: "server_error", param: null, code: null } }), {
            status: 500,
            headers: { "content-type": "application/json" },
          })
        : new Response(
            JSON.stringify({ id: "c1", object: "chat.completion", choices: [], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } }),
            { headers: { "content-type": "application/json" } },
          );
    };
    const fake = installFakeUpstream({ [keys[0]!]: flaky, [keys[1]!]: flaky });
    fakes.set(fake.restore);
    // Both keys fail for the first request, which has no untried key left: the upstream's 500.
    expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(500);
    // Both are now avoided for 5 s in this isolate, but avoidance is a preference: the next request
    // is served at once (not refused, and not held back until an avoidance runs out).
    const started = Date.now();
    expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(fake.calls).toHaveLength(3);
  });
});

describe("clients and routing", () => {
  it("limits a client key to its RPM with a 429 and Retry-After", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("rpm")], { client: { rpmLimit: 2 } });
    const fake = installFakeUpstream({});
    fakes.set(fake.restore);
    expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    const refused = await chat(pool.clientKey, chatBody(pool.model));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ error: { code: "rpm_limit_exceeded", type: "rate_limit_error" } });
    expect(fake.calls).toHaveLength(2);
  });

  it("refuses an expired client key with 401", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("expired")], { client: { expiresAt: Date.now() - 1_000 } });
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(401);
    expect(await res.json()).toMatchObject({ error: { code: "client_key_expired", type: "authentication_error" } });
  });

  it("refuses a model the client key may not use with 403", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("allow")], { client: { models: ["something-else"] } });
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(403);
    expect(await res.json()).toMatchObject({ error: { code: "model_not_allowed", param: "model" } });
  });

  it("sends an aliased model under the upstream's own name, keeping the query string", async () => {
    const key = uniqueKey("alias");
    const pool = await createPool(FAKE_BASE_URL, [key], { aliases: { "gpt-friendly": "vendor/real-model-name" } });
    const fake = installFakeUpstream({});
    fakes.set(fake.restore);
    const res = await gateway("/chat/completions?api-version=2024-10-21", {
      method: "POST",
      headers: { authorization: `Bearer ${pool.clientKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "gpt-friendly", messages: [], top_k: 3 }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect(JSON.parse(fake.calls[0]!.body)).toEqual({ model: "vendor/real-model-name", messages: [], top_k: 3 });
    // The un-prefixed alias path reaches the same endpoint, query string kept.
    expect(fake.calls[0]!.url).toBe(`${FAKE_BASE_URL}/chat/completions?api-version=2024-10-21`);
  });

  it("sends a JSON answer that breaks off after its headers to another key, counting the first as a network error", async () => {
    const first = uniqueKey("cutjson1");
    const second = uniqueKey("cutjson2");
    const pool = await createPool(FAKE_BASE_URL, [first, second]);
    const whole = JSON.stringify({
      id: "c1",
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "Hello" } }],
      usage: FAKE_USAGE,
    });
    let calls = 0;
    const answer = () => {
      if (calls++ > 0) return new Response(whole, { headers: { "content-type": "application/json", "content-length": String(whole.length) } });
      const cut = new ReadableStream<Uint8Array>({
        start(c) {
          c.enqueue(new TextEncoder().encode(whole.slice(0, 20)));
          c.error(new Error("connection reset"));
        },
      });
      return new Response(cut, { headers: { "content-type": "application/json", "content-length": String(whole.length) } });
    };
    const fake = installFakeUpstream({ [first]: answer, [second]: answer });
    fakes.set(fake.restore);
    const res = await chat(pool.clientKey, chatBody(pool.model));
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(whole);
    expect(res.headers.get("x-keypool-attempts")).toBe("2");
    expect(new Set(fake.calls.map((c) => c.authorization)).size).toBe(2);
    const r = await waitForRollup(pool.clientKeyId, (x) => (x.attempts ?? 0) >= 2);
    expect(r).toMatchObject({ requests: 1, attempts: 2, network_error: 1, tokens: FAKE_USAGE.total_tokens });
  });

  it("estimates usage when the upstream reports none, and marks it estimated", async () => {
    const key = uniqueKey("nousage");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    const fake = installFakeUpstream({ [key]: "no_usage" });
    fakes.set(fake.restore);
    expect((await chat(pool.clientKey, chatBody(pool.model))).status).toBe(200);
    const r = await waitForRollup(pool.clientKeyId, (x) => (x.requests ?? 0) >= 1);
    expect(r.tokens).toBeGreaterThan(0);
    expect(r.estimated).toBe(r.tokens);
  });

  it("forwards a multipart upload byte for byte, and again on the next key after a 429", async () => {
    const limited = uniqueKey("mp429");
    const fine = uniqueKey("mpok");
    const pool = await createPool(FAKE_BASE_URL, [limited, fine]);
    const fake = installFakeUpstream({ [limited]: "rate_limit", [fine]: () => Response.json({ text: "transcribed words" }) });
    fakes.set(fake.restore);
    const form = new FormData();
    form.set("model", pool.model);
    form.set("file", new File([new Uint8Array([0, 1, 2, 250, 251, 252])], "audio.wav", { type: "audio/wav" }));
    const request = new Request("https://keypool.test/v1/audio/transcriptions", {
      method: "POST",
      headers: { authorization: `Bearer ${pool.clientKey}` },
      body: form,
    });
    const sentBytes = new Uint8Array(await request.clone().arrayBuffer());
    const contentType = request.headers.get("content-type");
    // Send until the limited key has been tried first once.
    for (let i = 0; i < 20 && !fake.calls.some((c) => c.authorization === `Bearer ${limited}`); i++) {
      const res = await exports.default.fetch(request.clone());
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ text: "transcribed words" });
    }
    for (const call of fake.calls) {
      expect(call.url).toBe(`${FAKE_BASE_URL}/audio/transcriptions`);
      expect(call.headers.get("content-type")).toBe(contentType);
      expect(call.bytes).toEqual(sentBytes);
    }
  });

  it("lists the models this client may use, aliases included, in OpenAI list shape", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("models")], { aliases: { "friendly-name": "x" } });
    const res = await gateway("/v1/models", { headers: { authorization: `Bearer ${pool.clientKey}` } });
    const body = (await res.json()) as { object: string; data: { id: string; object: string }[] };
    expect(body.object).toBe("list");
    const ids = body.data.map((m) => m.id);
    expect(ids).toContain(pool.model);
    expect(ids).toContain("friendly-name");
    expect(new Set(ids).size).toBe(ids.length);

    const narrow = await admin<{ key: string }>("POST", "/client-keys", { name: "narrow", models: [pool.model] });
    forgetSnapshot();
    const only = await waitFor(async () => {
      const r = await gateway("/v1/models", { headers: { authorization: `Bearer ${narrow.body.key}` } });
      return r.status === 200 ? ((await r.json()) as { data: { id: string }[] }) : undefined;
    }, "the new client key to be served");
    expect(only.data.map((m) => m.id)).toEqual([pool.model]);
  });

  it("keeps upstream account details away from clients", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("info")]);
    const res = await gateway("/v1/user/info", { headers: { authorization: `Bearer ${pool.clientKey}` } });
    expect(res.status).toBe(404);
    expect(await res.json()).toMatchObject({ error: { type: "not_found_error" } });
  });

  it("works with the official openai SDK, streaming included", async () => {
    const key = uniqueKey("sdk");
    const pool = await createPool(FAKE_BASE_URL, [key]);
    const fake = installFakeUpstream({ [key]: "stream" });
    fakes.set(fake.restore);
    const client = new OpenAI({
      apiKey: pool.clientKey,
      baseURL: "https://keypool.test/v1",
      fetch: (url: RequestInfo | URL, init?: RequestInit) => exports.default.fetch(new Request(url, init)),
      maxRetries: 0,
    });
    const stream = await client.chat.completions.create({ model: pool.model, stream: true, messages: [{ role: "user", content: "hi" }] });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
    expect(text).toBe("Hello 😀");
  });
});
