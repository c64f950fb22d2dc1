import { describe, expect, it } from "vitest";
import { classifyResponse, parseRetryAfter } from "../../gateway/logic/failure-policy";

describe("classifyResponse", () => {
  it("cools a key on 429 for Retry-After and retries elsewhere", () => {
    expect(classifyResponse(429, 7_000, "")).toEqual({ outcome: "rate_limited", retry: true, blockMs: 7_000 });
  });
  it("treats 401/403 and invalid-key messages as a dead key", () => {
    expect(classifyResponse(401, null, "").outcome).toBe("auth_failed");
    expect(classifyResponse(403, null, "").outcome).toBe("auth_failed");
    expect(classifyResponse(400, null, '{"error":{"message":"Invalid API key"}}').outcome).toBe("auth_failed");
  });
  it("treats 402 and balance messages as exhausted", () => {
    expect(classifyResponse(402, null, "").outcome).toBe("no_balance");
    expect(classifyResponse(429, null, "You exceeded your current quota").outcome).toBe("no_balance");
  });
  it("retries 5xx on another key", () => {
    expect(classifyResponse(503, null, "")).toMatchObject({ outcome: "upstream_error", retry: true });
  });
  it("passes other 4xx to the client without penalising the key", () => {
    expect(classifyResponse(400, null, '{"error":{"message":"context too long"}}')).toEqual({ outcome: "client_error", retry: false, blockMs: 0 });
    expect(classifyResponse(404, null, "model not found")).toEqual({ outcome: "client_error", retry: false, blockMs: 0 });
  });
});

describe("parseRetryAfter", () => {
  it("reads seconds and HTTP dates", () => {
    expect(parseRetryAfter("3", 0)).toBe(3_000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6_000);
    expect(parseRetryAfter("soon", 0)).toBeNull();
    expect(parseRetryAfter(null, 0)).toBeNull();
  });
});
