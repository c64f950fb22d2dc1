import { Hono } from "hono";
import {
  BACKUP_TABLES,
  SCHEMA_MIGRATION,
  backupArchiveSchema,
  backupBodySchema,
  backupPayloadSchema,
  restoreBodySchema,
  restoreResponseSchema,
  type BackupArchive,
  type BackupPayload,
  type BackupTable,
} from "../../../schema";
import { encryptSecret, openWithPassphrase, sealWithPassphrase } from "../../../schema/crypto";
import { UnknownColumnsError, configurationCounts, readConfiguration, writeConfiguration, type Row } from "../../../storage/backup";
import { appliedMigration } from "../../../storage/schema-version";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { alertSecretCacheFor, keyringFor } from "../../logic/secrets";
import { sealingKey as alertSealingKey } from "./alerts";
import { op } from "./openapi";
import { emitAdminEvent } from "./shared";

/**
 * Backup and restore of the configuration — upstreams, keys, client keys (their
 * hashes), prices, settings, alert destinations, the scrape token — sealed under
 * a passphrase, so an archive restores into any deployment (or the local stack)
 * whatever its secrets.
 */
export function backupRoutes() {
  const app = new Hono<GatewayHono>();

  app.post(
    "/backup",
    op(
      {
        tag: "backup",
        summary: "Back up the configuration",
        description:
          "An archive of everything an operator configured: upstreams, upstream keys (opened with this deployment's key and sealed with the archive), client keys as their hashes with their limits, prices, settings, alert destinations and the scrape token's hash — sealed with AES-GCM under a key derived from the passphrase (PBKDF2-SHA-256). Usage and health are not in it: they are rebuilt from the event log. `npm run backup` calls this.",
        body: backupBodySchema,
        ok: { description: "The archive; store it, and the passphrase apart from it.", schema: backupArchiveSchema },
        errors: { 409: "A key or an alert destination cannot be opened with this deployment's keys." },
      },
      async (c, { body }) => {
        const tables = await readConfiguration(c.env.DB);
        const keyring = keyringFor(c.env);
        // Destinations need the alert key: without it, a 503 naming it (as the alert routes answer).
        const alerts = tables.alert_destinations.length > 0 ? (await alertSealingKey(c), alertSecretCacheFor(c.env.ALERT_ENCRYPTION_KEY)) : null;
        const unreadable: string[] = [];
        const keys: Row[] = [];
        for (const { secret_enc, ...row } of tables.keys) {
          const secret = await keyring.decrypt(String(secret_enc)).catch(() => null);
          if (secret === null) unreadable.push(String(row.id));
          else keys.push({ ...row, secret });
        }
        if (unreadable.length > 0) {
          throw new KeypoolError(
            409,
            "invalid_request_error",
            `${unreadable.length} key(s) cannot be opened with this deployment's KEY_ENCRYPTION_KEY (first: ${unreadable[0]}); delete or re-add them, then back up.`,
            "keys_unreadable",
          );
        }
        const destinations: Row[] = [];
        try {
          for (const { url_enc, secret_enc, ...row } of tables.alert_destinations) {
            destinations.push({
              ...row,
              url: await alerts!.decrypt(String(url_enc)),
              secret: secret_enc === null ? null : await alerts!.decrypt(String(secret_enc)),
            });
          }
        } catch {
          throw new KeypoolError(
            409,
            "invalid_request_error",
            "An alert destination cannot be opened with this deployment's ALERT_ENCRYPTION_KEY; re-enter or remove it, then back up.",
            "destinations_unreadable",
          );
        }
        const payload: BackupPayload = { tables: { ...tables, keys, alert_destinations: destinations } };
        const sealed = await sealWithPassphrase(body.passphrase, JSON.stringify(payload));
        const createdAt = Date.now();
        const archive: BackupArchive = {
          format: "keypool-backup",
          version: 1,
          createdAt,
          schema: (await appliedMigration(c.env.DB)) ?? SCHEMA_MIGRATION,
          kdf: { name: "PBKDF2", hash: "SHA-256", iterations: sealed.iterations, salt: sealed.salt },
          cipher: "AES-GCM",
          data: sealed.sealed,
        };
        await emitAdminEvent(c, "backup.create", null, Object.fromEntries(BACKUP_TABLES.map((t) => [t, payload.tables[t]?.length ?? 0])));
        c.header("content-disposition", `attachment; filename="keypool-backup-${new Date(createdAt).toISOString().slice(0, 19).replace(/[:T]/g, "-")}.json"`);
        return c.json(archive);
      },
    ),
  );

  app.post(
    "/restore",
    op(
      {
        tag: "backup",
        summary: "Restore a backup into an empty deployment",
        description:
          "Opens the archive with its passphrase (400 `wrong_passphrase` otherwise; `archive_too_new` for an archive from a newer Keypool) and writes its configuration, all or nothing: keys are sealed with this deployment's KEY_ENCRYPTION_KEY, alert destinations with its ALERT_ENCRYPTION_KEY, client keys keep their hashes (the same client keys work). Only into a deployment without upstreams, keys or client keys. The gateway serves the restored pool once the consumer has published it. `npm run restore` calls this.",
        body: restoreBodySchema,
        ok: { description: "Rows restored per table, and the archive's origin.", schema: restoreResponseSchema },
        errors: { 409: "The deployment already holds upstreams, keys or client keys." },
      },
      async (c, { body }) => {
        const { archive } = body;
        if (archive.schema > SCHEMA_MIGRATION) {
          throw new KeypoolError(
            400,
            "invalid_request_error",
            `The archive comes from a newer Keypool (schema ${archive.schema}, this one ${SCHEMA_MIGRATION}): upgrade first.`,
            "archive_too_new",
            "archive.schema",
          );
        }
        const existing = await configurationCounts(c.env.DB);
        if (existing.upstreams + existing.keys + existing.clientKeys > 0) {
          throw new KeypoolError(
            409,
            "invalid_request_error",
            `Restore needs an empty deployment; this one has ${existing.upstreams} upstream(s), ${existing.keys} key(s) and ${existing.clientKeys} client key(s).`,
            "not_empty",
          );
        }
        let opened: string;
        try {
          opened = await openWithPassphrase(body.passphrase, { salt: archive.kdf.salt, iterations: archive.kdf.iterations, sealed: archive.data });
        } catch {
          throw new KeypoolError(
            400,
            "invalid_request_error",
            "The archive cannot be opened: a wrong passphrase, or the archive was changed.",
            "wrong_passphrase",
            "passphrase",
          );
        }
        let contents: unknown = null;
        try {
          contents = JSON.parse(opened);
        } catch {
          // refused just below, as contents that are not a configuration
        }
        const payload = backupPayloadSchema.safeParse(contents);
        if (!payload.success)
          throw new KeypoolError(
            400,
            "invalid_request_error",
            "The archive opened but its contents are not a Keypool configuration.",
            "invalid_archive",
            "archive",
          );
        const tables = payload.data.tables as Partial<Record<BackupTable, Row[]>>;

        const keyKey = await keyringFor(c.env).sealingKey();
        const keys: Row[] = [];
        for (const { secret, ...row } of tables.keys ?? []) keys.push({ ...row, secret_enc: await encryptSecret(keyKey, String(secret)) });
        const destinations: Row[] = [];
        if ((tables.alert_destinations ?? []).length > 0) {
          const alertKey = await alertSealingKey(c);
          for (const { url, secret, ...row } of tables.alert_destinations ?? []) {
            destinations.push({
              ...row,
              url_enc: await encryptSecret(alertKey, String(url)),
              secret_enc: secret === null || secret === undefined ? null : await encryptSecret(alertKey, String(secret)),
            });
          }
        }
        let restored: Record<string, number>;
        try {
          restored = await writeConfiguration(c.env.DB, { ...tables, keys, alert_destinations: destinations });
        } catch (err) {
          if (err instanceof UnknownColumnsError)
            throw new KeypoolError(400, "invalid_request_error", `${err.message}: upgrade this deployment first.`, "archive_too_new", "archive");
          throw err;
        }
        await emitAdminEvent(c, "backup.restore", null, { ...restored, createdAt: archive.createdAt, schema: archive.schema });
        return c.json({ restored, from: { createdAt: archive.createdAt, schema: archive.schema } });
      },
    ),
  );

  return app;
}
