import { Hono } from "hono";
import {
  createUpstreamBodySchema,
  createdSchema,
  updateUpstreamBodySchema,
  upstreamDeleteQuerySchema,
  upstreamDeletedSchema,
  upstreamListSchema,
  upstreamViewSchema,
} from "../../../schema";
import { countKeys } from "../../../storage/keys";
import { deleteUpstream, findUpstream, insertUpstream, listUpstreams, updateUpstream } from "../../../storage/upstreams";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { op } from "./openapi";
import { emitAdminEvent, notFound } from "./shared";

/** Upstreams: create, list, update, delete (refused while keys use one, unless cascading). */
export function upstreamRoutes() {
  const app = new Hono<GatewayHono>();

  app.post(
    "/",
    op(
      {
        tag: "upstreams",
        summary: "Add an upstream",
        description:
          "`baseUrl` is what an OpenAI SDK takes as `baseURL`; `kind` picks how keys are probed; an empty `models` serves any model; `aliases` maps a client's model name to the upstream's.",
        body: createUpstreamBodySchema,
        ok: { status: 201, description: "The new upstream's id.", schema: createdSchema },
      },
      async (c, { body }) => {
        const id = crypto.randomUUID();
        const { name, baseUrl, kind, models, aliases, limits } = body;
        await insertUpstream(c.env.DB, { id, name, baseUrl, kind, models, aliases, limits, enabled: true, createdAt: Date.now() });
        await emitAdminEvent(c, "upstream.create", id, { after: { name, baseUrl, kind, models, aliases, limits } });
        return c.json({ id }, 201);
      },
    ),
  );

  app.get(
    "/",
    op(
      { tag: "upstreams", summary: "List the upstreams", ok: { description: "Every upstream, with how many keys it holds.", schema: upstreamListSchema } },
      async (c) => c.json({ data: await listUpstreams(c.env.DB) }),
    ),
  );

  app.patch(
    "/:id",
    op(
      {
        tag: "upstreams",
        summary: "Change an upstream",
        description: "Any of its fields; those left out keep their values.",
        body: updateUpstreamBodySchema,
        ok: { description: "The upstream after the change.", schema: upstreamViewSchema },
        errors: { 404: "No such upstream." },
      },
      async (c, { body }) => {
        const id = c.req.param("id")!;
        const before = await findUpstream(c.env.DB, id);
        if (!before) throw notFound("upstream", id);
        const after = { ...before, ...body };
        await updateUpstream(c.env.DB, after, Date.now());
        await emitAdminEvent(c, "upstream.update", id, { before, after });
        return c.json(after);
      },
    ),
  );

  app.delete(
    "/:id",
    op(
      {
        tag: "upstreams",
        summary: "Delete an upstream",
        description: "Refused while keys use it, unless `cascade=true`, which deletes them too.",
        query: upstreamDeleteQuerySchema,
        ok: { description: "Deleted, with how many keys went with it.", schema: upstreamDeletedSchema },
        errors: { 404: "No such upstream.", 409: "The upstream still has keys and `cascade` is not `true`." },
      },
      async (c, { query }) => {
        const id = c.req.param("id")!;
        const upstream = await findUpstream(c.env.DB, id);
        if (!upstream) throw notFound("upstream", id);
        const keys = await countKeys(c.env.DB, id);
        if (keys > 0 && query.cascade !== "true") {
          throw new KeypoolError(
            409,
            "invalid_request_error",
            `Upstream '${upstream.name}' still has ${keys} key(s); delete them first or pass ?cascade=true.`,
            "upstream_in_use",
          );
        }
        const deletedKeys = await deleteUpstream(c.env.DB, id, query.cascade === "true");
        await emitAdminEvent(c, "upstream.delete", id, { before: upstream, deletedKeys });
        return c.json({ deleted: true, deletedKeys });
      },
    ),
  );

  return app;
}
