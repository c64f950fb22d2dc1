import { Hono } from "hono";
import type { GatewayHono, IsolateState } from "../../context";
import { authRoutes, requireAdmin, sameOriginOnly } from "./auth";
import { clientKeyRoutes } from "./client-keys";
import { keyRoutes } from "./keys";
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
  app.use("*", requireAdmin());
  app.route("/upstreams", upstreamRoutes());
  app.route("/keys", keyRoutes(state));
  app.route("/client-keys", clientKeyRoutes());
  app.route("/", statsRoutes());
  app.route("/", settingsRoutes());

  return app;
}
