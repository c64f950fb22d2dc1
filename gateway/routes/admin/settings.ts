import { Hono } from "hono";
import { z } from "zod";
import { replayBodySchema, settingsSchema } from "../../../schema";
import type { GatewayHono } from "../../context";
import { invalidRequest } from "../../errors";
import { listAudit } from "../../../storage/audit-log";
import { findReplayJob } from "../../../storage/replay-jobs";
import { readSettings, writeSettings } from "../../../storage/settings";
import { emitAdminEvent, readBody, readQuery } from "./shared";

/** Settings (read, update), the audit trail, and audit replay jobs. */
export function settingsRoutes() {
  const app = new Hono<GatewayHono>();

  app.get("/settings", async (c) => c.json(await readSettings(c.env.DB)));

  /** Merges the given fields into the settings (one level deep for `retention`), validates the result, stores it. */
  app.patch("/settings", async (c) => {
    const patch = await readBody(c, z.record(z.string(), z.unknown()));
    const before = await readSettings(c.env.DB);
    const unknown = Object.keys(patch).filter((k) => !(k in settingsSchema.shape));
    if (unknown.length > 0) throw invalidRequest(`Unknown setting: ${unknown[0]}.`, unknown[0]!);
    const merged = { ...before, ...patch, retention: { ...before.retention, ...(typeof patch.retention === "object" && patch.retention ? patch.retention : {}) } };
    const parsed = settingsSchema.safeParse(merged);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw invalidRequest(`${issue.path.join(".")}: ${issue.message}`, issue.path.join("."));
    }
    await writeSettings(c.env.DB, parsed.data, Date.now());
    await emitAdminEvent(c, "settings.update", null, { before, after: parsed.data });
    return c.json(parsed.data);
  });

  app.get("/audit", async (c) => {
    const q = readQuery(c, z.object({ limit: z.coerce.number().int().min(1).max(500).default(100), before: z.coerce.number().int().positive().optional() }));
    return c.json({ data: await listAudit(c.env.DB, q.limit, q.before ?? Number.MAX_SAFE_INTEGER) });
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

  return app;
}
