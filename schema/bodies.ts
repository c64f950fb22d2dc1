import { z } from "zod";

/**
 * Request and response bodies kept for the request log, when a setting asks
 * for them. The gateway captures at most `bodyMaxBytes` of each, takes out
 * every key it knows and anything shaped like one, and sends them on the events
 * queue as a message of their own — not an event: bodies are not folded into
 * any projection, only stored (R2, `bodies/<day>/<request id>.json`) for the
 * viewer, and deleted after `retention.bodyDays`.
 */

const capturedSchema = z.object({
  contentType: z.string().max(200).nullable(),
  /** The body as text (a streamed chat answer reassembled into its message), or null when it is not text. */
  text: z.string().nullable(),
  /** Its size as sent, in bytes. */
  bytes: z.number().int().nonnegative(),
  /** Whether `text` stops at the size cap. */
  truncated: z.boolean(),
});
export type CapturedBody = z.infer<typeof capturedSchema>;

export const keptBodiesSchema = z.object({
  requestId: z.string().min(1).max(64),
  /** When the request started (epoch ms): the day it is filed under. */
  ts: z.number().int().nonnegative(),
  request: capturedSchema,
  response: capturedSchema.nullable(),
});
export type KeptBodies = z.infer<typeof keptBodiesSchema>;

/** The queue message that carries them. */
export interface BodiesMessage {
  bodies: KeptBodies;
}

/** Whether a message body carries kept bodies rather than events. */
export function isBodiesMessage(body: unknown): body is BodiesMessage {
  return typeof body === "object" && body !== null && "bodies" in body && typeof (body as { bodies?: unknown }).bodies === "object";
}

/** Where the bodies of a request are kept (R2). */
export function bodiesKey(requestId: string, ts: number): string {
  return `${BODIES_PREFIX}${new Date(ts).toISOString().slice(0, 10)}/${requestId}.json`;
}
export const BODIES_PREFIX = "bodies/";

/** Prefixed keys the providers and Keypool issue (sk-…, sk-or-…, gsk_…, kp-…): never kept, whoever's they are. */
const KEY_SHAPED = /\b(?:sk|gsk|kp|rk|pk)[-_][A-Za-z0-9_-]{16,}/g;

/**
 * Text with every secret taken out: the exact strings given (the client key
 * presented, the upstream keys used) and anything shaped like a provider's or
 * Keypool's key.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret.length >= 8 && out.includes(secret)) out = out.split(secret).join("[redacted]");
  return out.replace(KEY_SHAPED, "[redacted]");
}
