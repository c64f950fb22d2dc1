// @ts-check
/**
 * `npm run rotate -- key-encryption-key | jwt-secret [--env staging] [--now]`:
 * replaces a deployed gateway's KEY_ENCRYPTION_KEY or JWT_SECRET without downtime.
 *
 * key-encryption-key (KEYPOOL_ADMIN_PASSWORD must be set, to re-seal through the admin API):
 *   1. KEY_ENCRYPTION_KEY_NEXT = a new key. Isolates open keys sealed under either
 *      and seal new ones under the next. Waits until the gateway reports it.
 *   2. Every key is re-sealed under the next key (POST /admin/api/keys/reseal),
 *      and the gateway must serve a snapshot newer than the one it served before.
 *   3. KEY_ENCRYPTION_KEY = the new key; waits until no isolate reports the rotation.
 *   4. KEY_ENCRYPTION_KEY_NEXT is deleted.
 * jwt-secret:
 *   1. JWT_SECRET_NEXT = a new secret: new sessions are signed with it, sessions
 *      signed before still verify.
 *   2. Twelve hours later (sessions last at most that long) — run the command
 *      again, or pass --now to end the older sessions at once —
 *      JWT_SECRET = the new secret, and JWT_SECRET_NEXT is deleted.
 *
 * The new value waits in .deploy/<env>/rotation-<secret>.json (mode 600) until the
 * rotation is over, so an interrupted run resumes with the same value; it is
 * never printed.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { adminSession } from "./lib/admin-client.mjs";
import { flag, stringArg } from "./lib/args.mjs";
import { apiClient, apiCredentials, resolveAccount, wrangler } from "./lib/cloudflare.mjs";
import { deepHealth, deploymentNames, environmentName, gatewayUrl, savedOptions, stateDir, waitForHealth } from "./lib/deployment.mjs";

const SESSION_HOURS = 12;
const WHICH = /** @type {const} */ ({ "key-encryption-key": "KEY_ENCRYPTION_KEY", "jwt-secret": "JWT_SECRET" });

/** @param {string} message @returns {never} */
function fail(message) {
  console.error(`\n✘ ${message}`);
  process.exit(1);
}
/** @param {string} message */
const step = (message) => console.log(`• ${message}`);

const which = process.argv[2];
if (which !== "key-encryption-key" && which !== "jwt-secret") fail("usage: npm run rotate -- key-encryption-key | jwt-secret [--env NAME] [--now]");
const secret = WHICH[which];
const next = `${secret}_NEXT`;
/** @type {string} */
let env = "production";
try {
  env = environmentName(stringArg("env"));
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
const dir = stateDir(env);
const configFile = path.join(dir, "wrangler.gateway.json");
const stateFile = path.join(dir, `rotation-${which}.json`);
if (!existsSync(configFile))
  fail(`${path.relative(process.cwd(), configFile)} is missing: run npm run deploy${env === "production" ? "" : ` -- --env ${env}`} first.`);

/** @typedef {{ value: string, phase: "next" | "reseal" | "promote" | "cleanup", nextSetAt?: number }} Rotation */

/** @returns {Rotation} */
function readState() {
  if (existsSync(stateFile)) return JSON.parse(readFileSync(stateFile, "utf8"));
  return { value: randomBytes(32).toString("base64url"), phase: "next" };
}
/** @param {Rotation} state */
function saveState(state) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(stateFile, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o600 });
}

/**
 * Sets one of the gateway's secrets (a new version of it, deployed at once).
 * @param {string} name
 * @param {string} value
 */
async function putSecret(name, value) {
  const file = path.join(dir, `rotate-${name}.json`);
  writeFileSync(file, JSON.stringify({ [name]: value }), { mode: 0o600 });
  try {
    await wrangler(["secret", "bulk", file, "-c", configFile]);
  } catch (e) {
    fail(`setting ${name} failed; run the command again to resume.\n${/** @type {{ output?: string }} */ (e).output?.slice(-1500) ?? ""}`);
  } finally {
    rmSync(file, { force: true });
  }
}

/**
 * Waits until every answer (several in a row, from whichever isolates answer) agrees.
 * @param {string} url
 * @param {(h: import("./lib/deployment.mjs").DeepHealth) => boolean} ready
 * @param {string} what
 */
async function waitUntil(url, ready, what) {
  const result = await waitForHealth(url, ready, { times: 5, timeoutMs: Number(process.env.KEYPOOL_ROTATE_TIMEOUT_MS ?? 180_000) });
  if (!result.ok) fail(`the gateway did not ${what} in time (${result.last}); run the command again to resume.`);
}

/**
 * The highest snapshot version the gateway's isolates report over a few answers.
 * @param {string} url
 */
async function servedVersion(url) {
  let version = 0;
  for (let i = 0; i < 5; i++) {
    const h = await deepHealth(url);
    version = Math.max(version, h.body?.snapshot?.version ?? 0);
  }
  return version;
}

const api = apiClient(await apiCredentials());
const account = await resolveAccount(api);
const url = await gatewayUrl(api, account, env, savedOptions(env));
const flagOf = (/** @type {import("./lib/deployment.mjs").DeepHealth} */ h) =>
  which === "key-encryption-key" ? h.rotation?.keyEncryptionKey : h.rotation?.jwtSecret;
const state = readState();
console.log(`Rotating ${secret} of ${deploymentNames(env).gateway} (${url})`);
saveState(state);

if (state.phase === "next") {
  step(`setting ${next}`);
  await putSecret(next, state.value);
  await waitUntil(url, (h) => flagOf(h) === true, `report ${next} set`);
  state.nextSetAt = Date.now();
  state.phase = which === "key-encryption-key" ? "reseal" : "promote";
  saveState(state);
}

if (state.phase === "reseal") {
  const password = process.env.KEYPOOL_ADMIN_PASSWORD;
  if (!password) fail("set KEYPOOL_ADMIN_PASSWORD: the keys are re-sealed through the admin API. Run the command again with it to resume.");
  const admin = await adminSession(url, password);
  // The version the gateway serves now: a snapshot built after the re-seal has a higher one.
  const before = await servedVersion(url);
  let total = 0;
  // Twice: the second pass catches a key an isolate without the next key sealed meanwhile.
  for (const pass of [1, 2]) {
    let after = "";
    let resealed = 0;
    /** @type {string[]} */
    const unreadable = [];
    do {
      const page = /** @type {{ resealed: number, unreadable: string[], next: string | null }} */ (await admin("POST", "/keys/reseal", { after, limit: 500 }));
      resealed += page.resealed;
      unreadable.push(...page.unreadable);
      after = page.next ?? "";
    } while (after !== "");
    total += resealed;
    step(`re-sealed ${resealed} key(s) (pass ${pass})`);
    if (unreadable.length > 0)
      console.log(`    ! ${unreadable.length} key(s) open under neither key and stay as they are: ${unreadable.slice(0, 20).join(", ")}`);
  }
  // A re-seal republishes the snapshot; nothing re-sealed (an earlier run did it), nothing to wait for.
  if (total > 0) await waitUntil(url, (h) => (h.snapshot?.version ?? 0) > before, "serve a snapshot with the re-sealed keys");
  state.phase = "promote";
  saveState(state);
}

if (state.phase === "promote") {
  const since = state.nextSetAt ?? 0;
  const oldSessionsEnd = since + SESSION_HOURS * 3_600_000;
  if (which === "jwt-secret" && Date.now() < oldSessionsEnd && !flag("now")) {
    console.log(
      `\nNew sessions are signed with the new secret. Sessions from before ${new Date(since).toISOString()} stay valid until ${new Date(oldSessionsEnd).toISOString()};`,
    );
    console.log(
      `run npm run rotate -- jwt-secret${env === "production" ? "" : ` --env ${env}`} again after that to finish (or now with --now, which ends them).`,
    );
    process.exit(0);
  }
  step(`setting ${secret} to the new value`);
  await putSecret(secret, state.value);
  await waitUntil(url, (h) => flagOf(h) === false, `finish the rotation`);
  state.phase = "cleanup";
  saveState(state);
}

if (state.phase === "cleanup") {
  step(`deleting ${next}`);
  try {
    await wrangler(["secret", "delete", next, "-c", configFile]);
  } catch (e) {
    const output = /** @type {{ output?: string }} */ (e).output ?? "";
    if (!/not found|does not exist|10056|10007/i.test(output)) fail(`deleting ${next} failed; run the command again to resume.\n${output.slice(-1500)}`);
  }
  rmSync(stateFile, { force: true });
  console.log(`\n${secret} is rotated.`);
}
