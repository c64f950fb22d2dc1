/** Client request headers worth passing upstream; everything else (auth, cookies, hop-by-hop, client IPs) stays here. */
const FORWARDED_REQUEST_HEADERS = new Set(["content-type", "accept", "openai-beta", "user-agent"]);

/** Response headers that describe one hop, or would let an upstream set state on our clients. */
const DROPPED_RESPONSE_HEADERS = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "set-cookie",
  "content-length",
  "content-encoding",
  // A pool key's rate limits, not the client's: a client with limits of its own gets those instead.
  "x-ratelimit-limit-requests",
  "x-ratelimit-remaining-requests",
  "x-ratelimit-reset-requests",
  "x-ratelimit-limit-tokens",
  "x-ratelimit-remaining-tokens",
  "x-ratelimit-reset-tokens",
]);

/** The headers of an upstream request: the client's safe headers plus the chosen key's auth. */
export function upstreamRequestHeaders(client: Headers, authHeader: string, authValue: string): Headers {
  const out = new Headers();
  client.forEach((value, name) => {
    if (FORWARDED_REQUEST_HEADERS.has(name) || name.startsWith("x-stainless-")) out.set(name, value);
  });
  out.set(authHeader, authValue);
  return out;
}

/**
 * The client's answer: the upstream's status and headers minus hop-by-hop ones
 * and the key's rate limits, plus Keypool's request id and attempt count. The headers are copied once, by
 * the runtime, into the new answer and trimmed there: walking them from
 * JavaScript (a callback per header) cost about as much as the copy itself.
 */
export function clientResponse(body: BodyInit | null, status: number, upstream: Headers, requestId: string, attempts: number): Response {
  const res = new Response(body, { status, headers: upstream });
  const headers = res.headers;
  for (const name of DROPPED_RESPONSE_HEADERS) headers.delete(name);
  headers.set("x-keypool-request-id", requestId);
  headers.set("x-keypool-attempts", String(attempts));
  return res;
}
