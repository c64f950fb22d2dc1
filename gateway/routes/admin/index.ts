import { Hono } from "hono";
import type { GatewayHono, IsolateState } from "../../context";
import { alertRoutes } from "./alerts";
import { backupRoutes } from "./backup";
import { authRoutes, requireAdmin, sameOriginOnly } from "./auth";
import { clientKeyRoutes } from "./client-keys";
import { keyRoutes } from "./keys";
import { metricsRoutes } from "./metrics";
import { op, openApiDocument } from "./openapi";
import { priceRoutes } from "./prices";
import { requestRoutes } from "./requests";
import { settingsRoutes } from "./settings";
import { statsRoutes } from "./stats";
import { upstreamRoutes } from "./upstreams";

/** The admin API under `/admin/api`: every answer uncacheable, every mutation same-origin, everything but login behind a session. */
export function adminRoutes(state: IsolateState) {
  const app = new Hono<GatewayHono>();

  app.use("*", async function noStore(c, next) {
    await next();
    c.header("cache-control", "no-store");
  });
  app.use("*", sameOriginOnly());

  app.route("/", authRoutes());
  // Public: it describes the API, not this deployment (the same document is docs/openapi.json), and
  // tools and SDK generators can read it without a session.
  app.get(
    "/openapi.json",
    op({ tag: "session", public: true, summary: "This document", ok: { description: "The OpenAPI 3.1 description of the admin API." } }, (c) =>
      c.json(openApiDocument(app, "").document),
    ),
  );
  app.use("*", requireAdmin());
  app.route("/upstreams", upstreamRoutes());
  app.route("/keys", keyRoutes(state));
  app.route("/client-keys", clientKeyRoutes());
  app.route("/prices", priceRoutes());
  app.route("/requests", requestRoutes());
  app.route("/alerts", alertRoutes());
  app.route("/", backupRoutes());
  app.route("/", statsRoutes());
  app.route("/", metricsRoutes());
  app.route("/", settingsRoutes());

  return app;
}
