import { z } from "zod";
import { alertSettingsSchema } from "./alerts";

/** True when `tz` is an IANA time zone this runtime knows. */
export function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/** True for "*" or a bare browser origin such as `https://app.example.com:8443` (scheme, host, port; nothing else). */
function isOriginOrAny(value: string): boolean {
  if (value === "*") return true;
  try {
    const url = new URL(value);
    return (url.protocol === "https:" || url.protocol === "http:") && url.origin === value;
  } catch {
    return false;
  }
}

/**
 * Pool-wide settings, stored in D1 and carried in the snapshot. Every field has a
 * default, so an empty object is a complete configuration.
 */
export const settingsSchema = z.object({
  /** Upstream attempts per client request, the first included. */
  maxAttempts: z.number().int().min(1).max(10).default(3),
  /** Per-attempt limit on waiting for the upstream's response headers. */
  attemptTimeoutMs: z.number().int().min(1_000).max(600_000).default(60_000),
  /** Overall limit for finding a key and getting response headers, retries and waits included. */
  requestDeadlineMs: z.number().int().min(1_000).max(900_000).default(120_000),
  /** When every key for a model is cooling, wait this long at most for the first to recover (0: answer 429 at once). */
  coolingWaitMs: z.number().int().min(0).max(60_000).default(5_000),
  /** A 429 without Retry-After cools its key this long. */
  defaultCooldownMs: z.number().int().min(1_000).max(3_600_000).default(20_000),
  /**
   * Learn keys' limits from what providers say — their rate-limit headers, and a 429's count — and schedule by
   * them (configured limits apply either way). Off: a key is only cooled when refused, as before Keypool knew limits.
   */
  learnLimits: z.boolean().default(true),
  /**
   * Smooth streamed chat answers for client keys that do not say otherwise: text that arrives in bursts is handed
   * on a few characters at a time at an even pace, ending at most 100 ms after the upstream's last byte. Off: a
   * stream is relayed as it comes.
   */
  smoothStreams: z.boolean().default(false),
  /**
   * Keep each request's and answer's body (a streamed answer reassembled) in the request log, for client keys that
   * do not say otherwise; at most `bodyMaxBytes` of each, kept `retention.bodyDays`. Off: no body is kept.
   */
  storeBodies: z.boolean().default(false),
  /**
   * The share of requests the request log keeps among those answered at their first attempt without error (1: all;
   * 0.01: one in a hundred, chosen by request id). A request with a failed or retried attempt is always kept, and
   * every request counts in the rollups, quotas and health whatever this says. A kept request is a row, a row per
   * attempt and their indexes in D1 (docs/scale.md counts them): a busy pool keeps a sample of its successes and all
   * of its trouble. A request left out is still found by its id, read from the event archive.
   */
  requestLogSample: z.number().min(0).max(1).default(1),
  /** Record each request's client address (`CF-Connecting-IP`) in the request log. Off: none is recorded. */
  logClientIp: z.boolean().default(false),
  bodyMaxBytes: z.number().int().min(1_024).max(48_000).default(16_384),
  /** This many 5xx/network failures since the key's last success… */
  failureThreshold: z.number().int().min(1).max(16).default(5),
  /** …within this window make the key `failing` (out of rotation until a probe or request succeeds). */
  failureWindowMs: z.number().int().min(1_000).max(86_400_000).default(300_000),
  /**
   * Scheduler: probes per cron run at most (each is one subrequest: keep it
   * under 45 on Workers Free, which allows 50 a run; Workers Paid allows
   * 10,000), how many at once, and the run's time budget.
   */
  probeBudget: z.number().int().min(1).max(1_000).default(40),
  probeConcurrency: z.number().int().min(1).max(20).default(6),
  probeTimeBudgetMs: z.number().int().min(1_000).max(25_000).default(20_000),
  /**
   * Probe jobs a cron run may hand on when more keys are due than it probes
   * itself: each names up to `probeBudget` of the next keys due and runs in an
   * invocation of its own, with its own connections and subrequests (a queue;
   * docs/scale.md). 0: a run probes only what it can itself.
   */
  probeJobs: z.number().int().min(0).max(50).default(0),
  /** How often healthy keys' balance (or liveness) is checked, exhausted keys' balance, and dead keys. */
  balanceProbeIntervalMs: z
    .number()
    .int()
    .min(60_000)
    .max(7 * 86_400_000)
    .default(3_600_000),
  exhaustedProbeIntervalMs: z
    .number()
    .int()
    .min(60_000)
    .max(7 * 86_400_000)
    .default(1_800_000),
  deadProbeIntervalMs: z
    .number()
    .int()
    .min(60_000)
    .max(30 * 86_400_000)
    .default(86_400_000),
  /**
   * Browser origins that may call the OpenAI endpoints (CORS): "*" for any (browser SDKs need it), else exact
   * origins; empty: none. The admin API and the dashboard never answer cross-origin, whatever this says.
   */
  corsOrigins: z.array(z.string().refine(isOriginOrAny, 'not "*" or an origin like https://app.example.com')).max(50).default(["*"]),
  /** The currency prices, spend and budgets are in (ISO 4217 code); every price is taken to be in it. */
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, "a three-letter ISO 4217 code such as USD")
    .default("USD"),
  /** Time zone whose midnight starts the day for RPD/TPD. */
  timeZone: z.string().refine(isTimeZone, "unknown IANA time zone").default("UTC"),
  /** What the pool tells its operators about, and when (docs/alerts.md). */
  alerts: alertSettingsSchema,
  /** `/metrics` labels series by key only while the pool has at most this many keys (0: never), so a large pool cannot blow up a Prometheus. */
  metricsKeyLabelsMax: z.number().int().min(0).max(1_000).default(100),
  /**
   * How long the rollups and the dedupe window are kept. The defaults keep history to chart; the least each allows is
   * what the pool itself reads, so a busy pool may keep no more (docs/operations.md, "Retention"): older usage stays
   * in the event archive.
   */
  retention: z
    .object({
      /**
       * Keys' and client keys' minute buckets: the dashboard's last hour, and the first hour of a day that begins off
       * the hour (a zone such as Asia/Kolkata), which the usage publish keeps in its sums an hour or two in — read
       * later, after a lapse of hours without a publish, that hour is counted whole instead
       * (stats-consumer/logic/window-count.ts). The pool's minute buckets by upstream are kept at least 25 hours, for
       * the summary's last 24 hours.
       */
      minuteRollupHours: z
        .number()
        .int()
        .min(4)
        .max(24 * 31)
        .default(48),
      /** The dashboard's last 48 hours by hour, a key's and the Overview's. */
      hourRollupDays: z.number().int().min(2).max(3660).default(35),
      /** A client key's monthly quota and the month's spend (up to 31 days and an hour back), the dashboard's 30 days. */
      dayRollupDays: z.number().int().min(32).max(3660).default(400),
      dedupeHours: z
        .number()
        .int()
        .min(24)
        .max(24 * 14)
        .default(72),
      /** How long the request log keeps each request and its attempts. */
      requestLogDays: z.number().int().min(1).max(90).default(7),
      /** How long kept bodies are kept. */
      bodyDays: z.number().int().min(1).max(30).default(3),
      /** How long the history of alerts (and their deliveries) is kept. */
      alertDays: z.number().int().min(1).max(365).default(30),
    })
    .prefault({}),
});
export type Settings = z.infer<typeof settingsSchema>;

/** The least the pool's minute rollups by upstream are kept, in hours: the summary's last 24 hours, and one to spare. */
export const UPSTREAM_MINUTE_HOURS = 25;

/** The shortest retention the settings allow: each horizon at its least (what the pool itself reads). */
export const leastRetention = Object.fromEntries(
  Object.entries(settingsSchema.shape.retention.unwrap().shape).map(([name, field]) => [name, field.unwrap().minValue]),
) as Settings["retention"];

/** The settings a fresh pool runs with. */
export const defaultSettings: Settings = settingsSchema.parse({});

/** Settings from their stored JSON (null: none stored yet); defaults fill gaps, and an invalid row falls back to defaults. */
export function parseStoredSettings(json: string | null): Settings {
  let raw: unknown = {};
  try {
    raw = json === null ? {} : JSON.parse(json);
  } catch {
    return defaultSettings;
  }
  const parsed = settingsSchema.safeParse(raw);
  return parsed.success ? parsed.data : defaultSettings;
}
