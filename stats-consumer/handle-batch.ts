import {
  controlOf,
  defaultSettings,
  eventsOfMessage,
  isBodiesMessage,
  keptBodiesSchema,
  keypoolEventSchema,
  type KeptBodies,
  type KeypoolEvent,
} from "../schema";
import { alertConsumerHealth, alertDeadLetters, alertOnPublish, alertOnUsage, deliverSoon, type AlertDeps } from "./alerts";
import { claimBodiesPrune } from "../storage/snapshot-meta";
import { pruneBodies, storeBodies } from "./storage/bodies";
import { PublishedStates, publishIfStale } from "./publish";
import { runRefolds, runReplayJobs } from "./replay";
import { DEAD_PREFIX, EVENTS_PREFIX, archiveKey, idFilter } from "../schema";
import { appendToArchive } from "../storage/archive";
import { foldEvents } from "./storage/ingest-db";
import { sendToQueue } from "../storage/queues";
import { foldDatabases } from "../storage/fold-databases";
import { FoldLayoutRefused, LAYOUT_RETRY_DELAY_S } from "../storage/fold-layout";
import { publishUsage } from "./storage/usage-store";
import { readPriceBook } from "../storage/prices";
import { readSettings, selectSettings } from "../storage/settings";

/**
 * Events folded per D1 transaction. A batch holds up to 100 messages of up to
 * 100 events each; 1,000 attempt rows keep the JSON parameter far below D1's
 * 2 MB limit on a bound value, even with 200-character model names.
 */
export const EVENTS_PER_TRANSACTION = 1_000;

/** What one batch did, for logs and tests. */
export interface BatchResult {
  valid: number;
  malformed: number;
  published: number | null;
  retried: boolean;
}

/** How a malformed event (or message) is kept in the dead-letter queue. */
export interface DeadLetter {
  deadLetter: "malformed";
  error: string;
  messageId: string;
  body: unknown;
}

export interface BatchDeps {
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  /** What this isolate knows of the published snapshot. */
  published: PublishedStates;
  /** Batches in a row this isolate failed, and when it last looked at its own alert (consumer_failing); none: not tracked. */
  health?: { failures: number; checkedAt: number };
  /** Where alert deliveries go: the network unless a test passes its own. */
  fetch?: typeof fetch;
}

/** An isolate's dependencies: the real clock, and its own memory of what was published and of its failures. */
export function isolateDeps(): BatchDeps {
  return {
    now: Date.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    published: new PublishedStates(),
    health: { failures: 0, checkedAt: 0 },
    fetch: (input, init) => fetch(input, init),
  };
}

/** How often a healthy consumer looks whether a consumer_failing alert (perhaps another isolate's) is left to clear. */
const HEALTH_CHECK_MS = 60_000;

/** The alert dependencies of one batch. */
function alertDeps(env: ConsumerEnv, deps: BatchDeps, waitUntil: (p: Promise<unknown>) => void): AlertDeps {
  return {
    db: env.DB,
    foldDbs: foldDatabases(env),
    queue: env.EVENTS,
    now: deps.now,
    waitUntil,
    encryptionKey: env.ALERT_ENCRYPTION_KEY,
    fetch: deps.fetch ?? ((input, init) => fetch(input, init)),
  };
}

/** Every event of every message of a batch (one, or several packed), validated: the valid ones, and the rest as dead letters. */
export function readBatch(batch: MessageBatch<unknown>): {
  events: KeypoolEvent[];
  dead: DeadLetter[];
  controls: number;
  deliverAlerts: boolean;
  bodies: KeptBodies[];
} {
  const events: KeypoolEvent[] = [];
  const dead: DeadLetter[] = [];
  const bodies: KeptBodies[] = [];
  let controls = 0;
  let deliverAlerts = false;
  for (const message of batch.messages) {
    const control = controlOf(message.body);
    if (control === "publish-usage") controls++;
    if (control === "deliver-alerts") deliverAlerts = true;
    if (control !== null) continue;
    if (isBodiesMessage(message.body)) {
      const parsed = keptBodiesSchema.safeParse(message.body.bodies);
      if (parsed.success) bodies.push(parsed.data);
      else dead.push({ deadLetter: "malformed", error: parsed.error.issues[0]?.message ?? "invalid", messageId: message.id, body: message.body });
      continue;
    }
    for (const body of eventsOfMessage(message.body)) {
      const parsed = keypoolEventSchema.safeParse(body);
      if (parsed.success) events.push(parsed.data);
      else dead.push({ deadLetter: "malformed", error: parsed.error.issues[0]?.message ?? "invalid", messageId: message.id, body });
    }
  }
  return { events, dead, controls, deliverAlerts, bodies };
}

/**
 * Folds one queue batch. Every event of every message (one, or several packed)
 * is validated; malformed ones go to the dead-letter queue. The valid events are
 * archived (the log of record), then rollups, health, audit rows and the dedupe
 * window commit in D1, one transaction per 1,000 events, then the snapshot is
 * republished if the batch changed it (and the pool's alerts evaluated on it).
 * Messages that are not events — kept request bodies, and the consumer's own
 * asks to publish the usage a second later or to send alert deliveries that
 * are due — are stored or acted on, never archived or folded. Any failure
 * retries the batch — the dedupe window makes that safe, also for transactions
 * that already committed — and nothing is acknowledged until it is stored;
 * batches failing in a row raise consumer_failing. Alerts are sent after the
 * batch (`waitUntil`) and never fail it.
 */
export async function handleBatch(
  batch: MessageBatch<unknown>,
  env: ConsumerEnv,
  deps: BatchDeps,
  waitUntil: (p: Promise<unknown>) => void = () => {},
): Promise<BatchResult> {
  const { events, dead, controls, deliverAlerts, bodies } = readBatch(batch);
  const result: BatchResult = { valid: events.length, malformed: dead.length, published: null, retried: false };
  const alerts = alertDeps(env, deps, waitUntil);
  try {
    if (dead.length > 0) {
      console.error(`keypool consumer: ${dead.length} malformed event(s) sent to the dead-letter queue (first: ${dead[0]!.error})`);
      await sendToQueue(env.DEAD_LETTERS, dead);
    }
    if (bodies.length > 0) await keepBodies(bodies, env, deps.now());
    if (events.length > 0) {
      // With a filter of the batch's request ids, so a trace reads only the batches that may hold its request.
      const requestIds = idFilter(events.flatMap((e) => (e.type === "attempt" ? [e.requestId] : [])));
      await appendToArchive(env.ARCHIVE, archiveKey(EVENTS_PREFIX, deps.now(), crypto.randomUUID()), events, requestIds ? { requestIds } : {});
      // A refold the batch asks for runs before the batch is folded (replay.ts).
      await runRefolds(events, env, deps.now);
      const [settings, prices] = await Promise.all([readSettings(env.DB), readPriceBook(env.DB)]);
      for (let i = 0; i < events.length; i += EVENTS_PER_TRANSACTION) {
        const chunk = events.slice(i, i + EVENTS_PER_TRANSACTION);
        await foldEvents(foldDatabases(env), chunk, settings, prices);
      }
      result.published = await publishIfStale(events, settings, {
        db: env.DB,
        foldDbs: foldDatabases(env),
        kv: env.SNAPSHOT,
        ...deps,
        onPublished: (snapshot, extras) => alertOnPublish(snapshot, extras, alerts),
      });
      if (controls > 0 || events.some((e) => e.type === "attempt")) await publishUsageQuietly(env, deps.now(), alerts);
      await runReplayJobs(events, env, deps.now);
      await checkOwnHealth(deps, settings, alerts);
    } else if (controls > 0) await publishUsageQuietly(env, deps.now(), alerts);
    if (deliverAlerts) deliverSoon(alerts);
  } catch (err) {
    console.error(`keypool consumer: batch of ${batch.messages.length} failed, retrying: ${err instanceof Error ? err.message : "error"}`);
    // Refused for the fold's layout: it waits for a refold, or for the bindings to be put back, a while between tries.
    if (err instanceof FoldLayoutRefused) batch.retryAll({ delaySeconds: LAYOUT_RETRY_DELAY_S });
    else batch.retryAll();
    result.retried = true;
    if (deps.health) {
      deps.health.failures++;
      const settings = await readSettings(env.DB).catch(() => defaultSettings);
      if (deps.health.failures >= settings.alerts.rules.consumer_failing.threshold) await alertConsumerHealth(deps.health.failures, settings, alerts);
    }
    return result;
  }
  batch.ackAll();
  return result;
}

/**
 * After a stored batch: clears this isolate's failure count, and looks whether
 * a consumer_failing alert is left to clear — at once after failures, else at
 * most once a minute (another isolate may have raised it).
 */
async function checkOwnHealth(deps: BatchDeps, settings: Awaited<ReturnType<typeof readSettings>>, alerts: AlertDeps): Promise<void> {
  const health = deps.health;
  if (!health) return;
  const failed = health.failures > 0;
  health.failures = 0;
  if (!failed && deps.now() - health.checkedAt < HEALTH_CHECK_MS) return;
  health.checkedAt = deps.now();
  await alertConsumerHealth(0, settings, alerts);
}

/**
 * Publishes the pool's usage after a batch that may have moved it. A failure is
 * logged, not retried: the batch is stored, and the next one publishes again.
 */
async function publishUsageQuietly(env: ConsumerEnv, now: number, alerts: AlertDeps): Promise<void> {
  try {
    const version = await publishUsage(foldDatabases(env), env.SNAPSHOT, env.EVENTS, now);
    if (version !== null) await alertOnUsage(alerts, version);
  } catch (err) {
    console.error(`keypool consumer: publishing the pool's usage failed (the next batch tries again): ${err instanceof Error ? err.message : "error"}`);
  }
}

/**
 * Stores kept bodies (not events: nothing is folded from them), and deletes
 * days past retention at most once an hour.
 */
async function keepBodies(bodies: KeptBodies[], env: ConsumerEnv, now: number): Promise<void> {
  await storeBodies(env.ARCHIVE, bodies);
  if (await claimBodiesPrune(env.DB, now, 3_600_000)) {
    // Housekeeping: a failure waits for the next hour's prune, it does not fail the batch.
    try {
      const { retention } = await readSettings(env.DB);
      await pruneBodies(env.ARCHIVE, retention.bodyDays, now);
    } catch (err) {
      console.error(`keypool consumer: pruning kept bodies failed (the next hour tries again): ${err instanceof Error ? err.message : "error"}`);
    }
  }
}

/**
 * Whether a batch comes from the dead-letter queue: `keypool-events-dlq`, or
 * `keypool-<env>-events-dlq` as `npm run deploy -- --env <env>` names it. The
 * event queues (`keypool-events`, `keypool-events-2`…) are not.
 */
export function isDeadLetterQueue(queue: string): boolean {
  return queue.endsWith("-dlq");
}

/** Keeps dead letters in the archive under dead/, where requeue can find them, and raises an alert for them. */
export async function handleDeadLetters(
  batch: MessageBatch<unknown>,
  env: ConsumerEnv,
  deps: Pick<BatchDeps, "now" | "fetch" | "sleep" | "published" | "health">,
  waitUntil: (p: Promise<unknown>) => void = () => {},
): Promise<void> {
  try {
    await appendToArchive(
      env.ARCHIVE,
      archiveKey(DEAD_PREFIX, deps.now(), crypto.randomUUID()),
      batch.messages.map((m) => m.body),
    );
    batch.ackAll();
  } catch (err) {
    console.error(`keypool consumer: could not archive ${batch.messages.length} dead letter(s), retrying: ${err instanceof Error ? err.message : "error"}`);
    batch.retryAll();
    return;
  }
  const settings = await selectSettings(env.DB)
    .first<{ value: string }>()
    .catch(() => null);
  await alertDeadLetters(batch.messages.length, settings?.value ?? null, alertDeps(env, deps, waitUntil));
}
