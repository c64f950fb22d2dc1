import { Hono } from "hono";
import {
  clientKeyListSchema,
  clientKeyStatusSchema,
  clientKeyRecordSchema,
  createClientKeyBodySchema,
  createClientKeyResponseSchema,
  dayStart,
  deletedSchema,
  monthStart,
  updateClientKeyBodySchema,
} from "../../../schema";
import { deleteClientKey, findClientKey, insertClientKey, listClientKeys, snapshotClientOf, updateClientKey } from "../../../storage/client-keys";
import { readClientDays, rollupsKeptFrom } from "../../../storage/rollups";
import { foldDatabases } from "../../../storage/fold-databases";
import { ClientLimiter, clientKeyStatus, hasQuota } from "../../logic/client-limits";
import { readPoolUsage } from "../../storage/snapshot-cache";
import { readSettings } from "../../../storage/settings";
import type { GatewayHono } from "../../context";
import { CLIENT_KEY_PREFIX } from "../../logic/client-auth";
import { maskSecret, randomToken, sha256Hex } from "../../../schema/crypto";
import { op } from "./openapi";
import { emitAdminEvent, notFound } from "./shared";

/** Client keys: create (shown once), list with today's usage, update, delete. */
export function clientKeyRoutes() {
  const app = new Hono<GatewayHono>();

  app.post(
    "/",
    op(
      {
        tag: "client keys",
        summary: "Create a client key",
        description:
          "The key is in this answer and nowhere else: only its SHA-256 is stored. It may be limited to models, expire, and have limits: requests and tokens a minute and a day, tokens a month, and budgets a day and a month in the pool's currency — each enforced pool-wide (docs/quotas.md).",
        body: createClientKeyBodySchema,
        ok: { status: 201, description: "The new key's id, and the key itself (shown once).", schema: createClientKeyResponseSchema },
      },
      async (c, { body }) => {
        const id = crypto.randomUUID();
        const key = CLIENT_KEY_PREFIX + randomToken(32);
        const row = {
          id,
          name: body.name,
          masked: maskSecret(key),
          models: body.models,
          rpmLimit: body.rpmLimit,
          tpmLimit: body.tpmLimit,
          rpdLimit: body.rpdLimit,
          tpdLimit: body.tpdLimit,
          monthlyTokenLimit: body.monthlyTokenLimit,
          dailyBudget: body.dailyBudget,
          monthlyBudget: body.monthlyBudget,
          expiresAt: body.expiresAt,
          enabled: true,
          smoothStreams: body.smoothStreams,
          storeBodies: body.storeBodies,
          createdAt: Date.now(),
        };
        await insertClientKey(c.env.DB, { ...row, hash: await sha256Hex(key) });
        const { masked: _masked, ...after } = row;
        await emitAdminEvent(c, "client_key.create", id, { after });
        return c.json({ id, key }, 201);
      },
    ),
  );

  app.get(
    "/",
    op(
      {
        tag: "client keys",
        summary: "List the client keys",
        ok: { description: "Every client key, masked, with its limits and usage today.", schema: clientKeyListSchema },
      },
      async (c) => {
        const { timeZone } = await readSettings(c.env.DB);
        return c.json({ data: await listClientKeys(c.env.DB, dayStart(Date.now(), timeZone)) });
      },
    ),
  );

  app.patch(
    "/:id",
    op(
      {
        tag: "client keys",
        summary: "Change a client key",
        description: "Any of its name, models, limits, expiry and enabled state; fields left out keep their values.",
        body: updateClientKeyBodySchema,
        ok: { description: "The client key after the change.", schema: clientKeyRecordSchema },
        errors: { 404: "No such client key." },
      },
      async (c, { body }) => {
        const id = c.req.param("id")!;
        const before = await findClientKey(c.env.DB, id);
        if (!before) throw notFound("client key", id);
        const after = { ...before, ...body };
        await updateClientKey(c.env.DB, after, Date.now());
        await emitAdminEvent(c, "client_key.update", id, { before, after });
        return c.json(after);
      },
    ),
  );

  app.get(
    "/:id/usage",
    op(
      {
        tag: "client keys",
        summary: "A client key's quotas and usage",
        description:
          "What the client itself reads at GET /v1/key: each quota with what is used of it, as the pool last counted it (the consumer's count, published about once a second), and its requests, tokens and spend today and this month.",
        ok: { description: "The client key's quotas and usage.", schema: clientKeyStatusSchema },
        errors: { 404: "No such client key." },
      },
      async (c) => {
        const id = c.req.param("id")!;
        const now = Date.now();
        const [record, settings, usage] = await Promise.all([findClientKey(c.env.DB, id), readSettings(c.env.DB), readPoolUsage(c.env.SNAPSHOT)]);
        if (!record) throw notFound("client key", id);
        const client = snapshotClientOf(record);
        const clock = { now, timeZone: settings.timeZone };
        const windows = hasQuota(client) ? new ClientLimiter().windows(client, usage?.clients?.get(id), usage?.at ?? 0, clock) : [];
        const counted = await readClientDays(
          foldDatabases(c.env),
          id,
          monthStart(now, settings.timeZone),
          dayStart(now, settings.timeZone),
          rollupsKeptFrom(settings, "minute", now, "client"),
        );
        return c.json(clientKeyStatus(client, windows, counted, settings));
      },
    ),
  );

  app.delete(
    "/:id",
    op(
      { tag: "client keys", summary: "Delete a client key", ok: { description: "Deleted.", schema: deletedSchema }, errors: { 404: "No such client key." } },
      async (c) => {
        const id = c.req.param("id")!;
        if (!(await deleteClientKey(c.env.DB, id))) throw notFound("client key", id);
        await emitAdminEvent(c, "client_key.delete", id, null);
        return c.json({ deleted: true });
      },
    ),
  );

  return app;
}
