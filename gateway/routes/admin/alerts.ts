import { Hono } from "hono";
import { z } from "zod";
import {
  alertListQuerySchema,
  alertListSchema,
  destinationCreateSchema,
  destinationPatchSchema,
  destinationViewSchema,
  maskUrl,
  type DestinationView,
} from "../../../schema";
import { encryptSecret, importEncryptionKey, randomToken } from "../../../schema/crypto";
import {
  deleteDestination,
  deliverDue,
  destinationView,
  getAlert,
  getDestination,
  insertDestination,
  listAlerts,
  listDestinations,
  raiseAlerts,
  updateDestination,
  type DestinationRow,
} from "../../../storage/alerts";
import { readSettings } from "../../../storage/settings";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { alertSecretCacheFor } from "../../logic/secrets";
import { op } from "./openapi";
import { emitAdminEvent, notFound, type AdminContext } from "./shared";

/** The key that seals destinations, or a 503 saying which secret to set. */
export async function sealingKey(c: AdminContext): Promise<CryptoKey> {
  try {
    return await importEncryptionKey(c.env.ALERT_ENCRYPTION_KEY ?? "", "ALERT_ENCRYPTION_KEY");
  } catch {
    throw new KeypoolError(
      503,
      "server_error",
      "Alert destinations need the ALERT_ENCRYPTION_KEY secret (32 random bytes, base64) in both Workers; see docs/alerts.md.",
      "alerts_not_configured",
    );
  }
}

/** A fresh signing secret for a generic webhook. */
const newSigningSecret = () => `whsec_${randomToken(32)}`;

/** The view of a destination just written (its counts start at what they were). */
function viewOf(row: DestinationRow, extra: Partial<DestinationView> = {}): DestinationView {
  return { ...destinationView(row), sent24h: 0, failed24h: 0, ...extra };
}

const testResultSchema = z.object({
  delivered: z.boolean(),
  /** The receiver's HTTP status (null: no answer). */
  status: z.number().int().nullable(),
  error: z.string().nullable(),
  alertId: z.string(),
});

/** Alert destinations, the history of alerts and their deliveries, and a test message. */
export function alertRoutes() {
  const app = new Hono<GatewayHono>();

  app.get(
    "/destinations",
    op(
      {
        tag: "alerts",
        summary: "List alert destinations",
        description: "Each destination with its URL masked, the kinds it takes, and its deliveries sent and failed in the last 24 hours.",
        ok: { description: "Destinations.", schema: z.object({ data: z.array(destinationViewSchema) }) },
      },
      async (c) => c.json({ data: await listDestinations(c.env.DB, Date.now()) }),
    ),
  );

  app.post(
    "/destinations",
    op(
      {
        tag: "alerts",
        summary: "Add an alert destination",
        description:
          "A generic JSON webhook (signed: the answer carries its signing secret, once), or a Slack or Discord incoming webhook. The URL is stored encrypted and shown masked from now on.",
        body: destinationCreateSchema,
        ok: { status: 201, description: "The destination; `signingSecret` for webhooks, shown only here.", schema: destinationViewSchema },
      },
      async (c, { body }) => {
        const key = await sealingKey(c);
        const now = Date.now();
        const signingSecret = body.kind === "webhook" ? newSigningSecret() : undefined;
        const row: DestinationRow = {
          id: crypto.randomUUID(),
          name: body.name,
          kind: body.kind,
          url_enc: await encryptSecret(key, body.url),
          url_masked: maskUrl(body.url),
          secret_enc: signingSecret ? await encryptSecret(key, signingSecret) : null,
          kinds: JSON.stringify(body.kinds),
          enabled: body.enabled ? 1 : 0,
          created_at: now,
          updated_at: now,
        };
        await insertDestination(c.env.DB, row);
        const view = viewOf(row);
        await emitAdminEvent(c, "alert_destination.create", row.id, { after: view });
        return c.json(signingSecret ? { ...view, signingSecret } : view, 201);
      },
    ),
  );

  app.patch(
    "/destinations/:id",
    op(
      {
        tag: "alerts",
        summary: "Change an alert destination",
        description: "Name, URL, kinds, on or off; `rotateSecret: true` gives a webhook a new signing secret (in the answer, once).",
        body: destinationPatchSchema,
        ok: { description: "The destination.", schema: destinationViewSchema },
        errors: { 404: "No such destination." },
      },
      async (c, { body }) => {
        const id = c.req.param("id")!;
        const before = await getDestination(c.env.DB, id);
        if (!before) throw notFound("alert destination", id);
        const needsKey = body.url !== undefined || body.rotateSecret === true;
        const key = needsKey ? await sealingKey(c) : null;
        const signingSecret = body.rotateSecret && before.kind === "webhook" ? newSigningSecret() : undefined;
        const row: DestinationRow = {
          ...before,
          name: body.name ?? before.name,
          url_enc: body.url !== undefined ? await encryptSecret(key!, body.url) : before.url_enc,
          url_masked: body.url !== undefined ? maskUrl(body.url) : before.url_masked,
          secret_enc: signingSecret ? await encryptSecret(key!, signingSecret) : before.secret_enc,
          kinds: body.kinds !== undefined ? JSON.stringify(body.kinds) : before.kinds,
          enabled: body.enabled === undefined ? before.enabled : body.enabled ? 1 : 0,
          updated_at: Date.now(),
        };
        await updateDestination(c.env.DB, row);
        const view = viewOf(row);
        await emitAdminEvent(c, "alert_destination.update", id, {
          before: viewOf(before),
          after: view,
          ...(signingSecret ? { rotatedSecret: true } : {}),
        });
        return c.json(signingSecret ? { ...view, signingSecret } : view);
      },
    ),
  );

  app.delete(
    "/destinations/:id",
    op(
      {
        tag: "alerts",
        summary: "Remove an alert destination",
        description: "Deliveries still waiting for it are dropped; the history of those sent and failed stays.",
        ok: { description: "Removed.", schema: z.object({ deleted: z.literal(true) }) },
        errors: { 404: "No such destination." },
      },
      async (c) => {
        const id = c.req.param("id")!;
        const before = await getDestination(c.env.DB, id);
        if (!before || !(await deleteDestination(c.env.DB, id))) throw notFound("alert destination", id);
        await emitAdminEvent(c, "alert_destination.delete", id, { before: viewOf(before) });
        return c.json({ deleted: true as const });
      },
    ),
  );

  app.post(
    "/destinations/:id/test",
    op(
      {
        tag: "alerts",
        summary: "Send a test alert",
        description:
          "Sends a test alert to this destination now, in its format and signed like any other, and says what the receiver answered. It is kept in the history; a failure is retried like any delivery.",
        ok: { description: "What the receiver answered.", schema: testResultSchema },
        errors: { 404: "No such destination." },
      },
      async (c) => {
        const id = c.req.param("id")!;
        const destination = await getDestination(c.env.DB, id);
        if (!destination) throw notFound("alert destination", id);
        await sealingKey(c);
        const settings = await readSettings(c.env.DB);
        const now = Date.now();
        const [alertId] = await raiseAlerts(
          c.env.DB,
          [
            {
              kind: "test",
              status: "firing",
              title: `Test alert from Keypool to ${destination.name}`,
              items: [{ subject: "test", label: "test", detail: `sent by ${c.get("admin")} from the dashboard` }],
            },
          ],
          settings.alerts,
          now,
          id,
        );
        const secrets = alertSecretCacheFor(c.env.ALERT_ENCRYPTION_KEY);
        await deliverDue({ db: c.env.DB, open: (s) => secrets.decrypt(s), fetch: (input, init) => fetch(input, init), now: Date.now }, [alertId!]);
        const delivery = (await getAlert(c.env.DB, alertId!))?.deliveries[0];
        return c.json({
          delivered: delivery?.status === "sent",
          status: delivery?.lastStatus ?? null,
          error: delivery?.lastError ?? null,
          alertId: alertId!,
        });
      },
    ),
  );

  app.get(
    "/",
    op(
      {
        tag: "alerts",
        summary: "List alerts",
        description:
          "Alerts raised, newest first, each with its deliveries: sent, pending (with the next retry) or failed (with the receiver's answer). `failed=true` keeps those with a failed delivery.",
        query: alertListQuerySchema,
        ok: { description: "A page of alerts and the cursor of the next.", schema: alertListSchema },
      },
      async (c, { query }) =>
        c.json(
          await listAlerts(c.env.DB, {
            limit: query.limit,
            ...(query.cursor ? { cursor: query.cursor } : {}),
            ...(query.kind ? { kind: query.kind } : {}),
            failed: query.failed === "true",
          }),
        ),
    ),
  );

  return app;
}
