import { describe, expect, it } from "vitest";
import { meterSseText, relayBody, type RelayResult } from "../../gateway/logic/relay";
import { SseFramer, frameData } from "../../gateway/logic/sse-frames";

const encode = (s: string) => new TextEncoder().encode(s);

/** An upstream body the test feeds by hand, noting whether it was cancelled. */
function handFed() {
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  const state = { cancelled: false };
  const stream = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c), cancel: () => void (state.cancelled = true) });
  return {
    stream,
    push: (s: string | Uint8Array) => controller.enqueue(typeof s === "string" ? encode(s) : s),
    close: () => controller.close(),
    error: (e: unknown) => controller.error(e),
    state,
  };
}

/** The chunk-by-chunk relay: a body of unknown length, or one whose usage chunk is dropped. */
function relay(stream: ReadableStream<Uint8Array>, contentType: string, dropUsageChunk = false, contentLength: number | null = null) {
  const ended: RelayResult[] = [];
  const client = new AbortController();
  const out = relayBody(stream, { contentType, contentLength, dropUsageChunk, signal: client.signal, onEnd: (r) => ended.push(r) });
  return { reader: out.body.getReader(), ended, metered: out.metered, client };
}

const USAGE =
  '{"prompt_tokens":4,"completion_tokens":2,"total_tokens":6,"prompt_tokens_details":{"cached_tokens":3},"completion_tokens_details":{"reasoning_tokens":1}}';

describe("relayBody", () => {
  it("hands each chunk to the client before the upstream has produced the next", async () => {
    const up = handFed();
    const { reader } = relay(up.stream, "text/event-stream");
    for (let k = 0; k < 5; k++) {
      const chunk = `data: {"choices":[{"delta":{"content":"${k}"}}]}\n\n`;
      up.push(chunk);
      const { value } = await reader.read();
      expect(new TextDecoder().decode(value)).toBe(chunk);
    }
    up.close();
    expect((await reader.read()).done).toBe(true);
  });

  it("passes bytes through unchanged, emoji split across chunks included, and reads the usage chunk", async () => {
    const up = handFed();
    const { reader, ended, metered } = relay(up.stream, "text/event-stream; charset=utf-8");
    const whole = encode(
      `: comment\r\nevent: x\r\ndata: {"choices":[{"delta":{"content":"😀"}}]}\r\n\r\ndata: {"choices":[],"usage":${USAGE}}\n\ndata: [DONE]\n\n`,
    );
    const pieces = [whole.slice(0, 40), whole.slice(40, 41), whole.slice(41, 60), whole.slice(60)];
    const received: number[] = [];
    for (const p of pieces) {
      up.push(p);
      received.push(...(await reader.read()).value!);
    }
    up.close();
    await reader.read();
    await metered;
    expect(new Uint8Array(received)).toEqual(whole);
    expect(ended).toEqual([
      {
        usage: { promptTokens: 4, completionTokens: 2, totalTokens: 6, cachedTokens: 3, reasoningTokens: 1 },
        completionEstimate: 0,
        aborted: false,
        failed: false,
      },
    ]);
  });

  it("drops only the usage-only chunk when Keypool asked for it", async () => {
    const up = handFed();
    const { reader } = relay(up.stream, "text/event-stream", true);
    const frames = ['data: {"choices":[{"delta":{"content":"a"}}]}\n\n', `data: {"id":"x","choices":[],"usage":${USAGE}}\n\n`, "data: [DONE]\n\n"];
    up.push(frames[0]!.slice(0, 10));
    up.push(frames[0]!.slice(10) + frames[1] + frames[2]);
    up.close();
    let text = "";
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value);
    expect(text).toBe(frames[0]! + frames[2]!);
  });

  it("leaves out a usage chunk split across network reads, reads its usage, and passes the rest as it came", async () => {
    const up = handFed();
    const { reader, ended, metered } = relay(up.stream, "text/event-stream", true);
    const content = 'data: {"choices":[{"delta":{"content":"é😀"}}],"usage":null}\r\n\r\n';
    const usage = `data: {"id":"x","choices":[],"usage":${USAGE}}\r\n\r\n`;
    const whole = encode(content + usage + "data: [DONE]\r\n\r\n");
    const start = encode(content).byteLength;
    // The usage event arrives in three reads, the first of them sharing a read with the content before it.
    for (const [a, b] of [
      [0, start + 9],
      [start + 9, start + 40],
      [start + 40, start + 41],
      [start + 41, whole.byteLength],
    ] as const)
      up.push(whole.slice(a, b));
    up.close();
    const received: number[] = [];
    for (let r = await reader.read(); !r.done; r = await reader.read()) received.push(...r.value);
    await metered;
    expect(new TextDecoder().decode(new Uint8Array(received))).toBe(content + "data: [DONE]\r\n\r\n");
    expect(ended).toEqual([
      {
        usage: { promptTokens: 4, completionTokens: 2, totalTokens: 6, cachedTokens: 3, reasoningTokens: 1 },
        completionEstimate: 0,
        aborted: false,
        failed: false,
      },
    ]);
  });

  it("leaving out the usage chunk, reports a body that breaks mid-way as failed, with an estimate", async () => {
    const up = handFed();
    const { reader, ended, metered } = relay(up.stream, "text/event-stream", true);
    up.push('data: {"choices":[{"delta":{"content":"a partial answer, cut short"}}]}\n\n');
    await reader.read();
    up.error(new Error("connection reset"));
    await expect(reader.read()).rejects.toThrow();
    await metered;
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ usage: null, aborted: false, failed: true });
    expect(ended[0]!.completionEstimate).toBeGreaterThan(3);
  });

  it("cancels the upstream when the client goes away, and reports an estimate of what was seen", async () => {
    // workerd aborts the request's signal when the client leaves: the upstream is cancelled at once.
    for (const signalled of [true, false]) {
      const up = handFed();
      const { reader, ended, metered, client } = relay(up.stream, "text/event-stream", true);
      up.push('data: {"choices":[{"delta":{"content":"你好，这是一个部分回答"}}]}\n\n');
      await reader.read();
      await reader.cancel();
      if (signalled) client.abort();
      // Without the signal, the relay notices when it next writes: at the upstream's next chunk.
      else up.push('data: {"choices":[{"delta":{"content":"更多"}}]}\n\n');
      await metered;
      expect(up.state.cancelled).toBe(true);
      expect(ended).toHaveLength(1);
      expect(ended[0]).toMatchObject({ usage: null, aborted: true, failed: false });
      expect(ended[0]!.completionEstimate).toBeGreaterThan(5);
    }
  });

  it("on the pass-through path too, cancels the upstream when the client goes away and estimates from what had arrived", async () => {
    const up = handFed();
    const { reader, ended, metered } = relay(up.stream, "text/event-stream");
    up.push('data: {"choices":[{"delta":{"content":"你好，这是一个部分回答"}}]}\n\n');
    await reader.read();
    await reader.cancel();
    // The pipe notices the client is gone when it next writes: at the upstream's next chunk.
    up.push('data: {"choices":[{"delta":{"content":"更多"}}]}\n\n');
    await metered;
    expect(up.state.cancelled).toBe(true);
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ usage: null, aborted: true, failed: false });
    expect(ended[0]!.completionEstimate).toBeGreaterThan(5);
  });

  it("on the pass-through path, reports a body that breaks mid-way as failed, not aborted", async () => {
    const up = handFed();
    const { reader, ended, metered } = relay(up.stream, "text/event-stream");
    up.push('data: {"choices":[{"delta":{"content":"partial"}}]}\n\n');
    await reader.read();
    up.error(new Error("connection reset"));
    await expect(reader.read()).rejects.toThrow();
    await metered;
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ usage: null, aborted: false, failed: true });
  });

  it("reads usage from a JSON body, declared size or not, and estimates from its text when there is none", async () => {
    const json = `{"choices":[{"message":{"content":"hi"}}],"usage":${USAGE}}`;
    for (const length of [null, encode(json).byteLength]) {
      const withUsage = relay(new Response(json).body!, "application/json", false, length);
      let text = "";
      for (let r = await withUsage.reader.read(); !r.done; r = await withUsage.reader.read()) text += new TextDecoder().decode(r.value);
      await withUsage.metered;
      expect(text).toBe(json);
      expect(withUsage.ended[0]!.usage?.totalTokens).toBe(6);
    }
    const without = relay(new Response('{"choices":[{"message":{"content":"a fairly long answer of forty characters"}}]}').body!, "application/json");
    while (!(await without.reader.read()).done);
    expect(without.ended[0]).toMatchObject({ usage: null, completionEstimate: 10 });
  });

  it("reports an upstream read that fails because the client left (workerd aborts its signal) as aborted", async () => {
    const up = handFed();
    const { reader, ended, client } = relay(up.stream, "text/event-stream", true);
    up.push('data: {"choices":[{"delta":{"content":"partial"}}]}\n\n');
    await reader.read();
    client.abort();
    up.error(new DOMException("The operation was aborted", "AbortError"));
    await expect(reader.read()).rejects.toThrow();
    expect(ended).toHaveLength(1);
    expect(ended[0]).toMatchObject({ aborted: true, failed: false });
  });

  it("on the pass-through path for a sized body, tells a client that left from a body that broke", async () => {
    for (const clientLeft of [true, false]) {
      const up = handFed();
      const { ended, metered, client } = relay(up.stream, "application/json", false, 100);
      up.push('{"choices":[');
      if (clientLeft) client.abort();
      up.error(new Error("Network connection lost."));
      await metered;
      expect(ended).toEqual([{ usage: null, completionEstimate: 0, aborted: clientLeft, failed: !clientLeft }]);
    }
  });

  it("reports a failed upstream body once", async () => {
    const errored = new ReadableStream<Uint8Array>({ pull: (c) => c.error(new Error("reset")) });
    const broken = relay(errored, "application/json");
    await expect(broken.reader.read()).rejects.toThrow("reset");
    expect(broken.ended).toEqual([{ usage: null, completionEstimate: 0, aborted: false, failed: true }]);
  });
});

describe("meterSseText (a whole stream, read from its end)", () => {
  const chunk = (content: string, usage = "null") => `data: {"choices":[{"index":0,"delta":{"content":"${content}"}}],"usage":${usage}}\n\n`;
  const other = '{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}';
  const STREAMS: Record<string, string> = {
    "usage: null in every chunk, usage last": chunk("Hel") + chunk("lo") + `data: {"choices":[],"usage":${USAGE}}\n\ndata: [DONE]\n\n`,
    "two usage chunks": `data: {"choices":[],"usage":${other}}\n\n` + chunk("x") + `data: {"choices":[],"usage":${USAGE}}\n\ndata: [DONE]\n\n`,
    "no usage at all": chunk("Hello there, ") + chunk("general Kenobi") + "data: [DONE]\n\n",
    "CRLF and CR frames": `: hi\r\n\r\ndata: {"choices":[{"delta":{"content":"a"}}]}\r\rdata: {"choices":[],"usage":${USAGE}}\r\n\r\ndata: [DONE]\r\n\r\n`,
    "a usage frame that is not JSON": chunk("some words here") + 'data: {"usage": oops\n\n',
    "usage unterminated at the end": chunk("a") + `data: {"choices":[],"usage":${USAGE}}`,
  };

  /** What the chunk-by-chunk relay (which reads every frame in order) reports for the same stream. */
  async function forward(text: string): Promise<RelayResult> {
    const { reader, ended, metered } = relay(new Response(text).body!, "text/event-stream", true);
    while (!(await reader.read()).done);
    await metered;
    return ended[0]!;
  }

  for (const [name, text] of Object.entries(STREAMS)) {
    it(`reads what a front-to-back reading reads: ${name}`, async () => {
      const { usage, completionEstimate } = await forward(text);
      expect(meterSseText(text)).toEqual({ usage, completionEstimate });
    });
  }

  it("takes the last usage sent, and estimates only when there is none", () => {
    expect(meterSseText(STREAMS["two usage chunks"]!).usage).toMatchObject({ promptTokens: 4, totalTokens: 6 });
    expect(meterSseText(STREAMS["CRLF and CR frames"]!).usage).toMatchObject({ promptTokens: 4 });
    const none = meterSseText(STREAMS["no usage at all"]!);
    expect(none.usage).toBeNull();
    expect(none.completionEstimate).toBeGreaterThan(3);
  });
});

describe("SseFramer", () => {
  it("frames on LF, CRLF and CR blank lines and waits on a trailing CR", () => {
    const f = new SseFramer();
    expect(f.push("data: a\n\ndata: b\r\n")).toEqual(["data: a\n\n"]);
    expect(f.push("\r")).toEqual([]);
    // The last CR could still become a CRLF, so that frame waits for the next byte.
    expect(f.push("\ndata: c\r\r")).toEqual(["data: b\r\n\r\n"]);
    expect(f.push("data: d")).toEqual(["data: c\r\r"]);
    expect(f.flush()).toBe("data: d");
  });

  it("joins multi-line data and ignores comments and other fields", () => {
    expect(frameData(': ping\nevent: delta\ndata: {"a":\ndata:1}\nid: 7\n\n')).toBe('{"a":\n1}');
    expect(frameData(": keep-alive\n\n")).toBeNull();
    expect(frameData("database: x\n\n")).toBeNull();
  });
});
