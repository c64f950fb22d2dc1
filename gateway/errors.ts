import type { ErrorType } from "../schema";
import { openAIError } from "../schema";

/** The one error type the gateway throws; `onError` renders it in OpenAI shape. */
export class KeypoolError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "KeypoolError";
  }

  /** The JSON body clients see. */
  toBody() {
    return openAIError(this.message, this.type, this.code, this.param);
  }
}

/** A 400 for a body or query that failed validation, naming the offending field. */
export function invalidRequest(message: string, param: string | null = null): KeypoolError {
  return new KeypoolError(400, "invalid_request_error", message, "invalid_request", param);
}

/** Renders any thrown value as an OpenAI-shaped response, never leaking internals. */
function renderError(err: unknown): Response {
  const e =
    err instanceof KeypoolError ? err : new KeypoolError(500, "server_error", "Internal error in Keypool; the request was not completed.", "internal_error");
  return new Response(JSON.stringify(e.toBody()), {
    status: e.status,
    headers: { "content-type": "application/json", ...e.headers },
  });
}

/** The answer to an error thrown while serving: rendered in OpenAI shape; anything but a KeypoolError is logged (name and message only). */
export function errorResponse(err: unknown): Response {
  if (!(err instanceof KeypoolError))
    console.error(`keypool: unhandled ${err instanceof Error ? err.name : "error"}: ${err instanceof Error ? err.message : String(err)}`);
  return renderError(err);
}
