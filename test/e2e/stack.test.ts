import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { provisionPool, waitForModel } from "../../scripts/lib/admin-client.mjs";
import { costMicros, toMicros, type ClientKeyStatus, type StatsBreakdown } from "../../schema";
import { startStack, summaryWhen, type Stack, type Summary } from "./fixture";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
});

describe("the local stack, driven by the official openai SDK", () => {
  it("answers a chat completion and counts it in the stats summary within 2 seconds", async () => {
    const before = (await stack.admin("GET", "/stats/summary")) as Summary;
    const completion = await stack.openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "Hello, Keypool" }] });
    expect(completion.choices[0]?.message.content).toContain("Keypool mock upstream");
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
    const { summary, ms } = await summaryWhen(stack, (s) => s.rpd >= before.rpd + 1, 2_000);
    expect(ms).toBeLessThanOrEqual(2_000);
    expect(summary.rpm).toBeGreaterThanOrEqual(1);
    expect(summary.tpd).toBe(before.tpd + completion.usage!.total_tokens);
  });

  it("streams a completion and records the usage the upstream reported", async () => {
    const before = (await stack.admin("GET", "/stats/summary")) as Summary;
    const mockBefore = stack.mock.stats.totalTokens;
    const stream = await stack.openai.chat.completions.create({
      model: "mock-gpt",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "Stream please" }],
    });
    let text = "";
    let usage: { total_tokens: number } | null | undefined = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe("Hello from the Keypool mock upstream. This answer is deterministic.");
    expect(usage?.total_tokens).toBe(stack.mock.stats.totalTokens - mockBefore);
    await summaryWhen(stack, (s) => s.tpd === before.tpd + usage!.total_tokens, 5_000);
  });

  it("retries a rate-limited key on another one, invisibly to the client", async () => {
    stack.mock.setKeyBehavior(stack.poolKeys[0]!, { mode: "rate_limit", retryAfterSeconds: 60 });
    const attemptsBefore = stack.mock.stats.requests;
    for (let i = 0; i < 8; i++) {
      const res = await stack.openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: `retry ${i}` }] });
      expect(res.choices).toHaveLength(1);
    }
    // At most one attempt hits the limited key before this isolate cools it down.
    expect(stack.mock.stats.requests - attemptsBefore).toBeLessThanOrEqual(9);
    stack.mock.setKeyBehavior(stack.poolKeys[0]!, { mode: "ok" });
  });

  it("refuses a wrong client key with a 401 in OpenAI shape", async () => {
    const bad = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: "kp-wrong", maxRetries: 0 });
    await expect(bad.chat.completions.create({ model: "mock-gpt", messages: [] })).rejects.toMatchObject({ status: 401, code: "invalid_api_key" });
  });

  it("serves the dashboard at the root with a strict CSP", async () => {
    const res = await fetch(`${stack.url}/`);
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('<div id="app">');
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
  });

  it("never writes an upstream key or the client key to wrangler's log", () => {
    const log = stack.log();
    expect(log).toContain("POST /v1/chat/completions");
    for (const secret of [...stack.poolKeys, stack.clientKey, stack.secrets.ADMIN_PASSWORD]) expect(log).not.toContain(secret);
  });
});

describe("spend, against the mock's usage", () => {
  it("is the mock's reported usage at the price table's price, to the micro-unit, for answers JSON and streamed", async () => {
    const price = { input: 0.15, cachedInput: 0.075, output: 0.6 };
    expect(await stack.admin("PUT", "/prices", { model: "mock-gpt", ...price, source: "e2e" })).toMatchObject({ input: 0.15 });
    const { id, key } = (await stack.admin("POST", "/client-keys", { name: "spend e2e" })) as { id: string; key: string };
    const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 });
    const micros = { input: toMicros(price.input), cachedInput: toMicros(price.cachedInput), output: toMicros(price.output), perRequest: null };
    let expected = 0;
    const bill = (u: { prompt_tokens: number; completion_tokens: number } | null | undefined) => {
      expect(u).toBeTruthy();
      expected += costMicros(micros, { promptTokens: u!.prompt_tokens, completionTokens: u!.completion_tokens, cachedTokens: 0, answered: true });
    };
    await vi.waitFor(() => openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "first" }] }).then((r) => bill(r.usage)), {
      timeout: 15_000,
      interval: 250,
    });
    for (let i = 1; i < 5; i++) {
      const r = await openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "word ".repeat(i * 40) }] });
      bill(r.usage);
    }
    const stream = await openai.chat.completions.create({
      model: "mock-gpt",
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: "user", content: "stream" }],
    });
    let streamed: { prompt_tokens: number; completion_tokens: number } | null = null;
    for await (const chunk of stream) streamed = chunk.usage ?? streamed;
    bill(streamed);
    const row = await vi.waitFor(
      async () => {
        const b = (await stack.admin("GET", `/stats/breakdown?by=client&bucket=day&count=1&clientKeyId=${id}`)) as StatsBreakdown;
        const r = b.rows.find((x) => x.id === id);
        if (r?.requests !== 6) throw new Error(`not yet: ${JSON.stringify(r)}`);
        return r;
      },
      { timeout: 15_000, interval: 200 },
    );
    expect({ costMicros: row.costMicros, unpriced: row.unpriced }).toEqual({ costMicros: expected, unpriced: 0 });
    const own = (await (await fetch(`${stack.url}/v1/key`, { headers: { authorization: `Bearer ${key}` } })).json()) as ClientKeyStatus;
    expect(own.usage.today.cost_micros).toBe(expected);
  });
});

describe("smooth streaming, through the official openai SDK", () => {
  it("hands a bursty stream on in small even pieces to a client key that asked for it, and as it came to the rest", async () => {
    const model = "smooth-gpt";
    const keys = Array.from({ length: 2 }, (_, i) => `sk-smooth-${i}-${crypto.randomUUID().replaceAll("-", "")}`);
    // Eight words a chunk: text in bursts, as a fast model or a buffering proxy sends it.
    for (const key of keys) stack.mock.setKeyBehavior(key, { words: 40, wordsPerChunk: 8 });
    const pool = await provisionPool(stack.admin, stack.url, { baseUrl: stack.mock.baseUrl, models: [model], keys, name: model, clientName: "plain" });
    const smoothed = (await stack.admin("POST", "/client-keys", { name: "smoothed", smoothStreams: true })) as { key: string };
    await waitForModel(stack.url, smoothed.key, model);
    const stream = async (apiKey: string) => {
      const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey, maxRetries: 0 });
      const chunks = [];
      // The client does not ask for usage: Keypool asks, and leaves the usage chunk out, smoothed or not.
      for await (const chunk of await openai.chat.completions.create({ model, stream: true, messages: [{ role: "user", content: "tell me" }] }))
        chunks.push(chunk);
      return chunks;
    };
    const plain = await stream(pool.clientKey);
    const smooth = await stream(smoothed.key);
    const text = (chunks: typeof plain) => chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
    const pieces = (chunks: typeof plain) => chunks.filter((c) => (c.choices[0]?.delta.content ?? "") !== "");
    expect(text(smooth)).toBe(text(plain));
    expect(text(plain).split(" ")).toHaveLength(40);
    // Five bursts as they came; smoothed, pieces of at most six characters.
    expect(pieces(plain)).toHaveLength(5);
    expect(pieces(smooth).length).toBeGreaterThan(text(plain).length / 6);
    for (const c of pieces(smooth)) expect(Array.from(c.choices[0]!.delta.content!).length).toBeLessThanOrEqual(6);
    // The same end: the finish, no usage chunk the client did not ask for, one stream.
    for (const chunks of [plain, smooth]) {
      expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe("stop");
      expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
    }
    expect(smooth[0]?.choices[0]?.delta.role).toBe("assistant");
    expect(smooth.filter((c) => c.choices[0]?.delta.role)).toHaveLength(1);
  }, 60_000);
});

/** Waits, if need be, for a minute with at least `ms` left in it: the mock's windows and Keypool's are whole minutes. */
async function roomyMinute(ms = 25_000): Promise<void> {
  const left = 60_000 - (Date.now() % 60_000);
  if (left < ms) await new Promise((r) => setTimeout(r, left + 200));
}

/** Fresh keys, each limited by the mock as `limits` says, in a pool of their own serving `model`. */
async function limitedPool(model: string, limits: Record<string, unknown>, keyLimits: Record<string, unknown> = {}) {
  const keys = Array.from({ length: 3 }, (_, i) => `sk-cap-${i}-${crypto.randomUUID().replaceAll("-", "")}`);
  for (const key of keys) stack.mock.setKeyBehavior(key, { limits: keyLimits });
  const pool = await provisionPool(stack.admin, stack.url, { baseUrl: stack.mock.baseUrl, models: [model], keys, name: model, clientName: model, limits });
  const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: pool.clientKey, maxRetries: 0 });
  const chat = (content: string) => openai.chat.completions.create({ model, messages: [{ role: "user", content }] });
  const raw = () =>
    fetch(`${stack.url}/v1/chat/completions`, {
      method: "POST",
      headers: { authorization: `Bearer ${pool.clientKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model, messages: [{ role: "user", content: "one more" }] }),
    });
  return { keys, pool, chat, raw };
}

describe("capacity, against the mock's enforced limits", () => {
  it("spends configured per-minute limits evenly without one upstream 429, then answers 429 until the window frees", async () => {
    const { keys, chat, raw } = await limitedPool("cap-configured", { rpm: 4 }, { requests: 4 });
    await roomyMinute();
    const limitedBefore = stack.mock.stats.limited.window;
    for (let i = 0; i < 12; i++) expect((await chat(`configured ${i}`)).choices).toHaveLength(1);
    expect(stack.mock.stats.limited.window).toBe(limitedBefore);
    expect(keys.map((k) => stack.mock.stats.served[k]?.requests)).toEqual([4, 4, 4]);
    const requestsBefore = stack.mock.stats.requests;
    const refused = await raw();
    expect(refused.status).toBe(429);
    expect(await refused.json()).toMatchObject({ error: { type: "rate_limit_error", code: "all_keys_cooling" } });
    // Not before the minute ends (the mock's window), and within the minute after (Keypool's sliding estimate).
    const retryAfterMs = Number(refused.headers.get("retry-after-ms"));
    expect(retryAfterMs).toBeGreaterThanOrEqual(60_000 - (Date.now() % 60_000) - 1_000);
    expect(retryAfterMs).toBeLessThanOrEqual(62_000);
    expect(stack.mock.stats.requests).toBe(requestsBefore);
  }, 90_000);

  it("learns limits from the provider's headers: no request over them, and the 429's Retry-After is the provider's reset", async () => {
    const { keys, chat, raw } = await limitedPool("cap-learned", {}, { requests: 3, headers: true });
    await roomyMinute();
    const limitedBefore = stack.mock.stats.limited.window;
    for (let i = 0; i < 9; i++) expect((await chat(`learned ${i}`)).choices).toHaveLength(1);
    expect(stack.mock.stats.limited.window).toBe(limitedBefore);
    expect(keys.map((k) => stack.mock.stats.served[k]?.requests)).toEqual([3, 3, 3]);
    const refused = await raw();
    expect(refused.status).toBe(429);
    const untilMinuteEnds = 60_000 - (Date.now() % 60_000);
    expect(Math.abs(Number(refused.headers.get("retry-after-ms")) - untilMinuteEnds)).toBeLessThanOrEqual(1_500);
  }, 90_000);

  it("cools a key whose daily quota is spent until the provider's day resets, and a probe does not revive it", async () => {
    const { keys, pool, raw } = await limitedPool("cap-quota", {}, { dailyRequests: 2 });
    const limitedBefore = stack.mock.stats.limited.day;
    let refused: Response | null = null;
    for (let i = 0; i < 10 && !refused; i++) {
      const res = await raw();
      if (res.status === 429) refused = res;
      else expect(res.status).toBe(200);
    }
    // Every key served its two, and told Keypool once that its quota is spent — then was left alone.
    expect(keys.map((k) => stack.mock.stats.served[k]?.requests)).toEqual([2, 2, 2]);
    expect(stack.mock.stats.limited.day - limitedBefore).toBe(3);
    const midnight = Math.ceil(Date.now() / 86_400_000) * 86_400_000;
    expect(Math.abs(Number(refused!.headers.get("retry-after-ms")) - (midnight - Date.now()))).toBeLessThanOrEqual(5_000);
    const listed = async () =>
      ((await stack.admin("GET", `/keys?upstreamId=${pool.upstreamId}`)) as { data: { state: string; coolingUntil: number | null }[] }).data;
    await vi.waitFor(async () => expect((await listed()).map((k) => k.state)).toEqual(["cooling", "cooling", "cooling"]), { timeout: 15_000, interval: 100 });
    for (const k of await listed()) expect(Math.abs(k.coolingUntil! - midnight)).toBeLessThanOrEqual(5_000);
    await stack.admin("POST", "/keys/probe", { all: true });
    expect(stack.mock.stats.limited.day - limitedBefore).toBe(3);
    expect((await listed()).map((k) => k.state)).toEqual(["cooling", "cooling", "cooling"]);
    expect((await raw()).status).toBe(429);
    for (const key of keys) stack.mock.setKeyBehavior(key, {});
  }, 90_000);
});
