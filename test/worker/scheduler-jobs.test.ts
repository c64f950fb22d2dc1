import { createExecutionContext, createMessageBatch, createScheduledController, getQueueResult, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { defaultSettings, type ProbeJob } from "../../schema";
import gateway from "../../gateway/index";
import { runProbeJob, runScheduled } from "../../scheduler";
import { writeSettings } from "../../storage/settings";
import { addUpstreamWithKeys, clock, health, schedulerDeps } from "./scheduler-helpers";

/** A SiliconFlow balance answer. */
const balance = () => Response.json({ data: { totalBalance: "5.00" } });
const secrets = (n: number, tag: string) => Array.from({ length: n }, (_, i) => `${tag}-${String(i).padStart(3, "0")}`);

afterEach(async () => {
  await writeSettings(env.DB, defaultSettings, Date.now());
});

describe("probe jobs", () => {
  it("hand the keys due past a run's budget on to other invocations, which probe those still due", async () => {
    clock.t = Date.now();
    await writeSettings(env.DB, { ...defaultSettings, probeBudget: 40, probeJobs: 2 }, clock.t);
    const ids = await addUpstreamWithKeys("siliconflow", "https://sf.test/v1", secrets(130, "job"));
    const jobs: ProbeJob[] = [];
    const run = schedulerDeps(balance);
    const report = await runScheduled({ ...run.deps, sendProbeJobs: async (j) => void jobs.push(...j) });
    // Forty probed here, two jobs of forty handed on, ten left for the next run.
    expect(report.probed).toBe(40);
    expect(report.due).toBe(120);
    expect(report.handedOn).toEqual({ keys: 80, jobs: 2 });
    expect(jobs.map((j) => j.keyIds.length)).toEqual([40, 40]);
    const probedHere = new Set(run.emitted.flatMap((e) => (e.type === "probe" ? [e.keyId] : [])));
    expect(jobs.flatMap((j) => j.keyIds).filter((id) => probedHere.has(id))).toEqual([]);
    expect(new Set([...probedHere, ...jobs.flatMap((j) => j.keyIds)]).size).toBe(120);

    // A job probes its keys with the scheduler's own probe, and its results fold like any other.
    const first = schedulerDeps(balance);
    expect(await runProbeJob(first.deps, jobs[0]!)).toEqual({ probed: 40, skipped: 0 });
    expect(first.calls.map((c) => c.url)).toEqual(Array(40).fill("https://sf.test/v1/user/info"));
    const probed = await health(jobs[0]!.keyIds[0]!);
    expect(probed).toMatchObject({ state: "active", balance: 5, probe: "ok" });
    expect(probed.probeTs).toBeGreaterThanOrEqual(jobs[0]!.plannedAt);
    // Delivered again, it finds its keys probed since and probes nothing.
    const again = schedulerDeps(balance);
    expect(await runProbeJob(again.deps, jobs[0]!)).toEqual({ probed: 0, skipped: 40 });
    expect(again.calls).toEqual([]);
    // A key disabled and one deleted since the run planned the job are skipped.
    const [disabled, deleted] = jobs[1]!.keyIds;
    await env.DB.batch([
      env.DB.prepare("UPDATE keys SET enabled = 0 WHERE id = ?1").bind(disabled),
      env.DB.prepare("DELETE FROM keys WHERE id = ?1").bind(deleted),
    ]);
    const second = schedulerDeps(balance);
    expect(await runProbeJob(second.deps, jobs[1]!)).toEqual({ probed: 38, skipped: 2 });

    // The next run probes the ten left, and hands nothing on.
    clock.t += 60_000;
    const next = schedulerDeps(balance);
    const nextJobs: ProbeJob[] = [];
    const nextReport = await runScheduled({ ...next.deps, sendProbeJobs: async (j) => void nextJobs.push(...j) });
    expect(nextReport.probed).toBe(10);
    expect(nextReport.handedOn).toEqual({ keys: 0, jobs: 0 });
    expect(nextJobs).toEqual([]);
    const probedOnce = ids.filter((id) => id !== disabled && id !== deleted);
    for (const id of probedOnce) expect((await health(id)).probe, id).toBe("ok");
  });

  it("are not handed on when the setting is 0 or the host has no probes queue", async () => {
    clock.t = Date.now() + 10 * 86_400_000;
    await writeSettings(env.DB, { ...defaultSettings, probeBudget: 5, probeJobs: 0 }, clock.t);
    await addUpstreamWithKeys("siliconflow", "https://sf2.test/v1", secrets(12, "none"));
    const sent = vi.fn(async () => {});
    const zero = await runScheduled({ ...schedulerDeps(balance).deps, sendProbeJobs: sent });
    expect(zero).toMatchObject({ probed: 5, due: 5, handedOn: { keys: 0, jobs: 0 } });
    expect(sent).not.toHaveBeenCalled();

    await writeSettings(env.DB, { ...defaultSettings, probeBudget: 5, probeJobs: 3 }, clock.t);
    const hostless = await runScheduled(schedulerDeps(balance).deps);
    expect(hostless).toMatchObject({ probed: 5, due: 5, handedOn: { keys: 0, jobs: 0 } });
  });

  it("reports a failed send of jobs and still probes its own share", async () => {
    clock.t = Date.now() + 20 * 86_400_000;
    await writeSettings(env.DB, { ...defaultSettings, probeBudget: 4, probeJobs: 2 }, clock.t);
    await addUpstreamWithKeys("siliconflow", "https://sf3.test/v1", secrets(10, "fail"));
    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const report = await runScheduled({ ...schedulerDeps(balance).deps, sendProbeJobs: async () => Promise.reject(new Error("queue down")) });
    expect(report.handedOn).toBe("failed");
    expect(report.probed).toBe(4);
    expect(String(error.mock.calls[0]![0])).toContain("handing on 2 probe job(s) failed");
    error.mockRestore();
  });

  it("travel on the probes queue from the gateway's cron to its queue handler, which acks a job and drops what is not one", async () => {
    // Only this test's keys: the earlier tests' are due on their own clock.
    await env.DB.batch([env.DB.prepare("DELETE FROM keys"), env.DB.prepare("DELETE FROM upstreams")]);
    await writeSettings(env.DB, { ...defaultSettings, probeBudget: 3, probeJobs: 2 }, Date.now());
    // Nothing listens on port 9: each probe fails at once, which is still a probe result the consumer folds.
    const ids = await addUpstreamWithKeys("siliconflow", "http://127.0.0.1:9/v1", secrets(8, "wire"));
    const log = vi.spyOn(console, "log").mockImplementation(() => {});
    const ctx = createExecutionContext();
    await gateway.scheduled(createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" }), env, ctx);
    await waitOnExecutionContext(ctx);
    const line = log.mock.calls.map(([l]) => String(l)).find((l) => l.startsWith("keypool scheduler: probed"));
    expect(line).toContain("probed 3 of 8 due key(s), 5 handed on in 2 probe job(s)");
    // Every key of the upstream has a probe result: three from the run, the rest from the job.
    await vi.waitFor(
      async () => {
        for (const id of ids) expect((await health(id)).probe, id).toBe("error");
      },
      { timeout: 15_000, interval: 100 },
    );

    const error = vi.spyOn(console, "error").mockImplementation(() => {});
    const batch = createMessageBatch("keypool-probes", [
      { id: "not-a-job", timestamp: new Date(), attempts: 1, body: { events: [] } },
      { id: "a-job", timestamp: new Date(), attempts: 1, body: { type: "probe-job", keyIds: [ids[0]!], plannedAt: Date.now() } },
    ]);
    const queueCtx = createExecutionContext();
    await gateway.queue(batch, env, queueCtx);
    const result = await getQueueResult(batch, queueCtx);
    expect(result.explicitAcks.sort()).toEqual(["a-job", "not-a-job"]);
    expect(result.retryMessages).toEqual([]);
    expect(String(error.mock.calls[0]![0])).toContain("is not a probe job");
    error.mockRestore();
    log.mockRestore();
  });
});
