import { keypoolEventSchema, packEvents, type AdminEvent, type KeypoolEvent } from "../schema";
import { finishReplayJob, findReplayJob, startReplayJob } from "../storage/replay-jobs";
import { ROLLUP_TABLES, rollupCutoffs, type RollupTable } from "../storage/rollups";
import { requestLogCutoff } from "../storage/request-log";
import { readPriceBook } from "../storage/prices";
import { readSettings } from "../storage/settings";
import { DEAD_PREFIX, EVENTS_PREFIX } from "../schema";
import { listArchive, readArchived } from "../storage/archive";
import { emptyProjections, foldEvents } from "./storage/ingest-db";
import { sendToQueue } from "../storage/queues";
import { diffRequestLog, diffRollup, diffTable, resetShadowTables, sumDiffs, type TableDiff } from "./storage/shadow-db";
import { foldDatabases, type FoldDatabases } from "../storage/fold-databases";
import { foldLayoutOf, refoldLayout, setFoldLayout } from "../storage/fold-layout";

/** Parameters of a replay job, carried in its admin event's detail. */
export interface ReplayParams {
  jobId: string;
  /** Only events with from <= ts < to (epoch ms); the whole log when absent. */
  from?: number;
  to?: number;
  /** requeue only: the consumed log or the dead letters. */
  source?: "events" | "dead";
}

const inRange = (e: KeypoolEvent, p: Pick<ReplayParams, "from" | "to">) => (p.from === undefined || e.ts >= p.from) && (p.to === undefined || e.ts < p.to);

/** Archived events of one object that parse and fall in the range (dead letters carry theirs in `body`). */
function eventsOf(records: unknown[], p: Pick<ReplayParams, "from" | "to">): { events: KeypoolEvent[]; unparseable: number } {
  const events: KeypoolEvent[] = [];
  let unparseable = 0;
  for (const record of records) {
    const candidate = typeof record === "object" && record !== null && "deadLetter" in record ? (record as unknown as { body: unknown }).body : record;
    const parsed = keypoolEventSchema.safeParse(candidate);
    if (!parsed.success) unparseable++;
    else if (inRange(parsed.data, p)) events.push(parsed.data);
  }
  return { events, unparseable };
}

export interface RebuildReport {
  objects: number;
  events: number;
  unparseable: number;
  /** Rollup buckets compared: [from, to) clipped to what retention still keeps live. */
  compared: Record<string, TableDiff>;
  identical: boolean;
}

/**
 * Recomputes the projections from the archive into shadow tables, replaying the
 * archived batches in the order they were consumed through the very same fold,
 * then compares them with the live tables value by value. Rollups are compared
 * for the range (clipped to retention); key health, the audit log and the
 * Prometheus counters, which are not bounded by time, only when the whole log is
 * replayed. Over several fold databases, each is rebuilt from its share of every
 * batch and compared with itself, and the differences are added up.
 */
export async function rebuild(env: ConsumerEnv, p: ReplayParams, now: number, dbs: FoldDatabases = foldDatabases(env)): Promise<RebuildReport> {
  await Promise.all(dbs.map(resetShadowTables));
  const [settings, prices] = await Promise.all([readSettings(dbs[0]), readPriceBook(dbs[0])]);
  const keys = await listArchive(env.ARCHIVE, EVENTS_PREFIX);
  let events = 0;
  let unparseable = 0;
  for (const key of keys) {
    const parsed = eventsOf(await readArchived(env.ARCHIVE, key), p);
    unparseable += parsed.unparseable;
    if (parsed.events.length === 0) continue;
    events += parsed.events.length;
    await foldEvents(dbs, parsed.events, settings, prices, "shadow_");
  }
  const across = async (diff: (db: D1Database) => Promise<TableDiff>) => sumDiffs(await Promise.all(dbs.map(diff)));
  const floor = rollupCutoffs(settings, now);
  const compared: Record<string, TableDiff> = {};
  for (const table of Object.keys(ROLLUP_TABLES) as RollupTable[]) {
    // A bucket is compared only if every event it can hold lies inside the range, and retention still keeps it.
    compared[table] = await across((db) => diffRollup(db, table, Math.max(p.from ?? 0, floor[table]), p.to ?? Number.MAX_SAFE_INTEGER));
  }
  if (p.from === undefined && p.to === undefined) {
    for (const table of ["key_health", "key_capacity", "audit_log", "metric_total"] as const) compared[table] = await across((db) => diffTable(db, table));
    const cutoff = requestLogCutoff(settings, now);
    const log = await Promise.all(dbs.map((db) => diffRequestLog(db, cutoff)));
    compared.request_log = sumDiffs(log.map((l) => l.request_log));
    compared.request_attempts = sumDiffs(log.map((l) => l.request_attempts));
  }
  const identical = Object.values(compared).every((d) => d.onlyLive === 0 && d.onlyRebuilt === 0);
  return { objects: keys.length, events, unparseable, compared, identical };
}

export interface RequeueReport {
  objects: number;
  requeued: number;
  unparseable: number;
}

/** Sends archived events (or dead letters) back into the queue; the dedupe window keeps anything from counting twice. */
export async function requeue(env: ConsumerEnv, p: ReplayParams): Promise<RequeueReport> {
  const keys = await listArchive(env.ARCHIVE, p.source === "dead" ? DEAD_PREFIX : EVENTS_PREFIX);
  let requeued = 0;
  let unparseable = 0;
  for (const key of keys) {
    const parsed = eventsOf(await readArchived(env.ARCHIVE, key), p);
    unparseable += parsed.unparseable;
    await sendToQueue(env.EVENTS, packEvents(parsed.events));
    requeued += parsed.events.length;
  }
  return { objects: keys.length, requeued, unparseable };
}

export interface RefoldReport {
  objects: number;
  events: number;
  unparseable: number;
  /** The fold databases refolded into. */
  databases: number;
}

/**
 * Folds the whole archived event log again into the fold databases this
 * consumer binds, replacing what they held: how a pool moves to another list
 * of databases (storage/fold-layout.ts), and how live projections that a
 * rebuild found different are made equal to the log again. Each database
 * first, in one transaction, empties its projections and takes the refold's
 * layout — from then on a batch folding under a database's own layout fails
 * and is retried, and one that committed before was archived before the
 * archive is listed here, so it is refolded. The archived batches are folded
 * in the order they were consumed, through the very same fold; then each
 * database takes its layout in the list. A refold that fails leaves the
 * databases under its layout (batches wait in the queue) until a refold ends.
 */
export async function refold(env: ConsumerEnv, p: ReplayParams, dbs: FoldDatabases = foldDatabases(env)): Promise<RefoldReport> {
  const layout = refoldLayout(p.jobId);
  await Promise.all(dbs.map((db) => emptyProjections(db, layout)));
  const [settings, prices] = await Promise.all([readSettings(dbs[0]), readPriceBook(dbs[0])]);
  const keys = await listArchive(env.ARCHIVE, EVENTS_PREFIX);
  let events = 0;
  let unparseable = 0;
  for (const key of keys) {
    const parsed = eventsOf(await readArchived(env.ARCHIVE, key), {});
    unparseable += parsed.unparseable;
    if (parsed.events.length === 0) continue;
    events += parsed.events.length;
    await foldEvents(dbs, parsed.events, settings, prices, "", layout);
  }
  await Promise.all(dbs.map((db, i) => setFoldLayout(db, foldLayoutOf(i, dbs.length))));
  return { objects: keys.length, events, unparseable, databases: dbs.length };
}

type ReplayRequest = { kind: "rebuild" | "requeue" | "refold"; params: ReplayParams };

const REPLAY_KINDS = { "replay.rebuild": "rebuild", "replay.requeue": "requeue", "replay.refold": "refold" } as const;

/** The replay jobs a batch asks for (admin events `replay.rebuild` / `replay.requeue` / `replay.refold`). */
function replayRequests(events: KeypoolEvent[]): ReplayRequest[] {
  return events
    .filter((e): e is AdminEvent => e.type === "admin" && Object.hasOwn(REPLAY_KINDS, e.action))
    .flatMap((e) => {
      const d = (e.detail ?? {}) as Record<string, unknown>;
      if (typeof d.jobId !== "string") return [];
      const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
      const params: ReplayParams = { jobId: d.jobId, from: num(d.from), to: num(d.to), source: d.source === "dead" ? "dead" : "events" };
      return [{ kind: REPLAY_KINDS[e.action as keyof typeof REPLAY_KINDS], params }];
    });
}

/**
 * Runs the refolds a batch asks for, before the batch is folded: under a
 * changed list of databases the batch could not be folded otherwise, and it
 * is archived already, so the refold folds it (its own fold then changes
 * nothing). A refold that fails is recorded and fails the batch, so it is
 * tried again with it.
 */
export async function runRefolds(events: KeypoolEvent[], env: ConsumerEnv, now: () => number): Promise<void> {
  for (const { params } of replayRequests(events).filter((r) => r.kind === "refold")) {
    // The batch retried after its refold ended (a later step failed): the refold is not run twice.
    if ((await findReplayJob(env.DB, params.jobId))?.status === "done") continue;
    await startReplayJob(env.DB, { id: params.jobId, kind: "refold", params: { jobId: params.jobId } }, now());
    try {
      await finishReplayJob(env.DB, params.jobId, "done", await refold(env, params), now());
    } catch (err) {
      await finishReplayJob(env.DB, params.jobId, "failed", { error: err instanceof Error ? err.message : String(err) }, now()).catch(() => {});
      throw err;
    }
  }
}

/** Runs the rebuilds and requeues a batch asked for, recording each one's report; a failed job is reported, not retried. */
export async function runReplayJobs(events: KeypoolEvent[], env: ConsumerEnv, now: () => number): Promise<void> {
  for (const { kind, params } of replayRequests(events)) {
    if (kind === "refold") continue;
    await startReplayJob(env.DB, { id: params.jobId, kind, params: { ...params } }, now());
    try {
      const report = kind === "rebuild" ? await rebuild(env, params, now()) : await requeue(env, params);
      await finishReplayJob(env.DB, params.jobId, "done", report, now());
    } catch (err) {
      await finishReplayJob(env.DB, params.jobId, "failed", { error: err instanceof Error ? err.message : String(err) }, now());
    }
  }
}
