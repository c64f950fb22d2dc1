import { describe, expect, it } from "vitest";
import { eventEnds, findUsageObject, lastEventEnd } from "../../gateway/logic/sse-bytes";
import { SseFramer } from "../../gateway/logic/sse-frames";
import { SseTap } from "../../gateway/logic/sse-tap";

const encode = (s: string) => new TextEncoder().encode(s);
const decode = (b: Uint8Array) => new TextDecoder().decode(b);

const USAGE = '{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6}';
const content = (text: string) => `{"id":"c","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"${text}"}}],"usage":null}`;
const usageChunk = `{"id":"c","object":"chat.completion.chunk","choices":[],"usage":${USAGE}}`;

/** A stream as an OpenAI-compatible upstream writes it, with the usage chunk Keypool asked for, in the given line ends. */
function stream(eol: string, words = ["Héllo", " wörld", " 😀"]): { whole: string; withoutUsage: string } {
  const events = [`: keep-alive${eol}${eol}`, ...words.map((w) => `data: ${content(w)}${eol}${eol}`)];
  const usage = `data: ${usageChunk}${eol}${eol}`;
  const done = `data: [DONE]${eol}${eol}`;
  return { whole: events.join("") + usage + done, withoutUsage: events.join("") + done };
}

/** Feeds `bytes` to a tap cut at the given offsets; returns what the client got and the tap. */
function feed(bytes: Uint8Array, cuts: number[], drop: boolean) {
  const tap = new SseTap(drop);
  const out: number[] = [];
  let from = 0;
  for (const cut of [...cuts, bytes.byteLength]) {
    if (cut <= from) continue;
    const sent = tap.push(bytes.slice(from, cut));
    if (sent) out.push(...sent);
    from = cut;
  }
  const rest = tap.finish();
  if (rest) out.push(...rest);
  return { out: new Uint8Array(out), tap };
}

/** A seeded pseudo-random source, so a failure can be replayed. */
function seeded(seed: number) {
  let s = seed;
  return () => (s = (s * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
}

describe("SSE as bytes", () => {
  it("finds where events end on LF, CRLF and CR blank lines, and waits on a trailing CR", () => {
    for (const text of ["data: a\n\ndata: b\n\n", "data: a\r\n\r\ndata: b\r\n\r\n", "data: a\r\rdata: b\r\r", "data: a\n\r\ndata: b\r\n\n"]) {
      const framer = new SseFramer();
      let at = 0;
      const expected = framer.push(text).map((f) => (at += encode(f).byteLength));
      expect(eventEnds(encode(text))).toEqual(expected);
      expect(lastEventEnd(encode(text))).toBe(expected[expected.length - 1]);
    }
    // A CR at the very end may be half a CRLF: the event it would close is not complete yet.
    expect(lastEventEnd(encode("data: a\r\n\r"))).toBe(0);
    expect(lastEventEnd(encode("data: a\n\ndata: b\r"))).toBe(9);
    expect(lastEventEnd(encode("data: a\ndata: b"))).toBe(0);
  });

  it("finds a usage object, not a usage of null nor the word in content", () => {
    expect(findUsageObject(encode(content("x")))).toBe(-1);
    expect(findUsageObject(encode(content('the \\"usage\\": {')))).toBe(-1);
    const chunk = encode(`data: ${usageChunk}\n\n`);
    expect(findUsageObject(chunk)).toBe(decode(chunk).indexOf('"usage"'));
    expect(findUsageObject(encode('{"usage" :\n {"total_tokens":1}}'))).toBe(1);
    // The word as a value, followed by an object: not a key.
    expect(findUsageObject(encode('{"tags":["usage", {"a":1}]}'))).toBe(-1);
    // Cut before its brace: not (yet) a usage object.
    expect(findUsageObject(encode('{"usage": '))).toBe(-1);
  });
});

describe("SseTap", () => {
  it("passes every chunk on as it came when the client asked for usage", () => {
    const tap = new SseTap(false);
    const chunks = [encode(`data: ${content("a")}\n\n`), encode("data: [DO"), encode(`NE]\n\ndata: ${usageChunk}\n\n`)];
    for (const c of chunks) expect(tap.push(c)).toBe(c);
    expect(tap.finish()).toBeNull();
  });

  it("leaves out only the usage chunk it asked for, byte for byte, however the stream is cut into reads", () => {
    const random = seeded(7);
    for (const eol of ["\n", "\r\n", "\r"]) {
      const { whole, withoutUsage } = stream(eol);
      const bytes = encode(whole);
      // Every single cut, then random cuts into many small reads (through multi-byte characters and the usage event).
      const cutsList: number[][] = [[]];
      for (let i = 1; i < bytes.byteLength; i++) cutsList.push([i]);
      for (let k = 0; k < 200; k++) {
        const n = 1 + Math.floor(random() * 20);
        cutsList.push(Array.from({ length: n }, () => Math.floor(random() * bytes.byteLength)).sort((a, b) => a - b));
      }
      for (const cuts of cutsList) {
        const { out, tap } = feed(bytes, cuts, true);
        expect(decode(out), `${JSON.stringify(eol)} cut at ${cuts.join(",")}`).toBe(withoutUsage);
        expect(tap.usage).toEqual({ promptTokens: 4, completionTokens: 2, totalTokens: 6, cachedTokens: 0, reasoningTokens: 0 });
      }
    }
  });

  it("hands on whole events at once and holds back only an event not yet complete", () => {
    const tap = new SseTap(true);
    const first = encode(`data: ${content("a")}\n\ndata: ${content("b")}`);
    const sent = tap.push(first)!;
    expect(decode(sent)).toBe(`data: ${content("a")}\n\n`);
    expect(decode(tap.push(encode("\n\n"))!)).toBe(`data: ${content("b")}\n\n`);
    // A chunk of whole events is the chunk itself: no copy.
    const whole = encode(`data: ${content("c")}\n\n`);
    expect(tap.push(whole)).toBe(whole);
  });

  it("keeps a usage chunk that also carries content, and an unterminated last event, as they are", () => {
    const mixed = `data: {"choices":[{"delta":{"content":"x"}}],"usage":${USAGE}}\n\n`;
    const { out, tap } = feed(encode(mixed + "data: [DONE]"), [5], true);
    expect(decode(out)).toBe(mixed + "data: [DONE]");
    expect(tap.usage).toBeNull();
    // An unterminated usage-only event at the end is still left out.
    const cut = feed(encode(`data: ${content("a")}\n\ndata: ${usageChunk}`), [], true);
    expect(decode(cut.out)).toBe(`data: ${content("a")}\n\n`);
    expect(cut.tap.usage).not.toBeNull();
  });

  it("keeps the stream to read usage and estimate from, and only its tail once it is too large", () => {
    const tap = new SseTap(false);
    const big = new Uint8Array(1024 * 1024).fill(0x61);
    for (let i = 0; i < 8; i++) tap.push(big);
    tap.push(encode(`data: ${usageChunk}\n\n`));
    const kept = tap.keptText();
    expect(kept.text.length).toBe(8 * 1024 * 1024);
    expect(kept.tail).toContain(usageChunk);
    expect(kept.tail!.length).toBeLessThan(1024 * 1024 + 200);
  });
});
