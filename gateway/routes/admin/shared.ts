import type { Context } from "hono";
import type { z } from "zod";
import { EVENT_VERSION, newEventId, type AdminEvent } from "../../../schema";
import type { GatewayHono } from "../../context";
import { KeypoolError, invalidRequest } from "../../errors";
import { decodeUtf8Body } from "../../logic/utf8";
import { queueEventSink } from "../../storage/event-sink";

export type AdminContext = Context<GatewayHono>;

/** A 400 for the first problem zod found, naming the field. */
function firstIssue(error: z.ZodError): KeypoolError {
  const issue = error.issues[0]!;
  const param = issue.path.join(".") || null;
  return invalidRequest(param ? `${param}: ${issue.message}` : issue.message, param);
}

/** Largest admin request body: far above a batch of 10,000 keys with their settings. */
const MAX_ADMIN_BODY_BYTES = 16 * 1024 * 1024;

const tooLarge = () => new KeypoolError(413, "invalid_request_error", `The request body is larger than ${MAX_ADMIN_BODY_BYTES} bytes.`, "body_too_large");

/**
 * Reads a JSON body and validates it; 415 for another content type (which also
 * stops cross-site form posts), 413 past the size limit, 400 for bytes that are
 * not UTF-8, text that is not JSON, or JSON the schema refuses.
 */
export async function readBody<S extends z.ZodType>(c: AdminContext, schema: S): Promise<z.infer<S>> {
  if (!(c.req.header("content-type") ?? "").toLowerCase().includes("application/json")) {
    throw new KeypoolError(415, "invalid_request_error", "Send the body as application/json.", "unsupported_media_type");
  }
  if (Number(c.req.header("content-length") ?? "0") > MAX_ADMIN_BODY_BYTES) throw tooLarge();
  const bytes = await c.req.arrayBuffer();
  if (bytes.byteLength > MAX_ADMIN_BODY_BYTES) throw tooLarge();
  const text = decodeUtf8Body(bytes);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw invalidRequest("The request body is not valid JSON.");
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw firstIssue(parsed.error);
  return parsed.data;
}

/** Validates the query string; 400 naming the bad parameter. */
export function readQuery<S extends z.ZodType>(c: AdminContext, schema: S): z.infer<S> {
  const parsed = schema.safeParse(c.req.query());
  if (!parsed.success) throw firstIssue(parsed.error);
  return parsed.data;
}

/**
 * Records a configuration change — who, what, which target, and the values
 * before and after (never a secret). The consumer folds it into the audit log and
 * republishes the snapshot. Sent after D1 holds the change.
 */
export async function emitAdminEvent(c: AdminContext, action: string, target: string | null, detail: Record<string, unknown> | null): Promise<void> {
  const now = Date.now();
  const event: AdminEvent = { v: EVENT_VERSION, type: "admin", id: newEventId(now), ts: now, actor: c.get("admin"), action, target, detail };
  await queueEventSink(c.env)([event]);
}

/** 404 in the admin error shape for a missing resource. */
export function notFound(what: string, id: string, param: string | null = null): KeypoolError {
  return new KeypoolError(404, "not_found_error", `No ${what} with id '${id}'.`, `${what.replace(/ /g, "_")}_not_found`, param);
}
