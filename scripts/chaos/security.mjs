// @ts-check
/**
 * Parts 3 and 5 of the chaos run: what the fetch API cannot send (raw header
 * abuse), forged admin JWTs, CORS, and the scan of everything the runtimes
 * printed for any secret a stack of the run held.
 */
import { SignJWT } from "jose";
import net from "node:net";
import { sleep } from "./config.mjs";

/** Every secret any stack of this run held, and everything the runtimes printed: scanned at the end. */
export const secretsHeld = new Set();
/** @type {string[]} */
export const printed = [];

/**
 * Where any secret appears in `text`, whole or as 16 characters in a row.
 * @param {string} text
 */
export function leaks(text) {
  const found = [];
  for (const secret of secretsHeld) {
    for (let i = 0; i + 16 <= secret.length; i += 1) {
      if (text.includes(secret.slice(i, i + 16))) {
        found.push(`${secret.slice(0, 6)}… (characters ${i}–${i + 15})`);
        break;
      }
    }
  }
  return found;
}

/**
 * An admin JWT as the gateway issues them, with the header and key given.
 * @param {string} alg
 * @param {string} secret
 */
async function adminJwt(alg, secret) {
  return new SignJWT({ ims: Date.now() })
    .setProtectedHeader({ alg, typ: "JWT" })
    .setIssuer("keypool")
    .setAudience("keypool-admin")
    .setSubject("admin")
    .setJti(crypto.randomUUID())
    .setIssuedAt()
    .setExpirationTime("1h")
    .sign(new TextEncoder().encode(secret));
}
const base64url = (/** @type {unknown} */ value) => Buffer.from(JSON.stringify(value)).toString("base64url");

/**
 * One raw HTTP/1.1 request on its own connection, bytes as given: the answer's status
 * code, or "closed" when the server hung up without one.
 * @param {string} url
 * @param {string} text
 * @returns {Promise<string>}
 */
function rawRequest(url, text) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect(Number(port), hostname);
    let got = "";
    socket.setTimeout(15_000, () => socket.destroy());
    socket.on("data", (d) => {
      got += d.toString("latin1");
      if (got.includes("\r\n")) socket.destroy();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(/^HTTP\/1\.[01] (\d{3})/.exec(got)?.[1] ?? "closed"));
    socket.write(text, "latin1", () => {});
  });
}

/** What the checks need of a running stack and of the mock behind it. */
/** @typedef {{ url: string, clientKey: string, jwtSecret: string, admin: import("../lib/admin-client.mjs").AdminCall }} CheckedStack */
/** @typedef {{ stats: { headerNames: Record<string, number> } }} CheckedMock */

/**
 * What the fetch API cannot send: header bytes that break HTTP's framing, and headers far
 * over any limit, on a chat request with a valid client key. Each must be refused (a 4xx
 * or the connection closed) before it reaches the upstream.
 * @param {CheckedStack} stack
 * @param {CheckedMock} mock
 */
async function rawHeaderChecks(stack, mock) {
  const body = JSON.stringify({ model: "mock-gpt", messages: [{ role: "user", content: "raw" }] });
  const request = (/** @type {string} */ extra) =>
    `POST /v1/chat/completions HTTP/1.1\r\nHost: ${new URL(stack.url).host}\r\nAuthorization: Bearer ${stack.clientKey}\r\n` +
    `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${extra}Connection: close\r\n\r\n${body}`;
  const cases = {
    // User-Agent is one of the headers Keypool forwards: a split would show upstream as an X-Injected header.
    "bare CR in a header value": request("User-Agent: probe\rX-Injected: 1\r\n"),
    "bare LF splitting a header": request("User-Agent: probe\nX-Injected: 1\r\n"),
    "NUL in a header value": request("User-Agent: probe\u0000X-Injected: 1\r\n"),
    "obsolete line folding": request("User-Agent: probe\r\n X-Injected: 1\r\n"),
    "space in a header name": request("X Note: 1\r\n"),
    "a 1 MiB header": request(`X-Big: ${"a".repeat(1 << 20)}\r\n`),
    "10,000 headers": request(Array.from({ length: 10_000 }, (_, i) => `X-H${i}: ${i}\r\n`).join("")),
  };
  /** @type {Record<string, string>} */
  const answers = {};
  for (const [what, text] of Object.entries(cases)) answers[what] = await rawRequest(stack.url, text);
  const good = await rawRequest(stack.url, request(""));
  return { answers, injectedUpstream: mock.stats.headerNames["x-injected"] ?? 0, good };
}

/**
 * Parts 3 and 5's live checks against a running stack: raw header abuse, forged JWTs, CORS.
 * @param {CheckedStack} stack
 * @param {CheckedMock} mock
 */
export async function securityChecks(stack, mock) {
  const raw = await rawHeaderChecks(stack, mock);
  const status = async (/** @type {string} */ token, /** @type {Record<string, string>} */ headers = {}) => {
    const res = await fetch(`${stack.url}/admin/api/settings`, { headers: { authorization: `Bearer ${token}`, ...headers } });
    await res.arrayBuffer();
    return { status: res.status, acao: res.headers.get("access-control-allow-origin") };
  };
  const now = Math.floor(Date.now() / 1000);
  const claims = { iss: "keypool", aud: "keypool-admin", sub: "admin", jti: crypto.randomUUID(), iat: now, exp: now + 3600, ims: Date.now() };
  const jwt = {
    valid: (await status(await adminJwt("HS256", stack.jwtSecret))).status,
    none: (await status(`${base64url({ alg: "none", typ: "JWT" })}.${base64url(claims)}.`)).status,
    otherAlg: (await status(await adminJwt("HS512", stack.jwtSecret))).status,
    otherSecret: (await status(await adminJwt("HS256", `${stack.jwtSecret}-not`))).status,
  };
  const preflight = async (/** @type {string} */ origin) => {
    const res = await fetch(`${stack.url}/v1/chat/completions`, {
      method: "OPTIONS",
      headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": "authorization, content-type" },
    });
    await res.arrayBuffer();
    return { status: res.status, acao: res.headers.get("access-control-allow-origin") };
  };
  const anyOrigin = await preflight("https://browser.example");
  const adminCrossOrigin = await status(await adminJwt("HS256", stack.jwtSecret), { origin: "https://browser.example" });
  await stack.admin("PATCH", "/settings", { corsOrigins: ["https://app.example"] });
  // The gateway picks up the new snapshot within a few seconds.
  let unlisted = await preflight("https://browser.example");
  for (const deadline = Date.now() + 20_000; unlisted.status !== 403 && Date.now() < deadline; await sleep(250))
    unlisted = await preflight("https://browser.example");
  const listed = await preflight("https://app.example");
  return { raw, jwt, anyOrigin, adminCrossOrigin, listed, unlisted };
}

/** @typedef {Awaited<ReturnType<typeof securityChecks>>} SecurityChecks */
