import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { adminSession, provisionPool } from "../../scripts/lib/admin-client.mjs";
import { ROOT, applyMigrations, buildDashboard, generateSecrets, startWranglerOnFreePorts } from "../../scripts/lib/stack.mjs";
import { startMockUpstream } from "../../tools/mock-upstream/server.mjs";

export type Summary = { rpm: number; rpd: number; tpm: number; tpd: number };

/** The real local stack (both Workers in one `wrangler dev`) against the mock upstream, with a pool and a client key. */
export interface Stack {
  url: string;
  mock: Awaited<ReturnType<typeof startMockUpstream>>;
  admin: Awaited<ReturnType<typeof adminSession>>;
  openai: OpenAI;
  clientKey: string;
  poolKeys: string[];
  secrets: ReturnType<typeof generateSecrets>;
  log(): string;
  stop(): Promise<void>;
}

/**
 * Starts the stack on free ports with fresh secrets and state; `stop()` removes everything it made.
 * With `provision: false` it stays empty (no upstream, key or client key; `clientKey` is "").
 */
export async function startStack(models: string[] = ["mock-gpt"], keyCount = 3, { provision = true } = {}): Promise<Stack> {
  if (!existsSync(path.join(ROOT, "admin/dist/index.html"))) await buildDashboard({ quiet: true });
  const secrets = generateSecrets();
  const mock = await startMockUpstream();
  const persistTo = mkdtempSync(path.join(tmpdir(), "keypool-e2e-"));
  await applyMigrations(persistTo, { quiet: true });
  const removeState = async () => {
    await mock.close();
    rmSync(persistTo, { recursive: true, force: true });
  };
  const wrangler = await startWranglerOnFreePorts({ persistTo, vars: secrets, quiet: true }).catch(async (err: unknown) => {
    await removeState();
    throw err;
  });
  const stop = async () => {
    await wrangler.stop();
    await removeState();
  };
  try {
    const admin = await adminSession(wrangler.url, secrets.ADMIN_PASSWORD);
    const poolKeys = provision ? Array.from({ length: keyCount }, (_, i) => `sk-e2e-${i}-${crypto.randomUUID().replaceAll("-", "")}`) : [];
    const { clientKey } = provision
      ? await provisionPool(admin, wrangler.url, { baseUrl: mock.baseUrl, models, keys: poolKeys, clientName: "e2e" })
      : { clientKey: "" };
    const openai = new OpenAI({ baseURL: `${wrangler.url}/v1`, apiKey: clientKey || "no-client-key-yet", maxRetries: 0 });
    return { url: wrangler.url, mock, admin, openai, clientKey, poolKeys, secrets, log: wrangler.log, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/** Polls the stats summary until `done` accepts it; returns it and how long that took. */
export async function summaryWhen(stack: Stack, done: (s: Summary) => boolean, timeoutMs: number): Promise<{ summary: Summary; ms: number }> {
  const started = Date.now();
  for (;;) {
    const summary = (await stack.admin("GET", "/stats/summary")) as Summary;
    if (done(summary)) return { summary, ms: Date.now() - started };
    if (Date.now() - started > timeoutMs) throw new Error(`summary never matched: ${JSON.stringify(summary)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
