// @ts-check
/** A small admin API client for scripts and end-to-end tests. */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT, parseDevVars } from "./stack.mjs";

/** Logs in and returns a function that calls the admin API with the session token. */
export async function adminSession(baseUrl, password) {
  const login = await fetch(`${baseUrl}/admin/api/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ password }),
  });
  if (!login.ok) throw new Error(`admin login failed: ${login.status} ${await login.text()}`);
  const { token } = await login.json();
  /**
   * @param {string} method
   * @param {string} path
   * @param {unknown} [body]
   */
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
 */
export async function waitForModel(baseUrl, clientKey, model, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const res = await fetch(`${baseUrl}/v1/models`, { headers: { authorization: `Bearer ${clientKey}` } });
    if (res.ok) {
      const { data } = await res.json();
      if (data.some((m) => m.id === model)) return;
    } else await res.arrayBuffer();
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the gateway did not serve model ${model} within ${timeoutMs} ms`);
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
