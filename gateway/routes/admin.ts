import { Hono, type Context } from "hono";
import { getCookie } from "hono/cookie";
import type { z } from "zod";
import {
  DAY_MS,
  EVENT_VERSION,
  MINUTE_MS,
  addKeysBodySchema,
  createClientKeyBodySchema,
  createUpstreamBodySchema,
  dayStart,
  loginBodySchema,
  probeKeysBodySchema,
  replayBodySchema,
  statsQuerySchema,
  minuteStart,
  type AddKeysResponse,
  type AdminEvent,
} from "../../schema";
import type { GatewayHono, IsolateState } from "../context";
import { KeypoolError, invalidRequest } from "../errors";
import { SESSION_COOKIE, SESSION_SECONDS, issueAdminToken, sessionCookie, verifyAdminToken } from "../logic/admin-session";
import { CLIENT_KEY_PREFIX } from "../logic/client-auth";
import { constantTimeEqual, encryptSecret, maskSecret, randomToken, sha256Hex } from "../logic/crypto";
import { parseKeyText } from "../logic/parse-key-text";
import { secretCacheFor } from "../logic/secrets";
import { bucketStarts, fillSeries, summarize, toMetrics } from "../logic/stats";
import { queueEventSink } from "../storage/event-sink";
import { findReplayJob, findUpstream, insertClientKey, insertKeys, insertUpstream, listKeys, listUpstreams, readSettings } from "../storage/config-db";
import { breakdownRows, bucketTotals, rollingTotals, seriesRows, type BreakdownBy } from "../storage/stats-db";

/** Buckets a series covers when the query does not say: an hour of minutes, two days of hours, a month of days. */
const DEFAULT_COUNT = { minute: 60, hour: 48, day: 30 } as const;

type AdminContext = Context<GatewayHono>;

/** Reads a JSON body and validates it; a 400 naming the first bad field otherwise. */
async function readBody<S extends z.ZodType>(c: AdminContext, schema: S): Promise<z.infer<S>> {
  if (!(c.req.header("content-type") ?? "").toLowerCase().includes("application/json")) {
    throw new KeypoolError(415, "invalid_request_error", "Send the body as application/json.", "unsupported_media_type");
  }
  let raw: unknown;
  try {
    raw = await c.req.json();
  } catch {
    throw invalidRequest("The request body is not valid JSON.");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.join(".") || null;
    throw invalidRequest(param ? `${param}: ${issue.message}` : issue.message, param);
  }
  return parsed.data;
}

/** Records a configuration change: the consumer folds it into the audit log and republishes the snapshot. */
async function emitAdminEvent(c: AdminContext, action: string, target: string | null, detail: Record<string, unknown> | null): Promise<void> {
  const event: AdminEvent = { v: EVENT_VERSION, type: "admin", id: crypto.randomUUID(), ts: Date.now(), actor: c.get("admin"), action, target, detail };
  await queueEventSink(c.env.EVENTS)([event]);
}

/** Rejects the request unless it carries a valid admin session (cookie or Bearer token). */
function requireAdmin() {
  return async function requireAdminMiddleware(c: AdminContext, next: () => Promise<void>) {
    const bearer = c.req.header("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1];
    const token = bearer ?? getCookie(c, SESSION_COOKIE);
    const subject = token ? await verifyAdminToken(c.env.JWT_SECRET, token, Date.now()) : null;
    if (!subject) throw new KeypoolError(401, "authentication_error", "Log in to the admin API first.", "admin_login_required");
    c.set("admin", subject);
    await next();
  };
}

/** The admin API under `/admin/api`: login, upstreams, keys, client keys, stats. */
export function adminRoutes(state: IsolateState) {
  const app = new Hono<GatewayHono>();

  app.use("*", async function noStore(c, next) {
    await next();
    c.header("cache-control", "no-store");
  });

  app.post("/login", async (c) => {
    const { password } = await readBody(c, loginBodySchema);
    if (!(await constantTimeEqual(password, c.env.ADMIN_PASSWORD))) {
      throw new KeypoolError(401, "authentication_error", "Wrong password.", "wrong_password");
    }
    const session = await issueAdminToken(c.env.JWT_SECRET, Date.now());
    c.header("set-cookie", sessionCookie(session.token, SESSION_SECONDS));
    return c.json(session);
  });

  app.post("/logout", (c) => {
    c.header("set-cookie", sessionCookie("", 0));
    return c.json({ ok: true });
  });

  app.use("*", requireAdmin());

  app.get("/session", (c) => c.json({ subject: c.get("admin") }));

  app.post("/upstreams", async (c) => {
    const body = await readBody(c, createUpstreamBodySchema);
    const id = crypto.randomUUID();
    const { name, baseUrl, kind, models, aliases } = body;
    await insertUpstream(c.env.DB, { id, name, baseUrl, kind, models, aliases, enabled: true, createdAt: Date.now() });
    await emitAdminEvent(c, "upstream.create", id, { name, baseUrl, kind, models, aliases });
    return c.json({ id }, 201);
  });

  app.get("/upstreams", async (c) => c.json({ data: await listUpstreams(c.env.DB) }));

  app.post("/keys", async (c) => {
    const body = await readBody(c, addKeysBodySchema);
    const upstream = await findUpstream(c.env.DB, body.upstreamId);
    if (!upstream) throw new KeypoolError(404, "not_found_error", `No upstream with id '${body.upstreamId}'.`, "upstream_not_found", "upstreamId");
    const parsed = parseKeyText(body.text);
    const cryptoKey = await secretCacheFor(c.env.KEY_ENCRYPTION_KEY).cryptoKey();
    const now = Date.now();
    const rows = await Promise.all(
      parsed.keys.map(async (key) => ({
        id: crypto.randomUUID(),
        upstreamId: upstream.id,
        secretEnc: await encryptSecret(cryptoKey, key),
        fingerprint: await sha256Hex(key),
        masked: maskSecret(key),
        createdAt: now,
      })),
    );
    const added = await insertKeys(c.env.DB, rows);
    const result: AddKeysResponse = { added, duplicates: parsed.repeats + (rows.length - added), invalid: parsed.invalid };
    if (added > 0) await emitAdminEvent(c, "keys.add", upstream.id, { added, duplicates: result.duplicates, invalid: result.invalid.length });
    return c.json(result);
  });

  app.get("/keys", async (c) => {
    const limit = Math.min(Math.max(Number(c.req.query("limit") ?? 100) || 100, 1), 1000);
    const offset = Math.max(Number(c.req.query("offset") ?? 0) || 0, 0);
    const { total, keys } = await listKeys(c.env.DB, limit, offset, await readSettings(c.env.DB), Date.now());
    return c.json({ total, limit, offset, data: keys });
  });

  app.post("/keys/probe", async (c) => {
    const body = await readBody(c, probeKeysBodySchema);
    const events = await state.probe(c.env, body.all ? "all" : body.ids!);
    return c.json({ data: events.map((e) => ({ keyId: e.keyId, kind: e.kind, result: e.result, balance: e.balance, detail: e.detail })) });
  });

  app.post("/client-keys", async (c) => {
    const body = await readBody(c, createClientKeyBodySchema);
    const id = crypto.randomUUID();
    const key = CLIENT_KEY_PREFIX + randomToken(32);
    await insertClientKey(c.env.DB, {
      id,
      name: body.name,
      hash: await sha256Hex(key),
      masked: maskSecret(key),
      models: body.models,
      rpmLimit: body.rpmLimit,
      tpmLimit: body.tpmLimit,
      expiresAt: body.expiresAt,
      createdAt: Date.now(),
    });
    await emitAdminEvent(c, "client_key.create", id, { name: body.name, models: body.models });
    return c.json({ id, key }, 201);
  });

  app.post("/replay", async (c) => {
    const body = await readBody(c, replayBodySchema);
    const jobId = crypto.randomUUID();
    await emitAdminEvent(c, `replay.${body.kind}`, jobId, { jobId, from: body.from, to: body.to, source: body.source });
    return c.json({ id: jobId, status: "pending" }, 202);
  });

  app.get("/replay/:id", async (c) => {
    const job = await findReplayJob(c.env.DB, c.req.param("id"));
    // The consumer records the job when it starts it; until then it is queued.
    return c.json(job ?? { id: c.req.param("id"), status: "pending" });
  });

  app.get("/stats/summary", async (c) => {
    const now = Date.now();
    const settings = await readSettings(c.env.DB);
    const today = dayStart(now, settings.timeZone);
    const [minutes, days, last24h] = await Promise.all([
      bucketTotals(c.env.DB, "rollup_minute", minuteStart(now) - MINUTE_MS, minuteStart(now)),
      bucketTotals(c.env.DB, "rollup_day", today, today),
      rollingTotals(c.env.DB, minuteStart(now) - DAY_MS + MINUTE_MS, now + 1),
    ]);
    return c.json(summarize(minutes, days[0], last24h, now, settings.timeZone));
  });

  /** The series and breakdown queries' common part: bucket range and filters. */
  const statsRange = async (c: AdminContext) => {
    const parsed = statsQuerySchema.safeParse(c.req.query());
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw invalidRequest(`${issue.path.join(".")}: ${issue.message}`, issue.path.join(".") || null);
    }
    const { bucket, count, ...filters } = parsed.data;
    const { timeZone } = await readSettings(c.env.DB);
    const starts = bucketStarts(bucket, count ?? DEFAULT_COUNT[bucket], Date.now(), timeZone);
    return { bucket, starts, filters, table: `rollup_${bucket}` as const };
  };

  app.get("/stats/series", async (c) => {
    const { bucket, starts, filters, table } = await statsRange(c);
    const rows = await seriesRows(c.env.DB, table, starts[0]!, starts.at(-1)!, filters);
    return c.json({ bucket, points: fillSeries(rows, starts) });
  });

  app.get("/stats/breakdown", async (c) => {
    const by = c.req.query("by") ?? "model";
    if (!(["model", "key", "client", "upstream"] as const).includes(by as BreakdownBy)) {
      throw invalidRequest("by must be one of model, key, client, upstream.", "by");
    }
    const { bucket, starts, filters, table } = await statsRange(c);
    const from = starts[0]!;
    const to = starts.at(-1)!;
    const rows = await breakdownRows(c.env.DB, table, from, to, by as BreakdownBy, filters, 100);
    return c.json({ by, bucket, from, to, rows: rows.map(({ id, ...sums }) => ({ id, ...toMetrics(sums) })) });
  });

  return app;
}
