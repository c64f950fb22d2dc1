import { Hono } from "hono";
import type { GatewayHono, IsolateState } from "./context";
import { KeypoolError, errorResponse } from "./errors";
import { DASHBOARD_SECURITY_HEADERS, requireSecrets } from "./middleware";
import { adminRoutes } from "./routes/admin";
import { scrapeRoutes } from "./routes/admin/metrics";
import { openAIRoutes } from "./routes/openai";

const API_PATH = /^\/(v1|admin\/api|metrics)(\/|$)/;

/** The gateway: OpenAI routes at /v1 and the root, the admin API, and the dashboard's assets. */
export function createApp(state: IsolateState) {
  const app = new Hono<GatewayHono>();
  const openai = openAIRoutes(state);

  app.get("/healthz", (c) => c.json({ ok: true }));

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
