// @ts-check
/**
 * One deployed copy of Keypool, as `npm run deploy` left it: its names, its state
 * directory (.deploy/<env>/: generated configs, remembered options), its URL, and
 * its gateway's deep health check. Shared by deploy, rotate, backup and restore.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./stack.mjs";

/**
 * The environment's name from `--env` (default production), checked.
 * @param {string | undefined} value
 */
export function environmentName(value) {
  const name = value ?? "production";
  if (!/^[a-z][a-z0-9-]{0,30}$/.test(name)) throw new Error(`--env takes a short lower-case name (letters, digits, dashes), not "${name}"`);
  return name;
}

/**
 * Everything one copy of Keypool is made of, named after its environment.
 * @param {string} env
 */
export function deploymentNames(env) {
  const prefix = env === "production" ? "keypool" : `keypool-${env}`;
  return {
    prefix,
    gateway: `${prefix}-gateway`,
    consumer: `${prefix}-stats-consumer`,
    kv: `${prefix}-snapshot`,
    d1: prefix,
    r2: `${prefix}-archive`,
    /** The fold databases beyond the first (`DB_2`, `DB_3`…): `keypool-fold-2`… */
    foldD1: (/** @type {number} */ k) => `${prefix}-fold-${k}`,
  };
}

/**
 * Where the environment's generated configs and remembered options live
 * (KEYPOOL_DEPLOY_DIR moves it, for tests).
 * @param {string} env
 */
export function stateDir(env) {
  return path.resolve(process.env.KEYPOOL_DEPLOY_DIR ?? path.join(ROOT, ".deploy"), env);
}

/**
 * The options the last deploy of `env` remembered.
 * @param {string} env
 * @returns {{ domain?: string, routes: { pattern: string, zone_name: string }[], url?: string, foldDatabases: number }}
 */
export function savedOptions(env) {
  const file = path.join(stateDir(env), "options.json");
  const saved = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) : {};
  return { domain: saved.domain, routes: saved.routes ?? [], url: saved.url, foldDatabases: saved.foldDatabases ?? 1 };
}

/**
 * The gateway's public URL: the one given, else the custom domain, else workers.dev.
 * @param {import("./cloudflare.mjs").Api} api
 * @param {string} account
 * @param {string} env
 * @param {{ domain?: string, url?: string }} options
 */
export async function gatewayUrl(api, account, env, options) {
  if (options.url) return options.url;
  if (options.domain) return `https://${options.domain}`;
  const { subdomain } = await api.get(`/accounts/${account}/workers/subdomain`);
  return `https://${deploymentNames(env).gateway}.${subdomain}.workers.dev`;
}

/**
 * @typedef {{ ok: boolean, rotation?: { keyEncryptionKey: boolean, jwtSecret: boolean }, snapshot?: { version: number, generatedAt: number }, secrets?: { missing: string[] }, folds?: { ok: boolean, error?: string } }} DeepHealth
 */

/**
 * One answer of the gateway's `/healthz?deep=1` (status and body), or the reason there was none.
 * @param {string} url
 * @returns {Promise<{ status: number, body: DeepHealth | null, text: string }>}
 */
export async function deepHealth(url) {
  try {
    const res = await fetch(`${url}/healthz?deep=1`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let body = null;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON: reported by text
    }
    return { status: res.status, body, text: text.slice(0, 300) };
  } catch (e) {
    return { status: 0, body: null, text: e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e) };
  }
}

/**
 * Polls the deep health check until `ready` holds for `times` answers in a row
 * (different isolates may answer each), or the time is up.
 * @param {string} url
 * @param {(h: DeepHealth) => boolean} ready
 * @param {{ times?: number, timeoutMs?: number, intervalMs?: number }} [options]
 * @returns {Promise<{ ok: true } | { ok: false, last: string }>}
 */
export async function waitForHealth(url, ready, { times = 1, timeoutMs = 90_000, intervalMs = 2_000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let streak = 0;
  let last = "no answer";
  while (Date.now() < deadline) {
    const h = await deepHealth(url);
    if (h.body && h.status === 200 && ready(h.body)) {
      streak += 1;
      if (streak >= times) return { ok: true };
    } else {
      streak = 0;
      // The fold's layout says what to do in a sentence of its own, which the body's first 300 characters may cut.
      last = h.status === 0 ? h.text : h.body?.folds?.error ? `HTTP ${h.status}: ${h.body.folds.error}` : `HTTP ${h.status}: ${h.text}`;
    }
    await new Promise((r) => setTimeout(r, streak > 0 ? Math.min(intervalMs, 500) : intervalMs));
  }
  return { ok: false, last };
}
