import { SseFramer, frameData } from "./sse-frames";

/**
 * Smooth streaming, an option per client key (and a pool default): the text of
 * a chat stream that arrives in bursts is handed on a few characters at a time
 * at an even pace — the rate it has been arriving at, quicker when a backlog
 * builds — instead of in lumps. Off by default: a stream is then relayed as it
 * came and this costs nothing.
 *
 * What it keeps: every event's JSON whole (a piece of text is its own event,
 * the chunk it came from with only `delta.content` cut), characters whole (cut
 * between code points), the SSE framing valid, every other event (role,
 * finish, usage, `[DONE]`, comments) in its place and as it came. The stream
 * ends at most `END_BOUND_MS` after the upstream's last byte: once the upstream
 * has ended, what is left is spread over what remains of that bound, and
 * handed on at once when it is spent.
 */

/** How long after the upstream's last byte the smoothed stream may still be handing on text (ms). */
export const END_BOUND_MS = 100;
/** What the spreading after the upstream's end aims for, leaving the rest of the bound for timers firing late (ms). */
const END_AIM_MS = 60;
/** A backlog is worked off within about this long (ms): the pace quickens as text piles up. */
const BACKLOG_MS = 250;
/** The longest pause between two pieces (ms). */
const MAX_PAUSE_MS = 50;
/** Most characters (code points) in one piece. */
const MAX_PIECE = 6;

/** Time as the smoother sees it: real in the Worker, stepped by hand in tests. */
export interface Clock {
  now(): number;
  /** Resolves after `ms`, or as soon as `early` settles. */
  sleep(ms: number, early: Promise<void>): Promise<void>;
}

export const realClock: Clock = {
  now: () => Date.now(),
  sleep: (ms, early) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      void early.then(() => {
        clearTimeout(timer);
        resolve();
      });
    }),
};

/** One event to hand on: its text, and how many characters of content it carries (0: not paced). */
interface Piece {
  text: string;
  chars: number;
}

const encoder = new TextEncoder();

/** A chat chunk whose only choice carries text to cut: the chunk, and that text as code points. */
function cuttable(frame: string): { chunk: Record<string, unknown>; text: string[]; eol: string } | null {
  // Only an event of one `data:` line (no `event:`, `id:` or comments) is rebuilt; any other passes as it is.
  const eol = /\r\n|\r|\n/.exec(frame)?.[0] ?? "\n";
  if (!frame.startsWith("data:") || frame.indexOf(eol) !== frame.length - 2 * eol.length) return null;
  const data = frameData(frame);
  if (data === null || !data.startsWith("{")) return null;
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    return null;
  }
  const { choices, usage } = chunk as { choices?: unknown; usage?: unknown };
  // Usage, log probabilities or tool calls would be repeated in every piece: such a chunk passes whole.
  if (!Array.isArray(choices) || choices.length !== 1 || (usage !== undefined && usage !== null)) return null;
  const choice = choices[0] as { delta?: { content?: unknown; tool_calls?: unknown }; logprobs?: unknown };
  const delta = choice.delta;
  if (typeof delta?.content !== "string" || delta.tool_calls !== undefined || (choice.logprobs !== undefined && choice.logprobs !== null)) return null;
  const text = Array.from(delta.content);
  return text.length > 1 ? { chunk: chunk as Record<string, unknown>, text, eol } : null;
}

/** The chunk again with `content` for its text; the role only on the first piece, the finish only on the last. */
function pieceOf(chunk: Record<string, unknown>, content: string, first: boolean, last: boolean, eol: string): string {
  const choice = (chunk.choices as Record<string, unknown>[])[0]!;
  const delta: Record<string, unknown> = { ...(choice.delta as Record<string, unknown>), content };
  if (!first) delete delta.role;
  const out = { ...chunk, choices: [{ ...choice, delta, ...(last ? {} : { finish_reason: null }) }] };
  return `data: ${JSON.stringify(out)}${eol}${eol}`;
}

/**
 * The client's stream, smoothed. `source` is the relayed SSE body (bytes as
 * the client would have had them); cancelling the result cancels it.
 */
export function smoothStream(source: ReadableStream<Uint8Array>, clock: Clock = realClock): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  const decoder = new TextDecoder();
  const framer = new SseFramer();
  const queue: Piece[] = [];
  let backlog = 0;
  let firstTextAt = -1;
  let textSeen = 0;
  let endedAt = -1;
  let failure: { error: unknown } | null = null;
  let wake: () => void = () => {};
  let arrived = new Promise<void>((resolve) => (wake = resolve));
  const signal = () => {
    wake();
    arrived = new Promise<void>((resolve) => (wake = resolve));
  };

  const take = (text: string) => {
    for (const frame of framer.push(text)) add(frame);
  };
  const add = (frame: string) => {
    const cut = cuttable(frame);
    if (!cut) {
      queue.push({ text: frame, chars: 0 });
      return;
    }
    const now = clock.now();
    if (firstTextAt < 0) firstTextAt = now;
    textSeen += cut.text.length;
    backlog += cut.text.length;
    const size = Math.min(MAX_PIECE, Math.max(1, Math.ceil(backlog / 20)));
    for (let i = 0; i < cut.text.length; i += size) {
      const piece = cut.text.slice(i, i + size);
      queue.push({ text: pieceOf(cut.chunk, piece.join(""), i === 0, i + size >= cut.text.length, cut.eol), chars: piece.length });
    }
  };

  // Reads the upstream as fast as it comes; the pull below hands pieces on at their pace.
  const pump = (async () => {
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        take(decoder.decode(value, { stream: true }));
        signal();
      }
      take(decoder.decode());
      const rest = framer.flush();
      if (rest) queue.push({ text: rest, chars: 0 });
    } catch (error) {
      failure = { error };
    }
    endedAt = clock.now();
    signal();
  })();
  void pump;

  /** How long to wait before handing on a piece of `chars` characters. */
  const pause = (chars: number): number => {
    const now = clock.now();
    if (endedAt >= 0) {
      const paced = queue.reduce((n, p) => n + (p.chars > 0 ? 1 : 0), 0);
      const left = endedAt + END_AIM_MS - now;
      return left <= 0 ? 0 : left / Math.max(1, paced);
    }
    // The rate text has come at so far, quicker when a backlog builds up.
    const rate = Math.max(textSeen / Math.max(1, now - firstTextAt), backlog / BACKLOG_MS);
    return Math.min(MAX_PAUSE_MS, chars / rate);
  };

  let lastOut = -1;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        for (;;) {
          const next = queue[0];
          if (!next) {
            if (endedAt >= 0) {
              if (failure) controller.error(failure.error);
              else controller.close();
              return;
            }
            await arrived;
            continue;
          }
          if (next.chars > 0 && lastOut >= 0) {
            const due = lastOut + pause(next.chars);
            const now = clock.now();
            // An upstream that ends meanwhile shortens the wait: what is left must fit the bound.
            if (due > now) await clock.sleep(due - now, endedAt >= 0 ? new Promise<void>(() => {}) : arrived.then(() => undefined));
            if (clock.now() < lastOut + pause(next.chars) - 0.5) continue;
          }
          queue.shift();
          if (next.chars > 0) {
            backlog -= next.chars;
            lastOut = clock.now();
          }
          controller.enqueue(encoder.encode(next.text));
          return;
        }
      },
      async cancel(reason) {
        await reader.cancel(reason).catch(() => {});
      },
    },
    { highWaterMark: 0 },
  );
}
