import { Hono } from "hono";
import {
  bodiesKey,
  keptBodiesSchema,
  requestDetailSchema,
  requestExportQuerySchema,
  requestPageSchema,
  requestQuerySchema,
  type RequestAttempt,
  type RequestDetail,
  type Settings,
  type RequestRecord,
} from "../../../schema";
import { findArchivedRequest, findRequest, listRequests, type ArchivedRequest, type RequestFilters } from "../../../storage/request-log";
import { foldDatabases } from "../../../storage/fold-databases";
import type { RequestRow } from "../../../storage/request-log-rows";
import type { GatewayHono } from "../../context";
import { op } from "./openapi";
import { KeypoolError } from "../../errors";
import { readSettings } from "../../../storage/settings";

/** A share as a percentage for a message: "1%", "0.5%", "0%". */
const percent = (share: number) => `${Number((share * 100).toPrecision(3))}%`;

const num = (v: unknown) => Number(v ?? 0);
const str = (v: unknown) => (v === null || v === undefined ? null : String(v));

function tokensOf(r: RequestRow): RequestRecord["tokens"] {
  return {
    prompt: num(r.prompt_tokens),
    completion: num(r.completion_tokens),
    total: num(r.total_tokens),
    cached: num(r.cached_tokens),
    reasoning: num(r.reasoning_tokens),
    source: String(r.usage_source) as RequestRecord["tokens"]["source"],
  };
}

function recordOf(r: RequestRow): RequestRecord {
  return {
    requestId: String(r.request_id),
    startedAt: num(r.started_at),
    clientKeyId: String(r.client_key_id),
    clientName: str(r.client_name),
    model: String(r.model),
    upstreamModel: str(r.upstream_model),
    endpoint: String(r.endpoint),
    stream: r.stream === 1,
    keyId: String(r.key_id),
    keyMasked: str(r.key_masked),
    upstreamId: String(r.upstream_id),
    upstreamName: str(r.upstream_name),
    status: num(r.status),
    outcome: String(r.outcome) as RequestRecord["outcome"],
    attempts: num(r.attempts),
    latencyMs: num(r.latency_ms),
    ttfbMs: r.ttfb_ms === null ? null : num(r.ttfb_ms),
    tokens: tokensOf(r),
    costMicros: num(r.cost_micros),
    unpriced: num(r.unpriced),
    userAgent: str(r.user_agent),
    clientIp: str(r.client_ip),
  };
}

function attemptOf(r: RequestRow): RequestAttempt {
  return {
    attempt: num(r.attempt),
    startedAt: num(r.ts),
    keyId: String(r.key_id),
    keyMasked: str(r.key_masked),
    upstreamId: String(r.upstream_id),
    upstreamName: str(r.upstream_name),
    upstreamModel: str(r.upstream_model),
    status: num(r.status),
    outcome: String(r.outcome) as RequestAttempt["outcome"],
    latencyMs: num(r.latency_ms),
    ttfbMs: r.ttfb_ms === null ? null : num(r.ttfb_ms),
    tokens: tokensOf(r),
    costMicros: num(r.cost_micros),
    error: str(r.error),
  };
}

/** Why a request is in neither the log nor the archive: what the log keeps, and what of the archive was searched. */
function notInArchive(id: string, archived: ArchivedRequest | null, settings: Settings): string {
  const keeps =
    settings.requestLogSample >= 1
      ? "every request"
      : `every request with a failed or retried attempt and ${percent(settings.requestLogSample)} of the rest (the requestLogSample setting)`;
  const log = `No request with id '${id}'. The request log does not hold it (it keeps ${keeps} for ${settings.retention.requestLogDays} days)`;
  if (!archived) return `${log}, and the event archive is searched only by the time a request id the gateway made carries (a UUIDv7).`;
  const from = new Date(archived.from).toISOString();
  const until = new Date(archived.until).toISOString();
  const batches = `${archived.listed} batches the event archive holds`;
  const read = archived.read === archived.listed ? "all read" : `${archived.read} read, the others' filters ruling it out`;
  if (archived.budgetSpent && archived.lastAt !== null)
    return `${log}, nor do the ${batches} from ${from} to ${new Date(archived.lastAt).toISOString()} (${read}), where the search stopped at its budget (it reads up to ${until}).`;
  return `${log}, nor do the ${batches} from ${from} to ${until} (${read}).`;
}

const cursorOf = (r: RequestRecord) => `${r.startedAt}_${r.requestId}`;
function parseCursor(cursor: string | undefined): { startedAt: number; requestId: string } | null {
  if (!cursor) return null;
  const at = cursor.indexOf("_");
  return { startedAt: Number(cursor.slice(0, at)), requestId: cursor.slice(at + 1) };
}

/** The CSV columns of an export, and each record's values for them. */
const CSV_COLUMNS: [string, (r: RequestRecord) => unknown][] = [
  ["request_id", (r) => r.requestId],
  ["started_at", (r) => new Date(r.startedAt).toISOString()],
  ["client_key", (r) => r.clientName ?? r.clientKeyId],
  ["endpoint", (r) => r.endpoint],
  ["model", (r) => r.model],
  ["upstream_model", (r) => r.upstreamModel ?? ""],
  ["stream", (r) => r.stream],
  ["status", (r) => r.status],
  ["outcome", (r) => r.outcome],
  ["attempts", (r) => r.attempts],
  ["key", (r) => r.keyMasked ?? r.keyId],
  ["upstream", (r) => r.upstreamName ?? r.upstreamId],
  ["latency_ms", (r) => Math.round(r.latencyMs)],
  ["ttfb_ms", (r) => (r.ttfbMs === null ? "" : Math.round(r.ttfbMs))],
  ["prompt_tokens", (r) => r.tokens.prompt],
  ["completion_tokens", (r) => r.tokens.completion],
  ["total_tokens", (r) => r.tokens.total],
  ["usage_source", (r) => r.tokens.source],
  ["cost_micros", (r) => r.costMicros],
  ["unpriced", (r) => r.unpriced],
  ["user_agent", (r) => r.userAgent ?? ""],
  ["client_ip", (r) => r.clientIp ?? ""],
];

/** A CSV field, quoted when it must be (RFC 4180), and never read as a formula by a spreadsheet. */
function csvField(value: unknown): string {
  let text = String(value);
  if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Requests an export reads at a time. */
const EXPORT_PAGE = 1_000;

/** The request log: a filtered page, one request with its attempts, and an export. */
export function requestRoutes() {
  const app = new Hono<GatewayHono>();

  app.get(
    "/",
    op(
      {
        tag: "requests",
        summary: "List requests",
        description:
          "The request log, newest first: one record per client request with its final answer, latency, tokens and cost. Filter by time (`from`, `to`, epoch ms), client key, key (any attempt on it), upstream, model, endpoint, outcome, status (`429` or `5xx`), stream, minimum latency or request id; page with `cursor` (the previous page's `nextCursor`). Kept `retention.requestLogDays` (7); of the requests answered at their first attempt without error, the share `requestLogSample` (1: all).",
        query: requestQuerySchema,
        ok: { description: "A page of requests.", schema: requestPageSchema },
      },
      async (c, { query }) => {
        const { cursor, limit, ...filters } = query;
        const rows = (await listRequests(foldDatabases(c.env), filters as RequestFilters, parseCursor(cursor), limit)).map(recordOf);
        const more = rows.length > limit;
        const data = more ? rows.slice(0, limit) : rows;
        return c.json({ data, nextCursor: more ? cursorOf(data.at(-1)!) : null });
      },
    ),
  );

  app.get(
    "/export",
    op(
      {
        tag: "requests",
        summary: "Export requests",
        description:
          "The requests a filter selects (the same filters as the list), newest first, as NDJSON (one record a line) or CSV, streamed; at most `max` (100,000 by default).",
        query: requestExportQuerySchema,
        ok: { description: "NDJSON or CSV.", contentType: "application/x-ndjson" },
      },
      async (c, { query }) => {
        const { format, max, ...filters } = query;
        const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
        const encoder = new TextEncoder();
        const write = async () => {
          const writer = writable.getWriter();
          try {
            if (format === "csv") await writer.write(encoder.encode(CSV_COLUMNS.map(([name]) => name).join(",") + "\r\n"));
            let cursor: { startedAt: number; requestId: string } | null = null;
            for (let sent = 0; sent < max;) {
              const n = Math.min(EXPORT_PAGE, max - sent);
              const page: RequestRecord[] = (await listRequests(foldDatabases(c.env), filters as RequestFilters, cursor, n)).map(recordOf);
              const rows = page.slice(0, n);
              const text =
                format === "csv"
                  ? rows.map((r) => CSV_COLUMNS.map(([, value]) => csvField(value(r))).join(",") + "\r\n").join("")
                  : rows.map((r) => JSON.stringify(r) + "\n").join("");
              if (text) await writer.write(encoder.encode(text));
              sent += rows.length;
              if (page.length <= rows.length) break;
              cursor = { startedAt: rows.at(-1)!.startedAt, requestId: rows.at(-1)!.requestId };
            }
            await writer.close();
          } catch (err) {
            await writer.abort(err).catch(() => undefined);
          }
        };
        c.executionCtx.waitUntil(write());
        const type = format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson";
        return new Response(readable, {
          headers: { "content-type": type, "content-disposition": `attachment; filename="keypool-requests.${format === "csv" ? "csv" : "ndjson"}"` },
        });
      },
    ),
  );

  app.get(
    "/:id",
    op(
      {
        tag: "requests",
        summary: "One request",
        description:
          "A request's record and its attempts in order: key (masked), upstream, status, outcome, latency, first byte, tokens, cost, and the upstream's error message (redacted). A request the log does not hold — a first-attempt success that `requestLogSample` left out, or one past `retention.requestLogDays` — is read from the event archive by the time its id carries (`source`: `archive`).",
        ok: { description: "The request with its attempts.", schema: requestDetailSchema },
        errors: {
          404: "Neither the log nor the event archive holds this request: unknown, or its batches are past what the archive search reads (the message says what it searched).",
        },
      },
      async (c) => {
        const id = c.req.param("id")!;
        let found = await findRequest(foldDatabases(c.env), id);
        let source: RequestDetail["source"] = "log";
        if (!found) {
          const archived = await findArchivedRequest(c.env.DB, c.env.ARCHIVE, id, Date.now());
          if (!archived?.found)
            throw new KeypoolError(404, "not_found_error", notInArchive(id, archived, await readSettings(c.env.DB)), "request_not_found", null);
          found = archived.found;
          source = "archive";
        }
        const record = recordOf(found.request);
        const kept = await c.env.ARCHIVE.get(bodiesKey(record.requestId, record.startedAt));
        const bodies = kept ? keptBodiesSchema.safeParse(await kept.json()) : null;
        return c.json({ ...record, attemptList: found.attempts.map(attemptOf), bodies: bodies?.success ? bodies.data : null, source });
      },
    ),
  );

  return app;
}
