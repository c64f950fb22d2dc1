import { describe, expect, it } from "vitest";
import {
  MAX_BATCH_BYTES,
  MAX_BATCH_MESSAGES,
  MAX_EVENTS_PER_MESSAGE,
  MAX_MESSAGE_BYTES,
  QUEUE_MESSAGE_LIMIT_BYTES,
  attemptEventSchema,
  eventsOfMessage,
  ID_FILTER_CHARS,
  eventIdTime,
  idFilter,
  idFilterMayHold,
  newEventId,
  packEvents,
  sendBatchGroups,
  type KeypoolEvent,
} from "../../schema";

const admin = (n: number, detail: Record<string, unknown> | null = null): KeypoolEvent => ({
  v: 1,
  type: "admin",
  id: `evt-${String(n).padStart(8, "0")}`,
  ts: n,
  actor: "admin",
  action: "keys.update",
  target: null,
  detail,
});
const bytes = (body: unknown) => new TextEncoder().encode(JSON.stringify(body)).byteLength;

describe("packEvents", () => {
  it("packs events in order, at most 100 a message", () => {
    const events = Array.from({ length: 250 }, (_, i) => admin(i));
    const messages = packEvents(events);
    expect(messages.map((m) => m.events.length)).toEqual([MAX_EVENTS_PER_MESSAGE, MAX_EVENTS_PER_MESSAGE, 50]);
    expect(messages.flatMap((m) => m.events)).toEqual(events);
    expect(packEvents([])).toEqual([]);
  });

  it("halves a group until each message fits the queue's size limit, counting UTF-8 bytes", () => {
    // 100 events of ~3 KB of three-byte characters: 1,000 characters count 3,000 bytes.
    const events = Array.from({ length: 100 }, (_, i) => admin(i, { note: "鍵".repeat(1_000) }));
    const messages = packEvents(events);
    expect(messages.length).toBeGreaterThan(2);
    // The queue refuses a message over 128 KB.
    for (const m of messages) expect(bytes(m)).toBeLessThanOrEqual(QUEUE_MESSAGE_LIMIT_BYTES);
    expect(messages.flatMap((m) => m.events)).toEqual(events);
  });

  it("sends an event too large for any message alone", () => {
    const huge = admin(1, { note: "x".repeat(MAX_MESSAGE_BYTES) });
    const messages = packEvents([admin(0), huge, admin(2)]);
    expect(messages.map((m) => m.events)).toEqual([[admin(0)], [huge], [admin(2)]]);
  });
});

describe("eventsOfMessage", () => {
  it("unpacks a packed message and takes any other body as one event", () => {
    expect(eventsOfMessage({ events: [admin(1), "junk"] })).toEqual([admin(1), "junk"]);
    expect(eventsOfMessage(admin(1))).toEqual([admin(1)]);
    // An event is never unpacked, even one with an `events` field; nor is a non-array `events`.
    const withField = { ...admin(2), events: [admin(3)] };
    expect(eventsOfMessage(withField)).toEqual([withField]);
    expect(eventsOfMessage({ events: "x" })).toEqual([{ events: "x" }]);
    expect(eventsOfMessage(null)).toEqual([null]);
    expect(eventsOfMessage("text")).toEqual(["text"]);
  });
});

describe("sendBatchGroups", () => {
  it("groups bodies in order under the count and byte limits of one sendBatch", () => {
    const bodies = Array.from({ length: 250 }, (_, i) => i);
    expect(sendBatchGroups(bodies, () => 10).map((g) => g.length)).toEqual([MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 50]);
    // 90 kB bodies: two fit a group, a third would pass the byte limit.
    const big = sendBatchGroups([1, 2, 3, 4, 5], () => 90_000);
    expect(big).toEqual([[1, 2], [3, 4], [5]]);
    for (const g of big) expect(g.length * 90_000).toBeLessThanOrEqual(MAX_BATCH_BYTES);
    // A body over the limit still goes, alone.
    expect(sendBatchGroups(["a", "huge", "b"], (b) => (b === "huge" ? MAX_BATCH_BYTES + 1 : 1))).toEqual([["a"], ["huge"], ["b"]]);
    expect(sendBatchGroups([], () => 1)).toEqual([]);
  });
});

describe("newEventId", () => {
  const UUID_V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it("is a UUIDv7 whose first 48 bits are the time in ms", () => {
    const now = Date.UTC(2026, 10, 26, 21, 0, 0, 123);
    const id = newEventId(now);
    expect(id).toMatch(UUID_V7);
    expect(parseInt(id.slice(0, 8) + id.slice(9, 13), 16)).toBe(now);
    expect(newEventId(0).slice(0, 13)).toBe("00000000-0000");
  });

  it("gives its time back to eventIdTime, which reads no time from any other id", () => {
    const now = Date.UTC(2026, 11, 6, 5, 0, 0, 7);
    expect(eventIdTime(newEventId(now))).toBe(now);
    expect(eventIdTime(newEventId(now).toUpperCase())).toBe(now);
    expect(eventIdTime(crypto.randomUUID())).toBeNull();
    expect(eventIdTime("req-1")).toBeNull();
    expect(eventIdTime(`${newEventId(now)}x`)).toBeNull();
  });

  it("sorts ids made later after earlier ones, as text — so the dedupe window grows at its end", () => {
    const start = Date.UTC(2026, 0, 1);
    const ids = Array.from({ length: 2_000 }, (_, i) => newEventId(start + i * 997 + (i % 3)));
    expect([...ids].sort()).toEqual(ids);
    // Across a change in the number of hex digits of the time, too.
    expect(newEventId(0xfffffffff) < newEventId(0x1000000000)).toBe(true);
  });

  it("is unique within one millisecond (74 random bits) and passes the event schema", () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => newEventId(1_700_000_000_000)));
    expect(ids.size).toBe(10_000);
    const [id] = ids;
    expect(attemptEventSchema.shape.id.safeParse(id).success).toBe(true);
  });
});

describe("the archive's filter of request ids", () => {
  const ids = Array.from({ length: 500 }, (_, i) => newEventId(1_700_000_000_000 + i));

  it("holds every id put in it, and lets few others through", () => {
    const filter = idFilter(ids);
    expect(filter).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(ids.every((id) => idFilterMayHold(filter, id))).toBe(true);
    const others = Array.from({ length: 20_000 }, (_, i) => newEventId(1_800_000_000_000 + i));
    expect(others.filter((id) => idFilterMayHold(filter, id)).length).toBeLessThan(60);
  });

  it("grows with the ids up to its cap, and an empty one holds nothing", () => {
    expect(idFilter([])).toBe("");
    expect(idFilterMayHold("", ids[0]!)).toBe(false);
    expect(idFilter(ids.slice(0, 3)).length).toBeLessThan(idFilter(ids).length);
    expect(idFilter([...ids, ...ids]).length).toBe(idFilter(ids).length);
    const many = Array.from({ length: 10_000 }, (_, i) => `req-${i}`);
    const full = idFilter(many);
    expect(full).toHaveLength(ID_FILTER_CHARS);
    expect(many.every((id) => idFilterMayHold(full, id))).toBe(true);
  });
});
