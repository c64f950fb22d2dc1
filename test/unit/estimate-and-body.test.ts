import { describe, expect, it } from "vitest";
import type { SnapshotUpstream } from "../../schema";
import { answerText, estimatePromptTokens, estimateTextTokens } from "../../gateway/logic/estimate-tokens";
import { bodyForUpstream, jsonNestsDeeperThan, nestsDeeperThan, type ClientBody } from "../../gateway/logic/request-body";
import { readUsage } from "../../gateway/logic/usage";

describe("token estimates", () => {
  it("counts CJK characters at 0.7 and other text at a quarter token per character", () => {
    expect(estimateTextTokens("")).toBe(0);
    expect(estimateTextTokens("abcdefgh")).toBe(2);
    expect(estimateTextTokens("你好世界")).toBe(3);
    expect(estimateTextTokens("你好 abcd")).toBe(Math.ceil(1.4 + 5 / 4));
  });

  it("estimates a chat prompt with per-message overhead", () => {
    const body = { model: "m", messages: [{ role: "user", content: "abcdefgh" }] };
    expect(estimatePromptTokens(body)).toBe(estimateTextTokens("user") + 2 + 3 + 3);
  });

  it("finds generated text in chat, completions, tool calls and Responses events", () => {
    expect(answerText({ choices: [{ message: { content: "a", reasoning_content: "b" } }] })).toBe("ab");
    expect(answerText({ choices: [{ delta: { tool_calls: [{ function: { arguments: '{"x":1}' } }] } }] })).toBe('{"x":1}');
    expect(answerText({ choices: [{ text: "c" }] })).toBe("c");
    expect(answerText({ type: "response.output_text.delta", delta: "d" })).toBe("d");
  });
});

describe("readUsage", () => {
  it("reads chat and Responses API usage", () => {
    expect(readUsage({ usage: { prompt_tokens: 1, completion_tokens: 2 } })).toEqual({
      promptTokens: 1,
      completionTokens: 2,
      totalTokens: 3,
      cachedTokens: 0,
      reasoningTokens: 0,
    });
    expect(
      readUsage({
        type: "response.completed",
        response: { usage: { input_tokens: 5, output_tokens: 7, total_tokens: 12, output_tokens_details: { reasoning_tokens: 4 } } },
      }),
    ).toMatchObject({
      totalTokens: 12,
      reasoningTokens: 4,
    });
    expect(readUsage({ usage: null })).toBeNull();
  });
});

describe("bodyForUpstream", () => {
  const upstream: SnapshotUpstream = {
    id: "u",
    name: "u",
    baseUrl: "https://u.test/v1",
    kind: "custom",
    models: [],
    aliases: { friendly: "vendor/x" },
    enabled: true,
  };
  const json = (fields: Record<string, unknown>, endpoint = "/chat/completions"): ClientBody => {
    const text = JSON.stringify(fields);
    return {
      endpoint,
      bytes: new TextEncoder().encode(text).buffer as ArrayBuffer,
      json: fields,
      contentType: "application/json",
      model: String(fields.model),
      stream: fields.stream === true,
    };
  };

  it("keeps the client's bytes when nothing needs changing", async () => {
    const body = json({ model: "m", stream: true, stream_options: { include_usage: true }, extra: 1 });
    const out = await bodyForUpstream(body, upstream);
    expect(out.body).toBe(body.bytes);
    expect(out.dropUsageChunk).toBe(false);
  });

  it("asks a chat stream for usage and says to drop that chunk", async () => {
    const out = await bodyForUpstream(json({ model: "m", stream: true, stream_options: { foo: 1 } }), upstream);
    expect(JSON.parse(out.body as string)).toEqual({ model: "m", stream: true, stream_options: { foo: 1, include_usage: true } });
    expect(out.dropUsageChunk).toBe(true);
    const embeddings = await bodyForUpstream(json({ model: "m", stream: true }, "/embeddings"), upstream);
    expect(embeddings.dropUsageChunk).toBe(false);
  });

  it("renames an aliased model in JSON and in a multipart form", async () => {
    const out = await bodyForUpstream(json({ model: "friendly", n: 2 }), upstream);
    expect(JSON.parse(out.body as string)).toEqual({ model: "vendor/x", n: 2 });
    const form = new FormData();
    form.set("model", "friendly");
    form.set("file", new Blob([new Uint8Array([1, 2, 3])]), "a.wav");
    const req = new Request("https://x.test/", { method: "POST", body: form });
    const multipart: ClientBody = {
      endpoint: "/audio/transcriptions",
      bytes: await req.arrayBuffer(),
      json: null,
      contentType: req.headers.get("content-type")!,
      model: "friendly",
      stream: false,
    };
    const rebuilt = await bodyForUpstream(multipart, upstream);
    const parsed = await new Request("https://x.test/", { method: "POST", headers: { "content-type": rebuilt.contentType! }, body: rebuilt.body }).formData();
    expect(parsed.get("model")).toBe("vendor/x");
    expect(new Uint8Array(await (parsed.get("file") as Blob).arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]));
  });
});

describe("nestsDeeperThan", () => {
  const deeper = (text: string, max: number) => nestsDeeperThan(JSON.parse(text), max);
  it("counts the nesting of arrays and objects, not brackets inside strings", () => {
    expect(deeper('{"a":[{"b":[1]}]}', 4)).toBe(false);
    expect(deeper('{"a":[{"b":[1]}]}', 3)).toBe(true);
    expect(deeper('{"a":"[[[[[[[[{{{{{{"}', 1)).toBe(false);
    expect(deeper('{"a":"x\\"[[[[","b":[[1]]}', 2)).toBe(true);
    expect(deeper('{"a":"x\\"[[[[","b":[[1]]}', 3)).toBe(false);
    expect(deeper('{"a":[],"b":{},"c":1}', 2)).toBe(false);
    expect(deeper('{"a":[],"b":{},"c":1}', 1)).toBe(true);
    expect(deeper("1", 0)).toBe(false);
    expect(deeper("[".repeat(64) + "]".repeat(64), 64)).toBe(false);
    expect(deeper("[".repeat(65) + "]".repeat(65), 64)).toBe(true);
    // A key named __proto__ is an own property of a parsed object; its value is walked too.
    expect(deeper('{"__proto__":[[[[1]]]]}', 3)).toBe(true);
    // The deep part may sit after many shallow siblings.
    expect(deeper(`{"m":[${'{"c":"x"},'.repeat(1000)}[[[[1]]]]]}`, 4)).toBe(true);
  });

  it("walks a hostile body of 100,000 levels without recursing past the limit", () => {
    expect(deeper("[".repeat(100_000) + "]".repeat(100_000), 64)).toBe(true);
  });
});

describe("jsonNestsDeeperThan (large bodies, before parsing)", () => {
  const enc = (s: string) => new TextEncoder().encode(s);
  it("counts the nesting of arrays and objects, not brackets inside strings or escaped quotes", () => {
    expect(jsonNestsDeeperThan(enc('{"a":[{"b":[1]}]}'), 4)).toBe(false);
    expect(jsonNestsDeeperThan(enc('{"a":[{"b":[1]}]}'), 3)).toBe(true);
    expect(jsonNestsDeeperThan(enc('{"a":"[[[[[[[[{{{{{{"}'), 1)).toBe(false);
    expect(jsonNestsDeeperThan(enc('{"a":"\\"}'), 1)).toBe(false);
    expect(jsonNestsDeeperThan(enc('{"a":"x\\"[[[[","b":[[1]]}'), 2)).toBe(true);
    expect(jsonNestsDeeperThan(enc('{"a":"x\\"[[[[","b":[[1]]}'), 3)).toBe(false);
    expect(jsonNestsDeeperThan(enc("[".repeat(65) + "]".repeat(65)), 64)).toBe(true);
  });

  it("agrees with the check on the parsed body", () => {
    for (const text of ['{"a":[{"b":[1]}]}', '{"a":"x\\"[[[[","b":[[1]]}', "[".repeat(65) + "]".repeat(65), '{"m":[{"c":"{[{["}]}']) {
      for (const max of [1, 2, 3, 4, 64]) expect(jsonNestsDeeperThan(enc(text), max)).toBe(nestsDeeperThan(JSON.parse(text), max));
    }
  });
});
