import { Hono } from "hono";
import {
  EVENT_VERSION,
  addKeysBodySchema,
  addKeysResponseSchema,
  dayStart,
  deletedSchema,
  importKeysBodySchema,
  importKeysResponseSchema,
  importSeedBodySchema,
  importSeedResponseSchema,
  resealKeysBodySchema,
  resealKeysResponseSchema,
  keyBatchBodySchema,
  keyBatchResponseSchema,
  keyExportSchema,
  keyFieldsSchema,
  keyListQuerySchema,
  keyListSchema,
  newEventId,
  probeKeysBodySchema,
  probeResponseSchema,
  updateKeyBodySchema,
  type AddKeysResponse,
  type KeyFilter,
  type ProbeEvent,
  type ProbeResult,
} from "../../../schema";
import type { GatewayHono, IsolateState } from "../../context";
import { KeypoolError } from "../../errors";
import { decryptSecret, encryptSecret, maskSecret, sha256Hex } from "../../../schema/crypto";
import { listKeyViews } from "../../logic/key-listing";
import { parseKeyText } from "../../logic/parse-key-text";
import { keyringFor } from "../../logic/secrets";
import { queueEventSink } from "../../storage/event-sink";
import { readPoolUsage } from "../../storage/snapshot-cache";
import {
  deleteKeys,
  findKeyFields,
  insertKeys,
  loadKeyRows,
  readSealedKeys,
  replaceSealedKeys,
  setKeysEnabled,
  setKeysLimits,
  updateKeyFields,
  type NewKeyRow,
} from "../../../storage/keys";
import { SUCCESS_RATE_WINDOW_MS } from "../../../storage/rollups";
import { foldDatabases } from "../../../storage/fold-databases";
import { readSettings } from "../../../storage/settings";
import { findUpstream } from "../../../storage/upstreams";
import { op } from "./openapi";
import { emitAdminEvent, notFound, type AdminContext } from "./shared";

interface KeyInput {
  key: string;
  enabled: boolean;
  weight: number;
  models: string[];
  note: string;
}

/** Encrypts and stores keys for an upstream; returns the ids of those that were new (others were already in the pool). */
async function storeKeys(c: AdminContext, upstreamId: string, keys: KeyInput[]): Promise<{ rows: NewKeyRow[]; added: Set<string> }> {
  const cryptoKey = await keyringFor(c.env).sealingKey();
  const now = Date.now();
  const rows = await Promise.all(
    keys.map(async (k) => ({
      id: crypto.randomUUID(),
      upstreamId,
      secretEnc: await encryptSecret(cryptoKey, k.key),
      fingerprint: await sha256Hex(k.key),
      masked: maskSecret(k.key),
      enabled: k.enabled,
      weight: k.weight,
      models: k.models,
      note: k.note,
      createdAt: now,
    })),
  );
  return { rows, added: await insertKeys(c.env.DB, rows) };
}

async function requireUpstream(c: AdminContext, id: string) {
  const upstream = await findUpstream(c.env.DB, id);
  if (!upstream) throw notFound("upstream", id, "upstreamId");
  return upstream;
}

/** The keys a filter selects, as the list shows them (state at this moment, usage today), sorted and paged; every one by default. */
async function keyViews(
  c: AdminContext,
  filter: KeyFilter,
  page: { sort: string; limit: number; offset: number } = { sort: "created", limit: Number.MAX_SAFE_INTEGER, offset: 0 },
) {
  const now = Date.now();
  const settings = await readSettings(c.env.DB);
  const [rows, usage] = await Promise.all([
    loadKeyRows(foldDatabases(c.env), dayStart(now, settings.timeZone), now - SUCCESS_RATE_WINDOW_MS, filter.upstreamId),
    readPoolUsage(c.env.SNAPSHOT),
  ]);
  return listKeyViews(rows, filter, page.sort, page.limit, page.offset, settings, usage, now);
}

/** The ids of the keys a filter selects. */
async function idsMatching(c: AdminContext, filter: KeyFilter): Promise<string[]> {
  return (await keyViews(c, filter)).data.map((k) => k.id);
}

const probeSummary = (events: ProbeEvent[]): ProbeResult[] =>
  events.map((e) => ({ keyId: e.keyId, kind: e.kind, result: e.result, balance: e.balance, detail: e.detail }));

/** Keys: batch add, list, update, delete, batch actions, probes, export and import (the seed's format too). */
export function keyRoutes(state: IsolateState) {
  const app = new Hono<GatewayHono>();
  const upstreamMissing = { 404: "No upstream with that `upstreamId`." } as const;

  app.post(
    "/",
    op(
      {
        tag: "keys",
        summary: "Add keys",
        description:
          "Keys separated by newlines, commas, semicolons or spaces, in any mix. Each is encrypted before it is stored; a key the upstream already holds counts as a duplicate.",
        body: addKeysBodySchema,
        ok: { description: "How many were added, how many were duplicates, and the lines that are no key.", schema: addKeysResponseSchema },
        errors: upstreamMissing,
      },
      async (c, { body }) => {
        const upstream = await requireUpstream(c, body.upstreamId);
        const parsed = parseKeyText(body.text);
        const { rows, added } = await storeKeys(
          c,
          upstream.id,
          parsed.keys.map((key) => ({ key, enabled: true, weight: 1, models: [], note: "" })),
        );
        const result: AddKeysResponse = { added: added.size, duplicates: parsed.repeats + (rows.length - added.size), invalid: parsed.invalid };
        if (added.size > 0)
          await emitAdminEvent(c, "keys.add", upstream.id, { added: added.size, duplicates: result.duplicates, invalid: result.invalid.length });
        return c.json(result);
      },
    ),
  );

  app.get(
    "/",
    op(
      {
        tag: "keys",
        summary: "List keys",
        description:
          "Masked, with their state, balance, last error and usage today; searched (`q`: id, masked key, note), filtered, sorted (`-` for descending) and paged.",
        query: keyListQuerySchema,
        ok: { description: "A page of keys and how many match.", schema: keyListSchema },
      },
      async (c, { query }) => {
        const { limit, offset, sort, ...filter } = query;
        const page = await keyViews(c, filter, { sort, limit, offset });
        return c.json({ total: page.total, limit, offset, data: page.data });
      },
    ),
  );

  app.get(
    "/export",
    op(
      {
        tag: "keys",
        summary: "Export the key list",
        description: "Every key as the list shows it, masked, as a JSON download: a record, not a backup (the secrets are not in it).",
        ok: { description: "Every key, masked.", schema: keyExportSchema },
      },
      async (c) => {
        const now = Date.now();
        const { data } = await keyViews(c, {});
        c.header("content-disposition", `attachment; filename="keypool-keys-${new Date(now).toISOString().slice(0, 10)}.json"`);
        return c.json({ exportedAt: now, masked: true, keys: data });
      },
    ),
  );

  app.patch(
    "/:id",
    op(
      {
        tag: "keys",
        summary: "Change a key",
        description: "Enable or disable it, or set its weight, models, note or own limits; fields left out keep their values.",
        body: updateKeyBodySchema,
        ok: { description: "The key's editable fields after the change.", schema: keyFieldsSchema },
        errors: { 404: "No such key." },
      },
      async (c, { body }) => {
        const id = c.req.param("id")!;
        const before = await findKeyFields(c.env.DB, id);
        if (!before) throw notFound("key", id);
        const after = { ...before, ...body };
        await updateKeyFields(c.env.DB, id, after, Date.now());
        await emitAdminEvent(c, "key.update", id, { before, after });
        return c.json({ id, ...after });
      },
    ),
  );

  app.delete(
    "/:id",
    op({ tag: "keys", summary: "Delete a key", ok: { description: "Deleted.", schema: deletedSchema }, errors: { 404: "No such key." } }, async (c) => {
      const id = c.req.param("id")!;
      if ((await deleteKeys(c.env.DB, [id])) === 0) throw notFound("key", id);
      await emitAdminEvent(c, "key.delete", id, null);
      return c.json({ deleted: true });
    }),
  );

  app.post(
    "/batch",
    op(
      {
        tag: "keys",
        summary: "Enable, disable, delete, probe or set the limits of many keys",
        description:
          "The keys given by id, or every key a filter selects (the list's filters). `limits` replaces their own limits with `limits` (`{}`: their upstream's).",
        body: keyBatchBodySchema,
        ok: { description: "How many keys matched and changed, or for `probe` the probes' results.", schema: keyBatchResponseSchema },
      },
      async (c, { body }) => {
        const ids = body.ids ?? (await idsMatching(c, body.filter!));
        const now = Date.now();
        if (body.action === "probe") return c.json({ matched: ids.length, data: probeSummary(await state.probe(c.env, ids)) });
        const changed =
          body.action === "delete"
            ? await deleteKeys(c.env.DB, ids)
            : body.action === "limits"
              ? await setKeysLimits(c.env.DB, ids, body.limits!, now)
              : await setKeysEnabled(c.env.DB, ids, body.action === "enable", now);
        const detail = { matched: ids.length, changed, ids: ids.slice(0, 1000), ...(body.limits ? { limits: body.limits } : {}) };
        await emitAdminEvent(c, `keys.${body.action}`, null, detail);
        return c.json({ matched: ids.length, changed });
      },
    ),
  );

  app.post(
    "/probe",
    op(
      {
        tag: "keys",
        summary: "Probe keys now",
        description:
          "Checks the given keys (or, with `all`, the least recently probed up to the probe budget) with a call that costs nothing — the provider's balance endpoint or its model list — whatever their schedule.",
        body: probeKeysBodySchema,
        ok: { description: "Each probe's result.", schema: probeResponseSchema },
      },
      async (c, { body }) => c.json({ data: probeSummary(await state.probe(c.env, body.all ? "all" : body.ids!)) }),
    ),
  );

  app.post(
    "/reseal",
    op(
      {
        tag: "keys",
        summary: "Re-seal keys under the next key-encryption key",
        description:
          "A step of `npm run rotate -- key-encryption-key`: while `KEY_ENCRYPTION_KEY_NEXT` is set, re-encrypts a page of keys (by id, after `after`) under it. A key already sealed under it is left alone; one that opens under neither key is listed in `unreadable`. Call again with `next` until it is null.",
        body: resealKeysBodySchema,
        ok: { description: "What this page did, and where the next starts.", schema: resealKeysResponseSchema },
        errors: { 409: "No rotation under way: `KEY_ENCRYPTION_KEY_NEXT` is not set (or equals the current key)." },
      },
      async (c, { body }) => {
        const keyring = keyringFor(c.env);
        const next = keyring.nextCryptoKey();
        if (!next) {
          throw new KeypoolError(
            409,
            "invalid_request_error",
            "No key-encryption-key rotation is under way: KEY_ENCRYPTION_KEY_NEXT is not set.",
            "rotation_not_started",
          );
        }
        const [current, target] = await Promise.all([keyring.cryptoKey(), next]);
        const page = await readSealedKeys(c.env.DB, body.after, body.limit);
        const changes: { id: string; from: string; to: string }[] = [];
        const unreadable: string[] = [];
        let alreadySealed = 0;
        for (const row of page) {
          const underNext = await decryptSecret(target, row.secretEnc).catch(() => null);
          if (underNext !== null) {
            alreadySealed += 1;
            continue;
          }
          const plain = await decryptSecret(current, row.secretEnc).catch(() => null);
          if (plain === null) unreadable.push(row.id);
          else changes.push({ id: row.id, from: row.secretEnc, to: await encryptSecret(target, plain) });
        }
        const resealed = await replaceSealedKeys(c.env.DB, changes);
        // The consumer republishes the snapshot, so the gateway serves the new ciphertexts.
        if (resealed > 0) await emitAdminEvent(c, "keys.reseal", null, { resealed, alreadySealed, unreadable: unreadable.length });
        return c.json({ resealed, alreadySealed, unreadable, next: page.length === body.limit ? page.at(-1)!.id : null });
      },
    ),
  );

  app.post(
    "/import",
    op(
      {
        tag: "keys",
        summary: "Import keys with their settings",
        description: "Keys from another system, each with its enabled state, weight, models and note.",
        body: importKeysBodySchema,
        ok: { description: "How many were added, and how many the pool already held.", schema: importKeysResponseSchema },
        errors: upstreamMissing,
      },
      async (c, { body }) => {
        const upstream = await requireUpstream(c, body.upstreamId);
        const { rows, added } = await storeKeys(c, upstream.id, body.keys);
        await emitAdminEvent(c, "keys.import", upstream.id, { added: added.size, duplicates: rows.length - added.size });
        return c.json({ added: added.size, duplicates: rows.length - added.size });
      },
    ),
  );

  app.post(
    "/import-seed",
    op(
      {
        tag: "keys",
        summary: "Import the seed pool's tokens",
        description:
          "The single-file seed pool's KV `tokens` value (`wrangler kv key get tokens`): each key keeps its enabled state, and its balance becomes a probe reading.",
        body: importSeedBodySchema,
        ok: { description: "Keys added and already held, how many came in disabled, how many with a balance.", schema: importSeedResponseSchema },
        errors: upstreamMissing,
      },
      async (c, { body }) => {
        const upstream = await requireUpstream(c, body.upstreamId);
        // A key listed twice keeps its first entry (and that entry's balance).
        const first = new Map<string, (typeof body.tokens)[number]>();
        for (const t of body.tokens) if (!first.has(t.key)) first.set(t.key, t);
        const unique = [...first.values()];
        const { rows, added } = await storeKeys(
          c,
          upstream.id,
          unique.map((t) => ({ key: t.key, enabled: t.enabled, weight: 1, models: [], note: "imported from the seed pool" })),
        );
        const now = Date.now();
        const balances: ProbeEvent[] = [];
        unique.forEach((t, i) => {
          const balance = t.balance === null || t.balance === undefined ? NaN : Number(t.balance);
          if (!added.has(rows[i]!.id) || !Number.isFinite(balance)) return;
          const checked = t.lastChecked === null || t.lastChecked === undefined ? NaN : new Date(t.lastChecked).getTime();
          balances.push({
            v: EVENT_VERSION,
            type: "probe",
            // Time-ordered like every other event id: the consumer's dedupe window grows at its end.
            id: newEventId(now),
            ts: Number.isFinite(checked) && checked <= now ? checked : now,
            keyId: rows[i]!.id,
            kind: "balance",
            result: "ok",
            balance,
            detail: "balance imported from the seed pool",
          });
        });
        // The seed's balances become probe readings, folded into health like any other.
        await queueEventSink(c.env)(balances);
        const result = {
          added: added.size,
          duplicates: body.tokens.length - added.size,
          disabled: unique.filter((t, i) => added.has(rows[i]!.id) && !t.enabled).length,
          balances: balances.length,
        };
        await emitAdminEvent(c, "keys.import_seed", upstream.id, result);
        return c.json(result);
      },
    ),
  );

  return app;
}
