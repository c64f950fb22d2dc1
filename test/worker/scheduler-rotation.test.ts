import { describe, expect, it } from "vitest";
import { runScheduled } from "../../scheduler";
import { addUpstreamWithKeys, clock, schedulerDeps } from "./scheduler-helpers";

describe("scheduler budget", () => {
  it("covers 200 keys in 5 runs of 40 probes, least recently probed first, and then waits for their interval", async () => {
    clock.t = Date.now();
    const ids = await addUpstreamWithKeys(
      "openai",
      "https://oa.test/v1",
      Array.from({ length: 200 }, (_, i) => `key-${String(i).padStart(3, "0")}`),
    );
    expect(ids).toHaveLength(200);
    const seen = new Set<string>();
    for (let run = 0; run < 5; run++) {
      clock.t += 60_000;
      const { deps, calls } = schedulerDeps(() => Response.json({ object: "list", data: [] }));
      const report = await runScheduled(deps);
      expect(report.probed).toBe(40);
      for (const call of calls) {
        expect(seen.has(call.authorization!)).toBe(false);
        seen.add(call.authorization!);
      }
    }
    expect(seen.size).toBe(200);
    clock.t += 60_000;
    const sixth = schedulerDeps(() => Response.json({}));
    expect((await runScheduled(sixth.deps)).probed).toBe(0);
  });
});
