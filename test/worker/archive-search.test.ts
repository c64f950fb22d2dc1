import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { EVENTS_PREFIX, archiveKey, newEventId } from "../../schema";
import { appendToArchive, searchArchive } from "../../storage/archive";
import { admin } from "./helpers";

/** An hour of its own (2001), so no other test's batches are in the span. */
const HOUR = Date.UTC(2001, 0, 1, 10);

/** Archives `n` batches a second apart from `start`, batch i holding the records `{ i, tag }` and one `{ i, tag: "other" }`. */
async function archiveBatches(start: number, n: number, tag: string): Promise<void> {
  for (let i = 0; i < n; i++)
    await appendToArchive(env.ARCHIVE, archiveKey(EVENTS_PREFIX, start + i * 1_000, crypto.randomUUID()), [
      { i, tag },
      { i, tag: "other" },
    ]);
}

const find = (tag: string, from: number, until: number, maxObjects: number, enough = 1_000) =>
  searchArchive(env.ARCHIVE, {
    prefix: EVENTS_PREFIX,
    from,
    until,
    needle: `"tag":"${tag}"`,
    match: (r) => (r as { tag: string }).tag === tag,
    done: (found) => found.length >= enough,
    maxObjects,
  });

describe("a search of the event archive", () => {
  it("reads the batches of its span in the order they were folded, across an hour's end, and only those", async () => {
    // Ten batches from 5 s before the hour's end to 4 s after it.
    await archiveBatches(HOUR + 3_600_000 - 5_000, 10, "span");
    const all = await find("span", HOUR, HOUR + 7_200_000, 100);
    expect(all.found.map((r) => (r as { i: number }).i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all).toMatchObject({ read: 10, budgetSpent: false, lastAt: HOUR + 3_600_000 + 4_000 });
    // From the third batch to the seventh, inclusive.
    const middle = await find("span", HOUR + 3_600_000 - 3_000, HOUR + 3_600_000 + 1_000, 100);
    expect(middle.found.map((r) => (r as { i: number }).i)).toEqual([2, 3, 4, 5, 6]);
    expect(middle.read).toBe(5);
    // Stops once it holds enough, having read a group of six at most.
    const first = await find("span", HOUR, HOUR + 7_200_000, 100, 1);
    expect(first.found.map((r) => (r as { i: number }).i)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(first.read).toBe(6);
  });

  it("stops at its budget of objects and says so; a budget that covers the span is not spent", async () => {
    await archiveBatches(HOUR + 20 * 60_000, 8, "budget");
    const span = [HOUR + 20 * 60_000, HOUR + 21 * 60_000] as const;
    const cut = await find("budget", ...span, 3);
    expect(cut).toMatchObject({ read: 3, budgetSpent: true, lastAt: HOUR + 20 * 60_000 + 2_000 });
    expect(cut.found).toHaveLength(3);
    const whole = await find("budget", ...span, 8);
    expect(whole).toMatchObject({ read: 8, budgetSpent: false });
    // Nothing in a span before the batches.
    expect(await find("budget", HOUR, HOUR + 19 * 60_000, 100)).toMatchObject({ read: 0, found: [], lastAt: null, budgetSpent: false });
  });

  it("behind GET /admin/api/requests/{id}, says where it stopped when its budget ran out before its span", { timeout: 60_000 }, async () => {
    // More batches than a search reads, from the moment the id was made, none holding it.
    const made = Date.UTC(2002, 0, 1, 10);
    await archiveBatches(made, 401, "budget-route");
    const missing = await admin<{ error: { message: string; code: string } }>("GET", `/requests/${newEventId(made)}`);
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("request_not_found");
    expect(missing.body.error.message).toContain(
      `nor do the 400 batches the event archive holds from ${new Date(made - 60_000).toISOString()} to ${new Date(made + 399_000).toISOString()}, where the search stopped at its budget (it reads up to ${new Date(made + 15 * 60_000).toISOString()}).`,
    );
  });
});
