import { EventSourceParserStream } from "eventsource-parser/stream";
import { readUsage, type Usage } from "./usage";

/** Largest JSON answer read for its usage; bigger bodies still reach the client, uncounted. */
const MAX_METERED_JSON_BYTES = 32 * 1024 * 1024;

async function meterSse(body: ReadableStream<Uint8Array>): Promise<Usage | null> {
  let usage: Usage | null = null;
  const events = body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream());
  for await (const event of events) {
    // Only chunks that mention usage are worth a JSON.parse.
    if (!event.data.includes('"usage"')) continue;
    try {
      usage = readUsage(JSON.parse(event.data)) ?? usage;
    } catch {
      // A malformed line is the upstream's problem; the client still got its bytes.
    }
  }
  return usage;
}

async function meterJson(body: ReadableStream<Uint8Array>): Promise<Usage | null> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size <= MAX_METERED_JSON_BYTES) chunks.push(value);
  }
  if (size > MAX_METERED_JSON_BYTES) return null;
  const bytes = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    bytes.set(c, at);
    at += c.byteLength;
  }
  try {
    return readUsage(JSON.parse(new TextDecoder().decode(bytes)));
  } catch {
    return null;
  }
}

/**
 * Reads a copy of an upstream answer to the end and returns the usage it reported:
 * the last usage chunk of an SSE stream, or the `usage` of a JSON body.
 */
export function meterBody(body: ReadableStream<Uint8Array>, contentType: string | null): Promise<Usage | null> {
  if (contentType?.includes("text/event-stream")) return meterSse(body);
  if (contentType?.includes("json")) return meterJson(body);
  return body.pipeTo(new WritableStream()).then(() => null);
}
