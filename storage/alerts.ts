import {
  ALERT_ITEMS_KEPT,
  DELIVERY_HEADER,
  RETRY_DELAYS_MS,
  diffConditions,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  messageBody,
  newEventId,
  signBody,
  type AlertKind,
  type AlertSettings,
  type AlertView,
  type Condition,
  type DeliveredAlert,
  type DestinationKind,
  type DestinationView,
  type Evaluation,
  type RaisedAlert,
  type StoredCondition,
} from "../schema";

/**
 * Alerts in D1 (migration 0017): destinations (URLs sealed), the conditions last
 * alerted per evaluation group, every alert raised and each delivery of it. The
 * consumer and the scheduler raise and deliver; the admin API configures and
 * reads, and sends tests.
 */

/** The evaluation groups: each keeps its own conditions and sequence, so they never race each other. */
export type AlertGroup = "pool" | "clients" | "consumer" | "scheduler";

/** What delivering needs: D1, a way to open sealed URLs and secrets, the network, a clock. */
export interface DeliveryDeps {
  db: D1Database;
  open: (sealed: string) => Promise<string>;
  fetch: typeof fetch;
  now: () => number;
}

/** How long a claimed delivery is left to its sender before another may take it (a sender that died midway). */
const CLAIM_LEASE_MS = 60_000;
/** How long a receiver has to answer. */
const DELIVERY_TIMEOUT_MS = 10_000;
/** Deliveries one sweep takes at most. */
const SWEEP_LIMIT = 100;

// ---------------------------------------------------------------------------
// Destinations

export interface DestinationRow {
  id: string;
  name: string;
  kind: DestinationKind;
  url_enc: string;
  url_masked: string;
  secret_enc: string | null;
  kinds: string;
  enabled: number;
  created_at: number;
  updated_at: number;
}

export async function listDestinations(db: D1Database, now: number): Promise<DestinationView[]> {
  const { results } = await db
    .prepare(
      `SELECT d.*, (SELECT COUNT(*) FROM alert_deliveries x WHERE x.destination_id = d.id AND x.status = 'sent' AND x.updated_at >= ?1) AS sent24h,
         (SELECT COUNT(*) FROM alert_deliveries x WHERE x.destination_id = d.id AND x.status = 'failed' AND x.updated_at >= ?1) AS failed24h
       FROM alert_destinations d ORDER BY d.created_at, d.id`,
    )
    .bind(now - 86_400_000)
    .all<DestinationRow & { sent24h: number; failed24h: number }>();
  return results.map((r) => ({ ...destinationView(r), sent24h: r.sent24h, failed24h: r.failed24h }));
}

export function destinationView(r: DestinationRow): Omit<DestinationView, "sent24h" | "failed24h"> {
  return {
    id: r.id,
    name: r.name,
    kind: r.kind,
    url: r.url_masked,
    kinds: JSON.parse(r.kinds) as AlertKind[],
    enabled: r.enabled === 1,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

export async function getDestination(db: D1Database, id: string): Promise<DestinationRow | null> {
  return db.prepare("SELECT * FROM alert_destinations WHERE id = ?1").bind(id).first<DestinationRow>();
}

export async function insertDestination(db: D1Database, row: DestinationRow): Promise<void> {
  await db
    .prepare(
      `INSERT INTO alert_destinations (id, name, kind, url_enc, url_masked, secret_enc, kinds, enabled, created_at, updated_at)
       VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)`,
    )
    .bind(row.id, row.name, row.kind, row.url_enc, row.url_masked, row.secret_enc, row.kinds, row.enabled, row.created_at, row.updated_at)
    .run();
}

export async function updateDestination(db: D1Database, row: DestinationRow): Promise<void> {
  await db
    .prepare(`UPDATE alert_destinations SET name = ?2, url_enc = ?3, url_masked = ?4, secret_enc = ?5, kinds = ?6, enabled = ?7, updated_at = ?8 WHERE id = ?1`)
    .bind(row.id, row.name, row.url_enc, row.url_masked, row.secret_enc, row.kinds, row.enabled, row.updated_at)
    .run();
}

/** Deletes a destination; deliveries still waiting for it are dropped, the history of sent and failed ones is kept. */
export async function deleteDestination(db: D1Database, id: string): Promise<boolean> {
  const [, deleted] = await db.batch([
    db.prepare("DELETE FROM alert_deliveries WHERE destination_id = ?1 AND status = 'pending'").bind(id),
    db.prepare("DELETE FROM alert_destinations WHERE id = ?1").bind(id),
  ]);
  return (deleted!.meta.changes ?? 0) > 0;
}

// ---------------------------------------------------------------------------
// Evaluation state and raising

/** A group's stored conditions and sequence number, and when each kind last sent (its cool-down). */
export async function readAlertGroup(
  db: D1Database,
  group: AlertGroup,
  now: number,
): Promise<{ seq: number; stored: Map<string, StoredCondition>; lastByKind: Map<string, number> }> {
  const [seq, rows, last] = await db.batch<Record<string, unknown>>([
    db.prepare("SELECT value FROM meta WHERE name = ?1").bind(`alert_seq:${group}`),
    db.prepare("SELECT subject, value FROM alert_state WHERE grp = ?1").bind(group),
    lastByKindStatement(db, now),
  ]);
  return {
    seq: Number(seq!.results[0]?.value ?? 0),
    stored: new Map(rows!.results.map((r) => [String(r.subject), JSON.parse(String(r.value)) as StoredCondition])),
    lastByKind: lastByKindOf(last!.results),
  };
}

/**
 * When each kind's latest alert was (or will be) sent. Only the last two days
 * can matter: a cool-down is at most a day, and so is what an alert is held for.
 */
function lastByKindStatement(db: D1Database, now: number): D1PreparedStatement {
  return db
    .prepare("SELECT kind, MAX(COALESCE(not_before, created_at)) AS at FROM alerts WHERE created_at >= ?1 AND kind != 'test' GROUP BY kind")
    .bind(now - 2 * 86_400_000);
}

function lastByKindOf(rows: Record<string, unknown>[]): Map<string, number> {
  return new Map(rows.map((r) => [String(r.kind), Number(r.at)]));
}

/** An alert's row values: id, kind, status, title, count, items (JSON), created_at, not_before. */
function alertRows(alerts: RaisedAlert[], now: number, settings: AlertSettings, lastByKind: Map<string, number>): unknown[][] {
  const cooldown = settings.cooldownMinutes * 60_000;
  const rows: unknown[][] = [];
  for (const a of alerts) {
    const last = lastByKind.get(a.kind);
    // Held until the kind's cool-down has passed (joining an alert already held); then everything held is sent together.
    let notBefore: number | null = null;
    if (a.kind !== "test" && last !== undefined) {
      if (last > now) notBefore = last;
      else if (cooldown > 0 && last + cooldown > now) notBefore = last + cooldown;
    }
    rows.push([newEventId(now), a.kind, a.status, a.title, a.items.length, JSON.stringify(a.items.slice(0, ALERT_ITEMS_KEPT)), now, notBefore]);
  }
  return rows;
}

const INSERT_ALERTS = (condition: string) => `INSERT INTO alerts (id, kind, status, title, count, items, created_at, not_before)
  SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, value->>6, value->>7 FROM json_each(?1) WHERE ${condition}`;

/** A delivery for every alert of `?1` to every enabled destination that takes its kind (or only to `?3`), due at its not_before or now (`?2`). */
const INSERT_DELIVERIES = (condition: string, only: boolean) => `INSERT INTO alert_deliveries (alert_id, destination_id, status, attempts, next_at, updated_at)
  SELECT a.value->>0, d.id, 'pending', 0, COALESCE(a.value->>7, ?2), ?2
  FROM json_each(?1) a JOIN alert_destinations d
    ON ${only ? "d.id = ?3" : "d.enabled = 1 AND (d.kinds = '[]' OR EXISTS (SELECT 1 FROM json_each(d.kinds) k WHERE k.value = a.value->>1))"}
  WHERE ${condition}`;

/**
 * Writes an evaluation — conditions stored and dropped, alerts and their
 * deliveries — if no other evaluation of the group committed since `seq` was
 * read; every statement checks it, and the last moves it on to `next`. Returns whether it
 * committed: one that did not leaves its differences to the next evaluation,
 * which reads what the winner stored.
 */
export async function commitEvaluation(
  db: D1Database,
  group: AlertGroup,
  seq: number,
  next: number,
  evaluation: Evaluation,
  settings: AlertSettings,
  lastByKind: Map<string, number>,
  now: number,
): Promise<{ committed: boolean; alerts: number }> {
  if (evaluation.upserts.length === 0 && evaluation.deletes.length === 0) {
    // Nothing to write; the sequence still moves to a later version, so an older one evaluated late is skipped.
    if (next > seq + 1) await db.prepare("UPDATE meta SET value = ?3 WHERE name = ?1 AND value = ?2").bind(`alert_seq:${group}`, seq, next).run();
    return { committed: true, alerts: 0 };
  }
  const unchanged = `(SELECT value FROM meta WHERE name = 'alert_seq:${group}') = ${Number(seq)}`;
  const rows = JSON.stringify(alertRows(evaluation.alerts, now, settings, lastByKind));
  const results = await db.batch([
    db
      .prepare(
        `INSERT INTO alert_state (subject, grp, value, since) SELECT value->>0, ?2, value->>1, ?3 FROM json_each(?1) WHERE ${unchanged}
         ON CONFLICT (subject) DO UPDATE SET grp = excluded.grp, value = excluded.value, since = excluded.since`,
      )
      .bind(JSON.stringify(evaluation.upserts.map((u) => [u.subject, JSON.stringify(u.stored)])), group, now),
    db.prepare(`DELETE FROM alert_state WHERE subject IN (SELECT value FROM json_each(?1)) AND ${unchanged}`).bind(JSON.stringify(evaluation.deletes)),
    db.prepare(INSERT_ALERTS(unchanged)).bind(rows),
    db.prepare(INSERT_DELIVERIES(unchanged, false)).bind(rows, now),
    db.prepare("UPDATE meta SET value = ?3 WHERE name = ?1 AND value = ?2").bind(`alert_seq:${group}`, seq, next),
  ]);
  return { committed: (results[4]!.meta.changes ?? 0) === 1, alerts: evaluation.alerts.length };
}

/**
 * Compares a group's conditions found now with those it stored, and commits the
 * difference; when another evaluation of the group committed first, compares
 * again with what that one stored. Returns how many alerts it raised.
 */
export async function evaluateGroup(
  db: D1Database,
  group: AlertGroup,
  found: Condition[],
  settings: AlertSettings,
  now: number,
  version?: number,
): Promise<number> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const state = await readAlertGroup(db, group, now);
    // Conditions read from a published version (the snapshot's, the usage's) never overrule a later one's.
    const next = version ?? state.seq + 1;
    if (next <= state.seq) return 0;
    const evaluation = diffConditions(found, state.stored, settings.notifyResolved);
    const result = await commitEvaluation(db, group, state.seq, next, evaluation, settings, state.lastByKind, now);
    if (result.committed) return result.alerts;
  }
  return 0;
}

/** Raises alerts that are events rather than conditions (dead letters) — or a test to one destination — with their deliveries. Returns their ids. */
export async function raiseAlerts(db: D1Database, alerts: RaisedAlert[], settings: AlertSettings, now: number, onlyDestination?: string): Promise<string[]> {
  if (alerts.length === 0) return [];
  const [last] = await db.batch<Record<string, unknown>>([lastByKindStatement(db, now)]);
  const rows = alertRows(alerts, now, settings, lastByKindOf(last!.results));
  const param = JSON.stringify(rows);
  await db.batch([
    db.prepare(INSERT_ALERTS("true")).bind(param),
    onlyDestination === undefined
      ? db.prepare(INSERT_DELIVERIES("true", false)).bind(param, now)
      : db.prepare(INSERT_DELIVERIES("true", true)).bind(param, now, onlyDestination),
  ]);
  return rows.map((r) => String(r[0]));
}

// ---------------------------------------------------------------------------
// Delivery

/** What a sweep did: messages sent and failed, deliveries still to retry, and when the next is due. */
export interface SweepReport {
  sent: number;
  failed: number;
  retrying: number;
  nextAt: number | null;
}

interface ClaimedRow {
  alert_id: string;
  destination_id: string;
  attempts: number;
}

/**
 * Sends the deliveries that are due (or only those of `alertIds`): claims them
 * first (so two senders never send one twice), then sends one message per
 * destination holding all its due alerts, signed for generic webhooks. A
 * delivery that fails waits its backoff and is retried, RETRY_DELAYS_MS.length
 * times, then is marked failed; nothing here throws for a receiver's failure.
 */
export async function deliverDue(deps: DeliveryDeps, alertIds?: string[]): Promise<SweepReport> {
  const now = deps.now();
  const only = alertIds ? "AND alert_id IN (SELECT value FROM json_each(?3))" : "";
  const claimed = await deps.db
    .prepare(
      `UPDATE alert_deliveries SET attempts = attempts + 1, next_at = ?2, updated_at = ?1
       WHERE status = 'pending' AND (alert_id, destination_id) IN (
         SELECT alert_id, destination_id FROM alert_deliveries WHERE status = 'pending' AND next_at <= ?1 ${only} ORDER BY next_at LIMIT ${SWEEP_LIMIT})
       RETURNING alert_id, destination_id, attempts`,
    )
    .bind(now, now + CLAIM_LEASE_MS, ...(alertIds ? [JSON.stringify(alertIds)] : []))
    .all<ClaimedRow>();
  const report: SweepReport = { sent: 0, failed: 0, retrying: 0, nextAt: null };
  if (claimed.results.length > 0) {
    const [alerts, destinations] = await deps.db.batch<Record<string, unknown>>([
      deps.db
        .prepare("SELECT * FROM alerts WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY created_at, id")
        .bind(JSON.stringify([...new Set(claimed.results.map((r) => r.alert_id))])),
      deps.db
        .prepare("SELECT * FROM alert_destinations WHERE id IN (SELECT value FROM json_each(?1))")
        .bind(JSON.stringify([...new Set(claimed.results.map((r) => r.destination_id))])),
    ]);
    const alertById = new Map(alerts!.results.map((a) => [String(a.id), a]));
    const byDestination = new Map<string, ClaimedRow[]>();
    for (const row of claimed.results) {
      let list = byDestination.get(row.destination_id);
      if (!list) byDestination.set(row.destination_id, (list = []));
      list.push(row);
    }
    const results = await Promise.all(
      (destinations!.results as unknown as DestinationRow[]).map(async (d) => {
        const rows = byDestination.get(d.id) ?? [];
        const delivered = rows
          .map((r) => alertById.get(r.alert_id))
          .filter((a) => a !== undefined)
          .map(deliveredAlert);
        // Switched off since the alert was raised: nothing more goes there (a test still does).
        if (d.enabled !== 1 && delivered.some((a) => a.kind !== "test")) {
          const off: SendOutcome = { ok: false, status: null, error: "the destination is disabled", final: true };
          return { rows, outcome: off };
        }
        return { rows, outcome: await send(deps, d, delivered) };
      }),
    );
    // Claimed rows whose destination was deleted meanwhile: nowhere to send them.
    const known = new Set(destinations!.results.map((d) => String(d.id)));
    const orphans = claimed.results.filter((r) => !known.has(r.destination_id));
    results.push({ rows: orphans, outcome: { ok: false, status: null, error: "the destination was deleted", final: true } });
    const statements: D1PreparedStatement[] = [];
    const later = deps.now();
    for (const { rows, outcome } of results) {
      for (const r of rows) {
        if (outcome.ok) {
          report.sent++;
          statements.push(markDelivery(deps.db, r, "sent", null, outcome.status, null, later));
        } else if (outcome.final || r.attempts > RETRY_DELAYS_MS.length) {
          report.failed++;
          statements.push(markDelivery(deps.db, r, "failed", null, outcome.status, outcome.error, later));
        } else {
          report.retrying++;
          const nextAt = later + RETRY_DELAYS_MS[r.attempts - 1]!;
          report.nextAt = Math.min(report.nextAt ?? nextAt, nextAt);
          statements.push(markDelivery(deps.db, r, "pending", nextAt, outcome.status, outcome.error, later));
        }
      }
    }
    if (statements.length > 0) await deps.db.batch(statements);
  }
  const next = await deps.db.prepare("SELECT MIN(next_at) AS at FROM alert_deliveries WHERE status = 'pending'").first<{ at: number | null }>();
  if (next?.at !== null && next?.at !== undefined) report.nextAt = Math.min(report.nextAt ?? next.at, next.at);
  return report;
}

function markDelivery(
  db: D1Database,
  r: ClaimedRow,
  status: "sent" | "failed" | "pending",
  nextAt: number | null,
  httpStatus: number | null,
  error: string | null,
  now: number,
): D1PreparedStatement {
  return db
    .prepare(
      "UPDATE alert_deliveries SET status = ?3, next_at = ?4, last_status = ?5, last_error = ?6, updated_at = ?7 WHERE alert_id = ?1 AND destination_id = ?2",
    )
    .bind(r.alert_id, r.destination_id, status, nextAt, httpStatus, error, now);
}

/** An alert as it goes out: its row, with the time it was raised in ISO 8601. */
function deliveredAlert(a: Record<string, unknown>): DeliveredAlert {
  const { createdAt, notBefore: _held, ...alert } = alertOfRow(a);
  return { ...alert, raisedAt: new Date(createdAt).toISOString() };
}

type SendOutcome = { ok: true; status: number } | { ok: false; status: number | null; error: string; final: boolean };

/** POSTs the alerts to a destination in its format; never throws, never says the URL. */
async function send(deps: DeliveryDeps, d: DestinationRow, alerts: DeliveredAlert[]): Promise<SendOutcome> {
  let url: string;
  let secret: string | null;
  try {
    url = await deps.open(d.url_enc);
    secret = d.secret_enc === null ? null : await deps.open(d.secret_enc);
  } catch {
    return { ok: false, status: null, error: "cannot decrypt the destination: is ALERT_ENCRYPTION_KEY set, and the same as when it was saved?", final: false };
  }
  const body = messageBody(d.kind, alerts, "Keypool");
  const ts = Math.floor(deps.now() / 1000);
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "user-agent": "Keypool-Alerts/1",
    [DELIVERY_HEADER]: `${d.id}.${alerts[0]?.id ?? ""}`,
    [TIMESTAMP_HEADER]: String(ts),
  };
  if (d.kind === "webhook" && secret !== null) headers[SIGNATURE_HEADER] = `v1=${await signBody(secret, ts, body)}`;
  try {
    const res = await deps.fetch(url, { method: "POST", body, headers, redirect: "manual", signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS) });
    const text = (await res.text().catch(() => "")).slice(0, 200);
    if (res.status >= 200 && res.status < 300) return { ok: true, status: res.status };
    return { ok: false, status: res.status, error: `HTTP ${res.status}${text ? `: ${text.split(url).join(d.url_masked)}` : ""}`, final: false };
  } catch (err) {
    const message = err instanceof Error ? `${err.name}: ${err.message}` : "network error";
    return { ok: false, status: null, error: message.split(url).join(d.url_masked).slice(0, 200), final: false };
  }
}

/**
 * Claims the wake-up for deliveries due at `at` (a delayed message the caller
 * then sends): true unless one is already pending for that moment or earlier.
 */
export async function claimAlertWakeup(db: D1Database, at: number, now: number): Promise<boolean> {
  const result = await db.prepare("UPDATE meta SET value = ?1 WHERE name = 'alert_wakeup_at' AND (value <= ?2 OR value > ?1)").bind(at, now).run();
  return (result.meta.changes ?? 0) === 1;
}

// ---------------------------------------------------------------------------
// History

/** Alerts newest first, with their deliveries; `cursor` continues a page. */
export async function listAlerts(
  db: D1Database,
  q: { limit: number; cursor?: string; kind?: string; failed?: boolean },
): Promise<{ alerts: AlertView[]; nextCursor: string | null }> {
  const [atText, idText] = (q.cursor ?? "").split(":");
  const conditions = ["1 = 1"];
  const params: unknown[] = [];
  if (q.cursor && atText && idText) {
    params.push(Number(atText), idText);
    conditions.push(`(a.created_at < ?${params.length - 1} OR (a.created_at = ?${params.length - 1} AND a.id < ?${params.length}))`);
  }
  if (q.kind) {
    params.push(q.kind);
    conditions.push(`a.kind = ?${params.length}`);
  }
  if (q.failed) conditions.push("EXISTS (SELECT 1 FROM alert_deliveries x WHERE x.alert_id = a.id AND x.status = 'failed')");
  const { results } = await db
    .prepare(`SELECT a.* FROM alerts a WHERE ${conditions.join(" AND ")} ORDER BY a.created_at DESC, a.id DESC LIMIT ${q.limit + 1}`)
    .bind(...params)
    .all<Record<string, unknown>>();
  const page = results.slice(0, q.limit);
  const last = page[page.length - 1];
  return {
    alerts: await withDeliveries(db, page),
    nextCursor: results.length > q.limit && last ? `${Number(last.created_at)}:${String(last.id)}` : null,
  };
}

/** One alert with its deliveries, or null. */
export async function getAlert(db: D1Database, id: string): Promise<AlertView | null> {
  const row = await db.prepare("SELECT * FROM alerts WHERE id = ?1").bind(id).first<Record<string, unknown>>();
  return row ? ((await withDeliveries(db, [row]))[0] ?? null) : null;
}

/** Alert rows as views, each with its deliveries (destination names joined; a deleted one shows as such). */
async function withDeliveries(db: D1Database, page: Record<string, unknown>[]): Promise<AlertView[]> {
  const deliveries =
    page.length === 0
      ? []
      : (
          await db
            .prepare(
              `SELECT x.*, COALESCE(d.name, '(deleted)') AS destination_name FROM alert_deliveries x LEFT JOIN alert_destinations d ON d.id = x.destination_id
               WHERE x.alert_id IN (SELECT value FROM json_each(?1)) ORDER BY destination_name`,
            )
            .bind(JSON.stringify(page.map((a) => a.id)))
            .all<Record<string, unknown>>()
        ).results;
  const byAlert = new Map<string, AlertView["deliveries"]>();
  for (const x of deliveries) {
    let list = byAlert.get(String(x.alert_id));
    if (!list) byAlert.set(String(x.alert_id), (list = []));
    list.push({
      destinationId: String(x.destination_id),
      destinationName: String(x.destination_name),
      status: x.status as "pending" | "sent" | "failed",
      attempts: Number(x.attempts),
      lastStatus: x.last_status === null ? null : Number(x.last_status),
      lastError: x.last_error === null ? null : String(x.last_error),
      nextAt: x.status === "pending" && x.next_at !== null ? Number(x.next_at) : null,
      updatedAt: Number(x.updated_at),
    });
  }
  return page.map((a) => ({ ...alertOfRow(a), deliveries: byAlert.get(String(a.id)) ?? [] }));
}

/** An `alerts` row as the API shows it (without its deliveries). */
function alertOfRow(a: Record<string, unknown>): Omit<AlertView, "deliveries"> {
  return {
    id: String(a.id),
    kind: a.kind as AlertView["kind"],
    status: a.status as AlertView["status"],
    title: String(a.title),
    count: Number(a.count),
    items: JSON.parse(String(a.items)) as AlertView["items"],
    createdAt: Number(a.created_at),
    notBefore: a.not_before === null ? null : Number(a.not_before),
  };
}

/** Deletes alerts (and their deliveries) raised before `cutoff`: the history is kept as long as the request log. */
export function pruneAlerts(db: D1Database, cutoff: number): D1PreparedStatement[] {
  return [
    db.prepare("DELETE FROM alert_deliveries WHERE alert_id IN (SELECT id FROM alerts WHERE created_at < ?1)").bind(cutoff),
    db.prepare("DELETE FROM alerts WHERE created_at < ?1").bind(cutoff),
  ];
}

/** Deliveries updated since `since`, by status. */
export async function alertDeliveryCounts(db: D1Database, since: number): Promise<Record<"pending" | "sent" | "failed", number>> {
  const { results } = await db
    .prepare("SELECT status, COUNT(*) AS n FROM alert_deliveries WHERE updated_at >= ?1 GROUP BY status")
    .bind(since)
    .all<{ status: string; n: number }>();
  const out = { pending: 0, sent: 0, failed: 0 };
  for (const r of results) if (r.status in out) out[r.status as keyof typeof out] = r.n;
  return out;
}
