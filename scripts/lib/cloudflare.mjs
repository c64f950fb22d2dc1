// @ts-check
/**
 * The Cloudflare side of `npm run deploy`: the API token wrangler holds (from
 * `wrangler login` or CLOUDFLARE_API_TOKEN), a small client for the REST calls
 * wrangler has no machine-readable command for (listing and creating KV, D1, R2
 * and queues; reading secrets' names and deployed versions), and wrangler itself.
 * CLOUDFLARE_API_BASE_URL points both at another API (the tests' stand-in).
 */
import { spawn } from "node:child_process";
import { ROOT, WRANGLER } from "./stack.mjs";

/** wrangler's environment: no telemetry, its config under the project unless the operator set XDG_CONFIG_HOME. */
export function wranglerEnv() {
  return {
    ...process.env,
    WRANGLER_SEND_METRICS: "false",
    WRANGLER_SEND_ERROR_REPORTS: "false",
    // A deploy runs without a terminal: wrangler must never wait for an answer.
    CI: "true",
  };
}

/**
 * Runs wrangler with `args`; resolves with its output, rejects with it on a non-zero exit.
 * @param {string[]} args
 * @param {{ onOutput?: (text: string) => void }} [options]
 * @returns {Promise<string>}
 */
export function wrangler(args, { onOutput } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [WRANGLER, ...args], { cwd: ROOT, env: wranglerEnv(), stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const take = (/** @type {Buffer} */ d) => {
      output += d;
      onOutput?.(String(d));
    };
    child.stdout.on("data", take);
    child.stderr.on("data", take);
    child.on("error", reject);
    child.on("exit", (code) => {
      if (code === 0) resolve(output);
      else reject(Object.assign(new Error(`wrangler ${args.slice(0, 2).join(" ")} exited with ${code}`), { output }));
    });
  });
}

/** The API's base URL, as wrangler computes it. */
export function apiBaseUrl() {
  return (process.env.CLOUDFLARE_API_BASE_URL ?? "https://api.cloudflare.com/client/v4").replace(/\/$/, "");
}

/**
 * The credentials wrangler would use: CLOUDFLARE_API_TOKEN, or the OAuth token of
 * `wrangler login` (wrangler refreshes it when it has expired).
 * @returns {Promise<Record<string, string>>} the request headers that carry them
 */
export async function apiCredentials() {
  if (process.env.CLOUDFLARE_API_TOKEN) return { authorization: `Bearer ${process.env.CLOUDFLARE_API_TOKEN}` };
  let output;
  try {
    output = await wrangler(["auth", "token", "--json"]);
  } catch {
    throw new Error("not logged in to Cloudflare: run `npx wrangler login`, or set CLOUDFLARE_API_TOKEN");
  }
  const auth = JSON.parse(output.slice(output.indexOf("{")));
  if (auth.type === "api_key") return { "x-auth-key": auth.key, "x-auth-email": auth.email };
  return { authorization: `Bearer ${auth.token}` };
}

/** An error the Cloudflare API answered. */
export class ApiError extends Error {
  /** @param {string} message @param {number} status @param {number | undefined} code */
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * A client for the account's REST API.
 * @param {Record<string, string>} credentials
 */
export function apiClient(credentials) {
  const base = apiBaseUrl();
  /**
   * @param {string} method
   * @param {string} route
   * @param {unknown} [body]
   * @returns {Promise<any>}
   */
  async function call(method, route, body) {
    let res;
    try {
      res = await fetch(`${base}${route}`, {
        method,
        headers: { ...credentials, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000),
      });
    } catch (e) {
      throw new ApiError(`${method} ${route}: the Cloudflare API did not answer (${e instanceof Error ? e.message : e})`, 0, undefined);
    }
    const text = await res.text();
    /** @type {any} */
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      throw new ApiError(`${method} ${route}: HTTP ${res.status}, not JSON`, res.status, undefined);
    }
    if (!res.ok || json.success === false) {
      const first = json.errors?.[0];
      throw new ApiError(`${method} ${route}: ${first?.message ?? `HTTP ${res.status}`}${first?.code ? ` [code ${first.code}]` : ""}`, res.status, first?.code);
    }
    return json;
  }
  return {
    /** @param {string} route */
    get: async (route) => (await call("GET", route)).result,
    /** @param {string} route @param {unknown} body */
    post: async (route, body) => (await call("POST", route, body)).result,
    /**
     * Every item of a paged list.
     * @param {string} route
     * @returns {Promise<any[]>}
     */
    async list(route) {
      const items = [];
      for (let page = 1; page < 1000; page++) {
        const json = await call("GET", `${route}${route.includes("?") ? "&" : "?"}page=${page}&per_page=100`);
        const result = Array.isArray(json.result) ? json.result : [];
        items.push(...result);
        const info = json.result_info;
        if (!info || result.length === 0 || items.length >= (info.total_count ?? items.length) || result.length < (info.per_page ?? 100)) break;
      }
      return items;
    },
  };
}

/** @typedef {ReturnType<typeof apiClient>} Api */

/**
 * The account to deploy to: CLOUDFLARE_ACCOUNT_ID, or the only account the credentials reach.
 * @param {Api} api
 */
export async function resolveAccount(api) {
  if (process.env.CLOUDFLARE_ACCOUNT_ID) return process.env.CLOUDFLARE_ACCOUNT_ID;
  const accounts = await api.list("/accounts");
  if (accounts.length === 1) return String(accounts[0].id);
  if (accounts.length === 0) throw new Error("these credentials reach no Cloudflare account");
  const names = accounts.map((a) => `  ${a.id}  ${a.name}`).join("\n");
  throw new Error(`these credentials reach ${accounts.length} accounts; say which with CLOUDFLARE_ACCOUNT_ID:\n${names}`);
}
