import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import type { KeypoolEvent } from "../../schema";
import { EventBatcher } from "../../gateway/logic/event-batcher";
import { drainEventOutbox, eventQueues, queueEventSink } from "../../gateway/storage/event-sink";

const event: KeypoolEvent = { v: 1, type: "admin", id: "evt-00000001", ts: 1, actor: "a", action: "x", target: null, detail: null };

/** The sink's bindings: the given queue, and the test D1 for the outbox. */
const pipe = (queue: object) => ({ EVENTS: queue as Queue, DB: env.DB });
const outboxRows = async (id: string) =>
  (await env.DB.prepare("SELECT events, body FROM event_outbox WHERE body LIKE ?1").bind(`%${id}%`).all<{ events: number; body: string }>()).results;

describe("queueEventSink", () => {
  it("sends a request's events packed in one message", async () => {
    const send = vi.fn(async () => {});
    await queueEventSink(pipe({ send }))([event, { ...event, id: "evt-00000002" }]);
    expect(send).toHaveBeenCalledTimes(1);
    expect(send.mock.calls[0]).toEqual([{ events: [event, { ...event, id: "evt-00000002" }] }, { contentType: "json" }]);
  });

  it("sends more than 100 events as several messages, trying a failed send again", async () => {
    const sent: number[] = [];
    let calls = 0;
    const send = vi.fn(async (body: { events: unknown[] }) => {
      if (calls++ === 0) throw new Error("queue busy");
      sent.push(body.events.length);
    });
    const events = Array.from({ length: 250 }, (_, i) => ({ ...event, id: `evt-${String(i).padStart(8, "0")}` }));
    await queueEventSink(pipe({ send }), [0, 0])(events);
    expect(send).toHaveBeenCalledTimes(4);
    expect(sent).toEqual([100, 100, 50]);
  });

  it("keeps a message the queue refuses three times in the outbox, logged without its contents, and the drain sends it on", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const id = `evt-${crypto.randomUUID()}`;
    const refused = vi.fn(async () => Promise.reject(new Error("queue down: secret sk-should-not-appear")));
    await expect(
      queueEventSink(
        pipe({ send: refused }),
        [0, 0],
      )([
        { ...event, id },
        { ...event, id: `${id}-2` },
      ]),
    ).resolves.toBeUndefined();
    expect(refused).toHaveBeenCalledTimes(3);
    const kept = await outboxRows(id);
    expect(kept).toHaveLength(1);
    expect(kept[0]!.events).toBe(2);
    expect(JSON.parse(kept[0]!.body)).toEqual({
      events: [
        { ...event, id },
        { ...event, id: `${id}-2` },
      ],
    });
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![0])).toContain("2 event(s) kept in the outbox");
    expect(String(error.mock.calls[0]![0])).not.toContain("sk-should-not-appear");
    error.mockRestore();

    // The queue still refuses: the drain fails and the row stays.
    await expect(drainEventOutbox(pipe({ sendBatch: async () => Promise.reject(new Error("down")) }))).rejects.toThrow();
    expect(await outboxRows(id)).toHaveLength(1);

    const batches: unknown[][] = [];
    const sendBatch = vi.fn(async (messages: Iterable<MessageSendRequest>) => void batches.push([...messages].map((m) => m.body)));
    const drained = await drainEventOutbox(pipe({ sendBatch }));
    expect(batches.flat()).toContainEqual({
      events: [
        { ...event, id },
        { ...event, id: `${id}-2` },
      ],
    });
    expect(drained.sent).toBeGreaterThanOrEqual(2);
    expect(drained.waiting).toBe(0);
    expect(await outboxRows(id)).toHaveLength(0);
  });

  it("drains a backlog of several pages in one run, oldest first", async () => {
    const tag = crypto.randomUUID();
    const ids = Array.from({ length: 230 }, (_, i) => `${tag}-${String(i).padStart(3, "0")}`);
    await env.DB.batch(
      ids.map((id, i) =>
        env.DB.prepare("INSERT INTO event_outbox (created_at, events, body) VALUES (?1, 1, ?2)").bind(i, JSON.stringify({ events: [{ ...event, id }] })),
      ),
    );
    const sentIds: string[] = [];
    const sendBatch = vi.fn(async (messages: Iterable<MessageSendRequest>) => {
      for (const m of messages) sentIds.push(...(m.body as { events: KeypoolEvent[] }).events.map((e) => e.id));
    });
    const other = vi.fn(async (messages: Iterable<MessageSendRequest>) => sendBatch(messages));
    // Two event queues: the drain's groups take them in turn.
    const twoQueues = { ...pipe({ sendBatch }), EVENTS_2: { sendBatch: other } as unknown as Queue };
    const drained = await drainEventOutbox(twoQueues);
    expect(sentIds.filter((id) => id.startsWith(tag))).toEqual(ids);
    expect(drained).toEqual({ sent: sentIds.length, waiting: 0 });
    expect(sendBatch.mock.calls.length).toBeGreaterThanOrEqual(3);
    expect(other).toHaveBeenCalled();
    // sendBatch saw every group (the second queue's too): the first queue's share is the rest.
    expect(Math.abs(sendBatch.mock.calls.length - 2 * other.mock.calls.length)).toBeLessThanOrEqual(1);
  });

  it("finds the event queues by name: EVENTS, then EVENTS_2, EVENTS_3… by number, nothing else", () => {
    const q = (name: string) => ({ name }) as unknown as Queue;
    const bound = { EVENTS: q("1"), EVENTS_10: q("10"), EVENTS_2: q("2"), EVENTS_AUDIT: q("audit"), EVENTSX: q("x"), DEAD_LETTERS: q("dlq"), DB: env.DB };
    expect(eventQueues(bound).map((queue) => (queue as unknown as { name: string }).name)).toEqual(["1", "2", "10"]);
    expect(eventQueues(pipe(q("only")))).toHaveLength(1);
  });

  it("sends an isolate's messages to each event queue in turn", async () => {
    const sent: number[] = [];
    const queue = (n: number) => ({ send: vi.fn(async () => void sent.push(n)) }) as unknown as Queue;
    const bound = { EVENTS: queue(0), EVENTS_2: queue(1), EVENTS_3: queue(2), DB: env.DB };
    for (let i = 0; i < 9; i++) await queueEventSink(bound)([{ ...event, id: `evt-turn-${i}` }]);
    expect(sent).toHaveLength(9);
    // Each message went to the queue after the last one's.
    for (let i = 1; i < sent.length; i++) expect(sent[i]).toBe((sent[i - 1]! + 1) % 3);
    expect([0, 1, 2].map((n) => sent.filter((m) => m === n).length)).toEqual([3, 3, 3]);
  });

  it("tries a message one queue refuses again on the next, and keeps nothing in the outbox while another takes it", async () => {
    const took: string[] = [];
    const refused = vi.fn(async () => Promise.reject(new Error("queue down")));
    const taking = (name: string) => ({ send: vi.fn(async () => void took.push(name)) }) as unknown as Queue;
    const bound = { EVENTS: taking("first"), EVENTS_2: { send: refused } as unknown as Queue, EVENTS_3: taking("third"), DB: env.DB };
    const tag = crypto.randomUUID();
    for (let i = 0; i < 6; i++) await queueEventSink(bound, [0, 0])([{ ...event, id: `evt-${tag}-${i}` }]);
    // Two of the six had the refusing queue's turn; each went on to the third queue.
    expect(refused).toHaveBeenCalledTimes(2);
    expect(took).toHaveLength(6);
    expect(took.filter((name) => name === "third")).toHaveLength(4);
    expect(await outboxRows(tag)).toHaveLength(0);
  });

  it("does not keep an event too large for any queue message, which would block the outbox", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const id = `evt-${crypto.randomUUID()}`;
    const huge: KeypoolEvent = { ...event, id, detail: { note: "x".repeat(130_000) } };
    await queueEventSink(pipe({ send: async () => Promise.reject(new Error("too large")) }), [0, 0])([huge]);
    expect(await outboxRows(id)).toHaveLength(0);
    expect(String(error.mock.calls[0]![0])).toContain("1 event(s) lost: larger than a queue message may be");
    error.mockRestore();
  });

  it("never throws, and logs the count lost, when the queue and D1 both fail", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const brokenDb = {
      prepare: () => ({ bind: () => ({ run: async () => Promise.reject(new Error("D1 down sk-should-not-appear")) }) }),
    } as unknown as D1Database;
    const sink = queueEventSink({ EVENTS: { send: async () => Promise.reject(new Error("down")) } as unknown as Queue, DB: brokenDb }, [0, 0]);
    await expect(sink([event])).resolves.toBeUndefined();
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0]![0])).toContain("1 event(s) lost");
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
    const sink = batcher.sink(queueEventSink(pipe(queue)));
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
    const sink = batcher.sink(queueEventSink(pipe(queue)));
    const first = sink(Array.from({ length: 60 }, (_, i) => ev(i)));
    await sink(Array.from({ length: 40 }, (_, i) => ev(60 + i)));
    const second = sink([ev(100)]);
    await Promise.all([first, second]);
    expect(sends.map((s) => s.length).sort()).toEqual([1, 100]);
    expect(sends.flat()).toHaveLength(101);
  });

  it("sends at most so many batches a second that are not full, gathering what comes meanwhile; a full batch takes no turn", async () => {
    // A clock the test moves: timers fire when it passes them.
    let t = 1_000_000;
    const timers: { at: number; fire: () => void }[] = [];
    const clock = { now: () => t, sleep: (ms: number) => new Promise<void>((fire) => timers.push({ at: t + ms, fire })) };
    const advance = async (to: number) => {
      for (;;) {
        timers.sort((a, b) => a.at - b.at);
        const next = timers[0];
        if (!next || next.at > to) break;
        timers.shift();
        t = next.at;
        next.fire();
        await new Promise((r) => setTimeout(r, 0));
      }
      t = to;
    };
    const sends: { at: number; n: number }[] = [];
    const send = async (events: KeypoolEvent[]) => void sends.push({ at: t, n: events.length });
    const batcher = new EventBatcher(20, 2, clock);
    const start = t;
    // A quiet isolate: its first batch goes after 20 ms, as without a cap.
    void batcher.add(send, [ev(1)]);
    await advance(start + 20);
    expect(sends).toEqual([{ at: start + 20, n: 1 }]);
    // Ten requests a second: the next batch waits for its turn (500 ms after the last) and gathers them.
    for (let i = 1; i <= 9; i++) {
      await advance(start + 20 + i * 100);
      void batcher.add(send, [ev(1 + i)]);
    }
    await advance(start + 2_000);
    expect(sends.map((s) => s.at - start)).toEqual([20, 520, 1_020]);
    expect(sends.map((s) => s.n)).toEqual([1, 4, 5]);
    // A busy moment: full batches go at once with the batch whose turn it is, and take no turn of their own.
    sends.length = 0;
    const burst = start + 2_000;
    void batcher.add(send, [ev(100)]);
    for (let i = 0; i < 3; i++)
      void batcher.add(
        send,
        Array.from({ length: 100 }, (_, j) => ev(200 + 100 * i + j)),
      );
    // The first batch filled up, so its turn is free again: the next one that is not full takes it…
    void batcher.add(send, [ev(999)]);
    // …and the one after waits for the turn after.
    await advance(burst + 100);
    void batcher.add(send, [ev(1000)]);
    await advance(burst + 2_000);
    expect(sends.map((s) => [s.at - burst, s.n])).toEqual([
      [20, 101],
      [20, 100],
      [20, 100],
      [20, 1],
      [520, 1],
    ]);
  });

  it("resolves at once for no events and never rejects when the queue fails", async () => {
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const batcher = new EventBatcher(1);
    const send = vi.fn(async () => Promise.reject(new Error("down")));
    const sink = batcher.sink(queueEventSink(pipe({ send })));
    await expect(sink([])).resolves.toBeUndefined();
    expect(send).not.toHaveBeenCalled();
    const id = `evt-${crypto.randomUUID()}`;
    await expect(sink([{ ...ev(1), id }])).resolves.toBeUndefined();
    // Sent three times (with the production retry delays), then kept for the scheduler.
    expect(send).toHaveBeenCalledTimes(3);
    expect(await outboxRows(id)).toHaveLength(1);
    await env.DB.prepare("DELETE FROM event_outbox WHERE body LIKE ?1").bind(`%${id}%`).run();
    error.mockRestore();
  });
});
