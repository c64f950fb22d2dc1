import { Hono } from "hono";
import { z } from "zod";
import {
  PUBLISHED_PRICES,
  PUBLISHED_PRICES_READ_ON,
  fromMicros,
  priceBodySchema,
  priceListSchema,
  priceViewSchema,
  toMicros,
  type Price,
  type PriceBody,
  type PriceView,
} from "../../../schema";
import { insertPriceRow, readPriceBook } from "../../../storage/prices";
import { readSettings } from "../../../storage/settings";
import { findUpstream } from "../../../storage/upstreams";
import type { GatewayHono } from "../../context";
import { invalidRequest } from "../../errors";
import { op } from "./openapi";
import { emitAdminEvent, notFound, type AdminContext } from "./shared";

/** A price as the admin API shows it: units of the currency, exactly as entered. */
function priceView(p: Price): PriceView {
  const units = (m: number | null) => (m === null ? null : fromMicros(m));
  return {
    model: p.model,
    upstreamId: p.upstreamId === "" ? null : p.upstreamId,
    input: units(p.input),
    cachedInput: units(p.cachedInput),
    output: units(p.output),
    perRequest: units(p.perRequest),
    source: p.source,
    effectiveFrom: p.effectiveFrom,
  };
}

/** A price as stored, from what the admin API took. */
function priceOf(body: Omit<PriceBody, "effectiveFrom">, effectiveFrom: number): Price {
  const micros = (u: number | null) => (u === null ? null : toMicros(u));
  return {
    model: body.model,
    upstreamId: body.upstreamId ?? "",
    input: micros(body.input),
    cachedInput: micros(body.cachedInput),
    output: micros(body.output),
    perRequest: micros(body.perRequest),
    source: body.source,
    effectiveFrom,
  };
}

/** How far in the past a price's moment may lie: a clock a little behind is not a retroactive change. */
const PAST_SLACK_MS = 60_000;

async function effectiveFromOf(c: AdminContext, body: { effectiveFrom?: number | undefined; upstreamId: string | null }): Promise<number> {
  const now = Date.now();
  if (body.effectiveFrom !== undefined && body.effectiveFrom < now - PAST_SLACK_MS)
    throw invalidRequest("effectiveFrom lies in the past: attempts already counted keep the price they were counted at.", "effectiveFrom");
  if (body.upstreamId !== null && !(await findUpstream(c.env.DB, body.upstreamId))) throw notFound("upstream", body.upstreamId, "upstreamId");
  return Math.max(now, body.effectiveFrom ?? now);
}

const removeQuerySchema = z.object({
  model: z.string().trim().min(1).max(200),
  upstreamId: z.string().trim().min(1).max(100).optional(),
});

/** Prices: read, set (from now or a later moment), remove, and add the published prices of common models. */
export function priceRoutes() {
  const app = new Hono<GatewayHono>();

  app.get(
    "/",
    op(
      {
        tag: "prices",
        summary: "List prices",
        description:
          "The prices in force now and those set for later, in units of the pool's currency per million tokens (or per request), with the published prices of common models Keypool knows.",
        ok: { description: "Prices, and the published ones.", schema: priceListSchema },
      },
      async (c) => {
        const [settings, book] = await Promise.all([readSettings(c.env.DB), readPriceBook(c.env.DB)]);
        const published = PUBLISHED_PRICES.map((p) => priceView(priceOf({ ...p, upstreamId: null }, 0)));
        return c.json({
          currency: settings.currency,
          data: book.current(Date.now()).map(priceView),
          published: { readOn: PUBLISHED_PRICES_READ_ON, prices: published },
        });
      },
    ),
  );

  app.put(
    "/",
    op(
      {
        tag: "prices",
        summary: "Set a price",
        description:
          "Sets the price of a model — for every upstream, or for one (`upstreamId`), which wins — from now (or a later `effectiveFrom`). The price it replaces stays in the history: attempts are priced by the price in force at their time, also in a replay.",
        body: priceBodySchema,
        ok: { description: "The price as stored.", schema: priceViewSchema },
      },
      async (c, { body }) => {
        const price = priceOf(body, await effectiveFromOf(c, body));
        await insertPriceRow(c.env.DB, crypto.randomUUID(), price, false, Date.now()).run();
        const view = priceView(price);
        await emitAdminEvent(c, "price.set", body.model, { after: view });
        return c.json(view);
      },
    ),
  );

  app.delete(
    "/",
    op(
      {
        tag: "prices",
        summary: "Remove a price",
        description:
          "From now on the model (at the upstream, when given) has no price of its own: an upstream's falls back to the model's pool-wide price, a pool-wide one to an unknown cost. Attempts before keep theirs.",
        query: removeQuerySchema,
        ok: { description: "Removed.", schema: z.object({ deleted: z.literal(true) }) },
      },
      async (c, { query }) => {
        const now = Date.now();
        const upstreamId = query.upstreamId ?? "";
        const book = await readPriceBook(c.env.DB);
        const before = book.current(now).find((p) => p.model === query.model && p.upstreamId === upstreamId && p.effectiveFrom <= now);
        if (!before) throw notFound("price", upstreamId === "" ? query.model : `${query.model}@${upstreamId}`, "model");
        const removal: Price = { ...before, effectiveFrom: now };
        await insertPriceRow(c.env.DB, crypto.randomUUID(), removal, true, now).run();
        await emitAdminEvent(c, "price.remove", query.model, { before: priceView(before) });
        return c.json({ deleted: true as const });
      },
    ),
  );

  app.post(
    "/published",
    op(
      {
        tag: "prices",
        summary: "Add the published prices",
        description: `Sets, from now, the published price of each common model Keypool knows (read ${PUBLISHED_PRICES_READ_ON}) that has no pool-wide price yet; prices already set are left as they are.`,
        ok: { description: "How many prices were added.", schema: z.object({ added: z.number().int() }) },
      },
      async (c) => {
        const now = Date.now();
        const book = await readPriceBook(c.env.DB);
        const priced = new Set(
          book
            .current(now)
            .filter((p) => p.upstreamId === "")
            .map((p) => p.model),
        );
        const missing = PUBLISHED_PRICES.filter((p) => !priced.has(p.model)).map((p) =>
          priceOf({ ...p, upstreamId: null, source: `${p.source} (read ${PUBLISHED_PRICES_READ_ON})` }, now),
        );
        if (missing.length > 0) {
          await c.env.DB.batch(missing.map((p) => insertPriceRow(c.env.DB, crypto.randomUUID(), p, false, now)));
          await emitAdminEvent(c, "price.add_published", null, { added: missing.map(priceView) });
        }
        return c.json({ added: missing.length });
      },
    ),
  );

  return app;
}
