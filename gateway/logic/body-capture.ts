import { MAX_MESSAGE_BYTES, redactSecrets, type CapturedBody, type KeptBodies } from "../../schema";

/**
 * Keeps a request's and its answer's bodies for the request log, when the
 * client key (or the pool) asks for it: at most `maxBytes` of each, read beside
 * the relay (a tee: the client's stream is not slowed by it), a streamed chat
 * answer reassembled into the message it spells, every secret taken out.
 */

const decoder = () => new TextDecoder();

/** Whether a content type is text worth keeping (JSON, SSE, plain text); binary (audio, images, multipart) is described, not kept. */
const isText = (contentType: string | null) => contentType !== null && /json|text\/|event-stream/i.test(contentType);

/** A body as kept: its text (cut at `maxBytes` of UTF-8) when it is text, its size either way. */
export function captureBytes(bytes: Uint8Array, contentType: string | null, maxBytes: number, total = bytes.byteLength): CapturedBody {
  if (!isText(contentType)) return { contentType, text: null, bytes: total, truncated: false };
  const cut = bytes.byteLength > maxBytes;
  return { contentType, text: decoder().decode(cut ? bytes.subarray(0, maxBytes) : bytes), bytes: total, truncated: cut || total > bytes.byteLength };
}

/**
 * A chat completion stream's text reassembled into the message it spells:
 * `{ role, content, reasoning_content?, tool_calls?, finish_reason, usage? }` as
 * JSON. Anything else (another endpoint's events) is kept as it came.
 */
export function reassembleSse(text: string): string {
  let content = "";
  let reasoning = "";
  let finish: unknown = null;
  let usage: unknown = null;
  let chat = false;
  const tools: { id?: string; type?: string; function: { name: string; arguments: string } }[] = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line.startsWith("data:")) continue;
    const data = line.slice(5).trim();
    if (data === "" || data === "[DONE]") continue;
    let chunk: { object?: string; choices?: { delta?: Record<string, unknown>; finish_reason?: unknown }[]; usage?: unknown };
    try {
      chunk = JSON.parse(data) as typeof chunk;
    } catch {
      continue;
    }
    if (chunk.object === "chat.completion.chunk") chat = true;
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices?.[0];
    if (!choice) continue;
    const delta = choice.delta ?? {};
    if (typeof delta.content === "string") content += delta.content;
    if (typeof delta.reasoning_content === "string") reasoning += delta.reasoning_content;
    for (const call of Array.isArray(delta.tool_calls)
      ? (delta.tool_calls as { index?: number; id?: string; type?: string; function?: { name?: string; arguments?: string } }[])
      : []) {
      const i = call.index ?? tools.length;
      const tool = (tools[i] ??= { function: { name: "", arguments: "" } });
      if (call.id) tool.id = call.id;
      if (call.type) tool.type = call.type;
      if (call.function?.name) tool.function.name += call.function.name;
      if (call.function?.arguments) tool.function.arguments += call.function.arguments;
    }
    if (choice.finish_reason) finish = choice.finish_reason;
  }
  if (!chat) return text;
  return JSON.stringify({
    role: "assistant",
    content,
    ...(reasoning ? { reasoning_content: reasoning } : {}),
    ...(tools.length > 0 ? { tool_calls: tools } : {}),
    finish_reason: finish,
    ...(usage ? { usage } : {}),
  });
}

/** Reads up to `maxBytes` of a stream (then lets it go) and counts all of it. */
export async function readCapped(stream: ReadableStream<Uint8Array>, maxBytes: number): Promise<{ bytes: Uint8Array; total: number }> {
  const reader = stream.getReader();
  const parts: Uint8Array[] = [];
  let kept = 0;
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (kept < maxBytes) {
        const part = value.subarray(0, maxBytes - kept);
        parts.push(part);
        kept += part.byteLength;
      }
    }
  } catch {
    // The stream broke off (the client left, the upstream cut it): keep what came.
  }
  const bytes = new Uint8Array(kept);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.byteLength;
  }
  return { bytes, total };
}

/** The bodies as sent to the queue: redacted, and the streamed answer reassembled. */
export function keptBodies(requestId: string, ts: number, request: CapturedBody, response: CapturedBody | null, secrets: readonly string[]): KeptBodies {
  const clean = (b: CapturedBody): CapturedBody => (b.text === null ? b : { ...b, text: redactSecrets(b.text, secrets) });
  const answer =
    response && response.text !== null && /event-stream/i.test(response.contentType ?? "") ? { ...response, text: reassembleSse(response.text) } : response;
  return fitMessage({ requestId, ts, request: clean(request), response: answer ? clean(answer) : null });
}

/** The bodies cut (the longer text halved, marked truncated) until their message fits the queue's. */
function fitMessage(kept: KeptBodies): KeptBodies {
  const size = (k: KeptBodies) => new TextEncoder().encode(JSON.stringify({ bodies: k })).byteLength;
  let out = kept;
  while (size(out) > MAX_MESSAGE_BYTES) {
    const longer = (out.response?.text?.length ?? 0) > (out.request.text?.length ?? 0) ? "response" : "request";
    const body = out[longer]!;
    if (!body.text) break;
    const half: CapturedBody = { ...body, text: (body.text ?? "").slice(0, Math.floor((body.text ?? "").length / 2)), truncated: true };
    out = { ...out, [longer]: half };
  }
  return out;
}
