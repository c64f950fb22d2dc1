import { Hono } from "hono";
import { createClientKeyBodySchema, dayStart, updateClientKeyBodySchema } from "../../../schema";
import type { GatewayHono } from "../../context";
import { CLIENT_KEY_PREFIX } from "../../logic/client-auth";
import { maskSecret, randomToken, sha256Hex } from "../../logic/crypto";
import { deleteClientKey, findClientKey, insertClientKey, listClientKeys, updateClientKey } from "../../../storage/client-keys";
import { readSettings } from "../../../storage/settings";
import { emitAdminEvent, notFound, readBody } from "./shared";

/** Client keys: create (shown once), list with today's usage, update, delete. */
export function clientKeyRoutes() {
  const app = new Hono<GatewayHono>();

  app.post("/", async (c) => {
    const body = await readBody(c, createClientKeyBodySchema);
    const id = crypto.randomUUID();
    const key = CLIENT_KEY_PREFIX + randomToken(32);
    const row = { id, name: body.name, masked: maskSecret(key), models: body.models, rpmLimit: body.rpmLimit, tpmLimit: body.tpmLimit, expiresAt: body.expiresAt, enabled: true, createdAt: Date.now() };
    await insertClientKey(c.env.DB, { ...row, hash: await sha256Hex(key) });
    const { masked: _masked, ...after } = row;
    await emitAdminEvent(c, "client_key.create", id, { after });
    return c.json({ id, key }, 201);
  });

  app.get("/", async (c) => {
    const { timeZone } = await readSettings(c.env.DB);
    return c.json({ data: await listClientKeys(c.env.DB, dayStart(Date.now(), timeZone)) });
  });

  app.patch("/:id", async (c) => {
    const id = c.req.param("id");
    const patch = await readBody(c, updateClientKeyBodySchema);
    const before = await findClientKey(c.env.DB, id);
    if (!before) throw notFound("client key", id);
    const after = { ...before, ...patch };
    await updateClientKey(c.env.DB, after, Date.now());
    await emitAdminEvent(c, "client_key.update", id, { before, after });
    return c.json(after);
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    if (!(await deleteClientKey(c.env.DB, id))) throw notFound("client key", id);
    await emitAdminEvent(c, "client_key.delete", id, null);
    return c.json({ deleted: true });
  });

  return app;
}
