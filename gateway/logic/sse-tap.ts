import { eventEnds, findUsageObject, lastEventEnd } from "./sse-bytes";
import { frameData } from "./sse-frames";
import { readUsage, type Usage } from "./usage";

/** Largest part of a body kept to read usage or estimate tokens from (bytes of a stream, characters of a text body). */
export const MAX_KEPT_BYTES = 8 * 1024 * 1024;
/** The end of a stream kept apart once the rest is too large to keep: its usage comes last. */
const TAIL_BYTES = 64 * 1024;

const decoder = new TextDecoder();

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** Whether a parsed chunk is one that carries usage alone (`choices: []`), as the one Keypool asked for. */
function usageOnly(chunk: unknown): boolean {
  const c = chunk as { choices?: unknown; usage?: unknown };
  return Array.isArray(c?.choices) && c.choices.length === 0 && typeof c.usage === "object" && c.usage !== null;
}

/**
 * What an SSE stream's chunks become on their way to the client, and the
 * stream itself, kept (bounded) to read usage from at the end. Without
 * `dropUsageChunk` every chunk passes as it came. With it, a chunk whose bytes
 * hold no `"usage": {` passes as it came too, less an event not yet complete at
 * its end, held until its end arrives (upstreams write whole events, so
 * nearly never); only an event that holds a usage object is decoded, and the
 * usage-only one Keypool asked for is left out.
 */
export class SseTap {
  /** Usage read from an event left out. */
  usage: Usage | null = null;
  private held: Uint8Array | null = null;
  private readonly kept: Uint8Array[] = [];
  private keptBytes = 0;
  private tail: Uint8Array[] = [];
  private tailBytes = 0;

  constructor(private readonly dropUsageChunk: boolean) {}

  /** A chunk from the upstream: what to send the client now (null: nothing yet). */
  push(chunk: Uint8Array): Uint8Array | null {
    this.keep(chunk);
    if (!this.dropUsageChunk) return chunk;
    let bytes = chunk;
    if (this.held) {
      bytes = concat([this.held, chunk], this.held.byteLength + chunk.byteLength);
      this.held = null;
    }
    const end = lastEventEnd(bytes);
    if (end < bytes.byteLength) this.held = bytes.slice(end);
    if (end === 0) return null;
    return this.leaveOutUsage(end === bytes.byteLength ? bytes : bytes.subarray(0, end));
  }

  /** The end of the stream: what is still to send (an unterminated last event), or null. */
  finish(): Uint8Array | null {
    const rest = this.held;
    this.held = null;
    if (!rest) return null;
    return this.leaveOutUsage(rest, true);
  }

  /** Everything kept of the stream, decoded: all of it while it fits, else its first part and its tail. */
  keptText(): { text: string; tail: string | null } {
    const text = decoder.decode(concat(this.kept, this.keptBytes));
    return { text, tail: this.tailBytes > 0 ? decoder.decode(concat(this.tail, this.tailBytes)) : null };
  }

  private keep(chunk: Uint8Array): void {
    if (this.keptBytes + chunk.byteLength <= MAX_KEPT_BYTES && this.tailBytes === 0) {
      this.kept.push(chunk);
      this.keptBytes += chunk.byteLength;
      return;
    }
    this.tail.push(chunk);
    this.tailBytes += chunk.byteLength;
    while (this.tailBytes - this.tail[0]!.byteLength >= TAIL_BYTES) this.tailBytes -= this.tail.shift()!.byteLength;
  }

  /** `bytes` less its usage-only events (whole events, or with `last` an unterminated one at the end). */
  private leaveOutUsage(bytes: Uint8Array, last = false): Uint8Array | null {
    let at = findUsageObject(bytes);
    if (at < 0) return bytes;
    const ends = eventEnds(bytes);
    if (last && (ends.length === 0 || ends[ends.length - 1]! < bytes.byteLength)) ends.push(bytes.byteLength);
    const parts: Uint8Array[] = [];
    let total = 0;
    let from = 0;
    while (at >= 0) {
      let start = 0;
      let stop = bytes.byteLength;
      for (const e of ends) {
        if (e <= at) start = e;
        else {
          stop = e;
          break;
        }
      }
      const data = frameData(decoder.decode(bytes.subarray(start, stop)));
      let chunk: unknown = null;
      try {
        chunk = data === null ? null : JSON.parse(data);
      } catch {
        // not JSON: passed on as it is
      }
      const usage = readUsage(chunk);
      if (usage && usageOnly(chunk)) {
        this.usage = usage;
        if (start > from) {
          parts.push(bytes.subarray(from, start));
          total += start - from;
        }
        from = stop;
      }
      at = stop < bytes.byteLength ? findUsageObject(bytes, stop) : -1;
    }
    if (from === 0) return bytes;
    if (from < bytes.byteLength) {
      parts.push(bytes.subarray(from));
      total += bytes.byteLength - from;
    }
    return total === 0 ? null : concat(parts, total);
  }
}
