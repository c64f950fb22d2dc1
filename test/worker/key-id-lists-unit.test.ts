import { describe, expect, it } from "vitest";
import { keyIdLists } from "../../storage/keys";

const bytes = (s: string) => new TextEncoder().encode(s).length;

describe("key id lists for json_each parameters", () => {
  it("splits ids into JSON arrays under the byte budget, each id in exactly one, in order", () => {
    const ids = Array.from({ length: 1_000 }, () => crypto.randomUUID());
    const lists = keyIdLists(ids, 4_000);
    expect(lists.length).toBeGreaterThan(9);
    for (const list of lists) expect(bytes(list)).toBeLessThanOrEqual(4_000);
    expect(lists.flatMap((list) => JSON.parse(list) as string[])).toEqual(ids);
    // Under the budget, one list.
    expect(keyIdLists(ids.slice(0, 10), 4_000)).toEqual([JSON.stringify(ids.slice(0, 10))]);
    expect(keyIdLists([], 4_000)).toEqual([]);
  });

  it("counts a non-ASCII id by its UTF-8 bytes at most, and gives an id longer than the budget a list of its own", () => {
    const wide = "键".repeat(30);
    const lists = keyIdLists(["a", wide, "b", wide], 100);
    for (const list of lists) if ((JSON.parse(list) as string[]).length > 1) expect(bytes(list)).toBeLessThanOrEqual(100);
    expect(lists.flatMap((list) => JSON.parse(list) as string[])).toEqual(["a", wide, "b", wide]);
    const long = "x".repeat(500);
    expect(keyIdLists(["a", long, "b"], 100)).toEqual([JSON.stringify(["a"]), JSON.stringify([long]), JSON.stringify(["b"])]);
  });
});
