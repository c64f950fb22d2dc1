import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adminSession, waitForModel } from "../../scripts/lib/admin-client.mjs";
import { ROOT, applyMigrations, buildDashboard, freePort, generateSecrets, startWrangler } from "../../scripts/lib/stack.mjs";
import { startMockUpstream } from "../../tools/mock-upstream/server.mjs";

type Summary = { rpm: number; rpd: number; tpm: number; tpd: number };

const secrets = generateSecrets();
const poolKeys = Array.from({ length: 3 }, (_, i) => `sk-e2e-${i}-${crypto.randomUUID().replaceAll("-", "")}`);
let persistTo: string;
let mock: Awaited<ReturnType<typeof startMockUpstream>>;
let stack: ReturnType<typeof startWrangler>;
let admin: Awaited<ReturnType<typeof adminSession>>;
let openai: OpenAI;
let clientKey: string;

/** Polls the stats summary until `done` accepts it; returns it and how long that took. */
async function summaryWhen(done: (s: Summary) => boolean, timeoutMs: number): Promise<{ summary: Summary; ms: number }> {
  const started = Date.now();
  for (;;) {
    const summary = (await admin("GET", "/stats/summary")) as Summary;
    if (done(summary)) return { summary, ms: Date.now() - started };
    if (Date.now() - started > timeoutMs) throw new Error(`summary never matched: ${JSON.stringify(summary)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, "admin/dist/index.html"))) await buildDashboard({ quiet: true });
  mock = await startMockUpstream();
  persistTo = mkdtempSync(path.join(tmpdir(), "keypool-e2e-"));
  await applyMigrations(persistTo, { quiet: true });
  stack = startWrangler({ port: await freePort(), inspectorPort: await freePort(), persistTo, vars: secrets, quiet: true });
  await stack.ready();
  admin = await adminSession(stack.url, secrets.ADMIN_PASSWORD);
  const upstream = (await admin("POST", "/upstreams", { name: "mock", baseUrl: mock.baseUrl, models: ["mock-gpt"] })) as { id: string };
  await admin("POST", "/keys", { upstreamId: upstream.id, text: poolKeys.join(", ") });
  clientKey = ((await admin("POST", "/client-keys", { name: "e2e" })) as { key: string }).key;
  await waitForModel(stack.url, clientKey, "mock-gpt");
  openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: clientKey, maxRetries: 0 });
});

afterAll(async () => {
  await stack?.stop();
  await mock?.close();
  if (persistTo) rmSync(persistTo, { recursive: true, force: true });
});

describe("the local stack, driven by the official openai SDK", () => {
  it("answers a chat completion and counts it in the stats summary within 2 seconds", async () => {
    const before = (await admin("GET", "/stats/summary")) as Summary;
    const completion = await openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "Hello, Keypool" }] });
    expect(completion.choices[0]?.message.content).toContain("Keypool mock upstream");
    expect(completion.usage?.total_tokens).toBeGreaterThan(0);
    const { summary, ms } = await summaryWhen((s) => s.rpd >= before.rpd + 1, 2_000);
    expect(ms).toBeLessThanOrEqual(2_000);
    expect(summary.rpm).toBeGreaterThanOrEqual(1);
    expect(summary.tpd).toBe(before.tpd + completion.usage!.total_tokens);
  });

  it("streams a completion and records the usage the upstream reported", async () => {
    const before = (await admin("GET", "/stats/summary")) as Summary;
    const mockBefore = mock.stats.totalTokens;
    const stream = await openai.chat.completions.create({
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
    expect(usage?.total_tokens).toBe(mock.stats.totalTokens - mockBefore);
    await summaryWhen((s) => s.tpd === before.tpd + usage!.total_tokens, 5_000);
  });

  it("retries a rate-limited key on another one, invisibly to the client", async () => {
    mock.setKeyBehavior(poolKeys[0]!, { mode: "rate_limit", retryAfterSeconds: 60 });
    const attemptsBefore = mock.stats.requests;
    for (let i = 0; i < 8; i++) {
      const res = await openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: `retry ${i}` }] });
      expect(res.choices).toHaveLength(1);
    }
    // At most one attempt hits the limited key before this isolate cools it down.
    expect(mock.stats.requests - attemptsBefore).toBeLessThanOrEqual(9);
    mock.setKeyBehavior(poolKeys[0]!, { mode: "ok" });
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
    for (const secret of [...poolKeys, clientKey, secrets.ADMIN_PASSWORD]) expect(log).not.toContain(secret);
  });
});
