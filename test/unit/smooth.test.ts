import { describe, expect, it } from "vitest";
import { END_BOUND_MS, smoothStream, type Clock } from "../../gateway/logic/smooth";

const encode = (s: string) => new TextEncoder().encode(s);

/** Time stepped by hand, a millisecond at a time, letting the streams run between steps. */
class ManualClock implements Clock {
  t = 0;
  private waiters: { at: number; resolve: () => void }[] = [];
  now(): number {
    return this.t;
  }
  sleep(ms: number, early: Promise<void>): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ at: this.t + ms, resolve });
      void early.then(resolve);
    });
  }
  async settle(): Promise<void> {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  }
  async advanceTo(to: number): Promise<void> {
    await this.settle();
    while (this.t < to) {
      this.t++;
      for (const w of this.waiters.filter((w) => w.at <= this.t)) w.resolve();
      this.waiters = this.waiters.filter((w) => w.at > this.t);
      await this.settle();
    }
  }
}

const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  JSON.stringify({ id: "c1", object: "chat.completion.chunk", created: 1, model: "m", choices: [{ index: 0, delta, finish_reason: finish }] });
const event = (data: string) => `data: ${data}\n\n`;

/**
 * Runs a smoothed stream: `writes` are [virtual ms, bytes] the upstream sends, then it ends at `endAt`.
 * Returns every event the client got with the time it got it, what the upstream saw cancelled, and the end.
 */
async function run(writes: [number, string | Uint8Array][], endAt: number) {
  const clock = new ManualClock();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const upstream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
  const out = smoothStream(upstream, clock).getReader();
  const got: { at: number; text: string }[] = [];
  const decoder = new TextDecoder();
  let closedAt = -1;
  const reading = (async () => {
    for (let r = await out.read(); !r.done; r = await out.read()) got.push({ at: clock.t, text: decoder.decode(r.value, { stream: true }) });
    closedAt = clock.t;
  })();
  for (const [at, bytes] of writes) {
    await clock.advanceTo(at);
    controller.enqueue(typeof bytes === "string" ? encode(bytes) : bytes);
  }
  await clock.advanceTo(endAt);
  controller.close();
  await clock.advanceTo(endAt + 2 * END_BOUND_MS);
  await reading;
  return { got, closedAt };
}

/** The content a client assembles from a stream's events, and the events themselves parsed. */
function assemble(texts: string[]) {
  const events = texts.join("").split("\n\n").filter(Boolean);
  let content = "";
  const parsed: unknown[] = [];
  for (const e of events) {
    expect(e.startsWith("data: ") || e.startsWith(":")).toBe(true);
    if (!e.startsWith("data: ")) continue;
    const data = e.slice(6);
    if (data === "[DONE]") {
      parsed.push(data);
      continue;
    }
    const json = JSON.parse(data) as { choices: { delta?: { content?: string } }[] };
    parsed.push(json);
    content += json.choices[0]?.delta?.content ?? "";
  }
  return { events, content, parsed };
}

describe("smoothStream", () => {
  it("spreads a burst over even pieces and ends within the bound after the upstream's last byte", async () => {
    const words = "The quick brown fox jumps over the lazy dog, and then it runs far away. ".repeat(3);
    const writes: [number, string][] = [
      [0, event(chunk({ role: "assistant", content: "" }))],
      [0, event(chunk({ content: words }))],
      [0, event(chunk({}, "stop"))],
      [0, event(JSON.stringify({ id: "c1", choices: [], usage: { prompt_tokens: 3, completion_tokens: 40, total_tokens: 43 } }))],
      [0, event("[DONE]")],
    ];
    const { got, closedAt } = await run(writes, 0);
    const { content, parsed, events } = assemble(got.map((g) => g.text));
    expect(content).toBe(words);
    // Pieces of at most six characters, each its own event, paced over time rather than at once.
    const pieces = parsed.filter((p) => typeof p === "object" && (p as { choices: { delta: { content?: string } }[] }).choices[0]?.delta?.content);
    expect(pieces.length).toBeGreaterThanOrEqual(Math.ceil(words.length / 6));
    for (const p of pieces) expect(Array.from((p as { choices: { delta: { content: string } }[] }).choices[0]!.delta.content).length).toBeLessThanOrEqual(6);
    expect(new Set(got.map((g) => g.at)).size).toBeGreaterThan(10);
    // The upstream ended at 0: everything was out within the bound.
    expect(closedAt).toBeLessThanOrEqual(END_BOUND_MS);
    // One [DONE], last; the finish and the usage chunk after the text, as sent.
    expect(events.filter((e) => e === "data: [DONE]")).toHaveLength(1);
    expect(events.at(-1)).toBe("data: [DONE]");
    expect(events.at(-2)).toContain('"usage"');
    expect(events.at(-3)).toContain('"finish_reason":"stop"');
  });

  it("cuts between characters, never inside one, also when the upstream cuts a character across its writes", async () => {
    const text = "你好，世界！😀👍🏽 émoji ünd Ümlaute — 日本語のテキスト。";
    const bytes = encode(event(chunk({ content: text })) + event("[DONE]"));
    // The upstream's writes cut through the middle of multi-byte characters.
    const writes: [number, Uint8Array][] = [];
    for (let i = 0, t = 0; i < bytes.length; i += 7, t += 3) writes.push([t, bytes.slice(i, i + 7)]);
    const { got } = await run(writes, writes.at(-1)![0]);
    const all = got.map((g) => g.text).join("");
    expect(all).not.toContain("\uFFFD");
    const { content, parsed } = assemble(got.map((g) => g.text));
    expect(content).toBe(text);
    for (const p of parsed) {
      if (typeof p !== "object") continue;
      const piece = (p as { choices: { delta: { content: string } }[] }).choices[0]!.delta.content;
      // Whole code points: no lone surrogate halves.
      expect(piece).toBe(Array.from(piece).join(""));
      expect(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(piece)).toBe(false);
    }
  });

  it("keeps pace with a steady upstream: text goes out as it comes, a little at a time, and the end stays within the bound", async () => {
    const writes: [number, string][] = [];
    let sent = "";
    for (let i = 0; i < 20; i++) {
      const text = `word${i} is here, `;
      sent += text;
      writes.push([i * 40, event(chunk({ content: text }))]);
    }
    writes.push([800, event("[DONE]")]);
    const { got, closedAt } = await run(writes, 800);
    expect(assemble(got.map((g) => g.text)).content).toBe(sent);
    expect(closedAt - 800).toBeLessThanOrEqual(END_BOUND_MS);
    // No pause between two pieces longer than the upstream's own gap between writes.
    const times = got.map((g) => g.at);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeLessThanOrEqual(40);
    // Spread out: pieces leave at many different moments, not in 20 lumps.
    expect(new Set(times).size).toBeGreaterThan(40);
  });

  it("passes other events as they came: comments, event fields, tool calls, chunks with usage", async () => {
    const others = [
      ": keep-alive\n\n",
      "event: ping\ndata: {}\n\n",
      event(chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":"Paris"}' } }] })),
      event(JSON.stringify({ choices: [{ index: 0, delta: { content: "last words" } }], usage: { total_tokens: 5 } })),
      "data: [DONE]\r\n\r\n",
    ];
    const { got } = await run(
      others.map((o, i) => [i, o]),
      others.length,
    );
    expect(got.map((g) => g.text).join("")).toBe(others.join(""));
  });

  it("cancels the upstream when the client goes away", async () => {
    let cancelled = false;
    const upstream = new ReadableStream<Uint8Array>({
      start: (c) => c.enqueue(encode(event(chunk({ content: "a fairly long piece of text" })))),
      cancel: () => void (cancelled = true),
    });
    const reader = smoothStream(upstream).getReader();
    await reader.read();
    await reader.cancel();
    expect(cancelled).toBe(true);
  });
});
