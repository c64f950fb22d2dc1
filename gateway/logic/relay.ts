import { answerText, estimateTextTokens } from "./estimate-tokens";
import { SseFramer, frameData } from "./sse-frames";
import { readUsage, type Usage } from "./usage";

/** How a relayed body ended, and what it said about usage. */
export interface RelayResult {
  /** Usage the upstream reported, if it did. */
  usage: Usage | null;
  /** Estimated completion tokens of the text seen (used only when `usage` is null). */
  completionEstimate: number;
  /** The client went away before the end. */
  aborted: boolean;
  /** The upstream body failed mid-way. */
  failed: boolean;
}

export interface RelayOptions {
  contentType: string | null;
  /** Keypool asked for `include_usage` itself: drop the usage-only chunk the client did not ask for. */
  dropUsageChunk: boolean;
  /** Called exactly once, when the body ends, fails or is cancelled by the client. */
  onEnd: (result: RelayResult) => void;
}

/** Largest body (or sum of stream data) kept to read usage or estimate tokens from. */
const MAX_KEPT_CHARS = 8 * 1024 * 1024;

const encoder = new TextEncoder();

function isUsageOnlyChunk(data: string): boolean {
  if (!data.includes('"usage"')) return false;
  try {
    const chunk = JSON.parse(data) as { choices?: unknown; usage?: unknown };
    return Array.isArray(chunk.choices) && chunk.choices.length === 0 && typeof chunk.usage === "object" && chunk.usage !== null;
  } catch {
    return false;
  }
}

/** Reads usage from SSE frames as they pass; keeps the data of the rest to estimate from if none comes. */
class StreamMeter {
  usage: Usage | null = null;
  private readonly kept: string[] = [];
  private keptChars = 0;

  see(data: string): void {
    if (data.includes('"usage"')) {
      try {
        this.usage = readUsage(JSON.parse(data)) ?? this.usage;
        return;
      } catch {
        // not JSON: the client still gets the bytes
      }
    }
    if (this.keptChars < MAX_KEPT_CHARS) {
      this.kept.push(data);
      this.keptChars += data.length;
    }
  }

  completionEstimate(): number {
    if (this.usage) return 0;
    let text = "";
    for (const data of this.kept) {
      try {
        text += answerText(JSON.parse(data));
      } catch {
        // [DONE] and other non-JSON data
      }
    }
    return estimateTextTokens(text);
  }
}

/** Keeps a JSON (or other) body's text, bounded, to read usage from at the end. */
class BodyMeter {
  private text = "";
  private overflow = false;

  see(text: string): void {
    if (this.overflow) return;
    if (this.text.length + text.length > MAX_KEPT_CHARS) this.overflow = true;
    else this.text += text;
  }

  result(): { usage: Usage | null; completionEstimate: number } {
    if (this.overflow || this.text === "") return { usage: null, completionEstimate: 0 };
    try {
      const body = JSON.parse(this.text) as unknown;
      const usage = readUsage(body);
      return { usage, completionEstimate: usage ? 0 : estimateTextTokens(answerText(body)) };
    } catch {
      return { usage: null, completionEstimate: estimateTextTokens(this.text) };
    }
  }
}

/**
 * Relays an upstream body to the client chunk by chunk as it arrives, reading
 * usage on the side. Bytes are forwarded unchanged; only when `dropUsageChunk`
 * is set are SSE frames forwarded whole, minus the usage-only one. A client that
 * goes away cancels the upstream read.
 */
export function relayBody(upstream: ReadableStream<Uint8Array>, options: RelayOptions): ReadableStream<Uint8Array> {
  const reader = upstream.getReader();
  const decoder = new TextDecoder();
  const sse = options.contentType?.includes("text/event-stream") ?? false;
  const binary = !sse && !(options.contentType?.includes("json") || options.contentType?.startsWith("text/"));
  const framer = sse ? new SseFramer() : null;
  const streamMeter = new StreamMeter();
  const bodyMeter = new BodyMeter();
  let ended = false;

  const end = (aborted: boolean, failed: boolean) => {
    if (ended) return;
    ended = true;
    const measured = sse ? { usage: streamMeter.usage, completionEstimate: streamMeter.completionEstimate() } : binary ? { usage: null, completionEstimate: 0 } : bodyMeter.result();
    options.onEnd({ ...measured, aborted, failed });
  };

  /** Passes a chunk's text through the meters; returns what to forward (null: the chunk itself). */
  const inspect = (text: string): Uint8Array | null => {
    if (!framer) {
      if (!binary) bodyMeter.see(text);
      return null;
    }
    const frames = framer.push(text);
    let forward = "";
    for (const frame of frames) {
      const data = frameData(frame);
      if (data !== null) streamMeter.see(data);
      if (options.dropUsageChunk && data !== null && isUsageOnlyChunk(data)) continue;
      forward += frame;
    }
    return options.dropUsageChunk ? encoder.encode(forward) : null;
  };

  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          // Read until there is something to hand on: a held partial SSE frame yields nothing yet.
          for (;;) {
            const { done, value } = await reader.read();
            if (done) {
              const rest = framer ? framer.flush() : "";
              if (rest) {
                const data = frameData(rest);
                if (data !== null) streamMeter.see(data);
                if (options.dropUsageChunk) controller.enqueue(encoder.encode(rest));
              }
              controller.close();
              end(false, false);
              return;
            }
            const replaced = binary ? null : inspect(decoder.decode(value, { stream: true }));
            const out = replaced ?? value;
            if (out.byteLength > 0) {
              controller.enqueue(out);
              return;
            }
          }
        } catch (err) {
          end(false, true);
          controller.error(err);
        }
      },
      async cancel(reason) {
        end(true, false);
        await reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}
