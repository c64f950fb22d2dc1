import { answerText, estimateTextTokens } from "./estimate-tokens";
import { SseFramer, frameData } from "./sse-frames";
import { MAX_KEPT_BYTES, SseTap } from "./sse-tap";
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
  /** The body's declared length (`content-length`), if any. */
  contentLength: number | null;
  /** Keypool asked for `include_usage` itself: drop the usage-only chunk the client did not ask for. */
  dropUsageChunk: boolean;
  /**
   * The client's request signal. When the client goes away, workerd aborts it
   * and fails the request's pending reads, so a read that fails with it aborted
   * is the client leaving, not the upstream breaking.
   */
  signal: AbortSignal;
  /** Called exactly once, when the body ends, fails or is cancelled by the client. */
  onEnd: (result: RelayResult) => void;
}

/** The client's body, and a promise that settles once `onEnd` has run (give it to `waitUntil`). */
export interface Relayed {
  body: ReadableStream<Uint8Array>;
  metered: Promise<void>;
}

/** Decodes whole bodies (no `stream` option, so it keeps no state between calls). */
const wholeDecoder = new TextDecoder();

/** Reads usage from SSE frames as they pass; keeps the data of the rest to estimate from if none comes. */
class StreamMeter {
  usage: Usage | null = null;
  private readonly kept: string[] = [];
  private keptChars = 0;

  see(data: string): void {
    if (data.includes('"usage"')) {
      try {
        const usage = readUsage(JSON.parse(data));
        if (usage) {
          this.usage = usage;
          return;
        }
      } catch {
        // not JSON: the client still gets the bytes
      }
    }
    // Kept for the estimate, `"usage": null` chunks too (OpenAI sends one with every token).
    if (this.keptChars < MAX_KEPT_BYTES) {
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
    if (this.text.length + text.length > MAX_KEPT_BYTES) this.overflow = true;
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

type BodyKind = "sse" | "text" | "binary";

function bodyKind(contentType: string | null): BodyKind {
  if (contentType?.includes("text/event-stream")) return "sse";
  return contentType?.includes("json") || contentType?.startsWith("text/") ? "text" : "binary";
}

/**
 * A JSON answer of declared size up to this is read whole before the client
 * gets it: one native read instead of a tee, and an answer cut mid-body can
 * still be retried on another key. Larger ones stream through (`relayBody`).
 */
const MAX_READ_WHOLE_BYTES = 1024 * 1024;

/** Whether an answer is JSON of a declared size small enough to read whole. */
export function readsWhole(contentType: string | null, contentLength: number | null): boolean {
  return (
    contentLength !== null && contentLength <= MAX_READ_WHOLE_BYTES && contentType !== null && contentType.includes("json") && bodyKind(contentType) === "text"
  );
}

/** Usage (or an estimate) from a JSON answer read whole. */
export function meterWholeBody(bytes: ArrayBuffer): { usage: Usage | null; completionEstimate: number } {
  return measureText("text", wholeDecoder.decode(bytes));
}

/** Usage and estimate from a whole SSE body or text body. */
function measureText(kind: "sse" | "text", text: string): { usage: Usage | null; completionEstimate: number } {
  if (kind === "sse") return meterSseText(text);
  const meter = new BodyMeter();
  meter.see(text);
  return meter.result();
}

/**
 * Usage (or an estimate) from a whole SSE body. The usage chunk comes last, so
 * frames are read from the end and the first usage found — the last one sent,
 * as the forward reading keeps — ends the search: one JSON parse instead of
 * one per chunk (OpenAI sends `"usage": null` in every chunk). Only a stream
 * with no usage at all is read through, for the estimate. Text with no CR is
 * split on blank lines natively; the framer handles the rest.
 */
export function meterSseText(text: string): { usage: Usage | null; completionEstimate: number } {
  const frames = text.includes("\r") ? allFrames(text) : text.split("\n\n");
  for (let i = frames.length - 1; i >= 0; i--) {
    const data = frameData(frames[i]!);
    if (data === null || !data.includes('"usage"')) continue;
    try {
      const usage = readUsage(JSON.parse(data));
      if (usage) return { usage, completionEstimate: 0 };
    } catch {
      // not JSON: the estimate below reads it as text
    }
  }
  const meter = new StreamMeter();
  for (const frame of frames) {
    const data = frameData(frame);
    if (data !== null) meter.see(data);
  }
  return { usage: meter.usage, completionEstimate: meter.completionEstimate() };
}

function allFrames(text: string): string[] {
  const framer = new SseFramer();
  return [...framer.push(text), framer.flush()];
}

/**
 * Hands an upstream body to the client and meters it on the side. When no byte
 * needs changing and the body is bounded (a stream of tokens, or text of a
 * declared size), the client gets one branch of a `tee()` — the runtime moves
 * those bytes natively, chunk by chunk as they arrive — and the other branch is
 * read whole, natively, then parsed once for usage. Every chunk JavaScript
 * reads costs the runtime tens of microseconds of CPU, whatever it does with
 * it, so that is done only when bytes must change (the usage chunk Keypool
 * asked for itself: `leavingOutUsage`) or the body may be too large to keep.
 */
export function relayBody(upstream: ReadableStream<Uint8Array>, options: RelayOptions): Relayed {
  const kind = bodyKind(options.contentType);
  if (kind === "sse" && options.dropUsageChunk) return leavingOutUsage(upstream, options);
  const bounded = kind === "sse" || (kind === "text" && options.contentLength !== null && options.contentLength <= MAX_KEPT_BYTES);
  if (kind !== "binary" && bounded) return passThrough(upstream, kind, options);
  return chunkByChunk(upstream, kind === "binary" ? "binary" : "text", options);
}

/**
 * The runtime's native identity stream on Workers. Elsewhere (Node, in unit
 * tests) a JavaScript pair that behaves the same way where it matters: once
 * the readable side is cancelled, the next write fails.
 */
function identityStream(): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> } {
  const Native = (globalThis as { IdentityTransformStream?: new () => TransformStream<Uint8Array, Uint8Array> }).IdentityTransformStream;
  if (Native) return new Native();
  let out!: ReadableStreamDefaultController<Uint8Array>;
  let cancelled: unknown = null;
  const readable = new ReadableStream<Uint8Array>(
    { start: (c) => void (out = c), cancel: (reason) => void (cancelled = reason ?? new Error("cancelled")) },
    { highWaterMark: 0 },
  );
  const writable = new WritableStream<Uint8Array>({
    write(chunk) {
      if (cancelled !== null) throw cancelled;
      out.enqueue(chunk);
    },
    close: () => out.close(),
    abort: (reason) => out.error(reason),
  });
  return { readable, writable };
}

/**
 * The native path. For a stream, one branch of the upstream body is piped to
 * the client stream (runtime to runtime, no JavaScript per chunk); the other branch is
 * left unread meanwhile, so the runtime queues it, and is read whole once the
 * client has everything. If the client goes away the pipe fails (when it next
 * writes, i.e. at the upstream's next chunk): what the queue holds is read and
 * the branch cancelled, which (both branches now cancelled) cancels the
 * upstream call.
 */
function passThrough(upstream: ReadableStream<Uint8Array>, kind: "sse" | "text", options: RelayOptions): Relayed {
  const [toClient, toMeter] = upstream.tee();
  if (kind === "text") {
    // A body of declared size arrives all but at once: the client gets its branch as it is,
    // and whether the client stays for all of it changes nothing worth an identity pipe.
    const metered = new Response(toMeter).text().then(
      (text) => options.onEnd({ ...measureText(kind, text), aborted: false, failed: false }),
      () => {
        // workerd fails a leaving client's pending reads too: that is the client, not the key.
        const aborted = options.signal.aborted;
        options.onEnd({ usage: null, completionEstimate: 0, aborted, failed: !aborted });
      },
    );
    return { body: toClient, metered };
  }
  const client = identityStream();
  // preventCancel: cancelling one tee branch settles only once both are cancelled, so the
  // pipe would wait on the meter branch forever; the failure handler cancels both instead.
  const piped = toClient.pipeTo(client.writable, { preventCancel: true });
  const metered = piped.then(
    async () => {
      const text = await new Response(toMeter).text().catch(() => null);
      if (text === null) options.onEnd({ usage: null, completionEstimate: 0, aborted: false, failed: true });
      else options.onEnd({ ...measureText(kind, text), aborted: false, failed: false });
    },
    async () => {
      // The pipe failed: the client went away, or the upstream body broke (then so does the meter branch).
      void toClient.cancel().catch(() => {});
      const queued = await readQueued(toMeter);
      // A client that left can also surface as the upstream read failing: workerd aborts the
      // request's signal and cancels its pending I/O (as behind wrangler dev's proxy).
      const failed = queued.failed && !options.signal.aborted;
      options.onEnd({ ...measureText(kind, queued.text), aborted: !failed, failed });
    },
  );
  return { body: client.readable, metered };
}

/**
 * Reads what a stream already holds and cancels it: queued chunks are handed
 * out in microtasks, so a cancel scheduled as a task lands once they are taken.
 */
async function readQueued(stream: ReadableStream<Uint8Array>): Promise<{ text: string; failed: boolean }> {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let cancelled = false;
  setTimeout(() => {
    cancelled = true;
    reader.cancel().catch(() => {});
  }, 0);
  let text = "";
  let failed = false;
  try {
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += decoder.decode(r.value, { stream: true });
  } catch {
    // An errored stream drops its queue and fails the next read at once: the upstream broke.
    // A read failing only after the cancel (workerd rejects the pending read) is the cancel.
    failed = !cancelled;
  }
  return { text: text + decoder.decode(), failed };
}

/**
 * The stream whose usage chunk Keypool asked for itself, with that chunk left
 * out. Each chunk is read here — the runtime cannot drop bytes from a stream
 * on its own — and written on to the client as it came: `SseTap` scans its
 * bytes for the end of the last event and for a usage object, and decodes only
 * the event that holds one. The client's stream is the runtime's identity
 * stream, written from here (no JavaScript pulls on the client's side). A
 * client that goes away aborts the request's signal (workerd), or fails the
 * next write: either cancels the upstream. Usage comes from the chunk left out,
 * or — a stream cut before it — is estimated from what was kept.
 */
function leavingOutUsage(upstream: ReadableStream<Uint8Array>, options: RelayOptions): Relayed {
  const reader = upstream.getReader();
  const tap = new SseTap(true);
  const client = identityStream();
  const writer = client.writable.getWriter();
  let stopped = false;
  const stop = () => {
    stopped = true;
    void reader.cancel().catch(() => {});
  };
  options.signal.addEventListener("abort", stop);
  const end = (aborted: boolean, failed: boolean) => {
    options.signal.removeEventListener("abort", stop);
    const measured = tap.usage ? { usage: tap.usage, completionEstimate: 0 } : meterKept(tap);
    options.onEnd({ ...measured, aborted, failed });
  };
  const metered = (async () => {
    let writing = false;
    try {
      for (;;) {
        const { done, value } = await reader.read();
        // Cancelled here because the client left: the end of nothing it will read.
        if (done && stopped) throw options.signal.reason ?? new Error("the client went away");
        if (done) break;
        const out = tap.push(value);
        if (out) {
          writing = true;
          await writer.write(out);
          writing = false;
        }
      }
      const rest = tap.finish();
      writing = true;
      if (rest) await writer.write(rest);
      await writer.close();
      end(false, false);
    } catch (err) {
      // A failed write is the client gone; a failed read, the upstream broken — unless workerd failed it
      // because the client left (it aborts the request's signal then).
      const aborted = writing || options.signal.aborted;
      if (aborted) stop();
      void writer.abort(err).catch(() => {});
      end(aborted, !aborted);
    }
  })();
  return { body: client.readable, metered };
}

/** Usage (or an estimate) from what a tap kept of a stream: the tail first, where usage comes, when the rest was too large to keep. */
function meterKept(tap: SseTap): { usage: Usage | null; completionEstimate: number } {
  const kept = tap.keptText();
  if (kept.tail !== null) {
    const last = meterSseText(kept.tail);
    if (last.usage) return last;
  }
  return meterSseText(kept.text);
}

/**
 * The JavaScript path for text and binary bodies too large to keep whole:
 * relays the body chunk by chunk as it arrives, unchanged, keeping text
 * (bounded) to read usage from at the end. A client that goes away cancels the
 * upstream read.
 */
function chunkByChunk(upstream: ReadableStream<Uint8Array>, kind: "text" | "binary", options: RelayOptions): Relayed {
  const reader = upstream.getReader();
  const decoder = new TextDecoder();
  const binary = kind === "binary";
  const bodyMeter = new BodyMeter();
  let ended = false;
  let settle!: () => void;
  const metered = new Promise<void>((resolve) => (settle = resolve));

  const end = (aborted: boolean, failed: boolean) => {
    if (ended) return;
    ended = true;
    options.onEnd({ ...(binary ? { usage: null, completionEstimate: 0 } : bodyMeter.result()), aborted, failed });
    settle();
  };

  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const { done, value } = await reader.read();
          if (done) {
            controller.close();
            end(false, false);
            return;
          }
          if (!binary) bodyMeter.see(decoder.decode(value, { stream: true }));
          controller.enqueue(value);
        } catch (err) {
          const aborted = options.signal.aborted;
          end(aborted, !aborted);
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
  return { body, metered };
}
