// @ts-check
/**
 * `npm run deploy`: puts Keypool on Cloudflare in one command, and keeps it there.
 *
 *   npm run deploy [-- --env staging] [--dry-run] [--domain keypool.example.com]
 *                  [--route "example.com/keypool/*" --zone example.com] [--url https://…] [--no-build]
 *                  [--fold-databases N [--refold]]
 *
 * Every step looks before it acts, so a second run changes nothing and a run
 * that failed halfway finishes the job:
 *   0. the fold's layout is read from the first database: a deployment whose
 *      databases hold rows folded under another list of databases is not
 *      changed unless --refold asks for the refold that moves them
 *      (docs/operations.md, "Folding into several databases");
 *   1. the KV namespace, D1 databases (`keypool`, and with --fold-databases N the
 *      fold's further ones, `keypool-fold-2`…), R2 bucket and every queue the
 *      configs name (the event queues, the dead-letter queue, the probes queue)
 *      are found by name or created;
 *   2. the remote D1 migrations not yet applied are applied to each database
 *      (before any Worker that needs them is deployed);
 *   3. each Worker's secrets that are missing are generated; generated values are
 *      kept in .deploy/<env>/pending-secrets.json (mode 600) until both Workers hold
 *      them, so a resumed run uploads the same values (the two Workers share
 *      ALERT_ENCRYPTION_KEY);
 *   4. the consumer, then the gateway, is deployed when its bundle, assets or
 *      configuration changed (a tag on the deployed version says which build it
 *      is) or when it lacks a secret;
 *   5. with --refold, the refold is asked for on the event queue;
 *   6. the gateway's /healthz?deep=1 must answer: secrets present, D1 reachable,
 *      migrations applied, every fold database holding its layout (after a
 *      refold, once it has run).
 * The admin password is printed once, by the run that created it; no other secret
 * is ever printed. Resource ids go into generated configs under .deploy/<env>/
 * (never committed), not into wrangler.*.toml.
 */
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { flag, stringArg } from "./lib/args.mjs";
import { ApiError, apiClient, apiCredentials, resolveAccount, wrangler } from "./lib/cloudflare.mjs";
import { deploymentNames, environmentName, gatewayUrl, savedOptions, stateDir, waitForHealth } from "./lib/deployment.mjs";
import { ROOT, buildDashboard } from "./lib/stack.mjs";
import { readWranglerConfig } from "./lib/wrangler-config.mjs";

let envName = "production";
try {
  envName = environmentName(stringArg("env"));
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
const dryRun = flag("dry-run");
const STATE_DIR = stateDir(envName);
const OPTIONS_FILE = path.join(STATE_DIR, "options.json");
const PENDING_FILE = path.join(STATE_DIR, "pending-secrets.json");

/** @param {string} message @returns {never} */
function fail(message) {
  console.error(`\n✘ ${message}`);
  process.exit(1);
}

/** @param {string} message */
const step = (message) => console.log(`• ${message}`);
/** @param {string} message */
const detail = (message) => console.log(`    ${message}`);

// ---------------------------------------------------------------- names and options

/** The most fold databases a deploy binds (docs/scale.md sizes 13 for 10,000 requests/s: the configuration's and 12 for the keys). */
const MAX_FOLD_DATABASES = 64;

const names = () => deploymentNames(envName);

/**
 * The routes and domain this environment is served on: from the flags, else as
 * the last run saved them.
 * @returns {{ domain?: string, routes: { pattern: string, zone_name: string }[], url?: string, foldDatabases: number }}
 */
function deployOptions() {
  const options = savedOptions(envName);
  const folds = stringArg("fold-databases");
  if (folds !== undefined) {
    const count = Number(folds);
    if (!Number.isInteger(count) || count < 1 || count > MAX_FOLD_DATABASES)
      fail(`--fold-databases takes a whole number from 1 to ${MAX_FOLD_DATABASES}, not "${folds}"`);
    options.foldDatabases = count;
  }
  const domain = stringArg("domain");
  if (domain !== undefined) {
    if (!/^(?=.{1,253}$)([a-z0-9-]+\.)+[a-z]{2,}$/i.test(domain)) fail(`--domain takes a host name such as keypool.example.com, not "${domain}"`);
    options.domain = domain.toLowerCase();
  }
  const route = stringArg("route");
  if (route !== undefined) {
    const zone = stringArg("zone");
    if (!zone) fail("--route needs --zone, the Cloudflare zone the route is on (e.g. --zone example.com)");
    options.routes = [{ pattern: route, zone_name: zone }];
  }
  const url = stringArg("url");
  if (url !== undefined) options.url = url.replace(/\/$/, "");
  return options;
}

// ---------------------------------------------------------------- configs

/**
 * The committed wrangler configs with this environment's names and resource ids,
 * written as JSON under .deploy/<env>/ (paths relative to there).
 * @param {ReturnType<typeof names>} n
 * @param {{ accountId: string, kvId: string, d1Ids: string[] }} ids
 * @param {ReturnType<typeof deployOptions>} options
 */
function writeConfigs(n, ids, options) {
  mkdirSync(STATE_DIR, { recursive: true });
  const rel = (/** @type {string} */ p) => path.relative(STATE_DIR, path.join(ROOT, p));
  const queueName = (/** @type {string} */ q) => deployedQueueName(n, q);
  /** @param {Record<string, any>} c @param {string} name */
  const adapt = (c, name) => {
    c.name = name;
    c.account_id = ids.accountId;
    c.main = rel(c.main);
    if (c.assets) c.assets.directory = rel(c.assets.directory);
    for (const kv of c.kv_namespaces ?? []) kv.id = ids.kvId;
    // DB, then the fold's further databases DB_2, DB_3… (storage/fold-databases.ts), each with the same migrations.
    const first = (c.d1_databases ?? []).find((/** @type {any} */ db) => db.binding === "DB");
    if (first) {
      c.d1_databases = ids.d1Ids.map((id, i) => ({
        ...first,
        binding: i === 0 ? "DB" : `DB_${i + 1}`,
        database_name: i === 0 ? n.d1 : n.foldD1(i + 1),
        database_id: id,
        migrations_dir: rel(first.migrations_dir),
      }));
    }
    for (const b of c.r2_buckets ?? []) b.bucket_name = n.r2;
    for (const p of c.queues?.producers ?? []) p.queue = queueName(p.queue);
    for (const q of c.queues?.consumers ?? [])
      Object.assign(q, { queue: queueName(q.queue), ...(q.dead_letter_queue ? { dead_letter_queue: queueName(q.dead_letter_queue) } : {}) });
    return c;
  };
  const gateway = adapt(readWranglerConfig("wrangler.gateway.toml"), n.gateway);
  const routes = [...options.routes];
  if (options.domain) routes.push(/** @type {any} */ ({ pattern: options.domain, custom_domain: true }));
  if (routes.length > 0) gateway.routes = routes;
  const consumer = adapt(readWranglerConfig("wrangler.consumer.toml"), n.consumer);
  const files = { gateway: path.join(STATE_DIR, "wrangler.gateway.json"), consumer: path.join(STATE_DIR, "wrangler.consumer.json") };
  writeFileSync(files.gateway, `${JSON.stringify(gateway, null, 2)}\n`);
  writeFileSync(files.consumer, `${JSON.stringify(consumer, null, 2)}\n`);
  return { files, gateway, consumer };
}

/**
 * A queue's name in this environment: the committed configs' `keypool-…` names
 * (the event queues `keypool-events`, `keypool-events-2`…, the dead-letter queue
 * `keypool-events-dlq`, the probes queue `keypool-probes`) take the
 * environment's prefix (`keypool-staging-events`…).
 * @param {ReturnType<typeof names>} n
 * @param {string} queue
 */
function deployedQueueName(n, queue) {
  return queue.startsWith("keypool-") ? `${n.prefix}${queue.slice("keypool".length)}` : queue;
}

/**
 * Every queue the committed configs name (producers, consumers, dead-letter
 * queues), as this environment names them, in the order first named.
 * @param {ReturnType<typeof names>} n
 */
function configQueues(n) {
  /** @type {Set<string>} */
  const queues = new Set();
  for (const file of ["wrangler.gateway.toml", "wrangler.consumer.toml"]) {
    const c = readWranglerConfig(file);
    for (const p of c.queues?.producers ?? []) queues.add(deployedQueueName(n, p.queue));
    for (const q of c.queues?.consumers ?? []) {
      queues.add(deployedQueueName(n, q.queue));
      if (q.dead_letter_queue) queues.add(deployedQueueName(n, q.dead_letter_queue));
    }
  }
  return [...queues];
}

// ---------------------------------------------------------------- resources

/**
 * Finds each resource by name, or creates it (or says it would).
 * @param {import("./lib/cloudflare.mjs").Api} api
 * @param {string} account
 * @param {ReturnType<typeof names>} n
 * @param {number} foldCount
 */
async function ensureResources(api, account, n, foldCount) {
  const a = `/accounts/${account}`;
  /** @type {string[]} */
  const created = [];
  /** @template T @param {string} label @param {() => Promise<T | undefined>} find @param {() => Promise<T>} create @returns {Promise<T | undefined>} */
  async function ensure(label, find, create) {
    const found = await find();
    if (found !== undefined) {
      detail(`${label}: exists`);
      return found;
    }
    if (dryRun) {
      detail(`${label}: would be created`);
      created.push(label);
      return undefined;
    }
    const made = await create();
    detail(`${label}: created`);
    created.push(label);
    return made;
  }

  const kv = await ensure(
    `KV namespace ${n.kv}`,
    async () => (await api.list(`${a}/storage/kv/namespaces`)).find((x) => x.title === n.kv),
    () => api.post(`${a}/storage/kv/namespaces`, { title: n.kv }),
  );
  /** @type {string[]} */
  const d1Ids = [];
  for (const name of [n.d1, ...Array.from({ length: foldCount - 1 }, (_, i) => n.foldD1(i + 2))]) {
    const d1 = await ensure(
      `D1 database ${name}`,
      async () => (await api.list(`${a}/d1/database?name=${encodeURIComponent(name)}`)).find((x) => x.name === name),
      () => api.post(`${a}/d1/database`, { name }),
    );
    d1Ids.push(d1?.uuid ?? "(to be created)");
  }
  await ensure(
    `R2 bucket ${n.r2}`,
    async () => {
      const result = await api.get(`${a}/r2/buckets`);
      return (result?.buckets ?? []).find((/** @type {any} */ b) => b.name === n.r2);
    },
    () => api.post(`${a}/r2/buckets`, { name: n.r2 }),
  );
  const queues = await api.list(`${a}/queues`);
  /** @type {Record<string, string>} */
  const queueIds = {};
  for (const queue of configQueues(n)) {
    const q = await ensure(
      `queue ${queue}`,
      async () => queues.find((q) => q.queue_name === queue),
      () => api.post(`${a}/queues`, { queue_name: queue }),
    );
    if (q?.queue_id) queueIds[queue] = q.queue_id;
  }
  return { kvId: kv?.id ?? "(to be created)", d1Ids, queueIds, created };
}

// ---------------------------------------------------------------- migrations

/** The migration files in schema/migrations, in order. */
function localMigrations() {
  return readdirSync(path.join(ROOT, "schema/migrations"))
    .filter((f) => /^\d{4}_.*\.sql$/.test(f))
    .sort();
}

/**
 * The migrations the remote database has not applied.
 * @param {import("./lib/cloudflare.mjs").Api} api
 * @param {string} account
 * @param {string} d1Id
 */
async function pendingMigrations(api, account, d1Id) {
  if (d1Id.startsWith("(")) return localMigrations();
  /** @type {string[]} */
  let applied = [];
  try {
    const result = await api.post(`/accounts/${account}/d1/database/${d1Id}/query`, { sql: "SELECT * FROM d1_migrations ORDER BY id" });
    applied = (result?.[0]?.results ?? []).map((/** @type {any} */ r) => String(r.name));
  } catch (e) {
    // A new database has no migrations table yet.
    if (!(e instanceof ApiError && /no such table/i.test(e.message))) throw e;
  }
  return localMigrations().filter((m) => !applied.includes(m));
}

// ---------------------------------------------------------------- the fold's layout

/**
 * The layout a deployment's first database holds (migration 0026,
 * storage/fold-layout.ts): "1/1" for DB alone, "1/13" for the first of thirteen,
 * "refold …" while a refold runs, null when it does not exist or folded
 * nothing yet.
 * @param {import("./lib/cloudflare.mjs").Api} api
 * @param {string} account
 * @param {string} name
 * @returns {Promise<string | null>}
 */
async function foldLayout(api, account, name) {
  const db = (await api.list(`/accounts/${account}/d1/database?name=${encodeURIComponent(name)}`)).find((x) => x.name === name);
  if (!db) return null;
  /** @param {string} sql */
  const first = async (sql) => (await api.post(`/accounts/${account}/d1/database/${db.uuid}/query`, { sql }))?.[0]?.results?.[0];
  const missingTable = (/** @type {unknown} */ e) => e instanceof ApiError && /no such table/i.test(e.message);
  try {
    const row = await first("SELECT layout FROM fold_layout WHERE id = 1");
    return row ? String(row.layout) : null;
  } catch (e) {
    if (!missingTable(e)) throw e;
  }
  // Before migration 0026: a database that folded anything did so as DB alone, as the migration will record (its condition).
  try {
    const row = await first(
      "SELECT EXISTS (SELECT 1 FROM seen_events) OR EXISTS (SELECT 1 FROM audit_log) OR EXISTS (SELECT 1 FROM key_health) OR EXISTS (SELECT 1 FROM rollup_day) OR EXISTS (SELECT 1 FROM request_log) AS folded",
    );
    return row?.folded ? "1/1" : null;
  } catch (e) {
    if (missingTable(e)) return null;
    throw e;
  }
}

/**
 * Asks the consumer for a refold (stats-consumer/replay.ts `refold`): the admin
 * event the admin API's POST /replay sends, put on the first event queue.
 * @param {import("./lib/cloudflare.mjs").Api} api
 * @param {string} account
 * @param {string} queueId
 */
async function askForRefold(api, account, queueId) {
  const jobId = crypto.randomUUID();
  const event = { v: 1, type: "admin", id: crypto.randomUUID(), ts: Date.now(), actor: "deploy", action: "replay.refold", target: jobId, detail: { jobId } };
  await api.post(`/accounts/${account}/queues/${queueId}/messages`, { body: event, content_type: "json" });
  return jobId;
}

// ---------------------------------------------------------------- secrets

/** A fresh value for a secret: the admin password readable, the keys 32 random bytes. */
function generateSecret(/** @type {string} */ name) {
  return name === "ADMIN_PASSWORD" ? randomBytes(15).toString("base64url") : randomBytes(32).toString("base64url");
}

/**
 * The names of the secrets a Worker holds; none when it does not exist yet.
 * @param {import("./lib/cloudflare.mjs").Api} api
 * @param {string} account
 * @param {string} worker
 * @returns {Promise<Set<string>>}
 */
async function secretNames(api, account, worker) {
  try {
    const list = await api.get(`/accounts/${account}/workers/scripts/${worker}/secrets`);
    return new Set((list ?? []).map((/** @type {any} */ s) => String(s.name)));
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.code === 10007)) return new Set();
    throw e;
  }
}

/** @returns {{ values: Record<string, string>, adminPasswordShown: boolean }} */
function readPending() {
  if (!existsSync(PENDING_FILE)) return { values: {}, adminPasswordShown: false };
  return JSON.parse(readFileSync(PENDING_FILE, "utf8"));
}

/** @param {{ values: Record<string, string>, adminPasswordShown: boolean }} pending */
function writePending(pending) {
  mkdirSync(STATE_DIR, { recursive: true });
  writeFileSync(PENDING_FILE, `${JSON.stringify(pending, null, 2)}\n`, { mode: 0o600 });
}

// ---------------------------------------------------------------- builds

/**
 * A digest of everything a deploy uploads for one Worker: wrangler's bundle (built
 * with --dry-run), its generated config, and the dashboard's files for the gateway.
 * @param {string} configFile
 * @param {string} worker
 * @param {string | undefined} assetsDir
 */
async function buildTag(configFile, worker, assetsDir) {
  const outdir = path.join(STATE_DIR, "build", worker);
  rmSync(outdir, { recursive: true, force: true });
  await wrangler(["deploy", "--dry-run", "-c", configFile, "--outdir", outdir]);
  const hash = createHash("sha256");
  hash.update(readFileSync(configFile));
  /** @param {string} dir */
  const addTree = (dir) => {
    for (const entry of readdirSync(dir).sort()) {
      const file = path.join(dir, entry);
      if (statSync(file).isDirectory()) addTree(file);
      else if (!entry.endsWith(".map") && entry !== "README.md") hash.update(`${path.relative(dir, file)}\0`).update(readFileSync(file));
    }
  };
  addTree(outdir);
  if (assetsDir) addTree(assetsDir);
  return `keypool-${hash.digest("hex").slice(0, 16)}`;
}

/**
 * The build tag of the version a Worker serves now, if it was deployed by this script.
 * @param {import("./lib/cloudflare.mjs").Api} api
 * @param {string} account
 * @param {string} worker
 */
async function deployedTag(api, account, worker) {
  try {
    const { deployments } = await api.get(`/accounts/${account}/workers/scripts/${worker}/deployments`);
    const versionId = deployments?.[0]?.versions?.find((/** @type {any} */ v) => v.percentage === 100)?.version_id;
    if (!versionId) return undefined;
    const version = await api.get(`/accounts/${account}/workers/scripts/${worker}/versions/${versionId}`);
    return /** @type {string | undefined} */ (version?.annotations?.["workers/tag"]);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.code === 10007)) return undefined;
    throw e;
  }
}

// ---------------------------------------------------------------- health

/**
 * Waits for the gateway's deep health check to answer 200, or stops the deploy
 * saying why; after a refold, as long as a consumer invocation may run one.
 * @param {string} url
 * @param {boolean} refolding
 */
async function checkHealth(url, refolding) {
  const timeoutMs = Number(
    (refolding ? process.env.KEYPOOL_REFOLD_TIMEOUT_MS : undefined) ?? process.env.KEYPOOL_HEALTH_TIMEOUT_MS ?? (refolding ? 900_000 : 90_000),
  );
  const result = await waitForHealth(url, () => true, { timeoutMs });
  if (!result.ok) {
    fail(
      `the gateway at ${url} did not pass its health check within ${Math.round(timeoutMs / 1000)} s (${result.last}). A new workers.dev subdomain can take a few minutes to resolve; run npm run deploy again to re-check.`,
    );
  }
}

// ---------------------------------------------------------------- the run

async function main() {
  const n = names();
  const options = deployOptions();
  console.log(`Keypool deploy — environment "${envName}"${dryRun ? " (dry run: nothing will be changed)" : ""}`);

  const api = apiClient(await apiCredentials());
  const account = await resolveAccount(api);
  step(`Cloudflare account ${account}`);

  // Before anything is created: a change of the fold's list of databases changes the first one's layout ("1/1" → "1/13").
  step(`Fold databases: ${options.foldDatabases}`);
  const heldLayout = await foldLayout(api, account, n.d1);
  const bound = `1/${options.foldDatabases}`;
  const refolding = heldLayout?.startsWith("refold ") ?? false;
  const refold = heldLayout !== null && heldLayout !== bound && !refolding;
  if (heldLayout === null || heldLayout === bound) detail(heldLayout === null ? "nothing folded yet" : `the first holds ${heldLayout}, as bound`);
  else if (refolding) detail(`a refold is under way (${heldLayout}): the health check waits for it`);
  else {
    const change = `the first database holds ${heldLayout}, it would be ${bound}`;
    if (!flag("refold"))
      fail(
        `the fold databases change (${change}). Their rows were folded under another list of databases: the consumer would not fold into them until the event archive is refolded into the new list. Run again with --refold to deploy and refold (batches wait in the queue while it runs; docs/operations.md, "Folding into several databases").`,
      );
    detail(`${change}: ${dryRun ? "would refold" : "the archive is refolded once the Workers are deployed"}`);
  }

  step("Resources");
  const resources = await ensureResources(api, account, n, options.foldDatabases);
  const { files, gateway, consumer } = writeConfigs(n, { accountId: account, ...resources }, options);

  step("D1 migrations");
  let migrated = 0;
  for (const [i, d1Id] of resources.d1Ids.entries()) {
    const binding = i === 0 ? "DB" : `DB_${i + 1}`;
    const label = resources.d1Ids.length > 1 ? `${binding}: ` : "";
    const pending = await pendingMigrations(api, account, d1Id);
    migrated += pending.length;
    if (pending.length === 0) detail(`${label}all applied`);
    else if (dryRun) detail(`${label}would apply ${pending.length}: ${pending.join(", ")}`);
    else {
      await wrangler(["d1", "migrations", "apply", binding, "--remote", "-c", files.gateway]);
      const left = await pendingMigrations(api, account, d1Id);
      if (left.length > 0) fail(`D1 migrations still pending on ${binding} after apply: ${left.join(", ")}`);
      detail(`${label}applied ${pending.length}: ${pending.join(", ")}`);
    }
  }

  if (!dryRun)
    writeFileSync(
      OPTIONS_FILE,
      `${JSON.stringify({ domain: options.domain, routes: options.routes, url: options.url, foldDatabases: options.foldDatabases }, null, 2)}\n`,
    );

  step("Secrets");
  const required = {
    [n.consumer]: /** @type {string[]} */ (consumer.secrets?.required ?? []),
    [n.gateway]: /** @type {string[]} */ (gateway.secrets?.required ?? []),
  };
  const held = { [n.consumer]: await secretNames(api, account, n.consumer), [n.gateway]: await secretNames(api, account, n.gateway) };
  const stash = readPending();
  /** @type {Record<string, Record<string, string>>} */
  const toUpload = { [n.consumer]: {}, [n.gateway]: {} };
  for (const [worker, list] of Object.entries(required)) {
    for (const name of list) {
      if (held[worker]?.has(name)) continue;
      // A secret two Workers share, held by one and lost from the stash, cannot be read back: a new value goes to both.
      const sharers = Object.keys(required).filter((w) => required[w]?.includes(name));
      if (!stash.values[name] && sharers.some((w) => held[w]?.has(name))) {
        console.log(
          `    ! ${name} is held by ${sharers.filter((w) => held[w]?.has(name)).join(", ")} but not ${worker}, and its value is not in ${path.relative(ROOT, PENDING_FILE)}: a new value is set in ${sharers.join(" and ")}`,
        );
        for (const w of sharers) held[w]?.delete(name);
      }
      stash.values[name] ??= generateSecret(name);
    }
  }
  for (const [worker, list] of Object.entries(required)) {
    for (const name of list)
      if (!held[worker]?.has(name)) /** @type {Record<string, string>} */ (toUpload[worker])[name] = /** @type {string} */ (stash.values[name]);
  }
  for (const worker of Object.keys(required)) {
    const missing = Object.keys(toUpload[worker] ?? {});
    detail(`${worker}: ${missing.length === 0 ? "all set" : `${dryRun ? "would set" : "to set"} ${missing.join(", ")}`}`);
  }
  if (!dryRun && Object.keys(stash.values).length > 0) writePending(stash);

  step("Workers");
  /** @type {string[]} */
  const deployed = [];
  for (const [worker, file, assets] of /** @type {const} */ ([
    [n.consumer, files.consumer, undefined],
    [n.gateway, files.gateway, path.join(ROOT, "admin/dist")],
  ])) {
    const tag = await buildTag(file, worker, assets);
    const current = await deployedTag(api, account, worker);
    const secrets = toUpload[worker] ?? {};
    // Written before wrangler deploys, removed after: a deploy that stopped after the upload
    // (its triggers, routes or domains not yet set) is done again even though the tag matches.
    const marker = path.join(STATE_DIR, `deploying.${worker}`);
    const unfinished = existsSync(marker);
    if (current === tag && Object.keys(secrets).length === 0 && !unfinished) {
      detail(`${worker}: up to date (${tag})`);
      continue;
    }
    const why =
      current === undefined ? "not deployed yet" : current !== tag ? `${current} → ${tag}` : unfinished ? "its last deploy did not finish" : "secrets to set";
    if (dryRun) {
      detail(`${worker}: would deploy (${why})`);
      continue;
    }
    const args = ["deploy", "-c", file, "--tag", tag, "--message", `npm run deploy (${tag})`];
    const secretsFile = path.join(STATE_DIR, `secrets.${worker}.json`);
    if (Object.keys(secrets).length > 0) {
      writeFileSync(secretsFile, JSON.stringify(secrets), { mode: 0o600 });
      args.push("--secrets-file", secretsFile);
    }
    writeFileSync(marker, `${tag}\n`);
    try {
      await wrangler(args);
      rmSync(marker, { force: true });
    } catch (e) {
      // wrangler colours its errors; the message is read here, often in a CI log.
      const failure = /** @type {{ output?: string }} */ (e);
      const output = (failure.output ?? "").replace(/\x1b\[[0-9;]*m/g, "");
      fail(
        `deploying ${worker} failed; run npm run deploy again to resume.\n${
          output
            .split("\n")
            .filter((l) => /ERROR|✘|error/i.test(l))
            .slice(0, 8)
            .join("\n") || output.slice(-2000)
        }`,
      );
    } finally {
      rmSync(secretsFile, { force: true });
    }
    detail(`${worker}: deployed (${why})`);
    deployed.push(worker);
  }

  if (dryRun) {
    console.log("\nDry run: nothing was changed.");
    return;
  }

  // Both Workers now hold every secret they need: the stash has done its job.
  const fresh = { [n.consumer]: await secretNames(api, account, n.consumer), [n.gateway]: await secretNames(api, account, n.gateway) };
  const stillMissing = Object.entries(required).flatMap(([w, list]) => list.filter((s) => !fresh[w]?.has(s)).map((s) => `${w}: ${s}`));
  if (stillMissing.length > 0) fail(`secrets still missing after deploy (${stillMissing.join(", ")}); run npm run deploy again.`);

  if (refold) {
    const queue = configQueues(n)[0];
    const queueId = queue ? resources.queueIds[queue] : undefined;
    if (!queueId) fail("the first event queue was not found; run npm run deploy again");
    const jobId = await askForRefold(api, account, /** @type {string} */ (queueId));
    step(`Refold asked for on ${queue} (job ${jobId}; GET /admin/api/replay/${jobId} follows it)`);
  }

  const url = await gatewayUrl(api, account, envName, options);
  step(`Health check ${url}/healthz`);
  await checkHealth(url, refold || refolding);
  detail("ok");

  const adminPassword = stash.values.ADMIN_PASSWORD;
  if (adminPassword && !stash.adminPasswordShown) {
    console.log(`\nAdmin password (shown this once; keep it in your password manager): ${adminPassword}`);
    stash.adminPasswordShown = true;
  }
  rmSync(PENDING_FILE, { force: true });

  const changed = resources.created.length > 0 || migrated > 0 || deployed.length > 0 || refold;
  console.log(changed ? `\nKeypool is deployed. Dashboard: ${url}/` : `\nNothing to change: Keypool is up to date. Dashboard: ${url}/`);
}

if (!flag("no-build")) {
  try {
    await buildDashboard({ quiet: true });
  } catch (e) {
    fail(`building the dashboard failed: ${e instanceof Error ? e.message : e}`);
  }
}
try {
  await main();
} catch (e) {
  fail(e instanceof Error ? e.message : String(e));
}
