import { vi } from "vitest";

/** How a fake upstream key answers. */
export type FakeMode =
  "ok" | "rate_limit" | "unauthorized" | "bad_request" | "server_error" | "stream" | "no_usage" | ((req: Request) => Response | Promise<Response>);

export interface FakeCall {
  url: string;
  authorization: string | null;
  headers: Headers;
  body: string;
  bytes: Uint8Array;
}

export const FAKE_BASE_URL = "https://upstream.test/v1";

export const FAKE_USAGE = { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 };

/** The exact SSE body the fake streams, usage chunk included. */
export const FAKE_SSE =
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}\n\n' +
  ": keep-alive comment\n\n" +
  'data: {"id":"c1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo 😀"},"finish_reason":"stop"}]}\n\n' +
  `data: {"id":"c1","object":"chat.completion.chunk","choices":[],"usage":${JSON.stringify(FAKE_USAGE)}}\n\n` +
  "data: [DONE]\n\n";

/**
 * A body that arrives as a stream, like a network one. (workerd cannot pipe a
 * body built from a string into the identity stream the gateway hands the
 * client; a fetched body it can.)
 */
function streamed(text: string): ReadableStream<Uint8Array> {
  const bytes = new TextEncoder().encode(text);
  return new ReadableStream({
    start(controller) {
      controller.enqueue(bytes);
      controller.close();
    },
  });
}

/** A JSON answer with its length declared, as real upstreams (and the mock) send it. */
function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  const bytes = new TextEncoder().encode(JSON.stringify(body));
  return new Response(bytes, { status, headers: { "content-type": "application/json", "content-length": String(bytes.byteLength), ...headers } });
}

/**
 * Replaces global fetch with an upstream at FAKE_BASE_URL whose keys answer as told.
 * Any request elsewhere fails the test, so nothing leaves the test by accident.
 */
export function installFakeUpstream(modes: Record<string, FakeMode>) {
  const calls: FakeCall[] = [];
  const spy = vi.spyOn(globalThis, "fetch").mockImplementation(async (input: RequestInfo | URL, init?: RequestInit) => {
    const req = new Request(input, init);
    if (!req.url.startsWith(FAKE_BASE_URL)) throw new Error(`unexpected outbound request to ${req.url}`);
    const authorization = req.headers.get("authorization");
    const bytes = new Uint8Array(await req.clone().arrayBuffer());
    calls.push({ url: req.url, authorization, headers: req.headers, body: new TextDecoder().decode(bytes), bytes });
    const key = authorization?.replace(/^Bearer /, "") ?? "";
    const mode = modes[key] ?? "ok";
    if (typeof mode === "function") return mode(req);
    switch (mode) {
      case "rate_limit":
        return json(429, { error: { message: "Rate limit reached", type: "rate_limit_error", param: null, code: null } }, { "retry-after": "30" });
      case "unauthorized":
        return json(401, { error: { message: "Incorrect API key provided", type: "invalid_request_error", param: null, code: "invalid_api_key" } });
      case "bad_request":
        return json(400, { error: { message: "Unknown parameter: 'foo'", type: "invalid_request_error", param: "foo", code: null } });
      case "server_error":
        return json(500, { error: { message: "boom", type: "server_error", param: null, code: null } });
      case "stream":
        return new Response(streamed(FAKE_SSE), { headers: { "content-type": "text/event-stream" } });
      case "no_usage":
        return json(200, {
          id: "c1",
          object: "chat.completion",
          choices: [{ index: 0, message: { role: "assistant", content: "你好世界 hello world" }, finish_reason: "stop" }],
        });
      default:
        return json(
          200,
          {
            id: "c1",
            object: "chat.completion",
            choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
            usage: FAKE_USAGE,
          },
          { "x-upstream": "yes", "set-cookie": "a=b" },
        );
    }
  });
  return { calls, restore: () => spy.mockRestore() };
}
