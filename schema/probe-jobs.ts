import { z } from "zod";

/** The most keys one probe job names: one run's `probeBudget` at its largest. */
export const PROBE_JOB_MAX_KEYS = 1_000;
/** The most bytes of key ids one probe job carries, under a queue message's 128 KB. */
export const PROBE_JOB_MAX_ID_BYTES = 100_000;

/**
 * A probe job on the probes queue (wrangler.gateway.toml): keys a scheduler run
 * found due beyond what it probes itself, for another invocation of the gateway
 * to probe with connections of its own. Only the keys' ids travel; the
 * invocation reads the rest from D1 and probes those still due.
 */
export const probeJobSchema = z.object({
  type: z.literal("probe-job"),
  keyIds: z.array(z.string().min(1).max(200)).min(1).max(PROBE_JOB_MAX_KEYS),
  /** When the run that planned it started (epoch ms). */
  plannedAt: z.number().int().nonnegative(),
});
export type ProbeJob = z.infer<typeof probeJobSchema>;
