import { CONTROL_DELIVER_ALERTS, parseStoredSettings, type Condition, type Settings, type Snapshot } from "../schema";
import { decryptSecret, importEncryptionKey } from "../schema/crypto";
import { claimAlertWakeup, deliverDue, evaluateGroup, raiseAlerts, type AlertGroup, type DeliveryDeps } from "../storage/alerts";
import { countDeadLetters } from "../storage/metrics";
import { clientConditions, poolConditions, type KeyExtras } from "./logic/alert-conditions";
import { readClientQuotaRows } from "./storage/alert-inputs";
import type { FoldDatabases } from "../storage/fold-databases";

/**
 * The consumer's alerts: it evaluates conditions when it publishes (the pool's
 * keys and models with each snapshot, client quotas with each usage count),
 * when dead letters arrive and when its own batches keep failing, and sends
 * what it raised after the batch (`waitUntil`), so a slow or failing receiver
 * never holds a batch. A failed delivery is retried by a delayed control
 * message on the events queue at its backoff (and by the scheduler's sweep).
 * Nothing here throws into the batch: a failure is logged and the next
 * evaluation, which compares with what was stored, catches up.
 */

export interface AlertDeps {
  db: D1Database;
  /** The fold's databases, `db` first, for what alerts read of usage (`db` alone when absent). */
  foldDbs?: FoldDatabases;
  queue: Queue;
  now: () => number;
  /** Keeps the isolate alive for deliveries after the batch returns. */
  waitUntil: (p: Promise<unknown>) => void;
  encryptionKey: string | undefined;
  fetch: typeof fetch;
}

let opened: { secret: string; key: Promise<CryptoKey> } | null = null;

/** Opens sealed destination URLs and secrets with ALERT_ENCRYPTION_KEY (imported once per isolate). */
function opener(secret: string | undefined): (sealed: string) => Promise<string> {
  return async (sealed) => {
    if (!secret) throw new Error("ALERT_ENCRYPTION_KEY is not set");
    if (opened?.secret !== secret) opened = { secret, key: importEncryptionKey(secret, "ALERT_ENCRYPTION_KEY") };
    return decryptSecret(await opened.key, sealed);
  };
}

function deliveryDeps(deps: AlertDeps): DeliveryDeps {
  return { db: deps.db, open: opener(deps.encryptionKey), fetch: deps.fetch, now: deps.now };
}

const errorText = (err: unknown) => (err instanceof Error ? err.message : "error");

/** Longest a queue message may be delayed (Queues: 12 hours). */
const MAX_DELAY_S = 43_200;

/**
 * Sends what is due now, after the batch; when deliveries wait — a retry, or
 * an alert held by its kind's cool-down — asks the queue for a control message
 * when the first is due (one pending at a time).
 */
export function deliverSoon(deps: AlertDeps): void {
  deps.waitUntil(
    (async () => {
      try {
        const report = await deliverDue(deliveryDeps(deps));
        const now = deps.now();
        if (report.nextAt !== null && (await claimAlertWakeup(deps.db, Math.max(report.nextAt, now + 1_000), now))) {
          const delaySeconds = Math.min(MAX_DELAY_S, Math.max(1, Math.ceil((report.nextAt - now) / 1000)));
          await deps.queue.send(CONTROL_DELIVER_ALERTS, { contentType: "json", delaySeconds });
        }
      } catch (err) {
        console.error(`keypool consumer: alert delivery failed (the scheduler's sweep retries): ${errorText(err)}`);
      }
    })(),
  );
}

/** Commits a group's evaluation and sends what it raised. */
async function evaluate(group: AlertGroup, found: Condition[], settings: Settings, deps: AlertDeps, version?: number): Promise<void> {
  if ((await evaluateGroup(deps.db, group, found, settings.alerts, deps.now(), version)) > 0) deliverSoon(deps);
}

/** After a snapshot was published: keys, balances, the pool's and each model's keys in service. */
export async function alertOnPublish(snapshot: Snapshot, extras: Map<string, KeyExtras>, deps: AlertDeps): Promise<void> {
  try {
    await evaluate("pool", poolConditions(snapshot, extras, snapshot.settings.alerts), snapshot.settings, deps, snapshot.version);
  } catch (err) {
    console.error(`keypool consumer: evaluating the pool's alerts failed (the next publish tries again): ${errorText(err)}`);
  }
}

/** After usage `version` was published: client keys near or at their day and month quotas. */
export async function alertOnUsage(deps: AlertDeps, version: number): Promise<void> {
  try {
    const { settings, rows, today, month } = await readClientQuotaRows(deps.foldDbs ?? [deps.db], deps.now());
    await evaluate("clients", clientConditions(rows, settings.alerts, today, month, settings.currency), settings, deps, version);
  } catch (err) {
    console.error(`keypool consumer: evaluating client quota alerts failed (the next usage count tries again): ${errorText(err)}`);
  }
}

/** Dead letters archived: counted, and one alert for the batch of them. */
export async function alertDeadLetters(n: number, settingsJson: string | null, deps: AlertDeps): Promise<void> {
  try {
    await countDeadLetters(deps.db, n);
    const settings = parseStoredSettings(settingsJson);
    if (!settings.alerts.rules.dead_letters.enabled) return;
    const item = {
      subject: "queue:dead-letters",
      label: "keypool-events-dlq",
      detail: `${n} message(s) archived under dead/ in the archive; see docs/operations.md to requeue them`,
    };
    await raiseAlerts(
      deps.db,
      [{ kind: "dead_letters", status: "firing", title: `${n} message${n === 1 ? "" : "s"} sent to the dead-letter queue`, items: [item] }],
      settings.alerts,
      deps.now(),
    );
    deliverSoon(deps);
  } catch (err) {
    console.error(`keypool consumer: raising the dead-letter alert failed: ${errorText(err)}`);
  }
}

/**
 * The consumer's own health: firing once `failures` batches in a row failed in
 * this isolate, cleared by the next success. A failing consumer may not reach
 * D1 at all: then this fails too, and the snapshot's staleness (raised by the
 * scheduler) is what tells the operator.
 */
export async function alertConsumerHealth(failures: number, settings: Settings, deps: AlertDeps): Promise<void> {
  try {
    const rule = settings.alerts.rules.consumer_failing;
    const found: Condition[] =
      rule.enabled && failures >= rule.threshold
        ? [
            {
              subject: "consumer:batches",
              kind: "consumer_failing",
              value: "failing",
              label: "stats consumer",
              detail: `${failures} batches in a row failed and are being retried`,
            },
          ]
        : [];
    await evaluate("consumer", found, settings, deps);
  } catch (err) {
    console.error(`keypool consumer: evaluating the consumer's own alert failed: ${errorText(err)}`);
  }
}
