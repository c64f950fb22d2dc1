import { probeJobSchema } from "../schema";
import { probeNow, runProbeJob, runScheduled, type ScheduledReport, type SchedulerDeps } from "../scheduler";
import { createApp } from "./app";
import type { IsolateState } from "./context";
import { ClientLimiter } from "./logic/client-limits";
import { LocalObservations } from "./logic/local-observations";
import { alertSecretCacheFor, keyringFor } from "./logic/secrets";
import { EVENT_BATCH_DELAY_MS, EVENT_MESSAGES_PER_SECOND, EventBatcher } from "./logic/event-batcher";
import { drainEventOutbox, queueEventSink } from "./storage/event-sink";
import { sendToQueue } from "../storage/queues";
import { foldDatabases } from "../storage/fold-databases";
import { PoolCache } from "./storage/snapshot-cache";

/** The scheduler's dependencies, from this Worker's bindings: it runs here but lives in scheduler/. */
function schedulerDeps(env: GatewayEnv): SchedulerDeps {
  return {
    db: env.DB,
    foldDbs: foldDatabases(env),
    emit: queueEventSink(env),
    drainOutbox: () => drainEventOutbox(env),
    fetch: (input, init) => fetch(input, init),
    decrypt: (sealed) => keyringFor(env).decrypt(sealed),
    openAlertSecret: async (sealed) => alertSecretCacheFor(env.ALERT_ENCRYPTION_KEY).decrypt(sealed),
    sendProbeJobs: (jobs) => sendToQueue(env.PROBES, jobs),
    now: Date.now,
  };
}

function alertsReport(alerts: ScheduledReport["alerts"]): string {
  if (alerts === "failed") return "failed (the next run tries again)";
  return `${alerts.raised} raised, ${alerts.sent} delivery(ies) sent, ${alerts.failed} failed, ${alerts.retrying} to retry`;
}

function handedOnReport(handedOn: ScheduledReport["handedOn"]): string {
  if (handedOn === "failed") return ", probe jobs failed to send (the next run plans them again)";
  return handedOn.jobs === 0 ? "" : `, ${handedOn.keys} handed on in ${handedOn.jobs} probe job(s)`;
}

function outboxReport(outbox: ScheduledReport["outbox"]): string {
  if (outbox === "failed") return "drain failed (kept for the next run)";
  return outbox.waiting === 0 && outbox.sent === 0 ? "empty" : `${outbox.sent} event(s) sent, ${outbox.waiting} message(s) waiting`;
}

/** What one isolate keeps between requests: its snapshot, its own observations and limits, its event batch. */
export function createIsolateState(): IsolateState {
  return {
    pools: new PoolCache(),
    observations: new LocalObservations(),
    limits: new ClientLimiter(),
    events: new EventBatcher(EVENT_BATCH_DELAY_MS, EVENT_MESSAGES_PER_SECOND),
    probe: (env, keyIds) => probeNow(schedulerDeps(env), keyIds),
  };
}

/**
 * The gateway Worker's handlers over one isolate's state: the app, the
 * scheduler's cron, and the probe jobs a cron run hands on (the scheduler's
 * code lives in scheduler/).
 */
export function createWorker(state: IsolateState) {
  const app = createApp(state);
  return {
    fetch: app.fetch,
    async scheduled(_controller, env, ctx) {
      ctx.waitUntil(
        runScheduled(schedulerDeps(env)).then((r) =>
          console.log(
            `keypool scheduler: probed ${r.probed} of ${r.due} due key(s)${handedOnReport(r.handedOn)}, pruned ${JSON.stringify(r.pruned)}, snapshot refresh ${r.refreshRequested ? "requested" : "not needed"}, outbox ${outboxReport(r.outbox)}, alerts ${alertsReport(r.alerts)}`,
          ),
        ),
      );
    },
    /** The probes queue: each message a probe job (one a batch), probed here with this invocation's own connections. */
    async queue(batch, env, _ctx) {
      for (const message of batch.messages) {
        const job = probeJobSchema.safeParse(message.body);
        if (!job.success) {
          console.error(`keypool scheduler: a message on ${batch.queue} is not a probe job; dropped`);
          message.ack();
          continue;
        }
        try {
          const r = await runProbeJob(schedulerDeps(env), job.data);
          console.log(`keypool scheduler: probe job: probed ${r.probed} of ${job.data.keyIds.length} key(s), ${r.skipped} no longer due`);
          message.ack();
        } catch (err) {
          console.error(`keypool scheduler: probe job failed, tried again once: ${err instanceof Error ? err.name : "error"}`);
          message.retry();
        }
      }
    },
  } satisfies ExportedHandler<GatewayEnv, unknown>;
}
