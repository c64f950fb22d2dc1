import OpenAI, { toFile } from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, summaryWhen, type Stack, type Summary } from "./fixture";

let stack: Stack;

beforeAll(async () => {
  stack = await startStack(["mock-gpt", "mock-embed", "mock-image", "whisper-1", "tts-1", "mock-rerank", "omni-moderation-latest"]);
});

afterAll(async () => {
  await stack?.stop();
});

/** A client key that keeps its requests' bodies (made once, when a test first needs it). */
let keeping: { id: string; key: string; openai: OpenAI } | null = null;
async function keepingClient(): Promise<OpenAI> {
  if (!keeping) {
    const { id, key } = (await stack.admin("POST", "/client-keys", { name: "keeps bodies", storeBodies: true })) as { id: string; key: string };
    keeping = { id, key, openai: new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: key, maxRetries: 0 }) };
    // The gateway knows a new client key within seconds.
    await waitFor(
      async () =>
        await keeping!.openai.models
          .list()
          .then(() => true)
          .catch(() => undefined),
    );
  }
  return keeping.openai;
}

/** Polls `check` until it returns something (10 s at most). */
async function waitFor<T>(check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}

const setAllKeys = (behavior: Parameters<Stack["mock"]["setKeyBehavior"]>[1]) => {
  for (const key of stack.poolKeys) stack.mock.setKeyBehavior(key, behavior);
};

describe("every endpoint through the official openai SDK", () => {
  it("streams a tool call intact", async () => {
    const stream = await stack.openai.chat.completions.create({
      model: "mock-gpt",
      stream: true,
      messages: [{ role: "user", content: "weather?" }],
      tools: [{ type: "function", function: { name: "get_weather", parameters: { type: "object", properties: { city: { type: "string" } } } } }],
    });
    let args = "";
    let name = "";
    let finish = "";
    for await (const chunk of stream) {
      const call = chunk.choices[0]?.delta.tool_calls?.[0];
      name += call?.function?.name ?? "";
      args += call?.function?.arguments ?? "";
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect({ name, args: JSON.parse(args), finish }).toEqual({ name: "get_weather", args: { city: "Paris" }, finish: "tool_calls" });
  });

  it("answers legacy completions, JSON and streamed", async () => {
    const json = await stack.openai.completions.create({ model: "mock-gpt", prompt: "Say hi" });
    expect(json.choices[0]?.text).toContain("mock upstream");
    const stream = await stack.openai.completions.create({ model: "mock-gpt", prompt: "Say hi", stream: true });
    let text = "";
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
    expect(text).toBe(json.choices[0]?.text);
  });

  it("answers the Responses API, JSON and streamed", async () => {
    const json = await stack.openai.responses.create({ model: "mock-gpt", input: "Say hi" });
    expect(json.output_text).toContain("mock upstream");
    expect(json.usage?.total_tokens).toBeGreaterThan(0);
    const stream = await stack.openai.responses.create({ model: "mock-gpt", input: "Say hi", stream: true });
    let text = "";
    let completed = false;
    for await (const event of stream) {
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") completed = true;
    }
    expect(completed).toBe(true);
    expect(text).toBe(json.output_text);
  });

  it("answers embeddings, moderations and models", async () => {
    const emb = await stack.openai.embeddings.create({ model: "mock-embed", input: ["a", "b"] });
    expect(emb.data).toHaveLength(2);
    const mod = await stack.openai.moderations.create({ model: "omni-moderation-latest", input: "hello" });
    expect(mod.results[0]?.flagged).toBe(false);
    const models = [];
    for await (const m of stack.openai.models.list()) models.push(m.id);
    expect(models.sort()).toEqual(["mock-embed", "mock-gpt", "mock-image", "mock-rerank", "omni-moderation-latest", "tts-1", "whisper-1"]);
  });

  it("answers rerank (SiliconFlow/Jina style)", async () => {
    const res = await fetch(`${stack.url}/v1/rerank`, {
      method: "POST",
      headers: { authorization: `Bearer ${stack.clientKey}`, "content-type": "application/json" },
      body: JSON.stringify({ model: "mock-rerank", query: "q", documents: ["a", "b", "c"] }),
    });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { results: unknown[] }).results).toHaveLength(3);
  });

  it("generates and edits images (the edit as a multipart upload)", async () => {
    const gen = await stack.openai.images.generate({ model: "mock-image", prompt: "a cat" });
    expect(gen.data?.[0]?.b64_json).toBeTruthy();
    const edit = await stack.openai.images.edit({
      model: "mock-image",
      prompt: "add a hat",
      image: await toFile(Buffer.from("fake png bytes"), "cat.png", { type: "image/png" }),
    });
    expect(edit.data?.[0]?.b64_json).toBeTruthy();
    expect(stack.mock.stats.lastBody).toEqual({ model: "mock-image", fileBytes: 14 });
  });

  it("transcribes and translates multipart audio, byte for byte", async () => {
    const audio = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 256));
    const t = await stack.openai.audio.transcriptions.create({ model: "whisper-1", file: await toFile(audio, "speech.wav", { type: "audio/wav" }) });
    expect(t.text).toBe("Mock transcription of 3000 bytes.");
    const tr = await stack.openai.audio.translations.create({ model: "whisper-1", file: await toFile(audio, "speech.wav", { type: "audio/wav" }) });
    expect(tr.text).toBe("Mock transcription of 3000 bytes.");
  });

  it("streams binary speech through", async () => {
    const res = await stack.openai.audio.speech.create({ model: "tts-1", voice: "alloy", input: "Hello" });
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(bytes.byteLength).toBe(4096);
    expect([bytes[0], bytes[1024], bytes[2048], bytes[3072]]).toEqual([0, 1, 2, 3]);
  });
});

describe("streaming behaviour end to end", () => {
  it.each([
    ["as it comes", false, {}],
    ["with its bodies kept (read beside the relay), usage not asked", true, {}],
    ["with its bodies kept, usage asked by the client (piped natively)", true, { stream_options: { include_usage: true } }],
  ])("delivers a paced stream as it is produced, not at the end: %s", async (_case, keep, extra) => {
    const openai = keep ? await keepingClient() : stack.openai;
    setAllKeys({ chunkDelayMs: 150 });
    try {
      const started = Date.now();
      const stream = await openai.chat.completions.create({ model: "mock-gpt", stream: true, messages: [{ role: "user", content: "slowly" }], ...extra });
      const arrivals: number[] = [];
      let text = "";
      for await (const chunk of stream) {
        const piece = chunk.choices[0]?.delta.content;
        if (piece) {
          arrivals.push(Date.now() - started);
          text += piece;
        }
      }
      expect(arrivals.length).toBe(10);
      // Ten words 150 ms apart: the first arrives long before the last.
      expect(arrivals[9]! - arrivals[0]!).toBeGreaterThanOrEqual(9 * 150 * 0.8);
      if (keep) {
        // And the answer was kept, reassembled into the message the client read.
        const page = await waitFor(async () => {
          const p = (await stack.admin("GET", `/requests?clientKeyId=${keeping!.id}&limit=1`)) as { data: { requestId: string }[] };
          return p.data[0];
        });
        const detail = await waitFor(async () => {
          const d = (await stack.admin("GET", `/requests/${page.requestId}`)) as { bodies: { response: { text: string } | null } | null };
          return d.bodies?.response ? d : undefined;
        });
        expect(JSON.parse(detail.bodies!.response!.text)).toMatchObject({ role: "assistant", content: text });
        expect(JSON.stringify(detail)).not.toContain(keeping!.key);
      }
    } finally {
      setAllKeys({});
    }
  });

  it.each([
    ["Keypool hides the usage chunk it asked for (relayed chunk by chunk)", {}],
    ["the client asked for usage itself (passed through natively)", { stream_options: { include_usage: true } }],
  ])("cancels the upstream when the client aborts mid-stream, and still counts the request: %s", async (_path, extra) => {
    setAllKeys({ chunkDelayMs: 200 });
    try {
      const before = (await stack.admin("GET", "/stats/summary")) as Summary;
      const outcomesBefore = await todaysOutcomes();
      const cancelledBefore = stack.mock.stats.cancelledStreams;
      const controller = new AbortController();
      const stream = await stack.openai.chat.completions.create(
        { model: "mock-gpt", stream: true, messages: [{ role: "user", content: "long answer please" }], ...extra },
        { signal: controller.signal },
      );
      let seen = 0;
      for await (const _chunk of stream) {
        if (++seen === 2) {
          controller.abort();
          break;
        }
      }
      await waitUntil(() => stack.mock.stats.cancelledStreams > cancelledBefore, 5_000);
      // Waits for this request's own count: an earlier test's request may still be on its way
      // (on another of the event queues), so a moved total alone does not say this one arrived.
      let outcomes = await todaysOutcomes();
      for (const deadline = Date.now() + 10_000; outcomes.aborted < outcomesBefore.aborted + 1 && Date.now() < deadline;) {
        await new Promise((r) => setTimeout(r, 50));
        outcomes = await todaysOutcomes();
      }
      // Counted as the client leaving, not as a failure of the key (which would push it towards "failing").
      expect(outcomes.aborted).toBe(outcomesBefore.aborted + 1);
      expect(outcomes.failures).toBe(outcomesBefore.failures);
      const summary = (await stack.admin("GET", "/stats/summary")) as Summary;
      expect(summary.rpd).toBeGreaterThanOrEqual(before.rpd + 1);
      expect(summary.tpd).toBeGreaterThan(before.tpd);
    } finally {
      setAllKeys({});
    }
  });

  it("estimates tokens when the upstream reports no usage", async () => {
    setAllKeys({ omitUsage: true });
    try {
      const before = (await stack.admin("GET", "/stats/summary")) as Summary;
      const estimatedBefore = (await todaysOutcomes()).estimatedTokens;
      const res = await stack.openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "no usage here" }] });
      expect(res.usage).toBeUndefined();
      const { summary } = await summaryWhen(stack, (s) => s.rpd >= before.rpd + 1, 5_000);
      expect(summary.tpd).toBeGreaterThan(before.tpd);
      // This request's own tokens counted as estimated (an earlier request arriving late would not move these).
      let estimated = (await todaysOutcomes()).estimatedTokens;
      for (const deadline = Date.now() + 10_000; estimated <= estimatedBefore && Date.now() < deadline;) {
        await new Promise((r) => setTimeout(r, 50));
        estimated = (await todaysOutcomes()).estimatedTokens;
      }
      expect(estimated).toBeGreaterThan(estimatedBefore);
    } finally {
      setAllKeys({});
    }
  });
});

/** Today's aborted and failed attempts of the mock model, and its estimated tokens, from the rollups. */
async function todaysOutcomes(): Promise<{ aborted: number; failures: number; estimatedTokens: number }> {
  const { rows } = (await stack.admin("GET", "/stats/breakdown?by=model&bucket=day&count=1")) as {
    rows: { id: string; aborted: number; failures: number; estimatedTokens: number }[];
  };
  const row = rows.find((r) => r.id === "mock-gpt");
  return { aborted: row?.aborted ?? 0, failures: row?.failures ?? 0, estimatedTokens: row?.estimatedTokens ?? 0 };
}

async function waitUntil(check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 25));
  }
}
