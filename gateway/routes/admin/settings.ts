import { Hono } from "hono";
import { z } from "zod";
import { auditListSchema, auditQuerySchema, replayBodySchema, replayJobSchema, settingsSchema, type ReplayJob } from "../../../schema";
import { listAudit } from "../../../storage/audit-log";
import { findReplayJob } from "../../../storage/replay-jobs";
import { readSettings, writeSettings } from "../../../storage/settings";
import type { GatewayHono } from "../../context";
import { invalidRequest } from "../../errors";
import { op } from "./openapi";
import { emitAdminEvent } from "./shared";

/** Settings (read, update), the audit trail, and audit replay jobs. */
export function settingsRoutes() {
  const app = new Hono<GatewayHono>();

  app.get(
    "/settings",
    op({ tag: "settings", summary: "Read the settings", ok: { description: "Every setting, defaults filled in.", schema: settingsSchema } }, async (c) =>
      c.json(await readSettings(c.env.DB)),
    ),
  );

  app.patch(
    "/settings",
    op(
      {
        tag: "settings",
        summary: "Change settings",
        description:
          "The fields given are merged into the settings (`retention` one level deep), the result is validated whole and applies without a redeploy: the gateway serves it within seconds.",
        body: z.record(z.string(), z.unknown()),
        bodyShape: settingsSchema.strict(),
        ok: { description: "The settings after the change.", schema: settingsSchema },
      },
      async (c, { body: patch }) => {
        const before = await readSettings(c.env.DB);
        const unknown = Object.keys(patch).filter((k) => !(k in settingsSchema.shape));
        if (unknown.length > 0) throw invalidRequest(`Unknown setting: ${unknown[0]}.`, unknown[0]!);
        const merged = {
          ...before,
          ...patch,
          retention: { ...before.retention, ...(typeof patch.retention === "object" && patch.retention ? patch.retention : {}) },
        };
        const parsed = settingsSchema.safeParse(merged);
        if (!parsed.success) {
          const issue = parsed.error.issues[0]!;
          throw invalidRequest(`${issue.path.join(".")}: ${issue.message}`, issue.path.join("."));
        }
        await writeSettings(c.env.DB, parsed.data, Date.now());
        await emitAdminEvent(c, "settings.update", null, { before, after: parsed.data });
        return c.json(parsed.data);
      },
    ),
  );

  app.get(
    "/audit",
    op(
      {
        tag: "audit",
        summary: "Read the audit trail",
        description:
          "Admin events, newest first: who changed what, with the values before and after (never a secret). Page with `before` (the `ts` of the last one read).",
        query: auditQuerySchema,
        ok: { description: "Admin events, newest first.", schema: auditListSchema },
      },
      async (c, { query }) => c.json({ data: await listAudit(c.env.DB, query.limit, query.before ?? Number.MAX_SAFE_INTEGER) }),
    ),
  );

  app.post(
    "/replay",
    op(
      {
        tag: "audit",
        summary: "Start an audit replay",
        description:
          "`rebuild` replays the archived event log into shadow tables and compares them with the live projections value by value; `requeue` sends archived events (or the dead letters) through the queue again — the dedupe window keeps anything from counting twice; `refold` empties the projections of every fold database and folds the whole archive into them again, the way a pool moves to another list of fold databases (batches wait in the queue while it runs). The consumer runs the job.",
        body: replayBodySchema,
        ok: { status: 202, description: "The job's id; poll GET /replay/{id}.", schema: replayJobSchema },
      },
      async (c, { body }) => {
        const jobId = crypto.randomUUID();
        await emitAdminEvent(c, `replay.${body.kind}`, jobId, { jobId, from: body.from, to: body.to, source: body.source });
        const job: ReplayJob = { id: jobId, status: "pending" };
        return c.json(job, 202);
      },
    ),
  );

  app.get(
    "/replay/:id",
    op(
      {
        tag: "audit",
        summary: "Read a replay job",
        ok: { description: "The job: pending until the consumer starts it, then running, done (with its report) or failed.", schema: replayJobSchema },
      },
      async (c) => {
        const id = c.req.param("id")!;
        // The consumer records the job when it starts it; until then it is queued.
        const job: ReplayJob = ((await findReplayJob(c.env.DB, id)) as ReplayJob | null) ?? { id, status: "pending" };
        return c.json(job);
      },
    ),
  );

  return app;
}
