import { describe, expect, it } from "vitest";
import { captureBytes, keptBodies, reassembleSse } from "../../gateway/logic/body-capture";
import { MAX_MESSAGE_BYTES, redactSecrets } from "../../schema";

const bytes = (text: string) => new TextEncoder().encode(text);

describe("kept bodies", () => {
  it("reassemble a streamed chat answer into its message: text, reasoning, tool calls, finish and usage", () => {
    const sse = [
      'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"think"}}]}',
      'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hel"}}]}',
      ": keep-alive",
      'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"lo 😀","tool_calls":[{"index":0,"id":"t1","type":"function","function":{"name":"get","arguments":"{\\"a\\""}}]}}]}',
      'data: {"object":"chat.completion.chunk","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]},"finish_reason":"stop"}]}',
      'data: {"object":"chat.completion.chunk","choices":[],"usage":{"total_tokens":12}}',
      "data: [DONE]",
    ].join("\n\n");
    expect(JSON.parse(reassembleSse(sse))).toEqual({
      role: "assistant",
      content: "Hello 😀",
      reasoning_content: "think",
      tool_calls: [{ id: "t1", type: "function", function: { name: "get", arguments: '{"a":1}' } }],
      finish_reason: "stop",
      usage: { total_tokens: 12 },
    });
    // Another endpoint's events are kept as they came.
    expect(reassembleSse("event: response.created\ndata: {}\n\n")).toBe("event: response.created\ndata: {}\n\n");
  });

  it("keep text up to the cap, describe binary bodies, and take out every key", () => {
    expect(captureBytes(bytes("abcdef"), "application/json", 4)).toEqual({ contentType: "application/json", text: "abcd", bytes: 6, truncated: true });
    expect(captureBytes(bytes("RIFF...."), "audio/wav", 4)).toEqual({ contentType: "audio/wav", text: null, bytes: 8, truncated: false });
    const upstream = "sk-live-0123456789abcdefghijklmnop";
    const text = `my key kp-AbCdEfGhIjKlMnOpQrStUv and theirs ${upstream}, a groq gsk_0123456789abcdefghij, and plain words`;
    const clean = redactSecrets(text, ["kp-AbCdEfGhIjKlMnOpQrStUv", "odd-secret-no-prefix"]);
    expect(clean).toBe("my key [redacted] and theirs [redacted], a groq [redacted], and plain words");
    expect(redactSecrets("the odd-secret-no-prefix here", ["odd-secret-no-prefix"])).toBe("the [redacted] here");
  });

  it("fit the queue's message size, cutting the longer body", () => {
    const big = captureBytes(bytes("x".repeat(100_000)), "text/plain", 100_000);
    const small = captureBytes(bytes('{"model":"m"}'), "application/json", 100_000);
    const kept = keptBodies("r1", 1, small, { ...big, text: big.text! + "y".repeat(60_000) }, []);
    expect(new TextEncoder().encode(JSON.stringify({ bodies: kept })).byteLength).toBeLessThanOrEqual(MAX_MESSAGE_BYTES);
    expect(kept.response?.truncated).toBe(true);
    expect(kept.request.text).toBe('{"model":"m"}');
  });
});
