// @ts-check
/**
 * The HTTP side of `npm run bench`: the mock upstream called straight (the
 * floor), a null Worker (forwards to one of a few fixed keys and streams the
 * answer back) and Keypool (gateway + consumer, client-key auth, events on), the
 * Workers both in Miniflare, measured alternately with autocannon.
 */
import autocannon from "autocannon";
import { build } from "esbuild";
import { Miniflare } from "miniflare";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { startMockUpstream } from "../../tools/mock-upstream/server.mjs";
import { adminSession, waitForModel } from "./admin-client.mjs";
import { migrationStatements } from "./migrations.mjs";
import { ROOT, freePort, generateSecrets } from "./stack.mjs";

const NULL_WORKER = `
const KEYS = ["sk-null-0-aaaaaaaaaaaaaaaa", "sk-null-1-aaaaaaaaaaaaaaaa", "sk-null-2-aaaaaaaaaaaaaaaa"];
let n = 0;
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const headers = new Headers({ "content-type": "application/json", authorization: "Bearer " + KEYS[n++ % KEYS.length] });
    const res = await fetch(env.UPSTREAM + url.pathname.replace(/^\\/v1/, ""), { method: "POST", headers, body: request.body });
    return new Response(res.body, res);
  },
};`;

/** Starts the three targets; returns their URLs, the request headers each needs, and a stop(). */
export async function startTargets(work, keyCount) {
  const mock = await startMockUpstream();
  const nullScript = path.join(work, "null.js");
  writeFileSync(nullScript, NULL_WORKER);
  const nullPort = await freePort();
  const nullMf = new Miniflare({ modules: true, scriptPath: nullScript, modulesRoot: work, compatibilityDate: "2026-04-20", port: nullPort, host: "127.0.0.1", bindings: { UPSTREAM: mock.baseUrl } });

  const gateway = path.join(work, "gateway.js");
  const consumer = path.join(work, "consumer.js");
  await build({ entryPoints: [path.join(ROOT, "gateway/index.ts")], outfile: gateway, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  await build({ entryPoints: [path.join(ROOT, "stats-consumer/index.ts")], outfile: consumer, bundle: true, format: "esm", platform: "neutral", logLevel: "warning" });
  const secrets = generateSecrets();
  const port = await freePort();
  const shared = { d1Databases: { DB: "keypool-db" }, kvNamespaces: { SNAPSHOT: "keypool-kv" } };
  const kpMf = new Miniflare({
    host: "127.0.0.1",
    port,
    d1Persist: path.join(work, "d1"),
    kvPersist: path.join(work, "kv"),
    r2Persist: path.join(work, "r2"),
    workers: [
      {
        name: "gateway",
        modules: true,
        scriptPath: gateway,
        modulesRoot: work,
        compatibilityDate: "2026-04-20",
        compatibilityFlags: ["enable_request_signal"],
        bindings: secrets,
        ...shared,
        queueProducers: { EVENTS: { queueName: "keypool-events" } },
        serviceBindings: { ASSETS: async () => new Response(null, { status: 404 }) },
      },
      {
        name: "consumer",
        modules: true,
        scriptPath: consumer,
        modulesRoot: work,
        compatibilityDate: "2026-04-20",
        ...shared,
        r2Buckets: { ARCHIVE: "keypool-archive" },
        queueProducers: { EVENTS: { queueName: "keypool-events" }, DEAD_LETTERS: { queueName: "keypool-events-dlq" } },
        queueConsumers: { "keypool-events": { maxBatchTimeout: 1, maxBatchSize: 100 } },
      },
    ],
  });
  await Promise.all([nullMf.ready, kpMf.ready]);
  const db = await kpMf.getD1Database("DB", "gateway");
  await db.batch(migrationStatements().map((s) => db.prepare(s)));
  const url = `http://127.0.0.1:${port}`;
  const admin = await adminSession(url, secrets.ADMIN_PASSWORD);
  const upstream = /** @type {{ id: string }} */ (await admin("POST", "/upstreams", { name: "mock", baseUrl: mock.baseUrl, models: ["mock-gpt"] }));
  const keys = Array.from({ length: keyCount }, (_, i) => `sk-bench-${String(i).padStart(6, "0")}-aaaaaaaaaaaa`);
  for (let i = 0; i < keys.length; i += 5_000) await admin("POST", "/keys", { upstreamId: upstream.id, text: keys.slice(i, i + 5_000).join("\n") });
  const clientKey = /** @type {{ key: string }} */ (await admin("POST", "/client-keys", { name: "bench" })).key;
  await waitForModel(url, clientKey, "mock-gpt", 60_000);
  return {
    targets: {
      direct: { url: mock.baseUrl.replace(/\/v1$/, ""), headers: { authorization: "Bearer sk-direct-aaaaaaaaaaaaaaaa" } },
      null: { url: `http://127.0.0.1:${nullPort}`, headers: {} },
      keypool: { url, headers: { authorization: `Bearer ${clientKey}` } },
    },
    async stop() {
      await Promise.all([nullMf.dispose(), kpMf.dispose()]);
      await mock.close();
    },
  };
}

/** One autocannon run against `target`: requests/s and latency percentiles (ms). */
export function load(target, { connections, seconds, body }) {
  return new Promise((resolve, reject) => {
    autocannon(
      {
        url: `${target.url}/v1/chat/completions`,
        method: "POST",
        headers: { "content-type": "application/json", ...target.headers },
        body: JSON.stringify(body),
        connections,
        duration: seconds,
      },
      (err, result) => (err ? reject(err) : resolve({ rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx })),
    );
  });
}
