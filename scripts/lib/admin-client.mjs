// @ts-check
/** A small admin API client for scripts and end-to-end tests. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, parseDevVars } from "./stack.mjs";

/** @typedef {(method: string, path: string, body?: unknown) => Promise<any>} AdminCall */

/**
 * Logs in and returns a function that calls the admin API with the session token.
 * @param {string} baseUrl
 * @param {string} password
 * @returns {Promise<AdminCall>}
 */
export async function adminSession(baseUrl, password) {
  const login = await fetch(`${baseUrl}/admin/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ password }),
  });
  if (!login.ok) throw new Error(`admin login failed: ${login.status} ${await login.text()}`);
  const { token } = /** @type {{ token: string }} */ (await login.json());
  return async function call(method, path, body) {
    const res = await fetch(`${baseUrl}/admin/api${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

/**
 * Polls `GET /v1/models` with the client key until it lists `model`: the consumer
 * has published the snapshot and the gateway isolate has picked it up.
 * @param {string} baseUrl
 * @param {string} clientKey
 * @param {string} model
 */
export async function waitForModel(baseUrl, clientKey, model, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${baseUrl}/v1/models`, { headers: { authorization: `Bearer ${clientKey}` } });
    if (res.ok) {
      const { data } = /** @type {{ data: { id: string }[] }} */ (await res.json());
      if (data.some((m) => m.id === model)) return;
    } else await res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the gateway did not serve model ${model} within ${timeoutMs} ms`);
}

/**
 * @typedef {object} PoolSpec
 * @property {string} baseUrl the upstream's base URL (what an OpenAI SDK takes as baseURL)
 * @property {string[]} models the models the upstream serves; the first is waited for
 * @property {string[]} keys the upstream keys to add
 * @property {string} [name] the upstream's name
 * @property {string} [clientName] the client key's name
 * @property {Record<string, unknown>} [settings] settings to apply first
 * @property {Record<string, unknown>} [limits] the upstream's limits (rpm, rpd, tpm, tpd, day)
 * @property {number} [timeoutMs] how long the gateway may take to serve the first model
 */

/**
 * Sets up a pool through the admin API — settings, an upstream, its keys (5,000
 * a call), a client key — and waits until the gateway serves the first model
 * with that client key. The one way the demo, the bench, the chaos run and the
 * end-to-end tests provision Keypool.
 * @param {AdminCall} admin
 * @param {string} gatewayUrl
 * @param {PoolSpec} spec
 * @returns {Promise<{ upstreamId: string, added: number, clientKeyId: string, clientKey: string }>}
 */
export async function provisionPool(admin, gatewayUrl, { baseUrl, models, keys, name = "mock", clientName = "client", settings, limits, timeoutMs = 60_000 }) {
  if (settings) await admin("PATCH", "/settings", settings);
  const upstream = /** @type {{ id: string }} */ (await admin("POST", "/upstreams", { name, baseUrl, models, ...(limits ? { limits } : {}) }));
  let added = 0;
  for (let i = 0; i < keys.length; i += 5_000)
    added += /** @type {{ added: number }} */ (await admin("POST", "/keys", { upstreamId: upstream.id, text: keys.slice(i, i + 5_000).join("\n") })).added;
  const client = /** @type {{ id: string, key: string }} */ (await admin("POST", "/client-keys", { name: clientName }));
  const first = models[0];
  if (first !== undefined) await waitForModel(gatewayUrl, client.key, first, timeoutMs);
  return { upstreamId: upstream.id, added, clientKeyId: client.id, clientKey: client.key };
}

/**
 * An admin session with the Keypool the scripts are pointed at: KEYPOOL_URL
 * (default http://127.0.0.1:$PORT, PORT 8787) and KEYPOOL_ADMIN_PASSWORD
 * (default: ADMIN_PASSWORD from .dev.vars). Exits with a message when there is no password.
 */
export async function adminFromEnv() {
  const url = process.env.KEYPOOL_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8787}`;
  const varsFile = path.join(ROOT, ".dev.vars");
  const password = process.env.KEYPOOL_ADMIN_PASSWORD ?? (existsSync(varsFile) ? parseDevVars(readFileSync(varsFile, "utf8")).ADMIN_PASSWORD : undefined);
  if (!password) {
    console.error("No admin password: set KEYPOOL_ADMIN_PASSWORD or run npm start once to create .dev.vars.");
    process.exit(2);
  }
  return adminSession(url, password);
}
