import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { EVENTS_PREFIX, archiveKey, idFilter, idFilterMayHold, newEventId } from "../../schema";
import { appendToArchive, searchArchive } from "../../storage/archive";
import { admin } from "./helpers";

/** An hour of its own (2001), under a prefix of its own: no other test's batches are in the span, nor these in any replay. */
const HOUR = Date.UTC(2001, 0, 1, 10);
const PREFIX = "test-search/";

/**
 * Archives `n` batches a second apart from `start`, batch i holding the records `{ i, tag }` and one `{ i, tag: "other" }`;
 * with `filtered`, each carries the filter of the id `${tag}-${i}` as the consumer's batches carry their request ids'.
 */
async function archiveBatches(start: number, n: number, tag: string, filtered = false, prefix = PREFIX): Promise<string[]> {
  const keys: string[] = [];
  for (let i = 0; i < n; i++) {
    keys.push(archiveKey(prefix, start + i * 1_000, crypto.randomUUID()));
    await appendToArchive(
      env.ARCHIVE,
      keys.at(-1)!,
      [
        { i, tag, id: `${tag}-${i}` },
        { i, tag: "other" },
      ],
      filtered ? { requestIds: idFilter([`${tag}-${i}`]) } : {},
    );
  }
  return keys;
}

const find = (tag: string, from: number, until: number, budget: { maxObjects?: number; maxLists?: number; enough?: number; id?: string } = {}) =>
  searchArchive(env.ARCHIVE, {
    prefix: PREFIX,
    from,
    until,
    needle: `"tag":"${tag}"`,
    mayHold: budget.id === undefined ? undefined : (m) => m?.requestIds === undefined || idFilterMayHold(m.requestIds, budget.id!),
    match: (r) => (r as { tag: string }).tag === tag && (budget.id === undefined || (r as { id: string }).id === budget.id),
    done: (found) => found.length >= (budget.enough ?? 1_000),
    maxObjects: budget.maxObjects ?? 100,
    maxLists: budget.maxLists ?? 10,
  });

const positions = (found: unknown[]) => found.map((r) => (r as { i: number }).i);

describe("a search of the event archive", () => {
  it("reads the batches of its span in the order they were folded, across an hour's end, and only those", async () => {
    // Ten batches from 5 s before the hour's end to 4 s after it.
    await archiveBatches(HOUR + 3_600_000 - 5_000, 10, "span");
    const all = await find("span", HOUR, HOUR + 7_200_000);
    expect(positions(all.found)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(all).toMatchObject({ listed: 10, read: 10, budgetSpent: false, lastAt: HOUR + 3_600_000 + 4_000 });
    // From the third batch to the seventh, inclusive.
    const middle = await find("span", HOUR + 3_600_000 - 3_000, HOUR + 3_600_000 + 1_000);
    expect(positions(middle.found)).toEqual([2, 3, 4, 5, 6]);
    expect(middle.read).toBe(5);
    // Stops once it holds enough, having read a group of six at most.
    const first = await find("span", HOUR, HOUR + 7_200_000, { enough: 1 });
    expect(positions(first.found)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(first.read).toBe(6);
  });

  it("reads only the batches whose filter may hold the id, and those that carry none", async () => {
    const start = HOUR + 30 * 60_000;
    await archiveBatches(start, 40, "filtered", true);
    const seventh = await find("filtered", start, start + 60_000, { id: "filtered-7" });
    expect(positions(seventh.found)).toEqual([7]);
    expect(seventh).toMatchObject({ listed: 40, budgetSpent: false });
    // Sixteen bits an id: another id's filter lets it through about once in a thousand.
    expect(seventh.read).toBeLessThanOrEqual(2);
    expect((await find("filtered", start, start + 60_000, { id: "filtered-none" })).found).toEqual([]);
    // A batch from before filters is read whatever the id.
    await archiveBatches(start + 50_000, 3, "filtered");
    const mixed = await find("filtered", start + 45_000, start + 60_000, { id: "filtered-1" });
    expect(mixed).toMatchObject({ listed: 3, read: 3 });
    expect(positions(mixed.found)).toEqual([1]);
  });

  it("stops at its budget of reads or of lists and says so; a budget that covers the span is not spent", async () => {
    await archiveBatches(HOUR + 20 * 60_000, 8, "budget");
    const span = [HOUR + 20 * 60_000, HOUR + 21 * 60_000] as const;
    const cut = await find("budget", ...span, { maxObjects: 3 });
    expect(cut).toMatchObject({ read: 3, budgetSpent: true, lastAt: HOUR + 20 * 60_000 + 2_000 });
    expect(cut.found).toHaveLength(3);
    expect(await find("budget", ...span, { maxObjects: 8 })).toMatchObject({ read: 8, budgetSpent: false });
    // Nothing in a span before the batches.
    expect(await find("budget", HOUR, HOUR + 19 * 60_000)).toMatchObject({ read: 0, found: [], lastAt: null, budgetSpent: false });
    // A span of two hours takes a list call each; one call allowed reads the first hour's only.
    const twoHours = await find("span", HOUR, HOUR + 7_200_000, { maxLists: 1 });
    expect(positions(twoHours.found)).toEqual([0, 1, 2, 3, 4]);
    expect(twoHours).toMatchObject({ lists: 1, budgetSpent: true });
  });

  it("behind GET /admin/api/requests/{id}, says where it stopped when its budget ran out before its span", { timeout: 60_000 }, async () => {
    // More batches than a search reads, from the moment the id was made, none holding it nor carrying a filter; they are
    // not events, so they leave the archive after (a replay in another test would read them).
    const made = Date.UTC(2002, 0, 1, 10);
    const keys = await archiveBatches(made, 101, "budget-route", false, EVENTS_PREFIX);
    const missing = await admin<{ error: { message: string; code: string } }>("GET", `/requests/${newEventId(made)}`).finally(() => env.ARCHIVE.delete(keys));
    expect(missing.status).toBe(404);
    expect(missing.body.error.code).toBe("request_not_found");
    expect(missing.body.error.message).toContain(
      `nor do the 100 batches the event archive holds from ${new Date(made - 60_000).toISOString()} to ${new Date(made + 99_000).toISOString()} (all read), where the search stopped at its budget (it reads up to ${new Date(made + 15 * 60_000).toISOString()}).`,
    );
  });
});
