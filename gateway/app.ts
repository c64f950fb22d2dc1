import { Hono } from "hono";
import type { GatewayHono, IsolateState } from "./context";
import { KeypoolError, errorResponse } from "./errors";
import { SCHEMA_MIGRATION } from "../schema";
import { appliedMigration } from "../storage/schema-version";
import { foldDatabases } from "../storage/fold-databases";
import { type DatabaseLayout, layoutRefusalMessage, layoutsAgree, readFoldLayouts } from "../storage/fold-layout";
import { optionalSecret } from "./logic/secrets";
import { DASHBOARD_SECURITY_HEADERS, type SecretName, missingSecrets, requireSecrets } from "./middleware";
import { adminRoutes } from "./routes/admin";
import { scrapeRoutes } from "./routes/admin/metrics";
import { openAIRoutes } from "./routes/openai";

const ALL_SECRETS: SecretName[] = ["ADMIN_PASSWORD", "JWT_SECRET", "KEY_ENCRYPTION_KEY", "ALERT_ENCRYPTION_KEY"];

/**
 * What a deploy checks before it calls itself done: every secret set (named when
 * missing, never shown), D1 reachable, the migrations this code needs applied in
 * every fold database, and each of them holding the fold layout this Worker's
 * bindings give it (storage/fold-layout.ts). 503 when any is not. It also says
 * which rotations this isolate is part of and how fresh its snapshot is, which
 * `npm run rotate` waits on.
 */
async function deepHealth(env: GatewayEnv, snapshot: { version: number; generatedAt: number }) {
  const missing = ALL_SECRETS.filter((n) => missingSecrets(env, [n]) !== null);
  const dbs = foldDatabases(env);
  let database: { ok: boolean; migration?: string | null; expected: string; error?: string };
  try {
    // The oldest of the fold databases' (DB holds the configuration too).
    const applied = await Promise.all(dbs.map(appliedMigration));
    const migration = applied.includes(null) ? null : applied.reduce((a, b) => (b! < a! ? b : a));
    database = { ok: migration !== null && migration >= SCHEMA_MIGRATION, migration, expected: SCHEMA_MIGRATION };
  } catch {
    database = { ok: false, expected: SCHEMA_MIGRATION, error: "D1 did not answer, or its migrations table is missing" };
  }
  let folds: { ok: boolean; databases: DatabaseLayout[]; error?: string } = { ok: false, databases: [] };
  if (database.ok) {
    try {
      const layouts = await readFoldLayouts(dbs);
      folds = { ok: layoutsAgree(layouts), databases: layouts, ...(layoutsAgree(layouts) ? {} : { error: layoutRefusalMessage(layouts) }) };
    } catch {
      folds = { ok: false, databases: [], error: "a fold database did not answer" };
    }
  }
  const ok = missing.length === 0 && database.ok && folds.ok;
  // Which rotations this isolate is in the middle of (npm run rotate waits on these); names only, never values.
  const rotating = (name: "KEY_ENCRYPTION_KEY" | "JWT_SECRET") => {
    const next = optionalSecret(env, `${name}_NEXT`);
    return next !== undefined && next !== env[name];
  };
  const rotation = { keyEncryptionKey: rotating("KEY_ENCRYPTION_KEY"), jwtSecret: rotating("JWT_SECRET") };
  return Response.json({ ok, secrets: { ok: missing.length === 0, missing }, database, folds, rotation, snapshot }, { status: ok ? 200 : 503 });
}

const API_PATH = /^\/(v1|admin\/api|metrics)(\/|$)/;

/** The gateway: OpenAI routes at /v1 and the root, the admin API, and the dashboard's assets. */
export function createApp(state: IsolateState) {
  const app = new Hono<GatewayHono>();
  const openai = openAIRoutes(state);

  app.get("/healthz", async (c) => {
    if (c.req.query("deep") === undefined) return c.json({ ok: true });
    const pool = await state.pools.load(c.env.SNAPSHOT, Date.now(), (p) => c.executionCtx.waitUntil(p));
    return deepHealth(c.env, { version: pool.snapshot.version, generatedAt: pool.snapshot.generatedAt });
  });

  app.use("/admin/api/*", requireSecrets("ADMIN_PASSWORD", "JWT_SECRET", "KEY_ENCRYPTION_KEY"));
  app.route("/admin/api", adminRoutes(state));
  // Prometheus reads this with its own scrape token, never the admin session.
  app.route("/", scrapeRoutes());

  // The OpenAI routes check their secret and answer CORS themselves, route by route.
  app.route("/v1", openai);
  app.route("/", openai);

  app.notFound(async (c) => {
    if (API_PATH.test(c.req.path) || (c.req.method !== "GET" && c.req.method !== "HEAD")) {
      throw new KeypoolError(404, "not_found_error", `Unknown route: ${c.req.method} ${c.req.path}`, "unknown_route");
    }
    const asset = await c.env.ASSETS.fetch(c.req.raw);
    const res = new Response(asset.body, asset);
    for (const [name, value] of Object.entries(DASHBOARD_SECURITY_HEADERS)) res.headers.set(name, value);
    return res;
  });

  app.onError(errorResponse);

  return app;
}
