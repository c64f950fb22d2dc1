import {
  PROBE_JOB_MAX_ID_BYTES,
  deriveKeyState,
  groupsUnder,
  idJsonBytes,
  lastFailureTs,
  type HealthFacts,
  type KeyState,
  type ProbeJob,
  type Settings,
} from "../../schema";

/** A key as the scheduler sees it. */
export interface ProbeCandidate {
  keyId: string;
  enabled: boolean;
  facts: HealthFacts;
  /** When it was last probed (0: never). */
  lastProbeTs: number;
  /**
   * Whether its provider's probe only checks that the key works (no balance to
   * read): then a success by traffic tells as much, and an active key is not
   * probed while it keeps succeeding.
   */
  livenessOnly?: boolean;
}

const MINUTE = 60_000;
/** A failing key is probed 1 min after it last failed, then at growing intervals. */
const FAILING_BACKOFF = [
  { failingFor: 0, every: MINUTE },
  { failingFor: 5 * MINUTE, every: 5 * MINUTE },
  { failingFor: 35 * MINUTE, every: 30 * MINUTE },
  { failingFor: 155 * MINUTE, every: 120 * MINUTE },
] as const;

/**
 * When the key is next due for a probe, or null if it never is now: disabled keys
 * are never touched and cooling keys recover by their timer. Active keys are
 * checked every balance interval, exhausted ones more often, dead ones daily, and
 * failing ones on the growing backoff counted from their last failure. An active
 * key whose probe is only a liveness check counts its last success (by traffic
 * or probe) as one: a pool whose keys serve is not probed at all.
 */
export function nextProbeAt(c: ProbeCandidate, settings: Settings, now: number): number | null {
  if (!c.enabled) return null;
  const state: KeyState = deriveKeyState(c.facts, settings, now).state;
  switch (state) {
    case "cooling":
      return null;
    case "dead":
      return c.lastProbeTs + settings.deadProbeIntervalMs;
    case "exhausted":
      return c.lastProbeTs + settings.exhaustedProbeIntervalMs;
    case "failing": {
      const failedAt = lastFailureTs(c.facts) ?? now;
      const failingFor = now - failedAt;
      const step = [...FAILING_BACKOFF].reverse().find((s) => failingFor >= s.failingFor) ?? FAILING_BACKOFF[0];
      return Math.max(failedAt + MINUTE, c.lastProbeTs + step.every);
    }
    default:
      return (c.livenessOnly ? Math.max(c.lastProbeTs, c.facts.lastOkTs) : c.lastProbeTs) + settings.balanceProbeIntervalMs;
  }
}

/** The keys due for a probe, least recently probed first, at most `limit` (a run's `settings.probeBudget` unless it hands jobs on). */
export function planProbes<C extends ProbeCandidate>(candidates: C[], settings: Settings, now: number, limit = settings.probeBudget): C[] {
  return candidates
    .filter((c) => {
      const due = nextProbeAt(c, settings, now);
      return due !== null && due <= now;
    })
    .sort((a, b) => a.lastProbeTs - b.lastProbeTs || (a.keyId < b.keyId ? -1 : 1))
    .slice(0, limit);
}

/**
 * The probe jobs for keys a run hands on, in their order: at most `perJob` keys
 * and `maxIdBytes` of ids a job (so a job fits a queue message), at most `jobs`
 * jobs. Keys past the last job are left for the next run.
 */
export function probeJobsFor(keyIds: readonly string[], perJob: number, jobs: number, plannedAt: number, maxIdBytes = PROBE_JOB_MAX_ID_BYTES): ProbeJob[] {
  if (jobs < 1 || perJob < 1) return [];
  return groupsUnder(keyIds, idJsonBytes, perJob, maxIdBytes)
    .slice(0, jobs)
    .map((ids) => ({ type: "probe-job", keyIds: ids, plannedAt }));
}
