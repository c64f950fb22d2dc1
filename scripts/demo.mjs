// @ts-check
/**
 * `npm run demo`: the whole stack against the mock upstream, with demo keys, a
 * client key and steady traffic through the official openai SDK, so the dashboard
 * moves without any real key. Runs on its own state (.wrangler/demo-state, fresh
 * each run). Ctrl-C stops everything.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import path from "node:path";
import OpenAI from "openai";
import { startMockUpstream } from "../tools/mock-upstream/server.mjs";
import { adminSession, provisionPool } from "./lib/admin-client.mjs";
import { ROOT, applyMigrations, buildDashboard, ensureDevVars, freePort, startWrangler, tickScheduler } from "./lib/stack.mjs";

const port = Number(process.env.PORT ?? 8787);
const persistTo = path.join(ROOT, ".wrangler/demo-state");
rmSync(persistTo, { recursive: true, force: true });

const { vars } = ensureDevVars();
const mock = await startMockUpstream({ port: await freePort(Number(process.env.MOCK_PORT ?? 8790)) });
console.log(`demo: mock upstream at ${mock.baseUrl}`);
await buildDashboard();
await applyMigrations(persistTo, { quiet: true });
const stack = startWrangler({ port, inspectorPort: await freePort(9240), persistTo, quiet: true });

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  await stack.stop();
  await mock.close();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
stack.child.on("exit", (code) => {
  if (stopping) return;
  console.error(`demo: wrangler dev exited (${code}):\n${stack.log().slice(-3000)}`);
  void stop(1);
});

try {
  await stack.ready();
  const admin = await adminSession(stack.url, /** @type {string} */ (vars.ADMIN_PASSWORD));
  const demoKeys = Array.from({ length: 5 }, (_, i) => `sk-demo-${i}-${randomBytes(12).toString("hex")}`);
  // One demo key is rate limited, so the dashboard shows retries landing on the others.
  mock.setKeyBehavior(/** @type {string} */ (demoKeys[4]), { mode: "rate_limit", retryAfterSeconds: 30 });
  const pool = await provisionPool(admin, stack.url, {
    name: "Mock upstream (demo)",
    baseUrl: mock.baseUrl,
    models: ["mock-gpt", "mock-gpt-mini"],
    keys: demoKeys,
    clientName: "demo client",
  });
  await tickScheduler(stack.url);
  console.log(`
  Demo running (${pool.added} mock keys, one of them rate limited).
    Dashboard      ${stack.url}/     password: ${vars.ADMIN_PASSWORD}
    OpenAI base    ${stack.url}/v1   client key: ${pool.clientKey}
  Sending a request every ~half second. Ctrl-C stops everything.
`);
  const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: pool.clientKey, maxRetries: 0 });
  let sent = 0;
  let failed = 0;
  for (;;) {
    try {
      if (sent % 3 === 0) {
        const stream = await openai.chat.completions.create({ model: "mock-gpt", stream: true, messages: [{ role: "user", content: `demo ${sent}` }] });
        for await (const _chunk of stream);
      } else {
        await openai.chat.completions.create({ model: sent % 2 ? "mock-gpt" : "mock-gpt-mini", messages: [{ role: "user", content: `demo ${sent}` }] });
      }
    } catch (err) {
      failed++;
      console.error(`demo: request failed: ${err instanceof Error ? err.message : err}`);
    }
    sent++;
    if (sent % 20 === 0) console.log(`demo: ${sent} requests sent, ${failed} failed; upstream saw ${mock.stats.requests} attempts`);
    await new Promise((r) => setTimeout(r, 250 + Math.random() * 500));
  }
} catch (err) {
  console.error(`demo: ${err instanceof Error ? err.message : err}\n${stack.log().slice(-2000)}`);
  await stop(1);
}
