import { describe, expect, it } from "vitest";
import type { z } from "zod";
import {
  auditListSchema,
  clientKeyListSchema,
  keyListSchema,
  sessionViewSchema,
  settingsSchema,
  statsBreakdownSchema,
  statsSeriesSchema,
  statsSummarySchema,
  upstreamListSchema,
} from "../../schema";
import { createApp } from "../../gateway/app";
import { openApiDocument } from "../../gateway/routes/admin/openapi";
import { createIsolateState } from "../../gateway/worker";
import { admin, gateway } from "./helpers";

describe("/admin/api/openapi.json", () => {
  it("is served without a session and describes every admin route of the gateway, nothing more", async () => {
    const res = await gateway("/admin/api/openapi.json");
    expect(res.status).toBe(200);
    const served = (await res.json()) as { openapi: string; paths: Record<string, Record<string, unknown>> };
    expect(served.openapi).toBe("3.1.0");
    const app = createApp(createIsolateState());
    const { document, undocumented } = openApiDocument(app, "/admin/api");
    expect(undocumented).toEqual([]);
    expect(served).toEqual(document);
    const routes = new Set(
      app.routes
        .filter((r) => r.method !== "ALL" && r.path.startsWith("/admin/api/"))
        .map((r) => `${r.method.toLowerCase()} ${r.path.slice("/admin/api".length).replace(/:(\w+)/g, "{$1}")}`),
    );
    const documented = new Set(Object.entries(served.paths).flatMap(([p, methods]) => Object.keys(methods).map((m) => `${m} ${p}`)));
    expect([...documented].sort()).toEqual([...routes].sort());
  });

  it("says what the reads answer: their answers parse with the schemas it was built from", async () => {
    const reads: [string, z.ZodType][] = [
      ["/session", sessionViewSchema],
      ["/upstreams", upstreamListSchema],
      ["/keys?limit=5", keyListSchema],
      ["/client-keys", clientKeyListSchema],
      ["/settings", settingsSchema],
      ["/audit?limit=5", auditListSchema],
      ["/stats/summary", statsSummarySchema],
      ["/stats/series?bucket=hour&count=3", statsSeriesSchema],
      ["/stats/breakdown?by=upstream", statsBreakdownSchema],
    ];
    for (const [path, schema] of reads) {
      const { status, body } = await admin("GET", path);
      expect(status, path).toBe(200);
      const parsed = schema.safeParse(body);
      expect(parsed.success ? [] : parsed.error.issues, path).toEqual([]);
    }
  });
});
