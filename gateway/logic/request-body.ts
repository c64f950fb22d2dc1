import type { SnapshotUpstream } from "../../schema";

/** Endpoints whose streams can report usage when asked with `stream_options.include_usage`. */
const USAGE_OPTION_ENDPOINTS = new Set(["/chat/completions", "/completions"]);

/** The client's request as read once, before any attempt. */
export interface ClientBody {
  endpoint: string;
  bytes: ArrayBuffer;
  /** The parsed JSON object, or null for multipart bodies. */
  json: Record<string, unknown> | null;
  /** The client's content type (multipart ones carry the boundary). */
  contentType: string;
  model: string;
  stream: boolean;
}

/** What one attempt sends upstream. */
export interface UpstreamBody {
  body: BodyInit;
  /** Replaces the client's content type (a rebuilt multipart body has a new boundary); null keeps it. */
  contentType: string | null;
  /** Keypool asked for the usage chunk itself, so the client must not see it. */
  dropUsageChunk: boolean;
}

/** Whether a stream to this endpoint should be asked for usage on the client's behalf. */
function wantsUsageOption(body: ClientBody): boolean {
  if (!body.stream || !body.json || !USAGE_OPTION_ENDPOINTS.has(body.endpoint)) return false;
  const options = body.json.stream_options;
  return !(typeof options === "object" && options !== null && (options as { include_usage?: unknown }).include_usage === true);
}

/**
 * The body for one upstream: the client's bytes unchanged, unless this upstream
 * calls the model by an alias (the `model` field is rewritten) or the stream must
 * be asked for usage (`stream_options.include_usage` is added). Fields Keypool does
 * not know are always kept.
 */
export async function bodyForUpstream(body: ClientBody, upstream: SnapshotUpstream): Promise<UpstreamBody> {
  const alias = Object.hasOwn(upstream.aliases, body.model) ? upstream.aliases[body.model] : undefined;
  const injectUsage = wantsUsageOption(body);
  if (alias === undefined && !injectUsage) return { body: body.bytes, contentType: null, dropUsageChunk: false };
  if (body.json) {
    const copy: Record<string, unknown> = { ...body.json };
    if (alias !== undefined) copy.model = alias;
    if (injectUsage) copy.stream_options = { ...(typeof copy.stream_options === "object" ? copy.stream_options : {}), include_usage: true };
    return { body: JSON.stringify(copy), contentType: null, dropUsageChunk: injectUsage };
  }
  const form = await new Request("https://keypool.invalid/", { method: "POST", headers: { "content-type": body.contentType }, body: body.bytes }).formData();
  form.set("model", alias!);
  const rebuilt = new Request("https://keypool.invalid/", { method: "POST", body: form });
  return { body: await rebuilt.arrayBuffer(), contentType: rebuilt.headers.get("content-type"), dropUsageChunk: false };
}

/**
 * The completion tokens a request asks for at most (`max_tokens`,
 * `max_completion_tokens`, or the Responses API's `max_output_tokens`); 0 when
 * it sets none. Providers count it against a tokens-per-minute limit when the
 * request arrives.
 */
export function requestedCompletionTokens(json: Record<string, unknown> | null): number {
  if (!json) return 0;
  for (const field of ["max_completion_tokens", "max_tokens", "max_output_tokens"]) {
    const v = json[field];
    if (typeof v === "number" && Number.isFinite(v) && v > 0) return Math.floor(v);
  }
  return 0;
}

/** Deepest nesting of arrays and objects a request body may have; real requests (tool schemas included) stay far below. */
export const MAX_JSON_DEPTH = 64;

/**
 * Bodies larger than this are scanned for their nesting before they are parsed:
 * `JSON.parse` of megabytes of `[[[[…` builds millions of arrays, more heap
 * than an isolate may hold.
 * Smaller bodies are checked after parsing, which costs a long prompt almost
 * nothing (see `nestsDeeperThan`).
 */
export const SCAN_BEFORE_PARSE_BYTES = 1024 * 1024;

/**
 * Whether the JSON text nests arrays and objects deeper than `max`, scanning the
 * bytes once without parsing (brackets inside strings do not count).
 */
export function jsonNestsDeeperThan(bytes: Uint8Array, max: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (inString) {
      if (b === 0x5c)
        i++; // a backslash escapes the next byte
      else if (b === 0x22) inString = false;
    } else if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) {
      if (++depth > max) return true;
    } else if (b === 0x5d || b === 0x7d) depth--;
  }
  return false;
}

/**
 * Whether a parsed JSON value nests arrays and objects deeper than `max`. It
 * walks only arrays and objects — strings are leaves, so a long prompt costs a
 * few steps, not one per byte — and stops as soon as it is past `max`.
 * (JSON.parse itself takes any depth without recursion.)
 */
export function nestsDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (max <= 0) return true;
  if (Array.isArray(value)) {
    for (const v of value) if (typeof v === "object" && v !== null && nestsDeeperThan(v, max - 1)) return true;
    return false;
  }
  for (const key in value) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === "object" && v !== null && nestsDeeperThan(v, max - 1)) return true;
  }
  return false;
}
