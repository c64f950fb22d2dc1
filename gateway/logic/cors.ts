/**
 * CORS for the OpenAI endpoints, driven by the `corsOrigins` setting. Browser
 * SDKs send the client key in `Authorization`, never as a cookie, so Keypool
 * allows no credentials and "*" is safe to answer; a list of origins is echoed
 * one origin at a time with `Vary: Origin`. The admin API never gets these headers.
 */

/** Headers a browser client may read from our answers: Keypool's own and the upstream's request-scoped ones. */
const EXPOSED_HEADERS = "x-keypool-request-id, x-keypool-attempts, retry-after, retry-after-ms, x-request-id, openai-processing-ms, openai-version";

/** Headers a preflight allows when the browser names none we can echo. */
const DEFAULT_ALLOWED_HEADERS = "authorization, content-type, openai-beta, openai-organization, openai-project";

/** A comma-separated list of header names (RFC 9110 tokens), as Access-Control-Request-Headers carries. */
const HEADER_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(?:\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

/** How long a browser may cache a preflight (browsers cap it lower: Chrome at 2 h). */
const PREFLIGHT_MAX_AGE_S = 86_400;

/** The Access-Control-Allow-Origin value for `origin` under `allowed`, or null when it is not allowed. */
export function allowOriginFor(origin: string, allowed: readonly string[]): string | null {
  if (allowed.includes("*")) return "*";
  return allowed.includes(origin) ? origin : null;
}

/** Adds the CORS answer headers for an allowed origin to a response's (mutable) headers. */
export function addCorsHeaders(headers: Headers, allowOrigin: string): void {
  headers.set("access-control-allow-origin", allowOrigin);
  headers.set("access-control-expose-headers", EXPOSED_HEADERS);
  if (allowOrigin !== "*") headers.append("vary", "Origin");
}

/** The 204 answer to an allowed preflight: the methods the endpoints take and the headers the browser asked for. */
export function preflightResponse(allowOrigin: string, requestedHeaders: string | undefined): Response {
  const headers = new Headers({
    "access-control-allow-origin": allowOrigin,
    "access-control-allow-methods": "GET, POST, OPTIONS",
    "access-control-allow-headers":
      requestedHeaders !== undefined && requestedHeaders.length <= 2_000 && HEADER_LIST.test(requestedHeaders.trim())
        ? requestedHeaders.trim()
        : DEFAULT_ALLOWED_HEADERS,
    "access-control-max-age": String(PREFLIGHT_MAX_AGE_S),
  });
  if (allowOrigin !== "*") headers.set("vary", "Origin, Access-Control-Request-Headers");
  else headers.set("vary", "Access-Control-Request-Headers");
  return new Response(null, { status: 204, headers });
}
