import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { createApp } from "../../gateway/app";
import { createIsolateState } from "../../gateway/worker";
import type { Snapshot } from "../../schema";
import { readSnapshot } from "../../storage/snapshot-reader";
import { isolate } from "../fixtures/workers/gateway";
import { TEST_SECRETS } from "./secrets";

/** Makes the gateway isolate read KV on its next request, instead of 2 s after its last look. */
export function forgetSnapshot(): void {
  isolate.pools.forget();
}

/**
 * A gateway of its own (a fresh isolate state) that runs with these secrets in
 * place of the test's: another deployment's keys, or a rotation under way.
 */
export function gatewayWith(secrets: Record<string, string>) {
  const app = createApp({ ...createIsolateState(), probe: async () => [] });
  return (path: string, init: RequestInit = {}) =>
    app.fetch(new Request(`https://keypool.test${path}`, init), { ...env, ...secrets }, createExecutionContext());
}

/** Calls the gateway Worker through its real entry point. */
export function gateway(path: string, init?: RequestInit): Promise<Response> {
  return exports.default.fetch(new Request(`https://keypool.test${path}`, init));
}

let token: string | null = null;

/** Logs in once per test file and returns the admin token. */
export async function adminToken(): Promise<string> {
  if (token) return token;
  const res = await gateway("/admin/api/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ password: TEST_SECRETS.ADMIN_PASSWORD }),
  });
  if (res.status !== 200) throw new Error(`login failed: ${res.status}`);
  token = ((await res.json()) as { token: string }).token;
  return token;
}

/** A JSON call to the admin API with the admin token. */
export async function admin<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await gateway(`/admin/api${path}`, {
    method,
    headers: { authorization: `Bearer ${await adminToken()}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

/** Polls until `check` returns a value (not undefined), or fails after `timeoutMs`. */
export async function waitFor<T>(check: () => Promise<T | undefined>, what: string, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** The snapshot the consumer published, once `ready` accepts it. */
export function waitForSnapshot(ready: (s: Snapshot) => boolean): Promise<Snapshot> {
  return waitFor(async () => {
    const snapshot = await readSnapshot(env.SNAPSHOT);
    return snapshot && ready(snapshot) ? snapshot : undefined;
  }, "the consumer to publish the snapshot");
}

export interface TestPool {
  upstreamId: string;
  /** The one model this pool's upstream serves: tests share storage, so each uses its own. */
  model: string;
  clientKey: string;
  clientKeyId: string;
  keys: string[];
}

/**
 * Creates an upstream at `baseUrl` serving one model of its own, with `keys` and a
 * client key, and waits until the published snapshot holds them.
 */
export async function createPool(
  baseUrl: string,
  keys: string[],
  options: { aliases?: Record<string, string>; client?: Record<string, unknown>; limits?: Record<string, unknown> } = {},
): Promise<TestPool> {
  const model = `model-${crypto.randomUUID()}`;
  const up = await admin<{ id: string }>("POST", "/upstreams", {
    name: `up-${model}`,
    baseUrl,
    models: [model],
    aliases: options.aliases ?? {},
    limits: options.limits ?? {},
  });
  const added = await admin<{ added: number }>("POST", "/keys", { upstreamId: up.body.id, text: keys.join("\n") });
  if (added.body.added !== keys.length) throw new Error(`expected ${keys.length} keys added, got ${JSON.stringify(added.body)}`);
  const client = await admin<{ id: string; key: string }>("POST", "/client-keys", { name: "test client", ...options.client });
  await waitForSnapshot((s) => s.clientKeys.some((c) => c.id === client.body.id) && s.keys.filter((k) => k.upstreamId === up.body.id).length === keys.length);
  return { upstreamId: up.body.id, model, clientKey: client.body.key, clientKeyId: client.body.id, keys };
}

/** A chat completion request body. */
export function chatBody(model: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model, messages: [{ role: "user", content: "Say hello" }], ...extra });
}

/** Rollup totals of one client key, summed over its minute rows, straight from D1. */
export async function rolledUp(clientKeyId: string): Promise<Record<string, number | null>> {
  const row = await env.DB.prepare(
    `SELECT SUM(requests) AS requests, SUM(attempts) AS attempts, SUM(aborted) AS aborted, SUM(auth_failed) AS auth_failed,
            SUM(network_error) AS network_error, SUM(total_tokens) AS tokens, SUM(estimated_tokens) AS estimated
     FROM rollup_minute WHERE client_key_id = ?1`,
  )
    .bind(clientKeyId)
    .first<Record<string, number | null>>();
  return row ?? {};
}

/** Waits until the client key's rollup totals satisfy `ready`. */
export function waitForRollup(clientKeyId: string, ready: (r: Record<string, number | null>) => boolean): Promise<Record<string, number | null>> {
  return waitFor(async () => {
    const r = await rolledUp(clientKeyId);
    return ready(r) ? r : undefined;
  }, "the rollup");
}

/** Restores the fake upstream and forgets the isolate's snapshot after each test of a file that calls it. */
export function resetAfterEach(afterEach: (fn: () => void) => void): { set(restore: () => void): void } {
  let restore: (() => void) | null = null;
  afterEach(() => {
    restore?.();
    restore = null;
    forgetSnapshot();
  });
  return { set: (r) => void (restore = r) };
}
