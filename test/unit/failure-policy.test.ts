import { describe, expect, it } from "vitest";
import { classifyResponse } from "../../gateway/logic/failure-policy";
import { defaultSettings } from "../../schema";

/** The pool's cooldown for a 429 without Retry-After, as the settings give it. */
const COOL = defaultSettings.defaultCooldownMs;

describe("classifyResponse", () => {
  it("takes a 429 that says a quota or a day's limit is spent as a rate limit until the provider's reset", () => {
    for (const body of [
      '{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","code":"insufficient_quota"}}',
      '{"error":{"message":"Rate limit reached for model `llama` on requests per day (RPD): Limit 14400, Used 14400, Requested 1."}}',
      '{"error":{"message":"Daily limit exceeded for this key"}}',
    ]) {
      expect(classifyResponse(429, null, body, COOL)).toEqual({ outcome: "rate_limited", retry: true, blockMs: 0, quota: true });
    }
    // A Retry-After hours away says the same without words.
    expect(classifyResponse(429, 5 * 3_600_000, "", COOL)).toMatchObject({ outcome: "rate_limited", quota: true });
    // A short rate limit is none of that.
    expect(classifyResponse(429, 20_000, '{"error":{"message":"Rate limit reached for requests per minute"}}', COOL)).toEqual({
      outcome: "rate_limited",
      retry: true,
      blockMs: 20_000,
    });
  });
  it("cools a key on 429 for Retry-After and retries elsewhere", () => {
    expect(classifyResponse(429, 7_000, "", COOL)).toEqual({ outcome: "rate_limited", retry: true, blockMs: 7_000 });
  });
  it("cools a key on 429 without Retry-After for the configured cooldown, the one the consumer folds it with", () => {
    expect(classifyResponse(429, null, "", COOL).blockMs).toBe(COOL);
    expect(classifyResponse(429, null, "", 45_000).blockMs).toBe(45_000);
  });
  it("treats 401/403 and invalid-key messages as a dead key", () => {
    expect(classifyResponse(401, null, "", COOL).outcome).toBe("auth_failed");
    expect(classifyResponse(403, null, "", COOL).outcome).toBe("auth_failed");
    expect(classifyResponse(400, null, '{"error":{"message":"Invalid API key"}}', COOL).outcome).toBe("auth_failed");
  });
  it("treats 402 and balance messages as exhausted", () => {
    expect(classifyResponse(402, null, "", COOL).outcome).toBe("no_balance");
    expect(classifyResponse(429, null, '{"error":{"message":"Insufficient balance"}}', COOL).outcome).toBe("no_balance");
  });
  it("retries 5xx on another key", () => {
    expect(classifyResponse(503, null, "", COOL)).toMatchObject({ outcome: "upstream_error", retry: true });
  });
  it("passes other 4xx to the client without penalising the key", () => {
    expect(classifyResponse(400, null, '{"error":{"message":"context too long"}}', COOL)).toEqual({ outcome: "client_error", retry: false, blockMs: 0 });
    expect(classifyResponse(404, null, "model not found", COOL)).toEqual({ outcome: "client_error", retry: false, blockMs: 0 });
  });
});
