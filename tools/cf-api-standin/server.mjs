// @ts-check
/**
 * A local stand-in for the few Cloudflare API endpoints `npm run deploy` and the
 * wrangler it runs touch: accounts, KV namespaces, D1 databases (the migrations
 * table only), R2 buckets, queues and their consumers, Worker uploads with their
 * assets, secrets, schedules, routes, custom domains and the workers.dev
 * subdomain. It keeps what was created in memory, records every call (secret
 * values are never recorded, only a digest), can be told to fail a call, and
 * answers `/__workers/<script>/…` like the deployed gateway would for the few
 * routes the deploy and rotate commands ask (see gatewayAnswer).
 *
 * Point wrangler at it with CLOUDFLARE_API_BASE_URL=<url>/client/v4. It is a test
 * tool: it accepts any API token and knows one account.
 *
 *   node tools/cf-api-standin/server.mjs [--port 8799]
 */
import { createHash, randomUUID } from "node:crypto";
import http from "node:http";

export const ACCOUNT_ID = "0123456789abcdef0123456789abcdef";
export const SUBDOMAIN = "standin";

/**
 * @typedef {{ method: string, path: string, query: string, status: number, body?: unknown }} Call
 * @typedef {{ method: string, path: RegExp, status: number, times: number }} Failure
 * @typedef {{ id: string, tag: string, message: string | null, mainModule: string, bindings: any[], created: string, secrets: string[] }} Version
 * @typedef {{ name: string, versions: Version[], deployed: string | null, secrets: Map<string, string>, schedules: string[], subdomain: boolean, routes: any[], domains: any[], assets: string[] }} Script
 */

/** A stable, short digest of a secret value: what the stand-in keeps instead of the value. */
export function secretDigest(/** @type {string} */ value) {
  return createHash("sha256").update(value).digest("hex").slice(0, 16);
}

function hexId() {
  return randomUUID().replaceAll("-", "");
}

/**
 * Splits a multipart/form-data body into its parts (name, filename, headers, data).
 * @param {Buffer} body
 * @param {string} contentType
 */
function parseMultipart(body, contentType) {
  const boundary = /boundary="?([^";]+)"?/.exec(contentType)?.[1];
  if (!boundary) return [];
  const parts = [];
  const delimiter = Buffer.from(`--${boundary}`);
  let start = body.indexOf(delimiter);
  while (start >= 0) {
    const next = body.indexOf(delimiter, start + delimiter.length);
    if (next < 0) break;
    const chunk = body.subarray(start + delimiter.length + 2, next - 2);
    const headerEnd = chunk.indexOf("\r\n\r\n");
    if (headerEnd >= 0) {
      const headers = chunk.subarray(0, headerEnd).toString("utf8");
      const name = /name="([^"]*)"/.exec(headers)?.[1] ?? "";
      const filename = /filename="([^"]*)"/.exec(headers)?.[1];
      parts.push({ name, filename, headers, data: chunk.subarray(headerEnd + 4) });
    }
    start = next;
  }
  return parts;
}

/**
 * Starts the stand-in on 127.0.0.1.
 * @param {{ port?: number, quiet?: boolean }} [options]
 */
export async function startStandin({ port = 0, quiet = true } = {}) {
  /** @type {Call[]} */
  const calls = [];
  /** @type {Failure[]} */
  const failures = [];
  /** @type {{ id: string, title: string }[]} */
  const kv = [];
  /** Each database's fold layout (migration 0026's fold_layout row): null until a test or a refold sets it. @type {{ uuid: string, name: string, created_at: string, migrations: string[], layout: string | null }[]} */
  const d1 = [];
  /** @type {{ name: string, creation_date: string }[]} */
  const r2 = [];
  /** @type {{ queue_id: string, queue_name: string, created_on: string, consumers: any[], messages?: unknown[] }[]} */
  const queues = [];
  /** @type {Map<string, Script>} */
  const scripts = new Map();
  /** @type {{ id: string, zone: string, pattern: string, script: string }[]} */
  const zoneRoutes = [];
  /** Asset hashes the stand-in holds (uploaded once, shared by every Worker, like Cloudflare's). */
  const assetStore = new Set();
  /** @type {Map<string, { script: string, manifest: Record<string, { hash: string }> }>} */
  const uploadSessions = new Map();

  /** @param {Script | undefined} s */
  const deployedVersion = (s) => s?.versions.find((v) => v.id === s.deployed);

  /**
   * The fold databases a deployed Worker binds, in the order storage/fold-databases.ts takes them: DB, then DB_2, DB_3….
   * @param {Script | undefined} s
   */
  const foldDatabasesOf = (s) =>
    (deployedVersion(s)?.bindings ?? [])
      .filter((b) => b.type === "d1" && /^DB(_\d+)?$/.test(b.name))
      .sort((a, b) => (a.name === "DB" ? -1 : b.name === "DB" ? 1 : Number(a.name.slice(3)) - Number(b.name.slice(3))))
      .map((b) => d1.find((d) => d.uuid === b.id));

  /** @param {string} name */
  function script(name) {
    let s = scripts.get(name);
    if (!s) {
      s = { name, versions: [], deployed: null, secrets: new Map(), schedules: [], subdomain: false, routes: [], domains: [], assets: [] };
      scripts.set(name, s);
    }
    return s;
  }

  /** When the snapshot was last rebuilt, per Worker: what the consumer does after keys are re-sealed. */
  const snapshotAt = new Map();
  /** Each Worker's snapshot version, as its deep health check reports it. */
  const snapshotVersion = new Map();
  /** A rebuild on its way: when it will be done. */
  const snapshotDue = new Map();
  /** Admin sessions the stand-in's gateway handed out. */
  const sessions = new Set();

  /**
   * The deployed gateway, as far as the deploy's tools go, judged from what was
   * uploaded: /healthz?deep=1 (secrets present, rotations under way, the
   * snapshot's age), the admin login (checked against ADMIN_PASSWORD's digest)
   * and /admin/api/keys/reseal (refused unless KEY_ENCRYPTION_KEY_NEXT is set and
   * differs; a re-seal rebuilds the snapshot). The real routes are tested in the
   * Worker tests; this is what npm run deploy and npm run rotate talk to.
   * @param {string} name
   * @param {string} route
   * @returns {{ status: number, body: unknown }}
   */
  function gatewayAnswer(name, route, /** @type {string} */ method, /** @type {any} */ json, /** @type {string} */ auth) {
    const s = scripts.get(name);
    if (!s || !deployedVersion(s)) return { status: 404, body: { error: "no such Worker" } };
    const rotating = (/** @type {string} */ n) => s.secrets.has(`${n}_NEXT`) && s.secrets.get(`${n}_NEXT`) !== s.secrets.get(n);
    if (route === "healthz") {
      const due = snapshotDue.get(name);
      if (due !== undefined && Date.now() >= due) {
        snapshotAt.set(name, due);
        snapshotVersion.set(name, (snapshotVersion.get(name) ?? 1) + 1);
        snapshotDue.delete(name);
      }
      const missing = ["ADMIN_PASSWORD", "JWT_SECRET", "KEY_ENCRYPTION_KEY", "ALERT_ENCRYPTION_KEY"].filter((n) => !s.secrets.has(n));
      // Each bound fold database holds its layout in the list, or none yet.
      const dbs = foldDatabasesOf(s);
      const moved = dbs.flatMap((db, i) => (db?.layout && db.layout !== `${i + 1}/${dbs.length}` ? [`database ${i + 1} holds ${db.layout}`] : []));
      const folds = { ok: moved.length === 0, ...(moved.length > 0 ? { error: `the fold databases changed (${moved.join("; ")})` } : {}) };
      const ok = missing.length === 0 && folds.ok;
      return {
        status: ok ? 200 : 503,
        body: {
          ok,
          folds,
          secrets: { ok: missing.length === 0, missing },
          rotation: { keyEncryptionKey: rotating("KEY_ENCRYPTION_KEY"), jwtSecret: rotating("JWT_SECRET") },
          snapshot: { version: snapshotVersion.get(name) ?? 1, generatedAt: snapshotAt.get(name) ?? 0 },
        },
      };
    }
    if (route === "admin/api/login" && method === "POST") {
      if (secretDigest(String(json?.password)) !== s.secrets.get("ADMIN_PASSWORD"))
        return { status: 401, body: { error: { message: "Wrong password.", code: "wrong_password" } } };
      const token = `standin-session-${hexId()}`;
      sessions.add(token);
      return { status: 200, body: { token, expiresAt: Date.now() + 3_600_000 } };
    }
    if (!sessions.has(auth.replace(/^Bearer /, ""))) return { status: 401, body: { error: { message: "Log in first.", code: "admin_login_required" } } };
    if (route === "admin/api/keys/reseal" && method === "POST") {
      if (!rotating("KEY_ENCRYPTION_KEY")) return { status: 409, body: { error: { message: "No rotation under way.", code: "rotation_not_started" } } };
      calls.push({ method, path: `/__workers/${name}/${route}`, query: "", status: 200, body: { resealedUnder: s.secrets.get("KEY_ENCRYPTION_KEY_NEXT") } });
      // The consumer republishes the snapshot a moment after the re-seal's admin event.
      snapshotDue.set(name, Date.now() + 500);
      return { status: 200, body: { resealed: 3, alreadySealed: 0, unreadable: [], next: null } };
    }
    return { status: 404, body: { error: { message: `the stand-in's gateway has no ${method} /${route}` } } };
  }

  const server = http.createServer(async (req, res) => {
    /** @type {Buffer[]} */
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? "/", "http://standin");
    const method = req.method ?? "GET";
    const contentType = req.headers["content-type"] ?? "";
    /** @type {any} */
    let json;
    if (!contentType.includes("multipart/") && raw.length > 0) {
      try {
        json = JSON.parse(raw.toString("utf8"));
      } catch {
        json = undefined;
      }
    }
    /** @type {Call} */
    const call = { method, path: url.pathname.replace(/^\/client\/v4/, ""), query: url.search, status: 200 };
    const p = call.path;

    /** @param {number} status @param {unknown} body */
    const send = (status, body) => {
      call.status = status;
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    };
    /** @param {unknown} result @param {Record<string, unknown>} [extra] */
    const ok = (result, extra = {}) => send(200, { success: true, errors: [], messages: [], result, ...extra });
    /** @param {number} status @param {number} code @param {string} message */
    const fail = (status, code, message) => send(status, { success: false, errors: [{ code, message }], messages: [], result: null });

    // The stand-in's own routes: not recorded.
    if (p.startsWith("/__standin/")) {
      if (p === "/__standin/calls") return send(200, calls);
      if (p === "/__standin/fail" && method === "POST") {
        failures.push({ method: json.method, path: new RegExp(json.path), status: json.status ?? 500, times: json.times ?? 1 });
        return send(200, { ok: true });
      }
      return send(404, { error: "unknown stand-in route" });
    }
    if (p.startsWith("/__workers/")) {
      const answer = gatewayAnswer(p.split("/")[2] ?? "", p.split("/").slice(3).join("/"), method, json, String(req.headers.authorization ?? ""));
      return send(answer.status, answer.body);
    }

    calls.push(call);
    if (!quiet) console.log(method, p, url.search);
    const failure = failures.find((f) => f.times > 0 && f.method === method && f.path.test(p));
    if (failure) {
      failure.times -= 1;
      return fail(failure.status, 10013, `the stand-in was told to fail ${method} ${p}`);
    }

    const a = `/accounts/${ACCOUNT_ID}`;
    /** A route's captures (any: read inside the closures below). @type {any} */
    let m;
    // Who is asking.
    if (p === "/user/tokens/verify") return ok({ id: "standin-token", status: "active" });
    if (p === "/user") return ok({ id: "standin-user", email: "operator@example.com" });
    if (p === "/memberships") return ok([{ id: "m1", account: { id: ACCOUNT_ID, name: "Stand-in account" }, permissions: [] }]);
    if (p === "/accounts") return ok([{ id: ACCOUNT_ID, name: "Stand-in account" }]);

    // KV namespaces.
    if (p === `${a}/storage/kv/namespaces` && method === "GET")
      return ok(kv, { result_info: { page: 1, per_page: 100, count: kv.length, total_count: kv.length } });
    if (p === `${a}/storage/kv/namespaces` && method === "POST") {
      if (kv.some((n) => n.title === json?.title)) return fail(400, 10014, "a namespace with this account ID and title already exists");
      const ns = { id: hexId(), title: String(json?.title) };
      kv.push(ns);
      call.body = { title: ns.title };
      return ok(ns);
    }

    // D1 databases: created, listed, and the migrations table.
    if (p === `${a}/d1/database` && method === "GET") {
      const name = url.searchParams.get("name");
      const list = d1.filter((d) => !name || d.name === name).map(({ uuid, name, created_at }) => ({ uuid, name, created_at, version: "production" }));
      return ok(list, { result_info: { page: 1, per_page: 1000, count: list.length, total_count: list.length } });
    }
    if (p === `${a}/d1/database` && method === "POST") {
      if (d1.some((d) => d.name === json?.name)) return fail(400, 7502, "a database with that name already exists");
      const db = { uuid: randomUUID(), name: String(json?.name), created_at: new Date().toISOString(), migrations: [], layout: null };
      d1.push(db);
      call.body = { name: db.name };
      return ok({ uuid: db.uuid, name: db.name, created_at: db.created_at, version: "production" });
    }
    if ((m = /^\/accounts\/\w+\/d1\/database\/([^/]+)$/.exec(p)) && method === "GET") {
      const db = d1.find((d) => d.uuid === m[1] || d.name === m[1]);
      if (!db) return fail(404, 7404, "database not found");
      return ok({ uuid: db.uuid, name: db.name, created_at: db.created_at, version: "production", num_tables: 0, file_size: 0 });
    }
    if ((m = /^\/accounts\/\w+\/d1\/database\/([^/]+)\/query$/.exec(p)) && method === "POST") {
      const db = d1.find((d) => d.uuid === m[1]);
      if (!db) return fail(404, 7404, "database not found");
      const sql = String(json?.sql ?? "");
      const meta = { duration: 1, rows_read: 0, rows_written: 0, changes: 0, size_after: 0 };
      if (/^\s*SELECT layout FROM fold_layout/i.test(sql)) return ok([{ results: db.layout ? [{ layout: db.layout }] : [], success: true, meta }]);
      if (/^\s*SELECT \*\s+FROM d1_migrations/i.test(sql)) {
        return ok([{ results: db.migrations.map((name, i) => ({ id: i + 1, name, applied_at: "2026-01-01 00:00:00" })), success: true, meta }]);
      }
      const applied = /INSERT INTO d1_migrations \(name\)\s*values \('([^']+)'\)/i.exec(sql);
      if (applied?.[1]) {
        db.migrations.push(applied[1]);
        call.body = { migration: applied[1] };
      }
      return ok([{ results: [], success: true, meta }]);
    }
    if ((m = /^\/accounts\/\w+\/d1\/database\/([^/]+)\/time_travel\/bookmark$/.exec(p))) return ok({ bookmark: "00000001-00000000-00004f6e-standin" });

    // R2 buckets.
    if (p === `${a}/r2/buckets` && method === "GET") return ok({ buckets: r2 });
    if (p === `${a}/r2/buckets` && method === "POST") {
      if (r2.some((b) => b.name === json?.name)) return fail(409, 10004, "the bucket you tried to create already exists");
      const bucket = { name: String(json?.name), creation_date: new Date().toISOString() };
      r2.push(bucket);
      call.body = { name: bucket.name };
      return ok(bucket);
    }

    if ((m = /^\/accounts\/\w+\/r2\/buckets\/([^/]+)$/.exec(p)) && method === "GET") {
      const bucket = r2.find((b) => b.name === m[1]);
      if (!bucket) return fail(404, 10006, "the specified bucket does not exist");
      return ok({ ...bucket, location: "WEUR", storage_class: "Standard" });
    }
    if ((m = /^\/accounts\/\w+\/storage\/kv\/namespaces\/([^/]+)$/.exec(p)) && method === "GET") {
      const ns = kv.find((n) => n.id === m[1]);
      if (!ns) return fail(404, 10013, "namespace not found");
      return ok(ns);
    }

    // Queues and their consumers.
    if (p === `${a}/queues` && method === "GET") {
      const names = url.searchParams.getAll("name");
      const list = queues.filter((q) => names.length === 0 || names.includes(q.queue_name));
      return ok(list, { result_info: { page: 1, per_page: 100, count: list.length, total_count: list.length } });
    }
    if (p === `${a}/queues` && method === "POST") {
      if (queues.some((q) => q.queue_name === json?.queue_name)) return fail(409, 11009, "a queue with this name already exists");
      const q = { queue_id: hexId(), queue_name: String(json?.queue_name), created_on: new Date().toISOString(), consumers: [] };
      queues.push(q);
      call.body = { queue_name: q.queue_name };
      return ok(q);
    }
    if ((m = /^\/accounts\/\w+\/queues\/([^/]+)$/.exec(p)) && method === "GET") {
      const q = queues.find((x) => x.queue_id === m[1] || x.queue_name === m[1]);
      if (!q) return fail(404, 11000, "queue not found");
      return ok({ ...q, producers: [], consumers_total_count: q.consumers.length, producers_total_count: 0 });
    }
    // A message put on a queue; a refold asked for is done at once, as the consumer bound to the queue would: each database
    // it binds takes its layout in the list.
    if ((m = /^\/accounts\/\w+\/queues\/([^/]+)\/messages$/.exec(p)) && method === "POST") {
      const q = queues.find((x) => x.queue_id === m[1]);
      if (!q) return fail(404, 11000, "queue not found");
      (q.messages ??= []).push(json?.body);
      call.body = { message: json?.body };
      if (json?.body?.action === "replay.refold") {
        const dbs = foldDatabasesOf(scripts.get(q.consumers[0]?.script));
        dbs.forEach((db, i) => db && (db.layout = `${i + 1}/${dbs.length}`));
      }
      return ok(null);
    }
    if ((m = /^\/accounts\/\w+\/queues\/([^/]+)\/consumers$/.exec(p))) {
      const q = queues.find((x) => x.queue_id === m[1]);
      if (!q) return fail(404, 11000, "queue not found");
      if (method === "GET") return ok(q.consumers);
      if (method === "POST") {
        if (q.consumers.some((c) => c.script === json?.script_name)) return fail(409, 11004, "this queue already has a consumer for this script");
        const consumer = {
          consumer_id: hexId(),
          script: json?.script_name,
          type: "worker",
          settings: json?.settings ?? {},
          dead_letter_queue: json?.dead_letter_queue,
        };
        q.consumers.push(consumer);
        call.body = { script_name: consumer.script, dead_letter_queue: consumer.dead_letter_queue };
        return ok(consumer);
      }
    }
    if ((m = /^\/accounts\/\w+\/queues\/([^/]+)\/consumers\/([^/]+)$/.exec(p)) && method === "PUT") {
      const q = queues.find((x) => x.queue_id === m[1]);
      const consumer = q?.consumers.find((c) => c.consumer_id === m[2] || c.script === m[2]);
      if (!consumer) return fail(404, 11000, "consumer not found");
      consumer.settings = json?.settings ?? consumer.settings;
      consumer.dead_letter_queue = json?.dead_letter_queue;
      return ok(consumer);
    }

    // Zones: every name is a zone of the account (routes need one); routes on them.
    if (p === "/zones" && method === "GET") {
      const name = url.searchParams.get("name") ?? "";
      return ok(name ? [{ id: createHash("sha256").update(name).digest("hex").slice(0, 32), name, account: { id: ACCOUNT_ID } }] : []);
    }
    if ((m = /^\/zones\/([^/]+)\/workers\/routes$/.exec(p))) {
      if (method === "GET") return ok(zoneRoutes.filter((r) => r.zone === m[1]).map(({ id, pattern, script }) => ({ id, pattern, script })));
      if (method === "POST") {
        const route = { id: hexId(), zone: String(m[1]), pattern: String(json?.pattern), script: String(json?.script) };
        zoneRoutes.push(route);
        call.body = { route: route.pattern, script: route.script };
        return ok({ id: route.id });
      }
    }

    // The account's workers.dev subdomain.
    if (p === `${a}/workers/subdomain` && method === "GET") return ok({ subdomain: SUBDOMAIN });

    // Workers.
    if ((m = /^\/accounts\/\w+\/workers\/services\/([^/]+)$/.exec(p)) && method === "GET") {
      const s = scripts.get(m[1] ?? "");
      const latest = deployedVersion(s);
      if (!s || !latest) return fail(404, 10090, "workers.api.error.service_not_found");
      return ok({
        id: s.name,
        default_environment: { environment: "production", script: { id: s.name, tag: latest.tag, etag: latest.id, last_deployed_from: "wrangler" } },
      });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/assets-upload-session$/.exec(p)) && method === "POST") {
      const manifest = /** @type {Record<string, { hash: string }>} */ (json?.manifest ?? {});
      const missing = [...new Set(Object.values(manifest).map((f) => f.hash))].filter((h) => !assetStore.has(h));
      const jwt = `session-${hexId()}`;
      uploadSessions.set(jwt, { script: m[1] ?? "", manifest });
      call.body = { files: Object.keys(manifest).length, toUpload: missing.length };
      // Nothing to upload: the session's token is already the completion token.
      return ok({ jwt, buckets: missing.length > 0 ? [missing] : [] });
    }
    if (p === `${a}/workers/assets/upload` && method === "POST") {
      const jwt = String(req.headers.authorization ?? "").replace(/^Bearer /, "");
      const session = uploadSessions.get(jwt);
      if (!session) return fail(401, 10001, "unknown upload session");
      const parts = parseMultipart(raw, contentType);
      for (const part of parts) assetStore.add(part.name);
      call.body = { uploaded: parts.length };
      res.writeHead(201, { "content-type": "application/json" });
      call.status = 201;
      return res.end(JSON.stringify({ success: true, errors: [], messages: [], result: { jwt } }));
    }
    // A Worker upload: PUT the script (a new Worker, deployed at once) or POST a
    // version (an existing one; wrangler then POSTs a deployment of it).
    const upload = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)(\/versions)?$/.exec(p);
    if (upload && ((method === "PUT" && !upload[2]) || (method === "POST" && upload[2]))) {
      const s = script(upload[1] ?? "");
      const parts = parseMultipart(raw, contentType);
      const metadataPart = parts.find((x) => x.name === "metadata");
      const metadata = metadataPart ? JSON.parse(metadataPart.data.toString("utf8")) : {};
      const bindings = /** @type {any[]} */ (metadata.bindings ?? []);
      for (const b of bindings) {
        if (b.type === "kv_namespace" && !kv.some((n) => n.id === b.namespace_id)) return fail(400, 10041, `KV namespace '${b.namespace_id}' is not valid`);
        if (b.type === "d1" && !d1.some((d) => d.uuid === b.id)) return fail(400, 10021, `D1 database '${b.id}' not found`);
        if (b.type === "r2_bucket" && !r2.some((x) => x.name === b.bucket_name)) return fail(400, 10085, `R2 bucket '${b.bucket_name}' not found`);
        if (b.type === "queue" && !queues.some((q) => q.queue_name === b.queue_name)) return fail(400, 11000, `Queue '${b.queue_name}' not found`);
      }
      // Secrets sent with the upload are set; the others are kept (deployments never delete secrets).
      for (const b of bindings) if (b.type === "secret_text") s.secrets.set(b.name, secretDigest(String(b.text)));
      const version = {
        id: randomUUID(),
        tag: String(metadata.annotations?.["workers/tag"] ?? ""),
        message: metadata.annotations?.["workers/message"] ?? null,
        mainModule: String(metadata.main_module ?? ""),
        bindings: bindings.filter((b) => b.type !== "secret_text"),
        created: new Date().toISOString(),
        secrets: [...s.secrets.keys()],
      };
      s.versions.push(version);
      if (method === "PUT") s.deployed = version.id;
      if (metadata.assets?.jwt) {
        const session = uploadSessions.get(metadata.assets.jwt);
        s.assets = Object.keys(session?.manifest ?? {});
      }
      call.body = { tag: version.tag, bindings: bindings.map((b) => `${b.type}:${b.name}`), assets: s.assets.length };
      if (method === "POST") return ok({ id: version.id, number: s.versions.length, resources: { script: { etag: version.id } }, startup_time_ms: 5 });
      return ok({
        id: s.name,
        etag: version.id,
        deployment_id: version.id,
        startup_time_ms: 5,
        has_assets: s.assets.length > 0,
        has_modules: true,
        created_on: version.created,
        modified_on: version.created,
      });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/deployments$/.exec(p)) && method === "POST") {
      const s = scripts.get(m[1] ?? "");
      const versionId = json?.versions?.[0]?.version_id;
      const version = s?.versions.find((v) => v.id === versionId);
      if (!s || !version) return fail(404, 10007, "no such version");
      s.deployed = version.id;
      call.body = { version: version.tag };
      return ok({ id: randomUUID(), versions: [{ version_id: version.id, percentage: 100 }] });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/script-settings$/.exec(p)))
      return ok({ logpush: false, tail_consumers: [], observability: { enabled: true } });
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/secrets$/.exec(p))) {
      const s = scripts.get(m[1] ?? "");
      if (method === "GET") {
        if (!s) return fail(404, 10007, "workers.api.error.script_not_found");
        return ok([...s.secrets.keys()].map((name) => ({ name, type: "secret_text" })));
      }
      if (method === "PUT") {
        if (!s) return fail(404, 10007, "workers.api.error.script_not_found");
        s.secrets.set(String(json?.name), secretDigest(String(json?.text)));
        call.body = { name: json?.name };
        return ok({ name: json?.name, type: "secret_text" });
      }
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/schedules$/.exec(p))) {
      const s = script(m[1] ?? "");
      if (method === "PUT") {
        s.schedules = (Array.isArray(json) ? json : []).map((x) => x.cron);
        call.body = { crons: s.schedules };
      }
      return ok({ schedules: s.schedules.map((cron) => ({ cron })) });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/subdomain$/.exec(p))) {
      const s = script(m[1] ?? "");
      if (method === "POST") {
        s.subdomain = Boolean(json?.enabled);
        call.body = { enabled: s.subdomain };
      }
      return ok({ enabled: s.subdomain, previews_enabled: false });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/routes$/.exec(p))) {
      const s = script(m[1] ?? "");
      if (method === "PUT") {
        s.routes = Array.isArray(json) ? json : [];
        call.body = { routes: s.routes };
      }
      return ok(s.routes);
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/domains\/records$/.exec(p)) && method === "PUT") {
      const s = script(m[1] ?? "");
      s.domains = (json?.origins ?? []).map((/** @type {any} */ o) => ({ hostname: o.hostname, zone_name: o.zone_name }));
      call.body = { domains: s.domains.map((/** @type {any} */ d) => d.hostname) };
      return ok(s.domains.map((/** @type {any} */ d) => ({ id: hexId(), ...d, service: s.name, environment: "production" })));
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/domains\/changeset$/.exec(p)) && method === "POST") {
      const s = script(m[1] ?? "");
      const wanted = Array.isArray(json) ? json : [];
      const known = new Set(s.domains.map((d) => d.hostname));
      return ok({ added: wanted.filter((d) => !known.has(d.hostname)), removed: [], updated: [], conflicting: [] });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/versions$/.exec(p)) && method === "GET") {
      const s = scripts.get(m[1] ?? "");
      const items = (s?.versions ?? []).map((v) => ({
        id: v.id,
        number: 1,
        metadata: { created_on: v.created, source: "wrangler" },
        annotations: { "workers/tag": v.tag },
      }));
      return ok({ items: items.reverse() });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/versions\/([^/]+)$/.exec(p)) && method === "GET") {
      const v = scripts.get(m[1] ?? "")?.versions.find((x) => x.id === m[2]);
      if (!v) return fail(404, 10007, "no such version");
      return ok({
        id: v.id,
        number: 1,
        metadata: { created_on: v.created, source: "wrangler", author_email: "operator@example.com" },
        annotations: { "workers/tag": v.tag, "workers/message": v.message },
        resources: { bindings: v.bindings, script: { etag: v.id } },
      });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/deployments$/.exec(p)) && method === "GET") {
      const s = scripts.get(m[1] ?? "");
      const latest = deployedVersion(s);
      return ok({
        deployments: latest
          ? [
              {
                id: latest.id,
                source: "wrangler",
                strategy: "percentage",
                created_on: latest.created,
                versions: [{ version_id: latest.id, percentage: 100 }],
                annotations: { "workers/message": latest.message },
              },
            ]
          : [],
      });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/settings$/.exec(p)) && method === "PATCH") {
      // wrangler secret bulk: every binding, the existing ones as `inherit`, the new secrets with their text.
      const s = scripts.get(m[1] ?? "");
      if (!s) return fail(404, 10007, "workers.api.error.script_not_found");
      const part = parseMultipart(raw, contentType).find((x) => x.name === "settings");
      const settings = part ? JSON.parse(part.data.toString("utf8")) : {};
      /** @type {string[]} */
      const set = [];
      for (const b of settings.bindings ?? []) {
        if (b.type === "secret_text" && typeof b.text === "string") {
          s.secrets.set(b.name, secretDigest(b.text));
          set.push(b.name);
        }
      }
      call.body = { secretsSet: set };
      return ok({ bindings: settings.bindings?.map((/** @type {any} */ b) => ({ type: b.type, name: b.name })) ?? [] });
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/secrets\/([^/]+)$/.exec(p)) && method === "DELETE") {
      const s = scripts.get(m[1] ?? "");
      if (!s?.secrets.has(m[2])) return fail(404, 10056, "secret not found");
      s.secrets.delete(m[2]);
      call.body = { secretDeleted: m[2] };
      return ok(null);
    }
    if ((m = /^\/accounts\/\w+\/workers\/scripts\/([^/]+)\/settings$/.exec(p)) && method === "GET") {
      const s = scripts.get(m[1] ?? "");
      if (!s) return fail(404, 10007, "workers.api.error.script_not_found");
      const bindings = [...(deployedVersion(s)?.bindings ?? []), ...[...s.secrets.keys()].map((name) => ({ type: "secret_text", name }))];
      return ok({ bindings, logpush: false, tail_consumers: [], observability: { enabled: true } });
    }

    fail(404, 10000, `the stand-in does not implement ${method} ${p}`);
  });

  await new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(undefined)));
  const address = /** @type {import("node:net").AddressInfo} */ (server.address());
  const origin = `http://127.0.0.1:${address.port}`;
  return {
    origin,
    apiBaseUrl: `${origin}/client/v4`,
    calls,
    failures,
    state: { kv, d1, r2, queues, scripts, zoneRoutes },
    /** Makes the next `times` calls of `method` on a path matching `path` fail with `status`. */
    failNext(/** @type {string} */ method, /** @type {RegExp} */ path, times = 1, status = 500) {
      failures.push({ method, path, status, times });
    },
    close: () => new Promise((resolve) => server.close(() => resolve(undefined))),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const i = process.argv.indexOf("--port");
  const standin = await startStandin({ port: i > 0 ? Number(process.argv[i + 1]) : 8799, quiet: false });
  console.log(`Cloudflare API stand-in at ${standin.apiBaseUrl} (account ${ACCOUNT_ID})`);
}
