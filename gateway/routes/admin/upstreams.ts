import { Hono } from "hono";
import { z } from "zod";
import { createUpstreamBodySchema, updateUpstreamBodySchema } from "../../../schema";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { countKeys } from "../../../storage/keys";
import { deleteUpstream, findUpstream, insertUpstream, listUpstreams, updateUpstream } from "../../../storage/upstreams";
import { emitAdminEvent, notFound, readBody, readQuery } from "./shared";

/** Upstreams: create, list, update, delete (refused while keys use one, unless cascading). */
export function upstreamRoutes() {
  const app = new Hono<GatewayHono>();

  app.post("/", async (c) => {
    const body = await readBody(c, createUpstreamBodySchema);
    const id = crypto.randomUUID();
    const { name, baseUrl, kind, models, aliases } = body;
    await insertUpstream(c.env.DB, { id, name, baseUrl, kind, models, aliases, enabled: true, createdAt: Date.now() });
    await emitAdminEvent(c, "upstream.create", id, { after: { name, baseUrl, kind, models, aliases } });
    return c.json({ id }, 201);
  });

  app.get("/", async (c) => c.json({ data: await listUpstreams(c.env.DB) }));

  app.patch("/:id", async (c) => {
    const id = c.req.param("id");
    const patch = await readBody(c, updateUpstreamBodySchema);
    const before = await findUpstream(c.env.DB, id);
    if (!before) throw notFound("upstream", id);
    const after = { ...before, ...patch };
    await updateUpstream(c.env.DB, after, Date.now());
    await emitAdminEvent(c, "upstream.update", id, { before, after });
    return c.json(after);
  });

  app.delete("/:id", async (c) => {
    const id = c.req.param("id");
    const { cascade } = readQuery(c, z.object({ cascade: z.enum(["true", "false"]).default("false") }));
    const upstream = await findUpstream(c.env.DB, id);
    if (!upstream) throw notFound("upstream", id);
    const keys = await countKeys(c.env.DB, id);
    if (keys > 0 && cascade !== "true") {
      throw new KeypoolError(409, "invalid_request_error", `Upstream '${upstream.name}' still has ${keys} key(s); delete them first or pass ?cascade=true.`, "upstream_in_use");
    }
    const deletedKeys = await deleteUpstream(c.env.DB, id, cascade === "true");
    await emitAdminEvent(c, "upstream.delete", id, { before: upstream, deletedKeys });
    return c.json({ deleted: true, deletedKeys });
  });

  return app;
}
