import { describe, expect, it, vi } from "vitest";
import type { KeypoolEvent } from "../../schema";
import { queueEventSink } from "../../gateway/storage/event-sink";

const event: KeypoolEvent = { v: 1, type: "admin", id: "evt-00000001", ts: 1, actor: "a", action: "x", target: null, detail: null };

describe("queueEventSink", () => {
  it("sends a request's events in one batch", async () => {
    const sendBatch = vi.fn(async () => {});
    await queueEventSink({ sendBatch } as unknown as Queue)([event, { ...event, id: "evt-00000002" }]);
    expect(sendBatch).toHaveBeenCalledTimes(1);
    expect(sendBatch.mock.calls[0]).toEqual([[{ body: event, contentType: "json" }, { body: { ...event, id: "evt-00000002" }, contentType: "json" }]]);
  });

  it("logs a failed send without its contents and never throws", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const sink = queueEventSink({ sendBatch: async () => Promise.reject(new Error("queue down: secret sk-should-not-appear")) } as unknown as Queue);
    await expect(sink([event])).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![0])).not.toContain("sk-should-not-appear");
    error.mockRestore();
  });
});
