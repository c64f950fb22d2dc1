import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
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
