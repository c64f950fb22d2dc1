// @ts-check
/**
 * The stacks the chaos run drives: both Workers in one `wrangler dev` (or in
 * programmatic Miniflare with --miniflare), optionally with a fault-injecting
 * consumer or gateway entry (test/fixtures/workers/), against the mock upstream
 * with a fault profile; the openai SDK that drives them; and the inspector
 * sessions that read the isolates' JS heaps.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { Agent, WebSocket, fetch as undiciFetch } from "undici";
import { startMockUpstream } from "../../tools/mock-upstream/server.mjs";
import { adminSession, provisionPool } from "../lib/admin-client.mjs";
import { listenerOf, rssMiB, workerdProcesses } from "../lib/procfs.mjs";
import { ROOT, applyMigrations, freePort, generateSecrets, startWrangler } from "../lib/stack.mjs";
import { ATTEMPT_TIMEOUT_MS, DEAD_KEYS, GOOD_KEYS, MINIFLARE, SETTINGS, sleep } from "./config.mjs";
import { printed, secretsHeld } from "./security.mjs";

/** @typedef {Awaited<ReturnType<typeof startMockUpstream>>} Mock */
/** @typedef {{ heapMiB: () => Promise<Record<string, number>>, close: () => void }} Isolates */
/**
 * A stack under test.
 * @typedef {object} ChaosStack
 * @property {string} url
 * @property {import("../lib/admin-client.mjs").AdminCall} admin
 * @property {string} clientKey
 * @property {string} jwtSecret
 * @property {() => string} log everything the runtime printed so far
 * @property {() => Record<string, number>} memory resident MiB of each workerd process
 * @property {() => Record<string, string>} roles what each workerd process runs
 * @property {() => Promise<Isolates>} inspect sessions with the isolates' inspector
 * @property {() => Promise<void>} stop
 */

/**
 * Sessions with the inspector's Worker targets that `pick` selects, to read each
 * isolate's JS heap after a forced collection (what Keypool's own code keeps alive).
 * @param {string} inspectorUrl
 * @param {(target: { title: string }) => boolean} pick
 * @param {Record<string, string>} [headers]
 * @returns {Promise<Isolates>}
 */
async function inspectIsolates(inspectorUrl, pick, headers = {}) {
  const list = /** @type {{ title: string, webSocketDebuggerUrl: string }[]} */ (await (await fetch(`${inspectorUrl}/json/list`)).json());
  const sessions = await Promise.all(
    list.filter(pick).map(async (target) => {
      const ws = new WebSocket(target.webSocketDebuggerUrl, { headers });
      await new Promise((resolve, reject) => {
        ws.addEventListener("open", resolve, { once: true });
        ws.addEventListener("error", reject, { once: true });
      });
      let id = 0;
      /** @type {Map<number, (message: any) => void>} */
      const pending = new Map();
      ws.addEventListener("message", (m) => {
        const msg = JSON.parse(String(m.data));
        pending.get(msg.id)?.(msg);
        pending.delete(msg.id);
      });
      /** @type {(method: string, params?: Record<string, unknown>) => Promise<any>} */
      const send = (method, params = {}) =>
        Promise.race([
          new Promise((resolve) => {
            pending.set(++id, resolve);
            ws.send(JSON.stringify({ id, method, params }));
          }),
          sleep(10_000).then(() => ({ error: "timed out" })),
        ]);
      const name = /gateway|consumer/.exec(target.title)?.[0] ?? "gateway";
      return { name, send, close: () => ws.close() };
    }),
  );
  return {
    async heapMiB() {
      /** @type {Record<string, number>} */
      const out = {};
      for (const s of sessions) {
        await s.send("HeapProfiler.collectGarbage");
        const answer = await s.send("Runtime.getHeapUsage");
        out[s.name] = answer.result ? answer.result.usedSize / 1048576 : NaN;
      }
      return out;
    },
    close: () => sessions.forEach((s) => s.close()),
  };
}

/**
 * A Worker's wrangler config with another entry and a var of faults (JSON), written
 * next to the run's state, paths made absolute.
 * @param {string} config wrangler.gateway.toml or wrangler.consumer.toml
 * @param {string} entry the fault-injecting entry, relative to the root
 * @param {string} varName
 * @param {unknown} faults
 * @param {string} dir
 */
function faultConfig(config, entry, varName, faults, dir) {
  const toml = readFileSync(path.join(ROOT, config), "utf8")
    .replace(/^main = .*$/m, `main = ${JSON.stringify(path.join(ROOT, entry))}`)
    .replace(/^directory = .*$/m, `directory = ${JSON.stringify(path.join(ROOT, "admin/dist"))}`)
    .replace(/^migrations_dir = .*$/m, `migrations_dir = ${JSON.stringify(path.join(ROOT, "schema/migrations"))}`);
  const file = path.join(dir, config.replace(/\.toml$/, ".faults.toml"));
  writeFileSync(file, `${toml}\n[vars]\n${varName} = ${JSON.stringify(JSON.stringify(faults))}\n`);
  return file;
}

/**
 * A stack under test with the pool (`keys` of the mock) and a client key: `wrangler dev`,
 * or both Workers in Miniflare. `consumerFaults` swaps in the fault-injecting consumer,
 * `gatewayFaults` the gateway whose queue refuses sends (`wrangler dev` only).
 * @param {string} mockBaseUrl
 * @param {string[]} keys
 * @param {Record<string, unknown> | null} consumerFaults
 * @param {Record<string, unknown> | null} [gatewayFaults]
 * @returns {Promise<ChaosStack>}
 */
export async function startStack(mockBaseUrl, keys, consumerFaults, gatewayFaults = null) {
  const work = mkdtempSync(path.join(tmpdir(), "keypool-chaos-"));
  const cleanup = () => rmSync(work, { recursive: true, force: true });
  for (const key of keys) secretsHeld.add(key);
  if (MINIFLARE) {
    const { bundleKeypool, startKeypool } = await import("../bench/workers.mjs");
    const bundles = await bundleKeypool(work, consumerFaults ? { consumerEntry: "test/fixtures/workers/consumer-faults.ts" } : {});
    /** @type {Record<string, string>} */
    const consumerVars = consumerFaults ? { CONSUMER_FAULTS: JSON.stringify(consumerFaults) } : {};
    const inspectorPort = await freePort();
    const kp = await startKeypool(work, bundles, "chaos", mockBaseUrl, 0, { keys, settings: SETTINGS, consumerVars, inspectorPort });
    for (const s of [kp.clientKey, ...Object.values(kp.secrets)]) secretsHeld.add(s);
    return {
      url: kp.url,
      admin: kp.admin,
      clientKey: kp.clientKey,
      jwtSecret: kp.secrets.JWT_SECRET,
      log: kp.log,
      memory: () => rssMiB([kp.pid]),
      roles: () => ({ [kp.pid]: "the Workers' runtime (gateway, consumer, local D1/KV/R2/Queue)" }),
      inspect: () => inspectIsolates(`http://127.0.0.1:${inspectorPort}`, (t) => /core:user:(gateway|consumer)$/.test(t.title)),
      stop: async () => (printed.push(kp.log()), await kp.stop(), cleanup()),
    };
  }
  const secrets = generateSecrets();
  for (const s of Object.values(secrets)) if (s.length >= 16) secretsHeld.add(s);
  await applyMigrations(work, { quiet: true });
  const consumerConfig = consumerFaults
    ? faultConfig("wrangler.consumer.toml", "test/fixtures/workers/consumer-faults.ts", "CONSUMER_FAULTS", consumerFaults, work)
    : undefined;
  const gatewayConfig = gatewayFaults
    ? faultConfig("wrangler.gateway.toml", "test/fixtures/workers/gateway-faults.ts", "GATEWAY_FAULTS", gatewayFaults, work)
    : undefined;
  const inspectorPort = await freePort();
  const wrangler = startWrangler({
    port: await freePort(),
    inspectorPort,
    persistTo: work,
    vars: secrets,
    quiet: true,
    logLevel: "log",
    consumerConfig,
    gatewayConfig,
  });
  const stop = async () => (printed.push(wrangler.log()), await wrangler.stop(), cleanup());
  try {
    await wrangler.ready();
    const admin = await adminSession(wrangler.url, secrets.ADMIN_PASSWORD);
    const { clientKey } = await provisionPool(admin, wrangler.url, {
      baseUrl: mockBaseUrl,
      models: ["mock-gpt"],
      keys,
      settings: SETTINGS,
      clientName: "chaos",
    });
    secretsHeld.add(clientKey);
    // wrangler runs in its own process group; its workerd processes are in it.
    const group = /** @type {number} */ (wrangler.child.pid);
    const groupWorkerd = () => workerdProcesses((pid, fields) => pid === group || Number(fields[2]) === group);
    return {
      url: wrangler.url,
      admin,
      clientKey,
      jwtSecret: secrets.JWT_SECRET,
      log: wrangler.log,
      memory: () => rssMiB(groupWorkerd()),
      /** What each workerd process is: wrangler's dev proxy holds the public port; the other runs the Workers. */
      roles: () => {
        const pids = groupWorkerd();
        const proxy = listenerOf(pids, Number(new URL(wrangler.url).port));
        return Object.fromEntries(
          pids.map((pid) => [pid, pid === proxy ? "wrangler's dev proxy (no Keypool code)" : "the Workers' runtime (gateway, consumer, local D1/KV/R2/Queue)"]),
        );
      },
      // wrangler's inspector proxy reaches the first Worker only (the gateway), and takes devtools' origin only.
      inspect: () => inspectIsolates(`http://127.0.0.1:${inspectorPort}`, () => true, { origin: "https://devtools.devprod.cloudflare.dev" }),
      stop,
    };
  } catch (err) {
    await stop();
    throw new Error(`${err instanceof Error ? err.message : err}\n${wrangler.log().slice(-3000)}`);
  }
}

/**
 * The mock with the fault profile: `faultRate` on the good keys, 401 from the dead ones.
 * @param {number} faultRate
 * @param {number} seed
 */
export async function startFaultyMock(faultRate, seed) {
  const mock = await startMockUpstream({ seed });
  const keys = Array.from({ length: GOOD_KEYS + DEAD_KEYS }, (_, i) => `sk-chaos-${i}-${crypto.randomUUID().replaceAll("-", "")}`);
  for (const key of keys.slice(0, GOOD_KEYS)) mock.setKeyBehavior(key, { faultRate, stallMs: ATTEMPT_TIMEOUT_MS * 3, words: 12 });
  for (const key of keys.slice(GOOD_KEYS)) mock.setKeyBehavior(key, { mode: "unauthorized" });
  return { mock, keys };
}

/**
 * The openai SDK against a stack, one connection per request, no retries of its own.
 * @param {{ url: string, clientKey: string }} stack
 */
export function sdkFor(stack) {
  // A connection per request: a client reusing a kept-alive connection races the server
  // closing it (after an answer that was cut, say), and that request never reaches Keypool —
  // a transport failure the SDK would retry by default, here counted as "other".
  const fresh = new Agent({ pipelining: 0 });
  return new OpenAI({
    baseURL: `${stack.url}/v1`,
    apiKey: stack.clientKey,
    maxRetries: 0,
    timeout: 120_000,
    fetch: /** @type {typeof fetch} */ (
      /** @type {unknown} */ ((/** @type {string} */ url, /** @type {any} */ init) => undiciFetch(url, { ...init, dispatcher: fresh }))
    ),
  });
}
