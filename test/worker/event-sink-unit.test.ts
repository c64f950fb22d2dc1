import { describe, expect, it, vi } from "vitest";
import type { KeypoolEvent } from "../../schema";
import { EventBatcher, queueEventSink } from "../../gateway/storage/event-sink";

const event: KeypoolEvent = { v: 1, type: "admin", id: "evt-00000001", ts: 1, actor: "a", action: "x", target: null, detail: null };

describe("queueEventSink", () => {
  it("sends a request's events packed in one message", async () => {
    const send = vi.fn(async () => {});
    await queueEventSink({ send } as unknown as Queue)([event, { ...event, id: "evt-00000002" }]);
    expect(send).toHaveBeenCalledTimes(1);
    expect(send.mock.calls[0]).toEqual([{ events: [event, { ...event, id: "evt-00000002" }] }, { contentType: "json" }]);
  });

  it("sends more than 100 events as several messages, and keeps sending after one fails", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const sent: number[] = [];
    let calls = 0;
    const send = vi.fn(async (body: { events: unknown[] }) => {
      if (calls++ === 0) throw new Error("queue down");
      sent.push(body.events.length);
    });
    const events = Array.from({ length: 250 }, (_, i) => ({ ...event, id: `evt-${String(i).padStart(8, "0")}` }));
    await queueEventSink({ send } as unknown as Queue)(events);
    expect(send).toHaveBeenCalledTimes(3);
    expect(sent).toEqual([100, 50]);
    expect(String(error.mock.calls[0]![0])).toContain("100 event(s)");
    error.mockRestore();
  });

  it("logs a failed send without its contents and never throws", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const sink = queueEventSink({ send: async () => Promise.reject(new Error("queue down: secret sk-should-not-appear")) } as unknown as Queue);
    await expect(sink([event])).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![0])).not.toContain("sk-should-not-appear");
    error.mockRestore();
  });
});

describe("EventBatcher", () => {
  const ev = (n: number): KeypoolEvent => ({ ...event, id: `evt-${String(n).padStart(8, "0")}` });
  /** A queue that records the event ids of each message sent. */
  function recordingQueue() {
    const sends: string[][] = [];
    const queue = { send: vi.fn(async (body: { events: KeypoolEvent[] }) => void sends.push(body.events.map((e) => e.id))) } as unknown as Queue;
    return { sends, queue };
  }

  it("sends the events of requests arriving within the delay in one queue call, owned by the request that opened it", async () => {
    const { sends, queue } = recordingQueue();
    const batcher = new EventBatcher(30);
    const sink = batcher.sink(queue);
    let ownerDone = false;
    const owner = sink([ev(1)]).then(() => void (ownerDone = true));
    // Joiners never wait on the owner's promise (cross-request in workerd): theirs is settled.
    await sink([ev(2), ev(3)]);
    await sink([ev(4)]);
    expect(sends).toEqual([]);
    expect(ownerDone).toBe(false);
    await owner;
    expect(sends).toEqual([[ev(1).id, ev(2).id, ev(3).id, ev(4).id]]);
    await sink([ev(5)]);
    expect(sends).toEqual([[ev(1).id, ev(2).id, ev(3).id, ev(4).id], [ev(5).id]]);
  });

  it("closes a batch at 100 events, so the next request opens and owns a new one", async () => {
    const { sends, queue } = recordingQueue();
    const batcher = new EventBatcher(20);
    const sink = batcher.sink(queue);
    const first = sink(Array.from({ length: 60 }, (_, i) => ev(i)));
    await sink(Array.from({ length: 40 }, (_, i) => ev(60 + i)));
    const second = sink([ev(100)]);
    await Promise.all([first, second]);
    expect(sends.map((s) => s.length).sort()).toEqual([1, 100]);
    expect(sends.flat()).toHaveLength(101);
  });

  it("resolves at once for no events and never rejects when the queue fails", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const batcher = new EventBatcher(1);
    const send = vi.fn(async () => Promise.reject(new Error("down")));
    const sink = batcher.sink({ send } as unknown as Queue);
    await expect(sink([])).resolves.toBeUndefined();
    expect(send).not.toHaveBeenCalled();
    await expect(sink([ev(1)])).resolves.toBeUndefined();
    expect(send).toHaveBeenCalledTimes(1);
    error.mockRestore();
  });
});
